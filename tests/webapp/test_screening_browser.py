"""The screener's day in a real browser, against the real web server and a real worker with a real
(tiny, trained) model: upload, rejections, progress, results, heatmap, review, montage, CSV."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.builders import make_dicom, make_head_slice, make_jpeg, make_png
from tests.conftest import browser_login
from tests.conftest import screenshot as save_screenshot
from tests.webapp.conftest import PASSWORDS, create_role_users
from tests.worker.conftest import install_model

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ONNX model directory run by the real worker; its answers are known by hand and it is
    built in milliseconds (training the tiny CNN here would cost the suite half a minute)."""
    from tests.model_fixtures import build_handmade_model_dir

    return build_handmade_model_dir(tmp_path_factory.mktemp("handmade") / "model", size=32)


def upload_files() -> tuple[list[dict], dict[str, str]]:
    """Good scans, bad files and a duplicate, as Playwright file payloads; and the expected rejections."""
    head = make_png(make_head_slice(128, seed=11, lesion=True))
    good = {
        "lesion.png": head,
        "plain.png": make_png(make_head_slice(128, seed=12)),
        "slice.jpg": make_jpeg(make_head_slice(128, seed=13)),
        "ct.dcm": make_dicom((make_head_slice(128, seed=14) * 120 + 1000).astype("int16")),
        "lesion-again.png": head,
    }
    bad = {"notes.txt": b"patient list, not an image\n", "cut.png": head[:20]}
    files = [{"name": name, "mimeType": "application/octet-stream", "buffer": data}
             for name, data in {**good, **bad}.items()]
    reasons = {"notes.txt": "not an image (a text file)", "cut.png": "truncated or corrupt PNG (no image header)"}
    return files, reasons


