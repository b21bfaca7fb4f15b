"""Admin pages in-process: every admin callback refused to other roles; datasets, training runs,
model versions and the audit log through their server-side callbacks."""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest
from sqlalchemy import Engine, create_engine, event, select, update
from sqlalchemy.orm import Session

from core.db import session_scope
from core.models import AuditEntry, Dataset, ModelVersion, TrainingRun, User
from tests.factories import make_model_version
from tests.webapp.admin_factories import make_prepared_dataset, make_run
from tests.webapp.conftest import PASSWORDS, create_role_users, login, parse_outputs
from tests.webapp.dash_calls import call, find_by_id, outputs, text_of
from tests.webapp.screening_support import page_layout
from webapp.queries.training import RunProgress, estimate_remaining, run_progress
from webapp.security import SECURE_MARK

ADMIN_PAGES = ("pages.admin_datasets", "pages.admin_training", "pages.admin_models",
               "pages.audit", "pages.users")


def admin_callbacks(dash_app) -> list[str]:
    dash_app.server.test_client().get("/healthz")
    found = []
    for key, spec in dash_app.callback_map.items():
        func = spec.get("callback")
        while func is not None and not hasattr(func, SECURE_MARK):
            func = getattr(func, "__wrapped__", None)
        if func is not None and getattr(func, SECURE_MARK) == ("admin",):
            found.append(key)
    return found


@pytest.mark.parametrize("role", ["screener", "manager"])
def test_every_admin_callback_answers_401_to_screeners_and_managers(dash_app, client_for, role) -> None:
    keys = admin_callbacks(dash_app)
    modules = {dash_app.callback_map[k]["callback"].__module__ for k in keys}
    assert set(ADMIN_PAGES) <= modules, modules
    client = client_for(role)
    for key in keys:
        spec = dash_app.callback_map[key]
        body = {"output": key, "outputs": parse_outputs(key),
                "inputs": [{"id": i["id"], "property": i["property"], "value": 1} for i in spec["inputs"]],
                "state": [{"id": s["id"], "property": s["property"], "value": None} for s in spec["state"]],
                "changedPropIds": [f"{spec['inputs'][0]['id']}.{spec['inputs'][0]['property']}"]}
        assert client.post("/_dash-update-component", json=body).status_code == 401, key
    with session_scope() as db:  # nothing any of them would have written
        assert db.scalar(select(Dataset)) is None and db.scalar(select(TrainingRun)) is None


def test_admin_registers_a_synthetic_dataset_and_it_is_audited(dash_app, client_for) -> None:
    out = outputs(call(client_for("admin"), dash_app, "ds-message.children",
                       {"ds-name.value": "phantoms", "ds-kind.value": "synthetic", "ds-count.value": 60,
                        "ds-size.value": 64, "ds-seed.value": 3}))
    assert out["ds-message"]["children"] == "Dataset 1 (phantoms) registered; preparing it now."
    assert out["ds-grid"]["rowData"][0]["name"] == "phantoms"
    with session_scope() as db:
        dataset = db.scalar(select(Dataset))
        assert (dataset.source_kind, dataset.source, dataset.report["options"]) == ("synthetic", "60",
                                                                                    {"size": 64, "seed": 3})
        entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "dataset.register"))
        assert entry.username == "admin"


def test_the_dataset_form_prepares_at_the_size_screening_normalises_at(make_env) -> None:
    """A set prepared at another size trains a model on pixels unlike the screened scans'."""
    from webapp.app import create_app

    make_env(TUMORSCREEN_IMAGE_SIZE="160")
    create_role_users()
    client = create_app().server.test_client()
    assert login(client, "admin", PASSWORDS["admin"]).status_code == 302
    page = json.loads(page_layout(client, "/admin/datasets"))["response"]["_pages_content"]["children"]
    assert find_by_id(page, "ds-size")["props"]["value"] == 160
    assert text_of(find_by_id(page, "ds-size-help")) == (
        "Screening normalises every scan at 160 px (TUMORSCREEN_IMAGE_SIZE). Prepare at that size: a model "
        "trained on scans prepared at another one sees screened scans unlike those it learnt from.")


