"""Training tasks on the `training` queue: dataset preparation and training runs.

A run is claimed with a conditional UPDATE (queued → running), so a re-delivered message never
trains twice. While it works a heartbeat thread touches the run; if the trainer dies the sweeper
sees the stale heartbeat and marks the run failed. Every epoch is written as it ends (the UI draws
the curves live), cancellation is polled between batches, and the status is written on every exit
path: succeeded (in the transaction that registers the candidate model version), cancelled, or
failed with the reason.

TensorFlow is imported by `ml.train` inside `train`, i.e. only in the process that trains; the data
and model libraries are imported inside the functions too, so that a screening worker, which imports
this module to know the task names, does not load them.
"""
from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.config import get_settings
from core.db import session_scope
from core.models import TrainingEpoch, TrainingRun, utcnow
from ml.errors import one_line
from worker.celery_app import TRAINING_HARD_LIMIT_S, TRAINING_SOFT_LIMIT_S, celery_app
from worker.model_registry import active_version, register_model_dir
from worker.queueing import PREPARE_DATASET, TRAIN_RUN

log = logging.getLogger(__name__)

HEARTBEAT_S = 15.0
Progress = Callable[[str], None]


class TrainingTimedOut(RuntimeError):
    """The run went past TRAINING_SOFT_LIMIT_S."""


@celery_app.task(name=PREPARE_DATASET, ignore_result=True, soft_time_limit=TRAINING_SOFT_LIMIT_S,
                 time_limit=TRAINING_HARD_LIMIT_S)
def prepare_dataset_task(dataset_id: int) -> None:
    from worker.dataset_preparation import PreparationError, prepare

    try:
        prepare(dataset_id)
    except PreparationError as error:  # recorded on the dataset; nothing to retry
        log.warning("dataset %s failed to prepare: %s", dataset_id, error)
    except SoftTimeLimitExceeded:
        from core.models import Dataset

        with session_scope() as session:
            dataset = session.get(Dataset, dataset_id)
            dataset.status, dataset.error = "failed", f"preparation exceeded {TRAINING_SOFT_LIMIT_S // 3600} h"


@celery_app.task(name=TRAIN_RUN, ignore_result=True, soft_time_limit=TRAINING_SOFT_LIMIT_S,
                 time_limit=TRAINING_HARD_LIMIT_S)
def train_run(run_id: int) -> str | None:
    return run_training(run_id)


def run_training(run_id: int, progress: Progress | None = None) -> str | None:
    """Train run `run_id` to a candidate version; returns its name, or None when the run did not
    succeed (its status and error say why) or was not queued."""
    if not _claim(run_id):
        log.info("training run %s is not queued; nothing to do", run_id)
        return None
    heartbeat = _Heartbeat(run_id)
    heartbeat.start()
    status, error, version = "failed", None, None
    try:
        version = _train(run_id, progress)
        status = "succeeded"
    except SoftTimeLimitExceeded:
        error = f"training exceeded its time limit of {TRAINING_SOFT_LIMIT_S // 3600} h"
    except Exception as exc:
        from ml.train import TrainingCancelled

        if isinstance(exc, TrainingCancelled):
            status, error = "cancelled", "cancelled by request"
        elif isinstance(exc, TrainingTimedOut):
            error = str(exc)
        else:
            log.exception("training run %s failed", run_id)
            error = one_line(f"{type(exc).__name__}: {exc}", 500)
    finally:
        heartbeat.stop()
        if status != "succeeded":  # a success was written with its candidate, in _train
            with session_scope() as session:
                _finish(session, run_id, status, error)
    if progress:
        progress(f"training run {run_id}: {status}{': ' + error if error else ''}")
    return version


def _claim(run_id: int) -> bool:
    with session_scope() as session:
        now = utcnow()
        return bool(session.execute(
            update(TrainingRun).where(TrainingRun.id == run_id, TrainingRun.status == "queued",
                                      TrainingRun.cancel_requested.is_(False))
            .values(status="running", started_at=now, heartbeat_at=now)
        ).rowcount)


def _finish(session: Session, run_id: int, status: str, error: str | None) -> None:
    """The run's final status, unless something else (the sweeper) has already ended it."""
    session.execute(update(TrainingRun).where(TrainingRun.id == run_id, TrainingRun.status == "running")
                    .values(status=status, error=error, finished_at=utcnow()))


