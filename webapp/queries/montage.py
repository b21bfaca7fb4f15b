"""Points for the montage: one row per predicted scan the viewer may see, with the filters applied."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Batch, Prediction, Review, Scan
from webapp.access import Viewer, batch_clause
from webapp.queries.batches import latest_per_scan


@dataclass(frozen=True)
class MontageFilter:
    batch_id: int | None = None
    # any | tumor | no_tumor (the label shown: the reviewed one when colouring by review) | not_reviewed
    label: str = "any"
    needs_review: bool = False
    date_from: date | None = None
    date_to: date | None = None
    colour_by: str = "predicted"  # predicted | reviewed


def montage_rows(db: Session, viewer: Viewer, flt: MontageFilter) -> list[dict[str, Any]]:
    """Predicted scans with probability, labels and feature-map position, newest batch first."""
    visible = Scan.batch_id.in_(select(Batch.id).where(batch_clause(viewer)))
    if flt.batch_id is not None:
        visible = visible & (Scan.batch_id == flt.batch_id)
    prediction = latest_per_scan(Prediction, visible)
    review = latest_per_scan(Review, visible & Review.confirmed_label.is_not(None))
    query = (
        select(Scan.id, Scan.batch_id, Scan.filename, Prediction.probability, Prediction.label,
               Prediction.needs_review, Prediction.feature_x, Prediction.feature_y, Review.confirmed_label)
        .join(Batch, Batch.id == Scan.batch_id)
        .join(prediction, prediction.c.scan_id == Scan.id)
        .join(Prediction, Prediction.id == prediction.c.id)
        .outerjoin(review, review.c.scan_id == Scan.id)
        .outerjoin(Review, Review.id == review.c.id)
        .where(batch_clause(viewer))
        .order_by(Batch.created_at.desc(), Scan.batch_id.desc(), Scan.position)
    )
    if flt.batch_id is not None:
        query = query.where(Scan.batch_id == flt.batch_id)
    if flt.needs_review:
        query = query.where(Prediction.needs_review.is_(True))
    if flt.date_from is not None:
        query = query.where(Batch.created_at >= datetime.combine(flt.date_from, time.min, timezone.utc))
    if flt.date_to is not None:
        query = query.where(Batch.created_at < datetime.combine(flt.date_to + timedelta(days=1), time.min,
                                                                 timezone.utc))
    rows = []
    for scan_id, batch_id, name, probability, label, needs_review, fx, fy, reviewed in db.execute(query):
        shown = (reviewed or "not_reviewed") if flt.colour_by == "reviewed" else label
        if flt.label == "not_reviewed" and reviewed:
            continue
        if flt.label in ("tumor", "no_tumor") and shown != flt.label:
            continue
        rows.append({"id": scan_id, "batch": batch_id, "file": name, "p": round(probability, 4),
                     "label": label, "reviewed": reviewed or "", "shown": shown,
                     "review": bool(needs_review), "x": round(fx, 4), "y": round(fy, 4)})
    return rows


def batch_choices(db: Session, viewer: Viewer, limit: int = 300) -> list[dict[str, Any]]:
    """Dropdown options for the batch filter: the viewer's batches, newest first."""
    rows = db.execute(select(Batch.id, Batch.created_at, Batch.accepted).where(batch_clause(viewer))
                      .order_by(Batch.created_at.desc(), Batch.id.desc()).limit(limit))
    return [{"label": f"Batch {bid} · {created:%Y-%m-%d %H:%M} · {accepted} scans", "value": bid}
            for bid, created, accepted in rows]
