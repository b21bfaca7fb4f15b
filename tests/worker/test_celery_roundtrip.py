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
