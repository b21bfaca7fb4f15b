"""Task registry: importing this module registers every task with the Celery app."""
from __future__ import annotations

from worker.celery_app import celery_app


@celery_app.task(name="tumorscreen.screening.ping")
def ping(value: str = "pong") -> str:
    """A round trip through broker, worker and result backend; used by health checks and tests."""
    return value
