"""Who sees which batches: the one place that decides it.

Screeners see only the batches they uploaded (and those batches' scans, predictions, heatmaps,
montage tiles and exports); managers and admins see every batch. Every query, page, media route and
callback that touches a batch or a scan goes through this module, so the rule cannot drift between
them. A batch or scan the viewer may not see is answered exactly like one that does not exist, so
its existence does not leak.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask_login import current_user
from sqlalchemy import ColumnElement, select, true
from sqlalchemy.orm import Session

from core.models import Batch, Scan

SEES_ALL_ROLES = ("manager", "admin")
# Managers read results; only the people who screen may change a label.
REVIEW_ROLES = ("screener", "admin")
SCREENING_ROLES = ("screener", "manager", "admin")
UPLOAD_ROLES = ("screener", "admin")


@dataclass(frozen=True)
class Viewer:
    """The user a query is answered for."""

    user_id: int
    role: str

    @property
    def sees_all(self) -> bool:
        return self.role in SEES_ALL_ROLES

    @property
    def may_review(self) -> bool:
        return self.role in REVIEW_ROLES


def current_viewer() -> Viewer | None:
    """The logged-in user of this request, or None when nobody is logged in."""
    if not current_user or not current_user.is_authenticated:
        return None
    return Viewer(user_id=int(current_user.id), role=str(current_user.role))


def batch_clause(viewer: Viewer, batch: Any = Batch) -> ColumnElement[bool]:
    """A WHERE clause on `Batch` (or an alias of it) limiting rows to the batches the viewer may see."""
    if viewer.sees_all:
        return true()
    return batch.created_by_id == viewer.user_id


def visible_batch(db: Session, viewer: Viewer, batch_id: int) -> Batch | None:
    return db.scalar(select(Batch).where(Batch.id == batch_id, batch_clause(viewer)))


def visible_scan(db: Session, viewer: Viewer, scan_id: int) -> Scan | None:
    return db.scalar(select(Scan).join(Batch, Scan.batch_id == Batch.id)
                     .where(Scan.id == scan_id, batch_clause(viewer)))


def parse_id(raw: object) -> int | None:
    """A positive integer id from a URL segment or a component value; None for anything else."""
    text = str(raw or "").strip()
    if not text.isdigit() or len(text) > 12:
        return None
    value = int(text)
    return value if value > 0 else None
