"""`python -m worker` as an operator runs it: a real subprocess, a real worker, the same intake as uploads."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ml.train import TrainSettings
from tests.builders import make_head_slice, make_png
from tests.conftest import ROOT
from tests.worker.conftest import install_model


def _cli(env, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worker", *args], cwd=ROOT, env=env.vars(), capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
def test_screen_wait_json_reports_every_file(make_env, start_worker, handmade_model_dir, tmp_path) -> None:
    env = make_env()
    install_model(env, handmade_model_dir)
    start_worker(env)
    scan = make_png(make_head_slice(64, seed=1))
    (tmp_path / "scan.png").write_bytes(scan)
    (tmp_path / "copy.png").write_bytes(scan)
    (tmp_path / "notes.txt").write_text("not a scan")

    done = _cli(env, "screen", str(tmp_path / "scan.png"), str(tmp_path / "copy.png"), str(tmp_path / "notes.txt"),
                "--wait", "--json")

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "done_with_errors"
    files = {entry["file"]: entry for entry in report["files"]}
    assert set(files) == {"scan.png", "copy.png", "notes.txt"}
    predicted = files["scan.png"]
    probability = predicted["probability"]
    # The handmade model's threshold is 0.5; the review band is TUMORSCREEN_REVIEW_BAND's default 0.1.
    assert (predicted["status"], predicted["error"]) == ("predicted", None)
    assert predicted["label"] == ("tumor" if probability >= 0.5 else "no_tumor")
    assert predicted["needs_review"] == (abs(probability - 0.5) <= 0.1)
    assert files["copy.png"] == {**predicted, "file": "copy.png", "status": "duplicate",
                                 "error": "duplicate of scan.png"}
    assert files["notes.txt"] == {"file": "notes.txt", "status": "rejected", "probability": None, "label": None,
                                  "needs_review": None, "error": "not an image (a text file)"}


def test_models_promote_and_rollback_from_the_command_line(make_env, handmade_model_dir) -> None:
    env = make_env()
    first = install_model(env, handmade_model_dir)
    second = install_model(env, handmade_model_dir, promote=False)

    refused = _cli(env, "promote", second)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (f"error: {second} has no recall measured on a test split; "
                                      "promote with force to override")
    forced = _cli(env, "promote", second, "--force")
    assert (forced.returncode, forced.stdout.strip()) == (0, f"{second} is now the active model (gate overridden)")
    listed = json.loads(_cli(env, "models", "--json").stdout)
    assert [(row["version"], row["status"]) for row in listed] == [(second, "active"), (first, "retired")]
    back = _cli(env, "rollback")
    assert (back.returncode, back.stdout.strip()) == (0, f"rolled back: {first} is the active model again")
    assert _cli(env, "first-run").stdout.strip() == (
        f"first run: 2 model version(s) exist (active: {first}); nothing to do")


def test_train_queues_a_run_with_the_recall_settings_and_refuses_bad_ones_before_registering(make_env,
                                                                                              tmp_path) -> None:
    from sqlalchemy import select

    from core.db import session_scope
    from core.models import Dataset, TrainingRun

    env = make_env()
    data = tmp_path / "brain"
    for folder, seed in (("tumor", 1), ("no_tumor", 2)):
        (data / folder).mkdir(parents=True)
        (data / folder / "slice.png").write_bytes(make_png(make_head_slice(64, seed=seed)))

    for option, value, message in (("--recall-target", "1.5", "recall_target must be in (0, 1], got 1.5"),
                                   ("--recall-confidence", "1", "recall_confidence must be in (0, 1), got 1.0"),
                                   ("--mask-weight", "-0.5", "mask_weight must be non-negative, got -0.5")):
        refused = _cli(env, "train", "--data", str(data), option, value)
        assert (refused.returncode, refused.stderr.strip()) == (2, f"error: {message}")
    with session_scope() as db:
        assert db.scalar(select(Dataset)) is None and db.scalar(select(TrainingRun)) is None

    queued = _cli(env, "train", "--data", str(data), "--epochs", "2", "--recall-target", "0.97",
                  "--recall-confidence", "0.8", "--mask-weight", "3")
    assert queued.returncode == 0, queued.stderr
    assert queued.stdout.strip() == f"training run 1 queued on dataset 1 ({data})"
    defaults = _cli(env, "train", "--data", str(data))
    assert defaults.returncode == 0, defaults.stderr
    with session_scope() as db:
        first, second = (db.get(TrainingRun, run_id).settings for run_id in (1, 2))
    assert (first["epochs"], first["recall_target"], first["recall_confidence"], first["mask_weight"]) == (
        2, 0.97, 0.8, 3.0)
    assert (second["epochs"], second["recall_target"], second["recall_confidence"], second["mask_weight"]) == (
        TrainSettings().epochs, 0.99, None, 1.0)
