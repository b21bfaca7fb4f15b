"""The audit log as the admin page filters it."""
from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.models import AuditEntry
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
    return [{"at": e.at.strftime("%Y-%m-%d %H:%M:%S"), "user": e.username or "", "action": e.action,
             "target": e.target or "", "details": _details(e.details), "address": e.address or ""}
            for e in session.scalars(query)]


def _details(details: dict[str, Any] | None) -> str:
    if not details:
        return ""
    return "; ".join(f"{key}: {value}" for key, value in details.items())
