"""Whether the database and the queue answer, for /healthz: quick checks with short timeouts."""
from __future__ import annotations

from sqlalchemy import text

from core.db import session_scope

UNAVAILABLE = "unavailable"


def database_status() -> str:
    try:
        with session_scope() as db:
            db.execute(text("SELECT 1"))
    except Exception:  # any driver error means the same to an operator
        return UNAVAILABLE
    return "ok"


def broker_status() -> str:
    from worker.celery_app import celery_app

    try:
        with celery_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
    except Exception:
        return UNAVAILABLE
    return "ok"


def service_status() -> dict[str, str]:
    return {"database": database_status(), "queue": broker_status()}
