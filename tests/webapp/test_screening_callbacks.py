"""Every callback of the screener's pages, fired in-process the way the browser fires them: what it
answers, what it records, and whom it refuses."""
from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest
from sqlalchemy import select

from core.db import session_scope
from core.models import AuditEntry, Batch, Prediction, Review, Scan
from tests.builders import make_head_slice, make_png
from tests.conftest import ROOT
from tests.webapp.screening_support import fire, seed_two_screeners


@pytest.fixture
def seeded(web_env):
    return seed_two_screeners()


def as_upload(name: str, data: bytes) -> tuple[str, str]:
    return name, "data:application/octet-stream;base64," + base64.b64encode(data).decode()


def response_of(response) -> dict:
    assert response.status_code == 200, response.get_data(as_text=True)[:400]
    return response.get_json()["response"]


def text(node) -> str:
    """All the text of a rendered component tree, in order."""
    if isinstance(node, str):
        return node
    if isinstance(node, (int, float)):
        return str(node)
    if isinstance(node, list):
        return "".join(text(n) for n in node)
    if isinstance(node, dict):
        return text(node.get("props", {}).get("children", ""))
    return ""


# --- Screen: upload and progress -------------------------------------------------------------------

def upload(client, dash_app, files: list[tuple[str, str]]):
    return fire(client, dash_app, "screen-result.children",
                {"screen-upload.contents": [c for _, c in files]},
                {"screen-upload.filename": [n for n, _ in files]})


def test_upload_reports_accepted_rejected_and_duplicates_then_progress(dash_app, client_for, web_env) -> None:
    client = client_for("screener")
    good = make_png(make_head_slice(128, seed=1))
    files = [as_upload("a.png", good), as_upload("b.png", make_png(make_head_slice(128, seed=2))),
             as_upload("notes.txt", b"not an image\n"), as_upload("a-copy.png", good)]
    out = response_of(upload(client, dash_app, files))
    result = text(out["screen-result"]["children"])
    with session_scope() as db:
        batch = db.scalars(select(Batch)).one()
    assert f"Batch {batch.id}: 2 accepted, 1 rejected, 1 duplicate." in result
    assert "notes.txt: not an image (a text file)" in result
    assert "a-copy.png: same bytes as a.png" in result
    assert out["screen-batch"]["data"] == batch.id
    assert out["screen-poll"]["disabled"] is False
    assert out["screen-upload"]["contents"] is None  # ready for the next drop, even of the same files

    # No worker runs here: the batch waits in the queue, and the bar says so without claiming progress.
    poll = response_of(fire(client, dash_app, "screen-progress.value", {"screen-poll.n_intervals": 1},
                            {"screen-batch.data": batch.id}))
    assert poll["screen-progress"]["value"] == 0
    assert poll["screen-status"]["children"] == "queued: 0 of 2 screened"
    assert poll["screen-poll"]["disabled"] is False

    with session_scope() as db:
        row = db.get(Batch, batch.id)
        row.predicted, row.status = 2, "done"
    poll = response_of(fire(client, dash_app, "screen-progress.value", {"screen-poll.n_intervals": 2},
                            {"screen-batch.data": batch.id}))
    assert (poll["screen-progress"]["value"], poll["screen-progress"]["label"]) == (100, "100%")
    assert poll["screen-status"]["children"] == "done: 2 of 2 screened"
    assert poll["screen-poll"]["disabled"] is True

    # The same files again: the second batch says they were screened before, in batch N.
    again = text(response_of(upload(client, dash_app, files[:2]))["screen-result"]["children"])
    assert f"a.png: screened before in batch {batch.id}" in again
    assert f"b.png: screened before in batch {batch.id}" in again


def test_upload_over_the_batch_limit_is_refused_with_the_limit(dash_app, client_for, web_env, monkeypatch) -> None:
    from core.config import get_settings

    monkeypatch.setenv("TUMORSCREEN_MAX_BATCH_FILES", "2")
    get_settings.cache_clear()
    png = make_png(make_head_slice(64, seed=1))
    out = response_of(upload(client_for("screener"), dash_app,
                             [as_upload(f"{i}.png", png + bytes([i])) for i in range(3)]))
    assert text(out["screen-result"]["children"]) == "Nothing was stored: 3 files in one batch; the limit is 2."
    with session_scope() as db:
        assert db.scalars(select(Batch)).all() == []