def test_a_bad_dataset_request_shows_the_reason(dash_app, client_for) -> None:
    out = outputs(call(client_for("admin"), dash_app, "ds-message.children",
                       {"ds-name.value": "tiny", "ds-kind.value": "synthetic", "ds-count.value": 5}))
    assert out["ds-message"]["children"] == "Not registered: a synthetic dataset has 20 to 20,000 slices, got 5."
    out = outputs(call(client_for("admin"), dash_app, "ds-message.children",
                       {"ds-name.value": "upload", "ds-kind.value": "zip", "ds-zip.contents": None}))
    assert out["ds-message"]["children"] == "Not registered: choose a ZIP file to upload."


def test_admin_starts_a_run_with_the_chosen_settings(dash_app, client_for) -> None:
    with session_scope() as db:
        dataset_id = make_prepared_dataset(db, n=10, with_images=False).id
    values = {"train-dataset.value": dataset_id, "train-epochs.value": 3, "train-image-size.value": 64,
              "train-lr.value": 0.001, "train-batch.value": 16, "train-balance.value": False,
              "train-augment.value": True, "train-intensity.value": False, "train-heatmap-grid.value": 2,
              "train-recall-target.value": 97.5, "train-recall-confidence.value": 0.9,
              "train-mask-weight.value": 2.5}
    out = outputs(call(client_for("admin"), dash_app, "train-message.children", values))
    assert out["train-message"]["children"] == "Run 1 queued."
    with session_scope() as db:
        run = db.get(TrainingRun, 1)
        chosen = ("epochs", "image_size", "learning_rate", "batch_size", "balance", "augment", "intensity_augment",
                  "top_down", "recall_target", "recall_confidence", "mask_weight")
        assert {k: run.settings[k] for k in chosen} == {"epochs": 3, "image_size": 64, "learning_rate": 0.001,
                                                        "batch_size": 16, "balance": False, "augment": True,
                                                        "intensity_augment": False, "top_down": 2,
                                                        "recall_target": 0.975, "recall_confidence": 0.9,
                                                        "mask_weight": 2.5}
        assert db.scalar(select(AuditEntry.action).where(AuditEntry.target == "run 1")) == "training.start"
    out = outputs(call(client_for("admin"), dash_app, "train-message.children",
                       {**values, "train-recall-confidence.value": "off", "train-heatmap-grid.value": 0}))
    assert out["train-message"]["children"] == "Run 2 queued."
    with session_scope() as db:
        assert db.get(TrainingRun, 2).settings["recall_confidence"] is None
        assert db.get(TrainingRun, 2).settings["top_down"] == 0
    out = outputs(call(client_for("admin"), dash_app, "train-message.children",
                       {**values, "train-heatmap-grid.value": "auto"}))
    assert out["train-message"]["children"] == "Run 3 queued."
    with session_scope() as db:
        assert db.get(TrainingRun, 3).settings["top_down"] is None
    for percent in (0, 120):
        out = outputs(call(client_for("admin"), dash_app, "train-message.children",
                           {**values, "train-recall-target.value": percent}))
        assert out["train-message"]["children"] == ("Not started: the recall target must be above 0 % and at most "
                                                    "100 %.")
    out = outputs(call(client_for("admin"), dash_app, "train-message.children",
                       {**values, "train-recall-target.value": None}))
    assert out["train-message"]["children"] == "Not started: enter a valid recall target."
    out = outputs(call(client_for("admin"), dash_app, "train-message.children",
                       {**values, "train-epochs.value": None}))
    assert out["train-message"]["children"] == "Not started: enter a valid epochs."
    out = outputs(call(client_for("admin"), dash_app, "train-message.children",
                       {**values, "train-mask-weight.value": -1}))
    assert out["train-message"]["children"] == "Not started: the tumor-mask weight must be 0 or more."
    out = outputs(call(client_for("admin"), dash_app, "train-message.children",
                       {**values, "train-mask-weight.value": None}))
    assert out["train-message"]["children"] == "Not started: enter a valid tumor-mask weight."
    out = outputs(call(client_for("admin"), dash_app, "train-message.children",
                       {**values, "train-image-size.value": 72}))
    assert out["train-message"]["children"] == ("Not started: a refined heatmap needs an image size divisible "
                                                "by 16, got 72.")
    with session_scope() as db:  # the refused requests queued nothing
        assert len(db.scalars(select(TrainingRun)).all()) == 3
    # A queued run is cancelled at once.
    out = outputs(call(client_for("admin"), dash_app, "train-message.children@", {"train-run.value": 1},
                       triggered="train-cancel.n_clicks"))
    assert "Run 1 cancelled before it started." in str(out)


