"""One scan for the viewer: its prediction, model, reviews and neighbours; and recording a review."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.config import get_settings
from core.models import LABELS, ModelVersion, Prediction, Review, Scan, User
from webapp.access import Viewer, visible_scan

NOTE_MAX_CHARS = 2000


class ReviewRefused(ValueError):
    """The review cannot be recorded; the message is shown to the user as it is."""


def _iso(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def latest_prediction(db: Session, scan_id: int) -> Prediction | None:
    return db.scalar(select(Prediction).where(Prediction.scan_id == scan_id).order_by(Prediction.id.desc()).limit(1))


def review_history(db: Session, scan_id: int) -> list[dict[str, Any]]:
    rows = db.execute(select(Review, User.username).join(User, User.id == Review.user_id)
                      .where(Review.scan_id == scan_id).order_by(Review.created_at, Review.id))
    return [{"at": _iso(review.created_at), "by": name, "label": review.confirmed_label or "",
             "note": review.note or ""} for review, name in rows]


def neighbours(db: Session, scan: Scan) -> tuple[int | None, int | None]:
    """Previous and next scan of the same batch in upload order (any status, so none is skipped)."""
    before = db.scalar(select(Scan.id).where(Scan.batch_id == scan.batch_id, Scan.position < scan.position)
                       .order_by(Scan.position.desc()).limit(1))
    after = db.scalar(select(Scan.id).where(Scan.batch_id == scan.batch_id, Scan.position > scan.position)
                      .order_by(Scan.position).limit(1))
    return before, after


def display_dicom_fields(fields: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The DICOM fields kept after de-identification, flattened for a two-column table."""
    if not fields:
        return []
    rows = []
    for key in sorted(fields):
        value = fields[key]
        if value is None or value == "":
            continue  # an element the file did not carry
        if key == "deidentification" and isinstance(value, dict):
            rows.append(("de-identification", f"{value.get('method', '')} "
                                              f"({value.get('removed_count', 0)} elements removed)".strip()))
        elif isinstance(value, (list, tuple)):
            rows.append((key.replace("_", " "), ", ".join(str(v) for v in value)))
        elif isinstance(value, dict):
            rows.append((key.replace("_", " "), ", ".join(f"{k}={v}" for k, v in value.items())))
        else:
            rows.append((key.replace("_", " "), str(value)))
    return rows


def scan_detail(db: Session, viewer: Viewer, scan_id: int) -> dict[str, Any] | None:
    """Everything the viewer page shows, or None when the scan is missing or not the viewer's."""
    scan = visible_scan(db, viewer, scan_id)
    if scan is None:
        return None
    prediction = latest_prediction(db, scan.id)
    model: ModelVersion | None = db.get(ModelVersion, prediction.model_version_id) if prediction else None
    band = get_settings().review_band
    if model is not None:
        band = float((model.model_metadata or {}).get("review_band", band))
    previous_id, next_id = neighbours(db, scan)
    return {
        "scan_id": scan.id,
        "batch_id": scan.batch_id,
        "position": scan.position + 1,
        "batch_size": db.scalar(select(Scan.position).where(Scan.batch_id == scan.batch_id)
                                .order_by(Scan.position.desc()).limit(1)) + 1,
        "filename": scan.filename,
        "status": scan.status,
        "sha256": scan.sha256 or "",
        "format": scan.format or "",
        "modality": scan.modality or "",
        "width": scan.width,
        "height": scan.height,
        "size_bytes": scan.size_bytes,
        "error": scan.error or "",
        "has_image": scan.image_blob is not None,
        "has_heatmap": bool(prediction and prediction.heatmap_blob),
        "dicom": display_dicom_fields(scan.dicom_fields),
        "probability": prediction.probability if prediction else None,
        "label": prediction.label if prediction else None,
        "needs_review": prediction.needs_review if prediction else None,
        "model_version": model.version if model else None,
        "threshold": model.threshold if model else None,
        "review_band": band,
        "predicted_at": _iso(prediction.created_at) if prediction else "",
        "reviews": review_history(db, scan.id),
        "previous_id": previous_id,
        "next_id": next_id,
    }


def record_review(db: Session, viewer: Viewer, scan_id: int, label: str | None, note: str | None,
                  address: str | None = None) -> Review:
    """Record one review (a confirmed label, a note, or both) by the viewer, and audit it."""
    if not viewer.may_review:
        raise ReviewRefused("Your role may read results but not review them.")
    scan = visible_scan(db, viewer, scan_id)
    if scan is None:
        raise ReviewRefused("This scan does not exist or is not yours to review.")
    if label is not None and label not in LABELS:
        raise ReviewRefused(f"Unknown label {label!r}.")
    note = (note or "").strip() or None
    if label is None and note is None:
        raise ReviewRefused("Write a note before saving it.")
    if note is not None and len(note) > NOTE_MAX_CHARS:
        raise ReviewRefused(f"A note may have at most {NOTE_MAX_CHARS} characters.")
    if latest_prediction(db, scan.id) is None and label is not None:
        raise ReviewRefused("This file has no prediction to confirm or correct.")
    review = Review(scan_id=scan.id, user_id=viewer.user_id, confirmed_label=label, note=note)
    db.add(review)
    db.flush()
    user = db.get(User, viewer.user_id)
    audit.record(db, "scan_reviewed", user=user, target=f"scan {scan.id}", address=address,
                 details={"batch": scan.batch_id, "label": label, "note": note is not None, "review": review.id})
    return review
