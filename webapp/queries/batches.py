"""Batches and their scans as plain rows for pages, callbacks and the CSV export.

Every function takes the `Viewer` and filters through `webapp.access`, so a screener's query can only
ever return that screener's batches.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, aliased

from core.models import BATCH_FINAL_STATUSES, Batch, ModelVersion, Prediction, Review, Scan, User
from webapp.access import Viewer, batch_clause, visible_batch


def _iso(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 1)


def progress_percent(batch: Batch) -> int:
    """Share of accepted scans that reached an outcome; a final batch is 100% by definition."""
    if batch.status in BATCH_FINAL_STATUSES:
        return 100
    if not batch.accepted:
        return 0
    return min(99, int(100 * (batch.predicted + batch.failed) / batch.accepted))


def batch_row(batch: Batch, uploader: str | None, flagged: int = 0) -> dict[str, Any]:
    return {
        "id": batch.id,
        "status": batch.status,
        "final": batch.status in BATCH_FINAL_STATUSES,
        "progress": progress_percent(batch),
        "uploaded_by": uploader or "(command line)",
        "source": batch.source,
        "created": _iso(batch.created_at),
        "finished": _iso(batch.finished_at),
        "total_files": batch.total_files,
        "accepted": batch.accepted,
        "rejected": batch.rejected,
        "duplicates": batch.duplicates,
        "predicted": batch.predicted,
        "failed": batch.failed,
        "flagged": flagged,
        "queue_wait_s": _seconds(batch.enqueued_at or batch.created_at, batch.started_at),
        "duration_s": _seconds(batch.created_at, batch.finished_at),
        "error": batch.error or "",
    }


def _flagged_counts(db: Session, batch_ids: Iterable[int]) -> dict[int, int]:
    ids = list(batch_ids)
    if not ids:
        return {}
    rows = db.execute(
        select(Scan.batch_id, func.count(func.distinct(Scan.id)))
        .join(Prediction, Prediction.scan_id == Scan.id)
        .where(Scan.batch_id.in_(ids), Prediction.needs_review.is_(True))
        .group_by(Scan.batch_id)
    )
    return {batch_id: count for batch_id, count in rows}


def list_batches(db: Session, viewer: Viewer, limit: int = 500) -> list[dict[str, Any]]:
    """The viewer's batches, newest first."""
    rows = db.execute(
        select(Batch, User.username).outerjoin(User, User.id == Batch.created_by_id)
        .where(batch_clause(viewer)).order_by(Batch.created_at.desc(), Batch.id.desc()).limit(limit)
    ).all()
    flagged = _flagged_counts(db, (batch.id for batch, _ in rows))
    return [batch_row(batch, name, flagged.get(batch.id, 0)) for batch, name in rows]


def batch_summary(db: Session, viewer: Viewer, batch_id: int) -> dict[str, Any] | None:
    """One batch's row, or None when it does not exist or the viewer may not see it."""
    batch = visible_batch(db, viewer, batch_id)
    if batch is None:
        return None
    uploader = db.get(User, batch.created_by_id).username if batch.created_by_id else None
    return batch_row(batch, uploader, _flagged_counts(db, [batch.id]).get(batch.id, 0))


@dataclass(frozen=True)
class Progress:
    status: str
    percent: int
    final: bool
    done: int
    accepted: int
    failed: int


def batch_progress(db: Session, viewer: Viewer, batch_id: int) -> Progress | None:
    batch = visible_batch(db, viewer, batch_id)
    if batch is None:
        return None
    return Progress(status=batch.status, percent=progress_percent(batch),
                    final=batch.status in BATCH_FINAL_STATUSES, done=batch.predicted + batch.failed,
                    accepted=batch.accepted, failed=batch.failed)


def latest_per_scan(model: type, where: Any) -> Any:
    """Subquery (scan_id, id): the newest row of `model` (Prediction or Review) for each scan matching `where`."""
    return (select(model.scan_id.label("scan_id"), func.max(model.id).label("id"))
            .join(Scan, Scan.id == model.scan_id).where(where).group_by(model.scan_id).subquery())


