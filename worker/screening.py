"""Screening tasks: a batch is split into chunks on the `screening` queue, which any number of
workers share; each chunk predicts its scans in one forward pass and writes them in one transaction.

Idempotent by construction: a chunk only screens scans still `pending`, marks them `predicted` with
a conditional UPDATE in the same transaction that inserts their predictions, and the database's
unique (scan, model version) constraint backs that up. A chunk run twice (late ack after a crash,
the sweeper re-sending a batch) therefore creates nothing new. The database, not the broker, knows
what is unfinished; the batch's final status is set by one conditional UPDATE, so exactly once.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.config import get_settings
from core.db import session_scope
from core.models import BATCH_FINAL_STATUSES, Batch, Blob, ModelVersion, Prediction, Scan, utcnow
from core.storage import blob_store
from ml.errors import one_line
from worker.celery_app import TRANSIENT_ERRORS, celery_app
from worker.model_registry import active_version
from worker.queueing import PUBLISH_RETRY_POLICY, SCREEN_BATCH, SCREEN_CHUNK

log = logging.getLogger(__name__)

NO_ACTIVE_MODEL = "no active model version: train and promote one (python -m worker first-run)"
NOTHING_SCREENED = "no scan could be screened (see each file's error)"


class ChunkRaced(RuntimeError):
    """Another run of the same chunk committed first; retrying screens whatever is still pending."""


class ScreeningTask(Task):
    """Records a permanent failure on the database so that the user sees it (transient ones are
    left to the retries and the sweeper: the work is still in the database, nothing is lost)."""

    def on_failure(self, exc, task_id, args, kwargs, einfo):  # type: ignore[no-untyped-def]
        if isinstance(exc, TRANSIENT_ERRORS):
            log.warning("%s gave up after retries (%s); the sweeper will send the batch again", self.name, exc)
            return
        try:
            batch_id = args[0] if args else kwargs["batch_id"]
            scan_ids = args[1] if len(args) > 1 else kwargs.get("scan_ids")
            fail_scans(batch_id, scan_ids, f"screening failed: {type(exc).__name__}: {one_line(str(exc), 200)}")
            finalize_batch(batch_id)
        except Exception:  # the database itself failing: the sweeper will try again later
            log.exception("could not record the failure of %s%r", self.name, args)


_RETRYING: dict[str, Any] = dict(
    base=ScreeningTask,
    # Transient database and broker errors (a restart, a failover, SQLite busy) are retried with
    # exponential backoff and jitter, up to about five minutes in all.
    autoretry_for=TRANSIENT_ERRORS + (ChunkRaced,),
    retry_backoff=1,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=8,
    # Results live in the database; the result backend would only hold copies nobody reads.
    ignore_result=True,
)


@celery_app.task(name=SCREEN_BATCH, **_RETRYING)
def screen_batch(batch_id: int) -> None:
    """Send the batch's pending scans to the screening queue in chunks of TUMORSCREEN_CHUNK_SIZE."""
    settings = get_settings()
    with session_scope() as session:
        batch = session.get(Batch, batch_id)
        if batch is None or batch.status in BATCH_FINAL_STATUSES:
            return
        if active_version(session) is None:
            session.rollback()
            fail_scans(batch_id, None, NO_ACTIVE_MODEL)
            finalize_batch(batch_id, error=NO_ACTIVE_MODEL)
            return
        pending = list(session.scalars(
            select(Scan.id).where(Scan.batch_id == batch_id, Scan.status == "pending").order_by(Scan.position)))
        now = utcnow()
        batch.enqueued_at = batch.enqueued_at or now
        batch.updated_at = now
    if not pending:
        finalize_batch(batch_id)
        return
    size = max(1, settings.chunk_size)
    for start in range(0, len(pending), size):
        # Raises on a broker error, so that the task is retried; chunks sent twice are harmless.
        celery_app.send_task(SCREEN_CHUNK, args=[batch_id, pending[start:start + size]], retry=True,
                             retry_policy=PUBLISH_RETRY_POLICY, ignore_result=True)


@celery_app.task(name=SCREEN_CHUNK, **_RETRYING)
def screen_chunk(batch_id: int, scan_ids: list[int]) -> None:
    """Predict the still-pending scans among `scan_ids` and store the predictions in one transaction."""
    try:
        _screen_chunk(batch_id, sorted(int(i) for i in scan_ids))
    except SoftTimeLimitExceeded:
        limit = get_settings().task_soft_time_limit_s
        fail_scans(batch_id, scan_ids, f"screening timed out after {limit} s")
        finalize_batch(batch_id)


@dataclass
class _Loaded:
    version: ModelVersion
    images: dict[int, bytes]  # scan id → stored normalised PNG


def _screen_chunk(batch_id: int, scan_ids: list[int]) -> None:
    # Imported here, in the pool child that screens: the worker's main process, which only
    # supervises the pool and runs the sweeper, then never loads OpenCV, ONNX Runtime or SciPy.
    from ml.pixels import codes_as_input
    from worker.images import decode_png_codes, png_bytes
    from worker.model_cache import predictor_for

    loaded = _start_chunk(batch_id, scan_ids)
    if loaded is None:
        finalize_batch(batch_id)
        return
    with session_scope() as session:
        predictor = predictor_for(session, loaded.version)
    good: list[int] = []
    pixels: list[np.ndarray] = []
    errors: dict[int, str] = {}
    for scan_id, data in loaded.images.items():
        try:
            codes = decode_png_codes(data)
        except ValueError as error:
            errors[scan_id] = str(error)
            continue
        good.append(scan_id)
        pixels.append(codes_as_input(codes, predictor.image_size))
    images = np.stack(pixels) if pixels else np.zeros((0, predictor.image_size, predictor.image_size), np.float32)
    # The predictor cuts the chunk into forward passes whose maps stay small (ml.predictor.chunk_size).
    predictions = predictor.predict(images)
    band = get_settings().review_band
    rows = []
    # The heatmap is stored at the model's input size, not the stored scan's: drawn from the last block's grid
    # (8×8 by default), a larger copy holds nothing more, and the pages stretch it over the scan. At 128 px its
    # PNG takes 0.29 ms to make and 7 KB to keep, at 224 px 0.95 ms and 16 KB (a throwaway timing, 2026-12-06).
    for scan_id, prediction in zip(good, predictions):
        rows.append((scan_id, prediction, png_bytes(prediction.heatmap),
                     abs(prediction.probability - predictor.threshold) <= band))
    _write_chunk(batch_id, loaded.version.id, rows, errors)
    finalize_batch(batch_id)


