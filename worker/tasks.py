"""Task registry: importing this module registers every task and worker hook with the Celery app.

The training tasks import TensorFlow only inside the task body, so a screening worker that imports
this module never loads it.
"""
from __future__ import annotations

from worker import lifecycle, screening, training  # noqa: F401  (registration by import)
from worker.celery_app import celery_app


@celery_app.task(name="tumorscreen.screening.ping")
def ping(value: str = "pong") -> str:
    """A round trip through broker, worker and result backend; used by health checks and tests."""
    return value