def test_choosing_a_synthetic_ct_dataset_turns_grey_level_augmentation_off(dash_app, client_for) -> None:
    with session_scope() as db:
        synthetic = make_prepared_dataset(db, n=10, with_images=False).id
        folder = Dataset(name="mri", source_kind="folder", source="/data/mri", status="ready", item_count=10)
        db.add(folder)
        db.flush()
        folder_id = folder.id
    for dataset_id, varied in ((synthetic, False), (folder_id, True), (None, True)):
        out = outputs(call(client_for("admin"), dash_app, "train-intensity.value",
                           {"train-dataset.value": dataset_id}))
        assert out["train-intensity"]["value"] is varied


def test_live_progress_shows_epochs_elapsed_and_time_left(dash_app, client_for) -> None:
    with session_scope() as db:
        run_id = make_run(db, make_prepared_dataset(db, n=10, with_images=False), epochs_done=2, total=5).id
    out = outputs(call(client_for("admin"), dash_app, "train-status.children", {"train-run.value": run_id}))
    status = out["train-status"]["children"]
    assert text_of(find_by_id(status, "train-epochs-done")) == "epoch 2 of 5"
    # 2 of 5 epochs in the elapsed time: the other 3 take about 1.5 times as long again
    elapsed = int(re.fullmatch(r" · elapsed (\d+) s", text_of(find_by_id(status, "train-elapsed"))).group(1))
    left = int(re.fullmatch(r" · about (\d+) s left", text_of(find_by_id(status, "train-eta"))).group(1))
    assert elapsed >= 20 and abs(left - 1.5 * elapsed) <= 1.5
    assert out["train-loss-chart"]["figure"]["data"][0]["x"] == [1, 2]
    assert out["train-interval"]["disabled"] is False
    assert text_of(find_by_id(status, "train-masks")) == "Trained on the labels alone: no tumor masks were used."
    assert [line["name"] for line in out["train-loss-chart"]["figure"]["data"]] == ["loss", "val_loss"]


def test_a_run_trained_with_tumor_masks_says_so_and_charts_their_loss(dash_app, client_for) -> None:
    with session_scope() as db:
        run_id = make_run(db, make_prepared_dataset(db, n=10, with_images=False), epochs_done=3, total=5,
                          mask_weight=2.0).id
    out = outputs(call(client_for("admin"), dash_app, "train-status.children", {"train-run.value": run_id}))
    assert text_of(find_by_id(out["train-status"]["children"], "train-masks")) == (
        "Trained with the dataset's tumor masks (weight 2.0): the loss chart shows the masks' loss beside the "
        "label's.")
    traces = {trace["name"]: trace for trace in out["train-loss-chart"]["figure"]["data"]}
    assert list(traces) == ["loss", "val_loss", "mask_loss", "val_mask_loss"]
    assert traces["val_mask_loss"]["y"] == pytest.approx([0.6, 0.3, 0.2])
    # Each loss is paired with its validation twin: one colour, training solid and validation dashed.
    style = {name: (trace["line"]["color"], trace["line"]["dash"]) for name, trace in traces.items()}
    assert style["loss"][0] == style["val_loss"][0] != style["mask_loss"][0] == style["val_mask_loss"][0]
    assert [dash for _, dash in style.values()] == ["solid", "dash", "solid", "dash"]