def scan_rows(db: Session, viewer: Viewer, batch_id: int) -> list[dict[str, Any]] | None:
    """Every file of a batch, in upload order, with its newest prediction and newest review.

    Rejected and duplicate files are rows too (with their reason), so the table and the CSV account
    for every uploaded file. None when the batch is not visible to the viewer.
    """
    batch = visible_batch(db, viewer, batch_id)
    if batch is None:
        return None
    latest_prediction = latest_per_scan(Prediction, Scan.batch_id == batch_id)
    # The label a reviewer confirmed last, and the last note, which may come from a later review.
    latest_label = latest_per_scan(Review, (Scan.batch_id == batch_id) & Review.confirmed_label.is_not(None))
    latest_note = latest_per_scan(Review, (Scan.batch_id == batch_id) & Review.note.is_not(None))
    original = aliased(Scan)
    labelled = aliased(Review)
    noted = aliased(Review)
    reviewer = aliased(User)
    result = db.execute(
        select(Scan.id, Scan.position, Scan.filename, Scan.status, Scan.sha256, Scan.format, Scan.modality,
               Scan.size_bytes, Scan.error, Scan.thumbnail_blob, original.filename, original.batch_id,
               Prediction.probability, Prediction.label, Prediction.needs_review, ModelVersion.version,
               ModelVersion.threshold, labelled.confirmed_label, labelled.created_at, reviewer.username,
               noted.note)
        .select_from(Scan)
        .outerjoin(original, original.id == Scan.duplicate_of_id)
        .outerjoin(latest_prediction, latest_prediction.c.scan_id == Scan.id)
        .outerjoin(Prediction, Prediction.id == latest_prediction.c.id)
        .outerjoin(ModelVersion, ModelVersion.id == Prediction.model_version_id)
        .outerjoin(latest_label, latest_label.c.scan_id == Scan.id)
        .outerjoin(labelled, labelled.id == latest_label.c.id)
        .outerjoin(reviewer, reviewer.id == labelled.user_id)
        .outerjoin(latest_note, latest_note.c.scan_id == Scan.id)
        .outerjoin(noted, noted.id == latest_note.c.id)
        .where(Scan.batch_id == batch_id)
        .order_by(Scan.position, Scan.id)
    )
    rows = []
    for (scan_id, position, filename, status, sha256, fmt, modality, size_bytes, error, thumb, dup_name,
         dup_batch, probability, label, needs_review, version, threshold, reviewed_label, reviewed_at,
         reviewer_name, note) in result:
        if status == "duplicate" and not error:
            error = f"duplicate of {dup_name}" + (f" (batch {dup_batch})" if dup_batch != batch_id else "")
        rows.append({
            "scan_id": scan_id,
            "position": position + 1,
            "filename": filename,
            "status": status,
            "sha256": sha256 or "",
            "format": fmt or "",
            "modality": modality or "",
            "size_bytes": size_bytes,
            "probability": round(probability, 4) if probability is not None else None,
            "label": label or "",
            "needs_review": bool(needs_review) if needs_review is not None else None,
            "reviewed_label": reviewed_label or "",
            "reviewed_by": reviewer_name or "",
            "reviewed_at": _iso(reviewed_at),
            "note": note or "",
            "model_version": version or "",
            "threshold": threshold,
            "error": error or "",
            "has_thumbnail": thumb is not None,
        })
    return rows


def flagged_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Scans a reader must look at: predicted tumors and uncertain ones, most probable first."""
    picked = [r for r in rows if r["label"] == "tumor" or r["needs_review"]]
    return sorted(picked, key=lambda r: (-(r["probability"] or 0), r["position"]))


REVIEW_FILTERS = ("any", "reviewed", "not_reviewed")
FLAG_FILTERS = ("any", "flagged", "not_flagged")


@dataclass(frozen=True)
class RowFilter:
    """The batch page's filters; the defaults let every row through."""

    label: str = "any"  # any | tumor | no_tumor
    probability: tuple[float, float] = (0.0, 1.0)
    needs_review: str = "any"  # any | flagged | not_flagged
    reviewed: str = "any"  # any | reviewed | not_reviewed
    errors_only: bool = False


def filter_rows(rows: list[dict[str, Any]], flt: RowFilter) -> list[dict[str, Any]]:
    """Rows that pass every filter. A probability range other than 0-1 drops rows without a prediction."""
    low, high = flt.probability
    full_range = low <= 0.0 and high >= 1.0
    kept = []
    for row in rows:
        if flt.errors_only and not row["error"]:
            continue
        if flt.label != "any" and row["label"] != flt.label:
            continue
        if not full_range and (row["probability"] is None or not low <= row["probability"] <= high):
            continue
        if flt.needs_review == "flagged" and row["needs_review"] is not True:
            continue
        if flt.needs_review == "not_flagged" and row["needs_review"] is not False:
            continue
        if flt.reviewed == "reviewed" and not row["reviewed_by"]:
            continue
        if flt.reviewed == "not_reviewed" and (row["reviewed_by"] or row["probability"] is None):
            continue
        kept.append(row)
    return kept


def earlier_screenings(db: Session, viewer: Viewer, batch_id: int) -> list[tuple[str, str]]:
    """Files of this batch whose sha256 was uploaded before in another batch: (file, where).

    The earlier batch is named only when the viewer may open it; otherwise it says so without
    naming it, so a screener learns the file is known without seeing another screener's batch.
    """
    batch = visible_batch(db, viewer, batch_id)
    if batch is None:
        return []
    earlier = aliased(Scan)
    earlier_batch = aliased(Batch)
    rows = db.execute(
        select(Scan.filename, func.min(earlier.batch_id))
        .join(earlier, and_(earlier.sha256 == Scan.sha256, earlier.batch_id < Scan.batch_id))
        .where(Scan.batch_id == batch_id, Scan.sha256.is_not(None))
        .group_by(Scan.id, Scan.filename).order_by(Scan.id)
    ).all()
    if not rows:
        return []
    seen = set(db.scalars(select(earlier_batch.id).where(
        earlier_batch.id.in_({b for _, b in rows}), batch_clause(viewer, earlier_batch))))
    return [(name, f"screened before in batch {b}" if b in seen else "screened before in a batch of another user")
            for name, b in rows]

