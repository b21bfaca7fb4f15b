"""A training run's progress as the admin page shows it: status, epochs so far, time used and left."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Dataset, ModelVersion, TrainingEpoch, TrainingRun

FINAL_STATUSES = ("succeeded", "failed", "cancelled")


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def estimate_remaining(elapsed_s: float, epochs_done: int, total_epochs: int) -> float | None:
    """Seconds left if each remaining epoch takes as long as the mean so far (early stopping may end
    the run sooner, and evaluation after the last epoch adds a little). None before the first epoch."""
    if epochs_done <= 0:
        return None
    return max(total_epochs - epochs_done, 0) * elapsed_s / epochs_done


@dataclass
class RunProgress:
    id: int
    status: str
    dataset: str
    settings: dict[str, Any]
    epochs: list[tuple[int, dict[str, Any]]]
    total_epochs: int
    elapsed_s: float | None
    remaining_s: float | None
    error: str | None
    cancel_requested: bool
    candidate: str | None
    candidate_status: str | None = None
    # The settings training used, from the candidate's metadata: what it chose where a setting was left automatic.
    used_settings: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def run_progress(session: Session, run_id: int, now: datetime | None = None) -> RunProgress | None:
    # The run and its candidate in one statement, so from one snapshot: the trainer commits the candidate and the
    # run's success together (worker/training.py), and two queries could fall either side of that commit.
    row = session.execute(select(TrainingRun, ModelVersion)
                          .outerjoin(ModelVersion, ModelVersion.training_run_id == TrainingRun.id)
                          .where(TrainingRun.id == run_id)).first()
    if row is None:
        return None
    run, candidate = row
    now = now or datetime.now(timezone.utc)
    epochs = [(e.epoch, dict(e.metrics or {})) for e in session.scalars(
        select(TrainingEpoch).where(TrainingEpoch.run_id == run_id).order_by(TrainingEpoch.epoch))]
    started, finished = _utc(run.started_at), _utc(run.finished_at)
    elapsed = ((finished or now) - started).total_seconds() if started else None
    total = int((run.settings or {}).get("epochs") or 0)
    remaining = None
    if run.status == "running" and elapsed is not None:
        remaining = estimate_remaining(elapsed, len(epochs), total)
    dataset = session.get(Dataset, run.dataset_id) if run.dataset_id else None
    return RunProgress(
        id=run.id, status=run.status, dataset=f"{dataset.id}: {dataset.name}" if dataset else "none",
        settings=dict(run.settings or {}), epochs=epochs, total_epochs=total, elapsed_s=elapsed,
        remaining_s=remaining, error=run.error, cancel_requested=run.cancel_requested,
        candidate=candidate.version if candidate else None,
        candidate_status=candidate.status if candidate else None,
        used_settings=dict((candidate.model_metadata or {}).get("settings") or {}) if candidate else {},
    )


def run_options(session: Session, limit: int = 50) -> list[dict[str, Any]]:
    runs = session.scalars(select(TrainingRun).order_by(TrainingRun.id.desc()).limit(limit))
    # No status in the label: the list is drawn once, the status line below follows the run live.
    return [{"label": f"run {r.id} · dataset {r.dataset_id} · started {r.created_at:%Y-%m-%d %H:%M}",
             "value": r.id} for r in runs]


def dataset_kind(session: Session, dataset_id: int) -> str | None:
    """How the dataset was registered: zip, folder, synthetic or reviews (None for no such dataset)."""
    return session.scalar(select(Dataset.source_kind).where(Dataset.id == dataset_id))


def dataset_options(session: Session) -> list[dict[str, Any]]:
    """Datasets a run can use: the prepared ones, newest first."""
    rows = session.scalars(select(Dataset).where(Dataset.status == "ready").order_by(Dataset.id.desc()))
    return [{"label": f"{d.id}: {d.name} ({d.status}, {d.item_count} images)", "value": d.id} for d in rows]
