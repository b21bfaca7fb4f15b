"""Worker process hooks: database connections after a fork, and the sweeper timer.

Why a timer thread in the screening worker rather than Celery beat: beat is one more process to run
(and one more dyno on Heroku) whose only job would be this; the sweeper is safe to run in every
worker at once (it claims each batch with a conditional UPDATE), and running it where the screening
happens means that whenever screening can happen, the sweeper runs too, including in `make run` and
the Procfile's `worker` with no extra command. It runs in the worker's main process, which only
supervises the pool, so it never competes with a chunk for a pool slot.
"""
from __future__ import annotations

import logging

from celery.signals import worker_process_init, worker_ready, worker_shutdown

from core.db import dispose_engines
from worker.celery_app import SCREENING_QUEUE

log = logging.getLogger(__name__)


@worker_process_init.connect
def _forget_parent_connections(**_: object) -> None:
    # A pool child inherits the parent's pooled connections; sharing a socket between processes
    # corrupts both sessions. The child drops them without closing them (they are the parent's).
    dispose_engines(close=False)


@worker_ready.connect
def _start_sweeper(sender=None, **_: object) -> None:  # type: ignore[no-untyped-def]
    from worker.sweeper import start_timer

    queues = {queue.name for queue in sender.app.amqp.queues.consume_from.values()} if sender else set()
    if SCREENING_QUEUE in queues:
        timer = start_timer()
        log.info("sweeper started: every %.0f s", timer.interval)


@worker_shutdown.connect
def _stop_sweeper(**_: object) -> None:
    from worker.sweeper import stop_timer

    stop_timer()
