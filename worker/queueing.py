"""Task names and enqueueing, importable by the web process without loading any task code.

The web process sends tasks by name (`celery_app.send_task`), so it never imports `worker.screening`
or `worker.training` (onnxruntime, the model, TensorFlow). `enqueue` answers False instead of raising
when the broker cannot be reached: the database already holds the work, and the sweeper sends it
again once the broker is back, so an outage must not fail the user's request.
"""
from __future__ import annotations

import logging

from worker.celery_app import celery_app

SCREEN_BATCH = "tumorscreen.screening.screen_batch"
SCREEN_CHUNK = "tumorscreen.screening.screen_chunk"
TRAIN_RUN = "tumorscreen.training.train_run"
PREPARE_DATASET = "tumorscreen.training.prepare_dataset"

log = logging.getLogger(__name__)

# Publishing is retried briefly (about 1 s in all): long enough to ride out a reconnect, short enough
# that an upload does not hang while the broker is down.
PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.1, "interval_step": 0.3, "interval_max": 0.5}


def enqueue(name: str, *args: object) -> bool:
    """Send task `name` with `args`; True when the broker accepted it, False when it is unreachable."""
    try:
        # ignore_result: results live in the database; and with a Redis result backend, asking for a
        # result would first subscribe to it, retrying for 20 s while Redis is down.
        celery_app.send_task(name, args=list(args), retry=True, retry_policy=PUBLISH_RETRY_POLICY,
                             ignore_result=True)
    except Exception as error:  # kombu, redis and socket errors all mean "not sent"
        log.warning("could not enqueue %s%r: %s: %s", name, args, type(error).__name__, error)
        return False
    return True