def _train(run_id: int, progress: Progress | None) -> str:
    from ml.train import learns_from_masks, train
    from worker.dataset_preparation import ensure_prepared
    from worker.training_runs import train_settings

    with session_scope() as session:
        run = session.get(TrainingRun, run_id)
        dataset_id, stored_settings = run.dataset_id, dict(run.settings)
    if dataset_id is None:
        raise ValueError("the run has no dataset")
    prepared = ensure_prepared(dataset_id, progress)
    settings = train_settings(stored_settings)
    masks = tumor_masks(prepared) if learns_from_masks(settings) else None
    out = get_settings().data_dir / "training-runs" / str(run_id) / "model"
    shutil.rmtree(out, ignore_errors=True)
    if progress:
        progress(f"training run {run_id}: {settings.epochs} epochs at {settings.image_size} px"
                 + (", with the dataset's tumor masks" if masks else ""))

    def on_epoch(epoch: int, logs: dict[str, Any]) -> None:
        values = {key: float(value) for key, value in logs.items()}
        with session_scope() as session:
            session.add(TrainingEpoch(run_id=run_id, epoch=int(epoch), metrics=values))
            session.execute(update(TrainingRun).where(TrainingRun.id == run_id).values(heartbeat_at=utcnow()))
        if progress:
            progress(f"  epoch {epoch}/{settings.epochs}: loss {values.get('loss', float('nan')):.4f} "
                     f"val_loss {values.get('val_loss', float('nan')):.4f} "
                     f"val_accuracy {values.get('val_accuracy', float('nan')):.3f}")

    # The trainer runs in Celery's solo pool (preparation forks processes of its own, which a
    # prefork child may not), where Celery's time limits do not apply: the limit is kept here.
    deadline = time.monotonic() + TRAINING_SOFT_LIMIT_S

    def should_stop() -> bool:
        if time.monotonic() > deadline:
            raise TrainingTimedOut(f"training exceeded its time limit of {TRAINING_SOFT_LIMIT_S // 3600} h")
        with session_scope() as session:
            return bool(session.scalar(select(TrainingRun.cancel_requested).where(TrainingRun.id == run_id)))

    train(prepared, out, settings, on_epoch=on_epoch, should_stop=should_stop, masks_dir=masks)
    comparison = compare_with_active(dataset_id, prepared, out)
    with session_scope() as session:  # one transaction: no reader sees the candidate beside "running"
        version = register_model_dir(session, out, training_run_id=run_id, comparison=comparison)
        name = version.version
        _finish(session, run_id, "succeeded", None)
    if progress:
        progress(f"training run {run_id}: registered candidate {name}")
    return name


def tumor_masks(prepared: Path) -> Path | None:
    """The `masks/` folder beside the class folders of the dataset's source (a synthetic dataset has
    one): training then learns where each tumor is, not only that there is one (ml.lesion_map)."""
    from ml.evaluate import source_root

    masks = source_root(prepared) / "masks"
    return masks if masks.is_dir() else None


def compare_with_active(dataset_id: int, prepared: Path, model_dir: Path) -> dict[str, Any]:
    """The candidate's test metrics and, when a model is active, that model's metrics on the very
    same test split: what the promotion gate compares."""
    import json

    from ml.dataset import load_split
    from ml.evaluate import evaluate_arrays
    from ml.train import fingerprint_arrays
    from worker.model_cache import predictor_for

    metrics = json.loads((model_dir / "metrics.json").read_text())
    metadata = json.loads((model_dir / "metadata.json").read_text())
    X, y = load_split(prepared, "test", image_size=int(metadata["image_size"]))
    comparison: dict[str, Any] = {
        "test_split": {"dataset_id": dataset_id, "n": int(len(y)), "fingerprint": fingerprint_arrays(X, y)},
        "candidate": {"version": None, "metrics": _headline(metrics)},
        "active": None,
    }
    with session_scope() as session:
        active = active_version(session)
        if active is None:
            return comparison
        predictor = predictor_for(session, active)
        name = active.version
    X_active, y_active = load_split(prepared, "test", image_size=predictor.image_size)
    active_metrics, _ = evaluate_arrays(predictor, X_active[..., 0], y_active)
    comparison["active"] = {"version": name, "metrics": _headline(active_metrics)}
    return comparison


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """Evaluate's scalar metrics and confusion matrix (curves are kept on the version itself)."""
    return {key: value for key, value in metrics.items()
            if isinstance(value, (int, float, type(None))) or key == "confusion_matrix"}


class _Heartbeat:
    """Touches the run's heartbeat every HEARTBEAT_S while the trainer is alive, whatever phase it is
    in (preparing data, fitting, exporting, evaluating)."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-run-{run_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                with session_scope() as session:
                    session.execute(update(TrainingRun).where(TrainingRun.id == self.run_id)
                                    .values(heartbeat_at=utcnow()))
            except Exception:  # a missed beat is harmless; several in a row mean something is wrong
                log.warning("could not write the heartbeat of run %s", self.run_id, exc_info=True)