def test_a_garbled_upload_is_refused_whole(dash_app, client_for, web_env) -> None:
    out = response_of(fire(client_for("screener"), dash_app, "screen-result.children",
                           {"screen-upload.contents": ["data:image/png;base64,@@not base64@@"]},
                           {"screen-upload.filename": ["x.png"]}))
    assert text(out["screen-result"]["children"]) == "The upload of x.png was garbled; nothing was stored. Try again."


def test_only_screeners_and_admins_may_upload(dash_app, client_for, web_env) -> None:
    files = [as_upload("a.png", make_png(make_head_slice(64, seed=3)))]
    answers = {role: upload(client_for(role), dash_app, files).status_code
               for role in (None, "manager", "screener", "admin")}
    assert answers == {None: 401, "manager": 401, "screener": 200, "admin": 200}
    with session_scope() as db:
        assert sorted(b.created_by.username for b in db.scalars(select(Batch))) == ["admin", "screener"]


def test_progress_of_another_screeners_batch_is_not_shown(dash_app, client_for, seeded) -> None:
    poll = response_of(fire(client_for("screener"), dash_app, "screen-progress.value",
                            {"screen-poll.n_intervals": 1}, {"screen-batch.data": seeded.theirs}))
    assert poll["screen-status"]["children"] == "This batch is not available."


# --- Batches and batch results ---------------------------------------------------------------------

def test_batches_refresh_lists_only_own_batches(dash_app, client_for, seeded) -> None:
    out = response_of(fire(client_for("screener"), dash_app, "batches-grid.rowData", {"batches-poll.n_intervals": 1}))
    assert [row["id"] for row in out["batches-grid"]["rowData"]] == [seeded.mine]
    refused = fire(client_for(None), dash_app, "batches-grid.rowData", {"batches-poll.n_intervals": 1})
    assert refused.status_code == 401


def results(client, dash_app, batch_id: int, **filters):
    values = {"batch-f-label.value": "any", "batch-f-prob.value": [0, 1], "batch-f-flag.value": "any",
              "batch-f-reviewed.value": "any", "batch-f-errors.value": []}
    values.update({f"batch-f-{k}.value": v for k, v in filters.items()})
    return response_of(fire(client, dash_app, "batch-grid.rowData", values, {"batch-id.data": batch_id}))


def test_results_table_filters_by_label_probability_flag_review_and_error(dash_app, client_for, seeded) -> None:
    client = client_for("screener")
    every = results(client, dash_app, seeded.mine)
    rows = every["batch-grid"]["rowData"]
    assert len(rows) == 14 and every["batch-shown"]["children"] == "Showing 14 of 14 files."
    assert every["batch-progress"]["value"] == 100 and every["batch-poll"]["disabled"] is True
    assert every["batch-rejected"]["children"] == 2

    tumors = results(client, dash_app, seeded.mine, label="tumor")["batch-grid"]["rowData"]
    assert tumors and {r["label"] for r in tumors} == {"tumor"}
    middle = results(client, dash_app, seeded.mine, prob=[0.3, 0.7])["batch-grid"]["rowData"]
    assert all(0.3 <= r["probability"] <= 0.7 for r in middle)
    assert len(middle) == sum(1 for r in rows if r["probability"] is not None and 0.3 <= r["probability"] <= 0.7)
    flagged = results(client, dash_app, seeded.mine, flag="flagged")["batch-grid"]["rowData"]
    assert flagged and {r["flag"] for r in flagged} == {"yes"}
    errors = results(client, dash_app, seeded.mine, errors=["errors"])["batch-grid"]["rowData"]
    assert [r["filename"] for r in errors] == ["broken_0.png", "broken_1.png"]
    assert errors[0]["error"] == "broken_0.png: not an image (unrecognised content)"

    with session_scope() as db:
        scan = db.get(Scan, seeded.my_scans[3])
        db.add(Review(scan_id=scan.id, user_id=scan.batch.created_by_id, confirmed_label="tumor"))
    reviewed = results(client, dash_app, seeded.mine, reviewed="reviewed")["batch-grid"]["rowData"]
    assert [(r["id"], r["reviewed_label"], r["reviewed_by"]) for r in reviewed] == [
        (seeded.my_scans[3], "tumor", "screener")]
    unreviewed = results(client, dash_app, seeded.mine, reviewed="not_reviewed")["batch-grid"]["rowData"]
    assert len(unreviewed) == 11  # 12 predicted, one reviewed; rejected files have nothing to review