def _start_chunk(batch_id: int, scan_ids: list[int]) -> _Loaded | None:
    """Mark the batch running and load the chunk's pending scans; None when there is nothing to do."""
    with session_scope() as session:
        batch_status = session.scalar(select(Batch.status).where(Batch.id == batch_id))
        if batch_status is None or batch_status in BATCH_FINAL_STATUSES:
            return None
        now = utcnow()
        session.execute(update(Batch).where(Batch.id == batch_id, Batch.status == "queued")
                        .values(status="running", started_at=now, updated_at=now))
        version = active_version(session)
        if version is None:
            session.commit()
            fail_scans(batch_id, scan_ids, NO_ACTIVE_MODEL)
            return None
        pending = session.execute(
            select(Scan.id, Blob.data).join(Blob, Blob.key == Scan.image_blob)
            .where(Scan.id.in_(scan_ids), Scan.batch_id == batch_id, Scan.status == "pending")
            .order_by(Scan.id)
        ).all()
        if not pending:
            return None
        session.expunge(version)
        return _Loaded(version, {scan_id: bytes(data) for scan_id, data in pending})


def _write_chunk(batch_id: int, version_id: int, rows: list[tuple[int, Any, bytes, bool]],
                 errors: dict[int, str]) -> None:
    ids = [row[0] for row in rows]
    try:
        with session_scope() as session:
            if ids:
                claimed = session.execute(
                    update(Scan).where(Scan.id.in_(ids), Scan.status == "pending").values(status="predicted")
                ).rowcount
                if claimed != len(ids):
                    raise ChunkRaced(f"{len(ids) - claimed} of {len(ids)} scans were screened by another run")
            for scan_id, prediction, heatmap, needs_review in rows:
                session.add(Prediction(
                    scan_id=scan_id, model_version_id=version_id, probability=prediction.probability,
                    label=prediction.label, needs_review=bool(needs_review),
                    heatmap_blob=blob_store.put(session, heatmap, "image/png"),
                    feature_x=prediction.feature_xy[0], feature_y=prediction.feature_xy[1],
                    latency_ms=prediction.latency_ms,
                ))
            failed = 0
            for scan_id, error in errors.items():
                failed += session.execute(
                    update(Scan).where(Scan.id == scan_id, Scan.status == "pending")
                    .values(status="failed", error=one_line(error))
                ).rowcount
            session.execute(update(Batch).where(Batch.id == batch_id).values(
                predicted=Batch.predicted + len(ids), failed=Batch.failed + failed, updated_at=utcnow()))
    except IntegrityError as error:
        raise ChunkRaced(f"a prediction already exists: {error.orig}") from None


def fail_scans(batch_id: int, scan_ids: list[int] | None, error: str) -> int:
    """Mark the still-pending scans (of the chunk, or of the whole batch) failed with `error`."""
    with session_scope() as session:
        condition = [Scan.batch_id == batch_id, Scan.status == "pending"]
        if scan_ids is not None:
            condition.append(Scan.id.in_([int(i) for i in scan_ids]))
        failed = session.execute(update(Scan).where(*condition).values(status="failed", error=one_line(error))
                                 ).rowcount
        session.execute(update(Batch).where(Batch.id == batch_id)
                        .values(failed=Batch.failed + failed, updated_at=utcnow()))
    return failed


def final_status(counts: dict[str, int]) -> str:
    """The final status of a batch with no pending scan, from its scans' statuses."""
    if counts.get("predicted", 0) == 0:
        return "failed"
    if counts.get("rejected", 0) or counts.get("failed", 0):
        return "done_with_errors"
    return "done"


def finalize_batch(batch_id: int, error: str | None = None) -> str | None:
    """Set the final status if no scan is pending; exactly one caller wins (conditional UPDATE).
    Returns the status it set, or None."""
    with session_scope() as session:
        counts = dict(session.execute(
            select(Scan.status, func.count()).where(Scan.batch_id == batch_id).group_by(Scan.status)).all())
        if counts.get("pending", 0):
            return None
        status = final_status(counts)
        if status == "failed" and error is None:
            error = _first_error(session, batch_id) or NOTHING_SCREENED
        now = utcnow()
        won = session.execute(
            update(Batch).where(Batch.id == batch_id, Batch.status.not_in(BATCH_FINAL_STATUSES))
            .values(status=status, finished_at=now, updated_at=now, error=error if status == "failed" else None,
                    predicted=counts.get("predicted", 0), failed=counts.get("failed", 0))
        ).rowcount
    if won:
        log.info("batch %s finished: %s %s", batch_id, status, counts)
    return status if won else None


def _first_error(session: Session, batch_id: int) -> str | None:
    error = session.scalar(select(Scan.error).where(Scan.batch_id == batch_id, Scan.status == "failed")
                           .order_by(Scan.position).limit(1))
    return error if error else None
