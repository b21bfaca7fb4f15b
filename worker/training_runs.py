"""Training runs: start and cancel (light, used by the web and the CLI).

The settings of a run are `ml.train.TrainSettings` fields; they are checked here, so a bad value is
refused when the admin submits it, not minutes later on the trainer. `ml.train` imports TensorFlow
only inside its functions, so importing it here keeps the web process free of TensorFlow.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from core import audit
from core.models import Dataset, TrainingRun, User, utcnow
from ml.train import TrainSettings
from worker.queueing import TRAIN_RUN, enqueue

SETTING_NAMES = tuple(field.name for field in dataclasses.fields(TrainSettings))
DEFAULT_SETTINGS = TrainSettings()


class TrainingRequestError(ValueError):
    """A training request that cannot be done; the message is shown to the admin."""


def train_settings(values: dict[str, Any]) -> TrainSettings:
    """The TrainSettings a run's stored settings stand for (unknown names or bad values refused)."""
    unknown = sorted(set(values) - set(SETTING_NAMES))
    if unknown:
        raise TrainingRequestError(f"unknown training settings: {', '.join(unknown)}")
    try:
        return TrainSettings(**values)
    except (TypeError, ValueError) as error:
        raise TrainingRequestError(str(error)) from None


def start_training_run(session: Session, dataset_id: int, settings: dict[str, Any],
                       user_id: int | None) -> TrainingRun:
    """Create a queued run on `dataset_id` with `settings`, commit it, then enqueue it."""
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise TrainingRequestError(f"no dataset {dataset_id}")
    if dataset.status == "failed":
        raise TrainingRequestError(f"dataset {dataset_id} failed to prepare: {dataset.error}")
    checked = dataclasses.asdict(train_settings(dict(settings)))
    run = TrainingRun(dataset_id=dataset_id, settings=checked, status="queued", created_by_id=user_id)
    session.add(run)
    session.flush()
    audit.record(session, "training.start", user=_user(session, user_id), target=f"run {run.id}",
                 details={"dataset_id": dataset_id, "settings": checked})
    session.commit()
    enqueue(TRAIN_RUN, run.id)
    return run


def request_cancel(session: Session, run_id: int, user_id: int | None) -> TrainingRun:
    """Ask a run to stop. A queued run is cancelled at once; a running one stops at its next poll
    (between batches). Commits."""
    run = session.get(TrainingRun, run_id)
    if run is None:
        raise TrainingRequestError(f"no training run {run_id}")
    if run.status not in ("queued", "running"):
        raise TrainingRequestError(f"run {run_id} is {run.status}: nothing to cancel")
    run.cancel_requested = True
    # Conditional, so that a trainer claiming the run at this moment cannot be overwritten.
    session.execute(update(TrainingRun).where(TrainingRun.id == run_id, TrainingRun.status == "queued")
                    .values(status="cancelled", finished_at=utcnow(), error="cancelled before it started")
                    .execution_options(synchronize_session="fetch"))
    audit.record(session, "training.cancel", user=_user(session, user_id), target=f"run {run_id}")
    session.commit()
    return run


def _user(session: Session, user_id: int | None) -> User | None:
    return session.get(User, user_id) if user_id is not None else None