def test_results_of_another_screeners_batch_are_refused(dash_app, client_for, seeded) -> None:
    out = results(client_for("screener"), dash_app, seeded.theirs)
    assert out["batch-grid"]["rowData"] == []
    assert out["batch-shown"]["children"] == "This batch does not exist, or it is not one of yours."
    assert len(results(client_for("admin"), dash_app, seeded.theirs)["batch-grid"]["rowData"]) == 5


# --- Scan viewer -----------------------------------------------------------------------------------

def test_heatmap_opacity_and_toggle(dash_app, client_for, seeded) -> None:
    client = client_for("screener")

    def style(on, opacity):
        return response_of(fire(client, dash_app, "scan-overlay.style",
                                {"scan-heatmap-on.value": on, "scan-opacity.value": opacity}))["scan-overlay"]["style"]

    assert style(True, 0.8) == {"opacity": 0.8}
    assert style(False, 0.8) == {"opacity": 0, "visibility": "hidden"}
    assert fire(client_for(None), dash_app, "scan-overlay.style", {"scan-heatmap-on.value": True}).status_code == 401


def review(client, dash_app, scan_id: int, button: str, note: str | None = None):
    return fire(client, dash_app, "scan-review-message.children", {f"{button}.n_clicks": 1},
                {"scan-note.value": note, "scan-id.data": scan_id}, changed=f"{button}.n_clicks")


def test_review_records_label_note_user_time_and_audit(dash_app, client_for, seeded) -> None:
    client = client_for("screener")
    scan_id = seeded.my_scans[0]
    out = response_of(review(client, dash_app, scan_id, "scan-confirm-tumor", "lesion left frontal"))
    assert out["scan-review-message"]["children"] == "Confirmed tumor."
    assert "screener confirmed tumor" in text(out["scan-history"]["children"])
    assert out["scan-note"]["value"] == ""
    out = response_of(review(client, dash_app, scan_id, "scan-save-note", "second look: agree"))
    assert out["scan-review-message"]["children"] == "Note saved."
    with session_scope() as db:
        reviews = db.scalars(select(Review).where(Review.scan_id == scan_id).order_by(Review.id)).all()
        assert [(r.confirmed_label, r.note) for r in reviews] == [("tumor", "lesion left frontal"),
                                                                  (None, "second look: agree")]
        assert all(r.user.username == "screener" and r.created_at is not None for r in reviews)
        audits = db.scalars(select(AuditEntry).where(AuditEntry.action == "scan_reviewed")).all()
        assert [(a.username, a.target) for a in audits] == [("screener", f"scan {scan_id}")] * 2
    # A later note does not hide the confirmed label: the table and CSV show both.
    row = results(client, dash_app, seeded.mine, reviewed="reviewed")["batch-grid"]["rowData"]
    assert [(r["id"], r["reviewed_label"]) for r in row] == [(scan_id, "tumor")]
    from webapp.access import Viewer
    from webapp.queries.batches import scan_rows

    with session_scope() as db:
        first = scan_rows(db, Viewer(0, "admin"), seeded.mine)[0]
    assert (first["reviewed_label"], first["reviewed_by"], first["note"]) == ("tumor", "screener",
                                                                              "second look: agree")
    unreviewed = tiles(montage(client, dash_app, **{"montage-label__value": "not_reviewed"}))
    assert len(unreviewed) == 11 and str(scan_id) not in {t["data-scan"] for t in unreviewed}
    by_review = tiles(montage(client, dash_app, **{"montage-colour__value": "reviewed",
                                                   "montage-label__value": "tumor"}))
    assert [(int(t["data-scan"]), t["data-label"]) for t in by_review] == [(scan_id, "tumor")]


