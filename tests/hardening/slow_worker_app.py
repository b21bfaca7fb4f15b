"""A screening worker whose chunks hang on scans named `slow-*`, as a pathological input or a wedged
library would: `celery -A tests.hardening.slow_worker_app worker ...`. Everything else is the real
worker; the hang is long enough to cross TUMORSCREEN_TASK_SOFT_LIMIT_S."""
from __future__ import annotations

import time

from sqlalchemy import select

import worker.tasks  # noqa: F401  (registers the real tasks and hooks)
from core.db import session_scope
from core.models import Scan
from worker import screening
from worker.celery_app import celery_app

app = celery_app
HANG_S = 30
_real_start_chunk = screening._start_chunk


def _start_chunk_that_hangs_on_slow_scans(batch_id: int, scan_ids: list[int]):
    loaded = _real_start_chunk(batch_id, scan_ids)
    with session_scope() as session:
        names = session.scalars(select(Scan.filename).where(Scan.id.in_(scan_ids))).all()
    if any(name.startswith("slow-") for name in names):
        time.sleep(HANG_S)  # interrupted by the soft time limit
    return loaded


screening._start_chunk = _start_chunk_that_hangs_on_slow_scans
