"""A trivial task goes through the real broker, a real worker process and the result backend."""
from __future__ import annotations

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("broker", ["filesystem", "redis"])
def test_round_trip_through_a_real_worker(make_env, start_worker, broker: str) -> None:
    env = make_env(broker=broker)
    start_worker(env, queues="screening")
    from worker.tasks import ping

    assert ping.delay("hello").get(timeout=30) == "hello"


def test_switching_from_a_tls_redis_url_to_a_plain_one_turns_tls_off(make_env) -> None:
    """The process-wide app is reconfigured between environments; TLS must not outlive a rediss:// URL."""
    from core.config import load_settings
    from worker.celery_app import celery_app, reconfigure

    reconfigure(load_settings({"REDIS_URL": "rediss://127.0.0.1:6380/0", "SECRET_KEY": "k"}))
    make_env(broker="redis")
    assert celery_app.conf.broker_use_ssl is None and celery_app.conf.redis_backend_use_ssl is None
