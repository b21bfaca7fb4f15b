"""The audit log as the admin page filters it."""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.models import AuditEntry, Batch, User
from webapp.queries.throughput import day_bounds

# Category → how its action names look. Actions are written by several modules; a prefix or a word
# keeps a new action of a known kind in its category without editing this table.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "logins": ("login", "logout"),
    "uploads": ("batch", "upload"),
    "reviews": ("review",),
    "datasets and training runs": ("dataset", "training"),
    "model promotions and rollbacks": ("model.",),
    "users and roles": ("user_", "role_", "password_"),
}


def entries(session: Session, category: str | None = None, start: date | None = None, end: date | None = None,
            user: str | None = None, limit: int = 2000) -> list[dict[str, Any]]:
    """Newest first, as table rows."""
    if category and category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}")
    low, high = day_bounds(start, end) if start and end else (None, None)
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    if category:
        query = query.where(or_(*[AuditEntry.action.contains(word) for word in CATEGORIES[category]]))
    if low is not None:
        query = query.where(AuditEntry.at >= low, AuditEntry.at < high)
    if user:
        query = query.where(AuditEntry.username.ilike(f"%{user.strip()}%"))
    rows = [(e.at, {"at": e.at.strftime("%Y-%m-%d %H:%M:%S"), "user": e.username or "", "action": e.action,
                    "target": e.target or "", "details": _details(e.details), "address": e.address or ""})
            for e in session.scalars(query)]
    if category in (None, "uploads"):
        rows += _uploads(session, low, high, user, limit, {r["target"] for _, r in rows})
    rows.sort(key=lambda pair: _utc(pair[0]), reverse=True)
    return [row for _, row in rows[:limit]]


def _uploads(session: Session, low: datetime | None, high: datetime | None, user: str | None, limit: int,
             audited: set[str]) -> list[tuple[datetime, dict[str, Any]]]:
    """Uploads, from the batches table: every batch records who uploaded what and when, and intake
    writes it in the same transaction as the scans, so it is the upload's own record. A batch that
    also has an audit entry (target "batch N") is shown once, from that entry."""
    query = (select(Batch, User.username).outerjoin(User, User.id == Batch.created_by_id)
             .order_by(Batch.created_at.desc()).limit(limit))
    if low is not None:
        query = query.where(Batch.created_at >= low, Batch.created_at < high)
    if user:
        query = query.where(User.username.ilike(f"%{user.strip()}%"))
    rows = []
    for batch, username in session.execute(query):
        if f"batch {batch.id}" in audited:
            continue
        rows.append((batch.created_at, {
            "at": batch.created_at.strftime("%Y-%m-%d %H:%M:%S"), "user": username or batch.source,
            "action": "upload", "target": f"batch {batch.id}",
            "details": f"files: {batch.total_files}; accepted: {batch.accepted}; rejected: {batch.rejected}; "
                       f"duplicates: {batch.duplicates}; via: {batch.source}",
            "address": ""}))
    return rows


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _details(details: dict[str, Any] | None) -> str:
    if not details:
        return ""
    return "; ".join(f"{key}: {value}" for key, value in details.items())
