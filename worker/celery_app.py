"""The Celery application shared by the web process (to enqueue) and the workers (to run).

Two queues: `screening` (many short chunks, any number of workers) and `training` (one long job at a
time, on its own worker so a training run never delays screening).
"""
from __future__ import annotations

import ssl
import sys
from typing import Any

import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc
from celery import Celery

from core.config import PROJECT_ROOT, Settings, get_settings

# `celery -A worker.celery_app` puts the working folder on sys.path only while it loads the app; the
# processes that dataset preparation starts (forkserver) would then fail to import `ml`. Keep it.
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

SCREENING_QUEUE = "screening"
TRAINING_QUEUE = "training"

# Errors that say "try again later", not "this work is bad": a database restart or failover (or
# SQLite busy past its timeout), a broker that is briefly unreachable. Tasks retry these with backoff.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
    TimeoutError,
)
# The longest task: a training run. Its limits are set on the task; the broker's visibility timeout
# must exceed them (see below).
TRAINING_SOFT_LIMIT_S = 3 * 3600
TRAINING_HARD_LIMIT_S = TRAINING_SOFT_LIMIT_S + 600


def celery_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        "task_default_queue": SCREENING_QUEUE,
        "task_routes": {
            "tumorscreen.screening.*": {"queue": SCREENING_QUEUE},
            "tumorscreen.training.*": {"queue": TRAINING_QUEUE},
        },
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_expires": 24 * 3600,
        # A task is acknowledged only after it finished, so a worker that dies mid-chunk leaves the
        # message for another worker; together with idempotent tasks this loses nothing.
        "task_acks_late": True,
        # A child killed by the OOM killer or SIGKILL re-queues its task instead of acking it.
        "task_reject_on_worker_lost": True,
        # Chunks take seconds: prefetching more than one would let an idle worker sit beside a busy
        # one holding the work.
        "worker_prefetch_multiplier": 1,
        # A chunk past its soft limit records a clean failure; the hard limit kills a wedged child.
        "task_soft_time_limit": settings.task_soft_time_limit_s,
        "task_time_limit": settings.task_time_limit_s,
        # Recycle a child whose memory grew (a leak in a decoder must not take the worker down);
        # checked after each task, so the child finishes the chunk it holds first.
        "worker_max_memory_per_child": settings.worker_max_memory_mb * 1024,
        # A child is also recycled after this many tasks, which bounds slow growth (fragmentation)
        # that never crosses the memory line; loading the model again costs well under a second.
        "worker_max_tasks_per_child": 1000,
        # Publishing from a task (screen_batch sending its chunks) retries briefly; the task's own
        # autoretry covers a longer outage.
        "task_publish_retry_policy": {"max_retries": 3, "interval_start": 0.1, "interval_step": 0.5,
                                      "interval_max": 2},
        # Seconds, not the default 4: a dead broker must fail an upload's enqueue fast (the sweeper
        # re-sends), not hold the web request.
        "broker_connection_timeout": 2,
        # Events are not used (no Flower); leaving them off saves a broker round trip per task.
        "worker_send_task_events": False,
        "worker_hijack_root_logger": False,
        "broker_connection_retry_on_startup": True,
        "task_track_started": True,
    }
    if settings.redis_url:
        # Redis re-delivers an unacknowledged message only after the visibility timeout: it must be
        # longer than the longest task (a training run), or a long task would run twice.
        config["broker_transport_options"] = {
            "visibility_timeout": TRAINING_HARD_LIMIT_S + 1800,
            # Fail fast while Redis is down instead of blocking a publisher for the default timeout.
            "socket_connect_timeout": 2,
            "socket_timeout": 10,
        }
        config["redis_socket_connect_timeout"] = 2
        config["redis_socket_timeout"] = 10
        # Heroku Redis presents a self-signed certificate. Set either way, so that `reconfigure` from a
        # rediss:// URL to a plain one does not keep TLS on (the handshake would hang on a plain server).
        tls = {"ssl_cert_reqs": ssl.CERT_NONE} if settings.redis_url.startswith("rediss://") else None
        config["broker_use_ssl"] = tls
        config["redis_backend_use_ssl"] = tls
    else:
        folder = settings.broker_folder
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        config["broker_transport_options"] = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            "polling_interval": 0.05,
        }
    return config


def create_celery(settings: Settings | None = None) -> Celery:
    # `include` imports the task modules when a worker starts; the web process imports only what it sends.
    app = Celery("tumorscreen", include=["worker.tasks"])
    app.conf.update(celery_config(settings or get_settings()))
    return app


celery_app = create_celery()


def reconfigure(settings: Settings) -> None:
    """Point the process-wide app at other settings (tests switch between brokers in one process).

    Drops the cached broker pool, producer pool and result backend so the next call reconnects.
    """
    import threading

    from kombu import pools

    if celery_app._pool is not None:
        celery_app._pool.force_close_all()
    # Kombu keeps producer pools in a process-wide registry keyed by broker URL: without this, the
    # next app configured with the same URL would get back the pool closed just above.
    pools.reset()
    celery_app.conf.update(celery_config(settings))
    celery_app._pool = None
    celery_app._backend_cache = None
    celery_app._local = threading.local()
    celery_app.__dict__.pop("amqp", None)
