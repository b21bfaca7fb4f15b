"""The audit log: who did what, when, from where."""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core.models import AuditEntry, User


def record(
    session: Session,
    action: str,
    *,
    user: User | None = None,
    target: str | None = None,
    details: dict[str, Any] | None = None,
    address: str | None = None,
    username: str | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        action=action,
        user_id=user.id if user else None,
        username=user.username if user else username,
        target=target,
        details=details,
        address=address,
    )
    session.add(entry)
    return entry
