"""End to end in a real browser: an admin registers a small synthetic dataset, trains on it while the
epochs appear live, promotes the candidate, and the next batch is screened by the new version.

Real web server, real training worker (TensorFlow), real screening worker (ONNX), PostgreSQL and Redis.
Tiny settings keep it to about a minute: 80 synthetic slices prepared at 64 px, 3 epochs.
"""
from __future__ import annotations

import pytest
from sqlalchemy import select

from core.db import session_scope
from core.models import ModelVersion, Prediction, Scan, User
from ml.train import TrainSettings
from tests.builders import make_head_slice, make_png
from tests.conftest import browser_login, screenshot, wait_for
from tests.model_fixtures import build_handmade_model_dir
from tests.webapp.conftest import PASSWORDS, create_role_users

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


def screen_batch(seed: int) -> str:
    """Upload two scans through the real intake; the model version that screened them."""
    from worker.intake import IntakeFile, submit_batch

    with session_scope() as db:
        screener_id = db.scalar(select(User.id).where(User.username == "screener"))
    files = [IntakeFile(f"scan-{seed}-{i}.png", make_png(make_head_slice(128, seed=seed + i, lesion=i == 0)))
             for i in range(2)]
    batch_id = submit_batch(files, screener_id).batch_id

    def versions() -> set[str] | None:
        with session_scope() as db:
            found = set(db.scalars(select(ModelVersion.version).join(Prediction).join(Scan)
                                   .where(Scan.batch_id == batch_id)))
            count = db.scalar(select(Prediction.id).join(Scan).where(Scan.batch_id == batch_id).offset(1).limit(1))
        return found if count else None

    found = wait_for(versions, 60, f"batch {batch_id} to be screened")
    assert len(found) == 1, found
    return found.pop()


def test_admin_trains_watches_promotes_and_the_new_version_screens(make_env, start_web, start_worker, page,
                                                                    tmp_path) -> None:
    # The gate's recall target is lowered: a 3-epoch model on 80 slices is not held to 99%.
    env = make_env(database="postgres", broker="redis", TUMORSCREEN_RECALL_TARGET="0.1")
    create_role_users()
    # v1: a handmade model that calls nothing a tumor (threshold 1.0), so on the shared test split its
    # recall is 0 and the gate compares the candidate against a known figure.
    from worker.model_registry import promote, register_model_dir

    with session_scope() as db:
        v1 = register_model_dir(db, build_handmade_model_dir(tmp_path / "v1", size=32, threshold=1.0))
        promote(db, v1.version, None, force=True)
    _, base = start_web(env)
    start_worker(env, queues="training", name="trainer", extra_args=["--pool", "solo"])  # as the Procfile runs it
    start_worker(env, queues="screening", name="screener")
    assert screen_batch(seed=10) == "v1"

    browser_login(page, base, "admin", PASSWORDS["admin"])
    page.goto(base + "/admin/datasets")
    page.fill("#ds-name", "synthetic-80")
    page.fill("#ds-count", "80")
    page.fill("#ds-size", "64")
    page.click("#ds-register")
    page.wait_for_selector("text=Dataset 1 (synthetic-80) registered; preparing it now.")
    page.wait_for_selector("#ds-grid .ag-row[row-id='1'] [col-id=status] >> text=ready", timeout=180_000)
    screenshot(page, "admin-datasets")
    page.goto(base + "/data?dataset=1")
    page.wait_for_selector("#data-diff-chart .main-svg")
    page.wait_for_selector("#data-samples-tumor .main-svg")
    screenshot(page, "data-explorer")

    page.goto(base + "/admin/training")
    page.wait_for_selector("#train-dataset >> text=synthetic-80")
    # The form opens on the trainer's own defaults.
    defaults = TrainSettings()
    assert [page.input_value(f"#train-{name}") for name in ("epochs", "image-size", "lr", "batch")] == [
        str(defaults.epochs), str(defaults.image_size), str(defaults.learning_rate), str(defaults.batch_size)]
    page.fill("#train-epochs", "3")
    # 192 px keeps each epoch a few seconds long, so the 1-second refresh shows the curve growing.
    page.fill("#train-image-size", "192")
    page.fill("#train-batch", "16")
    page.locator("#train-augment").uncheck()
    # Record every status line the page shows, to prove the epochs arrived while the run was going.
    page.evaluate("""() => {
        window.seen = [];
        new MutationObserver(() => {
            const e = document.querySelector('#train-status');
            if (e) window.seen.push(e.innerText);
        }).observe(document.body, {subtree: true, childList: true, characterData: true});
    }""")
    page.click("#train-start")
    page.wait_for_selector("text=Run 1 queued.")
    page.wait_for_selector("#train-candidate", timeout=240_000)
    seen = page.evaluate("window.seen")
    live = [s for s in seen if s.startswith("running") and ("epoch 1 of 3" in s or "epoch 2 of 3" in s)]
    assert live, seen
    # The worker commits the candidate and the run's success together, and the page reads them in one statement.
    assert page.inner_text("#train-run-status") == "succeeded"
    assert page.inner_text("#train-epochs-done") == "epoch 3 of 3"
    # A synthetic dataset has tumor masks, and the default mask weight uses them.
    assert page.inner_text("#train-masks").startswith("Trained with the dataset's tumor masks (weight 1.0)")
    candidate = page.inner_text("#train-candidate")
    assert candidate == "v2"
    screenshot(page, "admin-training-live")

    page.goto(base + "/admin/models")
    page.click("#models-grid .ag-row[row-id=v2] [col-id=version]")
    page.wait_for_selector("#models-compare-table >> text=v1 on the same test split")
    page.click("#models-promote")
    page.wait_for_selector("#models-message >> text=v2 is now the active model.")
    page.wait_for_selector("#models-grid .ag-row[row-id=v2] [col-id=status] >> text=active")
    screenshot(page, "admin-models")
    with session_scope() as db:
        assert db.scalar(select(ModelVersion.version).where(ModelVersion.status == "active")) == "v2"

    assert screen_batch(seed=20) == "v2"