def test_settings_left_automatic_show_what_training_chose_once_its_model_exists(dash_app, client_for) -> None:
    with session_scope() as db:
        run = make_run(db, make_prepared_dataset(db, n=10, with_images=False), epochs_done=5, total=5,
                       status="succeeded", mask_weight=1.0)
        run.settings = {**run.settings, "top_down": None, "recall_confidence": None}
        run_id = run.id

    def settings_line() -> str:
        out = outputs(call(client_for("admin"), dash_app, "train-status.children", {"train-run.value": run_id}))
        return text_of(find_by_id(out["train-status"]["children"], "train-settings"))

    assert settings_line() == ("epochs 5, image_size 64, learning_rate 0.002, batch_size 16, recall_confidence off, "
                               "balance True, augment False, top_down automatic, mask_weight 1.0")
    with session_scope() as db:
        candidate = make_model_version(db, "v2", status="candidate")
        candidate.training_run_id = run_id
        candidate.model_metadata = {**candidate.model_metadata,
                                    "settings": {"top_down": 1, "recall_confidence": None, "mask_weight": 1.0}}
    assert settings_line() == ("epochs 5, image_size 64, learning_rate 0.002, batch_size 16, recall_confidence off, "
                               "balance True, augment False, top_down 1 (automatic), mask_weight 1.0")


def test_time_left_assumes_the_mean_epoch_time_so_far() -> None:
    assert estimate_remaining(elapsed_s=20, epochs_done=2, total_epochs=5) == 30
    assert estimate_remaining(elapsed_s=20, epochs_done=0, total_epochs=5) is None
    assert estimate_remaining(elapsed_s=50, epochs_done=5, total_epochs=5) == 0


def read_progress_as_training_ends(reader: Engine, database_url: str, dataset_id: int,
                                   commit_after: int) -> tuple[RunProgress, bool, str]:
    """run_progress of a new running run, read through `reader`, with the trainer's last commit (the candidate and
    the run's success, as worker/training.py writes them) made after the page's `commit_after`-th statement; also
    whether that commit was made (False when the page ran fewer statements) and the run's name for its candidate."""
    with session_scope(database_url) as db:
        run_id = make_run(db, db.get(Dataset, dataset_id), epochs_done=2).id
    candidate = f"v{run_id}"
    statements = 0

    def finish_training(*_args: object) -> None:
        nonlocal statements
        statements += 1
        if statements == commit_after:
            with session_scope(database_url) as db:
                make_model_version(db, candidate, status="candidate").training_run_id = run_id
                db.execute(update(TrainingRun).where(TrainingRun.id == run_id).values(status="succeeded"))

    event.listen(reader, "after_cursor_execute", finish_training)
    try:
        with Session(reader) as db:
            progress = run_progress(db, run_id)
    finally:
        event.remove(reader, "after_cursor_execute", finish_training)
    return progress, statements >= commit_after, candidate


def test_progress_shows_only_states_the_database_held(make_env) -> None:
    """Whichever of the page's statements the trainer's last commit falls after, the page shows running without a
    candidate or succeeded with it, never the new version beside "running" (PostgreSQL: each statement reads
    what was committed before it)."""
    env = make_env(database="postgres")
    with session_scope(env.database_url) as db:
        dataset_id = make_prepared_dataset(db, n=5, with_images=False).id
    reader = create_engine(env.database_url)
    reads = 0
    try:
        for commit_after in range(1, 100):
            progress, committed, candidate = read_progress_as_training_ends(reader, env.database_url, dataset_id,
                                                                            commit_after)
            if not committed:  # every statement the page runs has had the commit after it
                break
            reads += 1
            shown = (progress.status, progress.candidate)
            assert shown in (("running", None), ("succeeded", candidate)), (commit_after, shown)
            with Session(reader) as db:
                after = run_progress(db, progress.id)
            assert (after.status, after.candidate) == ("succeeded", candidate)
    finally:
        reader.dispose()
    assert reads >= 2


