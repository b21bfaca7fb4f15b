"""Nothing is lost: a worker killed mid-batch, a broker down while an upload commits, two workers on
one batch. Real worker processes, real Redis (a private one where the test stops it), real databases."""
from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.builders import make_head_slice, make_png
from tests.conftest import free_port, wait_for
from tests.worker.conftest import batch_state, install_model, wait_for_final

# Stale after 2 s and a sweep every half second, so that recovery takes seconds in a test.
FAST_SWEEP = {"TUMORSCREEN_STALE_AFTER_S": "2", "TUMORSCREEN_SWEEP_INTERVAL_S": "0.5"}


def _files(count: int):
    from worker.intake import IntakeFile

    return [IntakeFile(f"scan-{i:03d}.png", make_png(make_head_slice(64, seed=i))) for i in range(count)]


def _assert_each_scan_predicted_once(state: dict) -> None:
    assert state["status"] == "done"
    assert [(s["status"], s["predictions"]) for s in state["scans"]] == [("predicted", 1)] * len(state["scans"])
    assert state["predicted"] == len(state["scans"])


@pytest.mark.slow
@pytest.mark.parametrize("database, broker", [("sqlite", "filesystem"), ("postgres", "redis")])
def test_a_worker_killed_mid_batch_loses_nothing_and_repeats_nothing(
        make_env, start_worker, handmade_model_dir, database: str, broker: str) -> None:
    env = make_env(database=database, broker=broker, TUMORSCREEN_CHUNK_SIZE="2", **FAST_SWEEP)
    install_model(env, handmade_model_dir)
    from worker.intake import submit_batch

    result = submit_batch(_files(150), user_id=None)
    worker = start_worker(env)
    wait_for(lambda: batch_state(env, result.batch_id)["predicted"] >= 4, 60, "the first chunks to be screened")
    worker.kill()  # SIGKILL to the worker and its pool child: no chance to ack or clean up
    worker.proc.wait(10)
    interrupted = batch_state(env, result.batch_id)
    assert interrupted["status"] == "running"
    assert 0 < interrupted["predicted"] < 150

    start_worker(env)
    _assert_each_scan_predicted_once(wait_for_final(env, result.batch_id, timeout=120))


@pytest.fixture
def private_redis() -> Iterator[dict]:
    """A redis-server of this test's own, which the test may stop and start (the shared one on 6379
    serves other tests)."""
    port = free_port()

    def start() -> None:
        subprocess.run(["redis-server", "--daemonize", "yes", "--port", str(port), "--save", "",
                        "--appendonly", "no", "--bind", "127.0.0.1"], check=True, capture_output=True)
        wait_for(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout
                 .strip() == b"PONG", 10, "the private Redis to answer")

    def stop() -> None:
        subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True)
        wait_for(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).returncode != 0,
                 10, "the private Redis to stop")

    start()
    yield {"url": f"redis://127.0.0.1:{port}/0", "start": start, "stop": stop}
    stop()


@pytest.mark.slow
def test_a_batch_committed_while_redis_is_down_is_screened_once_redis_is_back(
        make_env, start_worker, handmade_model_dir, private_redis) -> None:
    env = make_env(database="postgres", **FAST_SWEEP)
    env.redis_url = private_redis["url"]
    env.activate()
    install_model(env, handmade_model_dir)
    start_worker(env)
    from worker.intake import submit_batch

    private_redis["stop"]()
    began = time.monotonic()
    result = submit_batch(_files(6), user_id=None)
    assert time.monotonic() - began < 10  # the upload is not held by the outage
    assert (result.accepted, result.enqueued) == (6, False)
    assert batch_state(env, result.batch_id)["status"] == "queued"

    private_redis["start"]()
    _assert_each_scan_predicted_once(wait_for_final(env, result.batch_id, timeout=90))


@pytest.mark.slow
def test_two_workers_share_one_batch(make_env, start_worker, handmade_model_dir) -> None:
    env = make_env(database="postgres", broker="redis", TUMORSCREEN_CHUNK_SIZE="2")
    install_model(env, handmade_model_dir)
    workers = [start_worker(env, name="left"), start_worker(env, name="right")]
    from worker.intake import submit_batch

    result = submit_batch(_files(60), user_id=None)

    _assert_each_scan_predicted_once(wait_for_final(env, result.batch_id))
    for worker in workers:
        chunks_done = [line for line in worker.log().splitlines()
                       if "tumorscreen.screening.screen_chunk[" in line and "succeeded" in line]
        assert chunks_done, f"worker {worker.args} screened no chunk"