def screenshot(page, name: str, full_page: bool = True) -> None:
    """The README's picture of the page, once every image on it has arrived; reduced to a 256-colour
    palette so that pages full of noisy scans stay small in the repository."""
    from PIL import Image

    from tests.conftest import SCREENSHOTS

    page.wait_for_function("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if full_page:
        save_screenshot(page, name)
    else:
        page.screenshot(path=str(path))
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def seed_history(screener: str) -> None:
    """An earlier batch of the same screener (made by the factories), so the montage has a spread of
    probabilities to select from."""
    from core.db import session_scope
    from core.models import User
    from tests.factories import make_batch, make_model_version

    with session_scope() as db:
        user = db.scalar(select(User).where(User.username == screener))
        make_batch(db, user, make_model_version(db, version="earlier", status="retired"), n_scans=40, seed=3)


def test_a_screener_uploads_reviews_filters_and_exports(make_env, start_worker, start_web, page, model_dir) -> None:
    env = make_env()
    create_role_users()
    install_model(env, model_dir)
    seed_history("screener")
    start_worker(env)
    _, base = start_web(env)
    browser_login(page, base, "screener", PASSWORDS["screener"])

    # Upload: limits shown first; then accepted count, every rejection with its reason, the duplicate.
    page.goto(base + "/screen")
    assert "Up to 2,000 files a batch" in page.inner_text("#screen-limits")
    files, reasons = upload_files()
    page.set_input_files("#screen-upload input[type=file]", files=files)
    page.wait_for_selector("#screen-counts")
    counts = page.inner_text("#screen-counts")
    assert counts.endswith(": 4 accepted, 2 rejected, 1 duplicate.")
    rejected = page.inner_text("#screen-rejected")
    for name, reason in reasons.items():
        assert f"{name}: {reason}" in rejected
    assert "lesion-again.png: same bytes as lesion.png" in page.inner_text("#screen-duplicates")
    page.wait_for_function("document.querySelector('#screen-progress').innerText.trim() === '100%'", timeout=60_000)
    assert page.inner_text("#screen-status").startswith("done with errors: 4 of 4 screened")
    screenshot(page, "screen")
    first_counts = counts

    # The same good files again: a new batch that says they were screened before, and where.
    page.set_input_files("#screen-upload input[type=file]", files=files[:2])
    page.wait_for_selector("#screen-earlier", state="visible")
    first_batch = first_counts.split(":")[0].removeprefix("Batch ")
    assert page.inner_text("#screen-counts").endswith(": 2 accepted, 0 rejected, 0 duplicates.")
    earlier = page.inner_text("#screen-earlier")
    assert f"lesion.png: screened before in batch {first_batch}" in earlier
    assert f"plain.png: screened before in batch {first_batch}" in earlier
    page.wait_for_function("document.querySelector('#screen-progress').innerText.trim() === '100%'", timeout=60_000)
    page.goto(base + f"/batches/{first_batch}")

    # Results of the first batch: every file in the table, a link to each scan.
    page.wait_for_selector("#batch-grid .ag-row")
    page.wait_for_function("document.querySelector('#batch-shown').innerText === 'Showing 7 of 7 files.'")
    batch_url = page.url
    screenshot(page, "batch-results")

    # Viewer: heatmap over the slice; the slider changes its opacity; a review is recorded.
    page.click("#batch-grid .ag-row a:text-is('lesion.png')")
    page.wait_for_selector("#scan-overlay")
    assert page.eval_on_selector("#scan-overlay", "e => e.style.opacity") == "0.5"
    handle = page.locator("#scan-opacity [role=slider]")
    handle.focus()
    for _ in range(4):
        handle.press("ArrowRight")
    page.wait_for_function("document.querySelector('#scan-overlay').style.opacity === '0.7'")
    page.click("#scan-heatmap-on")
    page.wait_for_function("document.querySelector('#scan-overlay').style.visibility === 'hidden'")
    page.click("#scan-heatmap-on")
    page.wait_for_function("document.querySelector('#scan-overlay').style.opacity === '0.7'")
    page.click("#scan-confirm-tumor")
    page.wait_for_selector("#scan-review-message:has-text('Confirmed tumor.')")
    assert "screener confirmed tumor" in page.inner_text("#scan-history")
    screenshot(page, "scan-viewer")
    for expected in ("plain.png", "slice.jpg", "ct.dcm"):  # next → walks the batch in upload order
        page.click("#scan-next")
        page.wait_for_function(f"document.querySelector('#scan-title')?.innerText === {expected!r}")
    dicom = page.inner_text("#scan-dicom")
    assert "modality\tCT" in dicom and "rescale intercept\t-1024" in dicom
    assert "de-identification\twhitelist" in dicom and "PatientName" not in dicom
    page.click("#scan-prev")
    page.wait_for_function("document.querySelector('#scan-title')?.innerText === 'slice.jpg'")
    from core.db import session_scope
    from core.models import Prediction, Review

    with session_scope() as db:
        review = db.scalars(select(Review)).one()
        assert (review.scan.filename, review.confirmed_label, review.user.username) == ("lesion.png", "tumor",
                                                                                     "screener")

    # Montage: a box over the right half of the histogram leaves only scans with p >= 0.5.
    page.goto(base + "/montage")
    page.wait_for_selector("#montage-grid .ts-tile")
    with session_scope() as db:
        total = db.scalar(select(func.count()).select_from(Prediction))
        high = db.scalar(select(func.count()).select_from(Prediction).where(Prediction.probability >= 0.5))
    assert 0 < high < total
    page.wait_for_function(f"document.querySelector('#montage-count').innerText.startsWith('{total} scans')")
    area = page.locator("#montage-hist .nsewdrag").bounding_box()
    y_top, y_bottom = area["y"] + 2, area["y"] + area["height"] - 2
    page.mouse.move(area["x"] + 0.505 * area["width"], y_top)
    page.mouse.down()
    page.mouse.move(area["x"] + 0.8 * area["width"], (y_top + y_bottom) / 2, steps=5)
    page.mouse.move(area["x"] + area["width"] - 1, y_bottom, steps=5)
    page.mouse.up()
    page.wait_for_function("document.querySelector('#montage-count').innerText.includes('selected of')")
    assert page.inner_text("#montage-count").startswith(f"{high} selected of {total} scans")
    shown = page.eval_on_selector_all("#montage-grid .ts-tile", "ts => ts.map(t => parseFloat(t.dataset.p))")
    assert shown and len(shown) == min(high, 72) and min(shown) >= 0.5
    page.click("text=heatmaps on thumbnails")
    page.wait_for_function("[...document.querySelectorAll('#montage-grid .ts-tile img')]"
                           ".every(i => i.src.endsWith('/thumbnail-heatmap.png'))")
    assert page.inner_text("#montage-count").startswith(f"{high} selected of {total} scans")
    screenshot(page, "montage")
    page.click("#montage-grid .ts-tile")
    page.wait_for_selector("#scan-gauge")

    # CSV: every uploaded file, rejected ones with their reason.
    page.goto(batch_url)
    page.wait_for_selector("#batch-grid .ag-row")
    with page.expect_download() as download:
        page.click("#batch-csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert sorted(r["filename"] for r in rows) == sorted(f["name"] for f in files)
    by_name = {r["filename"]: r for r in rows}
    for name, reason in reasons.items():
        assert (by_name[name]["status"], by_name[name]["error"]) == ("rejected", reason)
    assert by_name["lesion.png"]["reviewed_label"] == "tumor"
    assert by_name["lesion-again.png"]["error"] == "duplicate of lesion.png"

    page.click("#batch-report")
    page.wait_for_selector("#report-summary")
    assert page.inner_text("#report-none") == "No scan was predicted tumor or flagged for review."
    page.goto(base + "/reports/1")  # the earlier batch, which has flagged scans to show
    page.wait_for_selector("#report-flagged .ts-report-tile")
    screenshot(page, "batch-report", full_page=False)  # the first screen of it: summary and first tiles
    page.goto(base + "/batches")
    page.wait_for_selector("#batches-grid .ag-row")
    screenshot(page, "batches")