def test_refused_promotion_shows_the_reason_and_the_override_is_audited(dash_app, client_for) -> None:
    with session_scope() as db:
        make_model_version(db, "v1", status="active")
        make_model_version(db, "v2", status="candidate", recall=0.90)
    client = client_for("admin")
    out = outputs(call(client, dash_app, "models-grid.rowData", {"models-grid.selectedRows": [{"version": "v2"}]},
                       triggered="models-promote.n_clicks"))
    assert out["models-message"]["children"] == (
        "Promotion refused: v2 has recall 0.900 on its test split, below the target 0.990 "
        "(TUMORSCREEN_RECALL_TARGET); promote with force to override.")
    assert out["models-force"]["style"] == {"display": "inline-block"}
    out = outputs(call(client, dash_app, "models-grid.rowData", {"models-grid.selectedRows": [{"version": "v2"}]},
                       triggered="models-force.n_clicks"))
    assert out["models-message"]["children"] == (
        "v2 is now the active model (gate overridden; recorded in the audit log).")
    with session_scope() as db:
        assert db.scalar(select(ModelVersion.version).where(ModelVersion.status == "active")) == "v2"
        entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "model.promote"))
        assert (entry.username, entry.target, entry.details["forced"]) == ("admin", "v2", True)
    out = outputs(call(client, dash_app, "models-grid.rowData", {}, triggered="models-rollback.n_clicks"))
    assert out["models-message"]["children"] == "Rolled back: v1 is the active model again."


def test_audit_log_filters_by_category(dash_app, client_for) -> None:
    client_for("manager")  # a login
    with session_scope() as db:
        make_model_version(db, "v1", status="active")
    out = outputs(call(client_for("admin"), dash_app, "audit-grid.rowData",
                       {"audit-category.value": "logins", "audit-range.start_date": "2020-01-01",
                        "audit-range.end_date": datetime.now(timezone.utc).date().isoformat()}))
    rows = out["audit-grid"]["rowData"]
    assert {r["action"] for r in rows} == {"login"} and {r["user"] for r in rows} == {"manager", "admin"}
    out = outputs(call(client_for("admin"), dash_app, "audit-grid.rowData",
                       {"audit-category.value": "model promotions and rollbacks",
                        "audit-range.start_date": "2020-01-01", "audit-range.end_date": "2020-01-02"}))
    assert out["audit-grid"]["rowData"] == []


def test_audit_log_lists_uploads_written_by_intake(dash_app, client_for) -> None:
    from tests.builders import make_head_slice, make_png
    from worker.intake import IntakeFile, submit_batch

    with session_scope() as db:
        screener_id = db.scalar(select(User.id).where(User.username == "screener"))
    files = [IntakeFile(f"slice{i}.png", make_png(make_head_slice(seed=i))) for i in range(3)]
    batch_id = submit_batch(files + [IntakeFile("notes.png", b"not an image")], screener_id).batch_id
    today = datetime.now(timezone.utc).date().isoformat()
    out = outputs(call(client_for("admin"), dash_app, "audit-grid.rowData",
                       {"audit-category.value": "uploads", "audit-range.start_date": today,
                        "audit-range.end_date": today, "audit-user.value": "scree"}))
    assert [(r["user"], r["action"], r["target"], r["details"]) for r in out["audit-grid"]["rowData"]] == [
        ("screener", "upload", f"batch {batch_id}", "files: 4; accepted: 3; rejected: 1; duplicates: 0; via: web")]