def test_review_refusals_say_why(dash_app, client_for, seeded) -> None:
    client = client_for("screener")
    empty = response_of(review(client, dash_app, seeded.my_scans[0], "scan-save-note", "   "))
    assert empty["scan-review-message"]["children"] == "Write a note before saving it."
    theirs = response_of(review(client, dash_app, seeded.their_scans[0], "scan-confirm-tumor"))
    assert theirs["scan-review-message"]["children"] == "This scan does not exist or is not yours to review."
    assert review(client_for("manager"), dash_app, seeded.my_scans[0], "scan-confirm-tumor").status_code == 401
    with session_scope() as db:
        assert db.scalars(select(Review)).all() == []


# --- Montage ---------------------------------------------------------------------------------------

def montage(client, dash_app, changed: str | None = None, state: dict | None = None, **inputs):
    values = {"montage-label.value": "any", "montage-colour.value": "predicted", "montage-review.value": [],
              "montage-heatmaps.value": [], "montage-pages.active_page": 1}
    values.update({k.replace("__", "."): v for k, v in inputs.items()})
    return response_of(fire(client, dash_app, "montage-grid.children", values, state, changed=changed))


def tiles(out: dict) -> list[dict]:
    return [t["props"] for t in out["montage-grid"]["children"]]


def test_montage_shows_own_scans_and_follows_a_histogram_selection(dash_app, client_for, seeded) -> None:
    client = client_for("screener")
    first = montage(client, dash_app)
    assert len(tiles(first)) == 12  # the screener's 12 predicted scans, not the other screener's 5
    assert first["montage-count"]["children"] == "12 scans · showing 1-12"
    hist = first["montage-hist"]["figure"]

    # A box over the top bins: plotly reports, per bar, the indices of the values it holds.
    chosen_points, expected = [], set()
    for curve, trace in enumerate(hist["data"]):
        numbers = [i for i, p in enumerate(trace["x"]) if p >= 0.6]
        if numbers:
            chosen_points.append({"curveNumber": curve, "pointNumbers": numbers})
            expected |= {trace["customdata"][i] for i in numbers}
    assert 0 < len(expected) < 12
    out = montage(client, dash_app, "montage-hist.selectedData",
                  {"montage-hist.figure": hist}, **{"montage-hist__selectedData": {"points": chosen_points}})
    assert {int(t["data-scan"]) for t in tiles(out)} == expected
    assert all(float(t["data-p"]) >= 0.6 for t in tiles(out))
    assert out["montage-count"]["children"].startswith(f"{len(expected)} selected of 12 scans")
    assert "montage-hist" not in out  # the chart the user drew on keeps its selection box
    highlighted = {cd for trace in out["montage-scatter"]["figure"]["data"]
                   for i, cd in enumerate(trace["customdata"]) if i in (trace.get("selectedpoints") or [])}
    assert highlighted == expected

    # Heatmap tiles for the same selection, then a scatter selection that highlights the histogram.
    overlay = montage(client, dash_app, "montage-heatmaps.value", {"montage-selection.data": sorted(expected)},
                      **{"montage-heatmaps__value": ["y"]})
    assert all(t["children"][0]["props"]["src"].endswith("/thumbnail-heatmap.png") for t in tiles(overlay))
    scatter = first["montage-scatter"]["figure"]
    point = {"curveNumber": 0, "pointNumber": 0, "customdata": scatter["data"][0]["customdata"][0]}
    out = montage(client, dash_app, "montage-scatter.selectedData",
                  **{"montage-scatter__selectedData": {"points": [point]}})
    assert [int(t["data-scan"]) for t in tiles(out)] == [point["customdata"]]
    assert out["montage-hist"]["figure"]["data"][-1]["name"] == "selected"


