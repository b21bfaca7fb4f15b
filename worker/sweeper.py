"""The sweeper: re-sends work the broker lost or never got, and fails training runs whose trainer died.

- A batch `queued` that was never enqueued (the broker was down when the upload committed) is sent
  on the next pass.
- A batch `queued` or `running` with no progress (`updated_at`) for TUMORSCREEN_STALE_AFTER_S is
  sent again: every worker died, or Redis holds its message unacknowledged until the visibility
  timeout. `screen_batch` only chunks scans still pending, and chunks are idempotent, so a batch that
  was merely slow costs a few no-op tasks.
- A training run `running` whose heartbeat is stale lost its trainer (killed, out of memory): it is
  marked failed with a clear error rather than re-run, because a training run is long and deliberate;
  the admin starts a new one. A run still `queued` long after it was created, while no run is
  running, is sent again (its message was lost).

Every batch is claimed with a conditional UPDATE before it is sent, so several sweepers (one per
screening worker) never send the same batch twice in one period.

It runs in every screening worker: once when the worker is ready and then every
TUMORSCREEN_SWEEP_INTERVAL_S, on a timer thread (see `start_timer`), and as `python -m worker sweep`.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import exists, or_, select, update

from core.config import get_settings
from core.db import session_scope
from core.models import Batch, TrainingRun, utcnow
from worker.queueing import SCREEN_BATCH, TRAIN_RUN, enqueue

log = logging.getLogger(__name__)

# A batch committed this recently may still be being enqueued by the process that created it.
NEVER_ENQUEUED_GRACE_S = 3.0
# The trainer touches its run's heartbeat every HEARTBEAT_S; several missed beats mean it is gone.
TRAINER_LOST_AFTER_S = 90.0
TRAINER_LOST = ("the training worker stopped while this run was {phase} (killed, out of memory or "
                "restarted); start a new run")


@dataclass
class SweepReport:
    resent_batches: list[int] = field(default_factory=list)
    failed_runs: list[int] = field(default_factory=list)
    resent_runs: list[int] = field(default_factory=list)


# Queued runs re-sent by this process, and when: a run waiting for a busy trainer is not re-sent
# every pass.
_resent_runs: dict[int, datetime] = {}


def sweep() -> SweepReport:
    """One pass. Safe to run concurrently in several processes."""
    report = SweepReport()
    report.resent_batches = _resend_batches()
    report.failed_runs = _fail_lost_runs()
    report.resent_runs = _resend_queued_runs()
    if report.resent_batches or report.failed_runs or report.resent_runs:
        log.warning("sweeper: re-sent batches %s, failed runs %s, re-sent runs %s",
                    report.resent_batches, report.failed_runs, report.resent_runs)
    return report


def _resend_batches() -> list[int]:
    settings = get_settings()
    now = utcnow()
    stale = now - timedelta(seconds=settings.stale_after_s)
    fresh = now - timedelta(seconds=NEVER_ENQUEUED_GRACE_S)
    with session_scope() as session:
        candidates = session.execute(
            select(Batch.id, Batch.updated_at).where(
                Batch.status.in_(("queued", "running")),
                or_(Batch.updated_at < stale,
                    (Batch.enqueued_at.is_(None)) & (Batch.status == "queued") & (Batch.created_at < fresh)),
            ).order_by(Batch.id)
        ).all()
    resent = []
    for batch_id, seen_updated_at in candidates:
        with session_scope() as session:
            claimed = session.execute(
                update(Batch).where(Batch.id == batch_id, Batch.updated_at == seen_updated_at)
                .values(updated_at=utcnow())
            ).rowcount
        if not claimed:
            continue  # another sweeper took it, or a chunk just made progress
        if enqueue(SCREEN_BATCH, batch_id):
            with session_scope() as session:
                session.execute(update(Batch).where(Batch.id == batch_id, Batch.enqueued_at.is_(None))
                                .values(enqueued_at=utcnow()))
            resent.append(batch_id)
        else:
            break  # the broker is still down: the next pass tries again
    return resent


def _fail_lost_runs() -> list[int]:
    now = utcnow()
    lost_before = now - timedelta(seconds=max(TRAINER_LOST_AFTER_S, get_settings().stale_after_s))
    with session_scope() as session:
        runs = session.execute(
            select(TrainingRun.id, TrainingRun.epochs.any()).where(
                TrainingRun.status == "running",
                or_(TrainingRun.heartbeat_at < lost_before,
                    TrainingRun.heartbeat_at.is_(None) & (TrainingRun.started_at < lost_before)),
            )
        ).all()
        failed = []
        for run_id, trained in runs:
            phase = "training" if trained else "preparing its data"
            done = session.execute(
                update(TrainingRun).where(TrainingRun.id == run_id, TrainingRun.status == "running")
                .values(status="failed", finished_at=now, error=TRAINER_LOST.format(phase=phase))
            ).rowcount
            if done:
                failed.append(run_id)
    return failed


def _resend_queued_runs() -> list[int]:
    settings = get_settings()
    now = utcnow()
    waited = now - timedelta(seconds=settings.stale_after_s)
    with session_scope() as session:
        busy = session.scalar(select(exists().where(TrainingRun.status == "running")))
        if busy:
            return []
        runs = list(session.scalars(select(TrainingRun.id).where(
            TrainingRun.status == "queued", TrainingRun.created_at < waited)))
    resent = []
    for run_id in runs:
        last = _resent_runs.get(run_id)
        if last is not None and last > waited:
            continue
        if enqueue(TRAIN_RUN, run_id):
            _resent_runs[run_id] = now
            resent.append(run_id)
    return resent


class SweeperTimer:
    """Runs `sweep()` now and every `interval` seconds on a daemon thread until stopped."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tumorscreen-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                sweep()
            except Exception:  # a database outage must not end the timer; the next pass tries again
                log.exception("sweeper pass failed")
            self._stop.wait(self.interval)


_timer: SweeperTimer | None = None


def start_timer() -> SweeperTimer:
    """Start this process's sweeper timer (once)."""
    global _timer
    if _timer is None:
        _timer = SweeperTimer(get_settings().sweep_interval_s)
        _timer.start()
    return _timer


def stop_timer() -> None:
    global _timer
    if _timer is not None:
        _timer.stop()
        _timer = None