def test_data_explorer_shows_report_and_class_images(dash_app, client_for) -> None:
    with session_scope() as db:
        dataset_id = make_prepared_dataset(db, n=30).id
    client = client_for("manager")
    report = outputs(call(client, dash_app, "data-report.children", {"data-dataset.value": dataset_id}))
    children = report["data-report"]["children"]
    balance = find_by_id(children, "data-balance-chart")["props"]["figure"]["data"]
    # 30 items, every third a tumor: 20 / 10 overall; train split (3 of every 5) balanced to equal counts
    assert balance[0]["y"][0] == 20 and balance[1]["y"][0] == 10
    assert balance[0]["y"][2] == balance[1]["y"][2]
    assert "Groups crossing splits: 0" in text_of(find_by_id(children, "data-duplicates"))
    images = outputs(call(client, dash_app, "data-images.children", {"data-dataset.value": dataset_id}))
    parts = images["data-images"]["children"]
    assert find_by_id(parts, "data-diff-chart") is not None
    mean_panels = find_by_id(parts, "data-mean-chart")["props"]["figure"]["data"]
    assert len(mean_panels) == 2 and mean_panels[0]["z"]["shape"] == "96, 96"  # plotly sends arrays as binary
    samples = find_by_id(parts, "data-samples-tumor")["props"]["figure"]["layout"]["title"]["text"]
    assert samples == "Samples: tumor (10)"


NO_TF_SCRIPT = r"""
import json, sys
from pathlib import Path
from tests.conftest import TestEnv
from tests.webapp.conftest import create_role_users, login
env = TestEnv(data_dir=Path(sys.argv[1]), database_url=sys.argv[2], redis_url=None)
env.activate()
create_role_users()
from core.db import session_scope
from tests.factories import make_model_version
from tests.webapp.admin_factories import make_prepared_dataset
from tests.webapp.dash_calls import call, outputs
with session_scope() as db:
    dataset_id = make_prepared_dataset(db, n=20).id
    make_model_version(db, "v1", status="active")
    make_model_version(db, "v2", status="candidate")
from webapp.app import create_app
app = create_app()
client = app.server.test_client()
login(client, "admin", "admin-pass-123")
answers = [
    call(client, app, "ds-message.children",
         {"ds-name.value": "s", "ds-kind.value": "synthetic", "ds-count.value": 40}),
    call(client, app, "train-message.children", {"train-dataset.value": dataset_id, "train-epochs.value": 2,
         "train-image-size.value": 64, "train-lr.value": 0.01, "train-batch.value": 8}),
    call(client, app, "train-status.children", {"train-run.value": 1}),
    call(client, app, "models-grid.rowData", {"models-grid.selectedRows": [{"version": "v2"}]},
         triggered="models-promote.n_clicks"),
    call(client, app, "data-images.children", {"data-dataset.value": dataset_id}),
    call(client, app, "perf-te-tp.children", {"perf-threshold.value": 0.5, "perf-te-version.value": "v1"}),
    call(client, app, "roi-savings-1000.children", {"roi-scans.value": 1000, "roi-min-manual.value": 15,
         "roi-min-assisted.value": 2, "roi-cost-manual.value": 50, "roi-cost-automated.value": 7.5,
         "roi-hourly.value": 80, "roi-review.value": 0}),
]
print(json.dumps({"statuses": [a.status_code for a in answers], "tensorflow": "tensorflow" in sys.modules,
                  "onnxruntime": "onnxruntime" in sys.modules}))
"""


def test_admin_and_manager_callbacks_never_load_tensorflow(make_env) -> None:
    """Starting a run, registering data, promoting, the explorer's statistics: all without TensorFlow."""
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = make_env()
    done = subprocess.run([sys.executable, "-c", NO_TF_SCRIPT, str(env.data_dir), env.database_url],
                          cwd=ROOT, env=env.vars(), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"statuses": [200] * 7, "tensorflow": False, "onnxruntime": False}