def test_montage_filters_and_empty_state(dash_app, client_for, seeded) -> None:
    client = client_for("admin")
    assert len(tiles(montage(client, dash_app))) == 17
    theirs = montage(client, dash_app, **{"montage-batch__value": seeded.theirs})
    assert len(tiles(theirs)) == 5
    flagged = montage(client, dash_app, **{"montage-review__value": ["y"]})
    with session_scope() as db:
        assert len(tiles(flagged)) == len(db.scalars(select(Prediction).where(Prediction.needs_review)).all())
    future = montage(client, dash_app, **{"montage-dates__start_date": "2100-01-01"})
    assert text(future["montage-grid"]["children"]) == "No screened scans match these filters."
    tumors = tiles(montage(client, dash_app, **{"montage-label__value": "tumor"}))
    assert tumors and {t["data-label"] for t in tumors} == {"tumor"}
    with session_scope() as db:
        assert len(tumors) == len(db.scalars(select(Prediction).where(Prediction.label == "tumor")).all())
    refused = fire(client_for(None), dash_app, "montage-grid.children", {"montage-label.value": "any"})
    assert refused.status_code == 401


# --- Every screening callback checks the role on the server ----------------------------------------

SCREENING_OUTPUTS = ["screen-result.children", "screen-progress.value", "batches-grid.rowData", "batch-grid.rowData",
                     "scan-overlay.style", "scan-review-message.children", "montage-grid.children"]
# The Screen page (upload and its progress) and reviewing are for screeners and admins; managers read.
NOT_FOR_MANAGERS = {"screen-result.children", "screen-progress.value", "scan-review-message.children"}


def test_each_screening_callback_refuses_the_wrong_caller(dash_app, client_for, web_env) -> None:
    anonymous, manager = client_for(None), client_for("manager")
    answers = {output: (fire(anonymous, dash_app, output).status_code, fire(manager, dash_app, output).status_code)
               for output in SCREENING_OUTPUTS}
    assert answers == {output: (401, 401 if output in NOT_FOR_MANAGERS else 200) for output in SCREENING_OUTPUTS}


# --- The web process stays free of TensorFlow --------------------------------------------------------

NO_TF_SCRIPT = r"""
import json, sys
from tests.conftest import TestEnv
from pathlib import Path
from tests.webapp.conftest import create_role_users, login
env = TestEnv(data_dir=Path(sys.argv[1]), database_url=sys.argv[2], redis_url=None)
env.activate()
create_role_users()
from tests.webapp.screening_support import seed_two_screeners, page_layout, fire
seeded = seed_two_screeners()
from webapp.app import create_app
import dash
app = create_app()
client = app.server.test_client()
login(client, "admin", "admin-pass-123")
for page in dash.page_registry.values():
    path = page["path"]
    for name in ("batch_id", "scan_id"):
        path = path.replace("<" + name + ">", str(seeded.mine if name == "batch_id" else seeded.my_scans[0]))
    page_layout(client, path)
import base64
from tests.builders import make_head_slice, make_png
png = "data:image/png;base64," + base64.b64encode(make_png(make_head_slice(64, seed=5))).decode()
fire(client, app, "screen-result.children", {"screen-upload.contents": [png]}, {"screen-upload.filename": ["x.png"]})
fire(client, app, "screen-progress.value", {"screen-poll.n_intervals": 1}, {"screen-batch.data": seeded.mine})
fire(client, app, "batches-grid.rowData", {"batches-poll.n_intervals": 1})
fire(client, app, "batch-grid.rowData", {"batch-f-label.value": "any"}, {"batch-id.data": seeded.mine})
fire(client, app, "scan-overlay.style", {"scan-heatmap-on.value": True, "scan-opacity.value": 0.3})
fire(client, app, "scan-review-message.children", {"scan-confirm-tumor.n_clicks": 1},
     {"scan-id.data": seeded.my_scans[0]}, changed="scan-confirm-tumor.n_clicks")
fire(client, app, "montage-grid.children", {"montage-label.value": "any"})
for url in (f"/media/scans/{seeded.my_scans[0]}/heatmap.png", f"/batches/{seeded.mine}/export.csv"):
    assert client.get(url).status_code == 200, url
print(json.dumps({"tensorflow": "tensorflow" in sys.modules, "onnxruntime": "onnxruntime" in sys.modules,
                  "pages": len(dash.page_registry)}))
"""


def test_the_web_process_never_imports_tensorflow(make_env) -> None:
    env = make_env()
    done = subprocess.run([sys.executable, "-c", NO_TF_SCRIPT, str(env.data_dir), env.database_url],
                          cwd=ROOT, env=env.vars(), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["pages"] >= 7
    assert report["tensorflow"] is False and report["onnxruntime"] is False
