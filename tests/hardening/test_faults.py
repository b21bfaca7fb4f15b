"""Faults with real processes: a worker killed with SIGKILL mid-batch, Redis stopped mid-batch, the
PostgreSQL server stopped and started mid-batch, chunks that hang past their time limit. Each ends with
every scan predicted exactly once or carrying a clear error, and the batch in its correct final
state; meanwhile the web server stays up and says what is unavailable.

Redis and PostgreSQL here are private servers started by the test (the shared ones serve others)."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.conftest import BIN, ManagedProcess, free_port, migrate, wait_for
from tests.hardening.corpus import MAX_FILE_MB, expected_outcomes, head_png, hostile_corpus
from tests.hardening.test_hostile_files import _login, upload_body
from tests.webapp.conftest import create_role_users
from tests.worker.conftest import batch_state, install_model, wait_for_final
from tests.worker.test_reliability import private_redis  # noqa: F401  (fixture)

if TYPE_CHECKING:
    from tests.conftest import TestEnv

FAST_SWEEP = {"TUMORSCREEN_STALE_AFTER_S": "2", "TUMORSCREEN_SWEEP_INTERVAL_S": "0.5", "TUMORSCREEN_CHUNK_SIZE": "2"}
QUEUE_DOWN = "The queue is unreachable right now; the batch is stored and will be screened as soon as it is back."


def good_files(count: int, start: int = 500):
    from worker.intake import IntakeFile

    return [IntakeFile(f"scan-{i:03d}.png", head_png(start + i, 64)) for i in range(count)]


@pytest.fixture
def start_hanging_worker(tmp_path: Path) -> Iterator[Callable[[TestEnv], ManagedProcess]]:
    """Starts real screening workers whose chunks hang on scans named `slow-*` (tests.hardening.slow_worker_app);
    ends them after the test."""
    started: list[ManagedProcess] = []

    def start(env: TestEnv) -> ManagedProcess:
        name = f"slow-{uuid.uuid4().hex[:6]}"
        worker = ManagedProcess([str(BIN / "celery"), "-A", "tests.hardening.slow_worker_app", "worker", "-Q",
                                 "screening", "-c", "1", "-n", f"{name}@%h", "--loglevel", "INFO",
                                 "--without-gossip", "--without-mingle"], env.vars(), tmp_path / f"{name}.log")
        started.append(worker)
        wait_for(lambda: "ready." in worker.log() or not worker.alive(), 60, "the worker to start")
        return worker

    yield start
    for worker in started:
        worker.discard()


def assert_predicted_once(state: dict, status: str = "done") -> None:
    assert state["status"] == status, state["status"]
    for scan in state["scans"]:
        if scan["status"] == "predicted":
            assert scan["predictions"] == 1 and scan["error"] is None, scan
        else:
            assert scan["predictions"] == 0 and scan["error"], scan
    assert state["predicted"] == sum(s["status"] == "predicted" for s in state["scans"])
    assert state["finished_at"] is not None


@pytest.mark.slow
def test_worker_killed_mid_batch_of_good_and_hostile_files(make_env, start_worker, start_hanging_worker,
                                                           handmade_model_dir) -> None:
    from worker.intake import IntakeFile, submit_batch

    env = make_env(database="postgres", broker="redis", TUMORSCREEN_MAX_FILE_MB=str(MAX_FILE_MB), **FAST_SWEEP)
    install_model(env, handmade_model_dir)
    # The first worker hangs in the chunk that holds slow-0.png, so the kill lands mid-batch, a chunk in flight,
    # however fast the other chunks go (killed at a chosen count instead, a worker once finished all 94 first).
    files = (good_files(10) + [IntakeFile("slow-0.png", head_png(950, 64))] + good_files(70, 600)
             + [IntakeFile(item.name, item.data) for item in hostile_corpus()])
    result = submit_batch(files, user_id=None)
    worker = start_hanging_worker(env)
    wait_for(lambda: batch_state(env, result.batch_id)["predicted"] >= 6, 90, "the first chunks")
    worker.kill()  # SIGKILL to the worker and its pool child
    worker.proc.wait(10)
    assert 0 < batch_state(env, result.batch_id)["predicted"] <= 10 < result.accepted
    start_worker(env)
    state = wait_for_final(env, result.batch_id, timeout=180)
    assert_predicted_once(state, "done_with_errors")
    expected = expected_outcomes()
    for scan in state["scans"]:
        if scan["file"] in expected and expected[scan["file"]] is not None:
            assert (scan["status"], scan["error"]) == ("rejected", expected[scan["file"]])
        elif scan["status"] != "predicted":
            raise AssertionError(f"a good file was not screened: {scan}")


@pytest.mark.slow
def test_redis_stopped_mid_batch_then_started(make_env, start_worker, start_web, handmade_model_dir,
                                              private_redis) -> None:  # noqa: F811
    env = make_env(database="postgres", **FAST_SWEEP)
    env.redis_url = private_redis["url"]
    env.activate()
    create_role_users()
    install_model(env, handmade_model_dir)
    web, base = start_web(env)
    start_worker(env)
    from worker.intake import submit_batch

    running = submit_batch(good_files(120), user_id=None)
    wait_for(lambda: batch_state(env, running.batch_id)["predicted"] >= 6, 90, "the first chunks")
    private_redis["stop"]()
    with httpx.Client(base_url=base, timeout=60) as client:
        health = client.get("/healthz")
        assert (health.status_code, health.text) == (503, "database: ok\nqueue: unavailable\n")
        _login(client)
        from tests.hardening.corpus import Item

        upload = client.post("/_dash-update-component",
                             json=upload_body(client, [Item("during-outage.png", head_png(900, 64), None)]))
        assert upload.status_code == 200
        assert QUEUE_DOWN in upload.text
        during = upload.json()["response"]["screen-batch"]["data"]
    assert batch_state(env, during)["status"] == "queued"
    assert web.alive()
    private_redis["start"]()
    assert_predicted_once(wait_for_final(env, running.batch_id, timeout=180))
    assert_predicted_once(wait_for_final(env, during, timeout=60))
    assert httpx.get(f"{base}/healthz").status_code == 200


@pytest.fixture
def private_postgres() -> Iterator[dict]:
    """A PostgreSQL cluster of this test's own (initdb in a temporary folder, its own port), which the
    test may stop and start; the shared server on 5432 is never touched."""
    pg_bin = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="ts-pg-"))
    if as_postgres:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", free_port()
    subprocess.run([*as_postgres, str(pg_bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                    "--no-sync"], check=True, capture_output=True)

    def ctl(*args: str) -> None:
        subprocess.run([*as_postgres, str(pg_bin / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"),
                        "-w", "-t", "60", *args], check=True, capture_output=True)

    def start() -> None:
        ctl("-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop() -> None:
        ctl("-m", "fast", "stop")

    start()
    yield {"url": f"postgresql://postgres@127.0.0.1:{port}/postgres", "start": start, "stop": stop}
    subprocess.run([*as_postgres, str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                   capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_postgres_stopped_and_started_mid_batch(make_env, start_worker, start_web, handmade_model_dir,
                                                private_postgres) -> None:
    env = make_env(broker="redis", **FAST_SWEEP)
    env.database_url = private_postgres["url"]
    migrate(env.database_url)
    env.activate()
    create_role_users()
    install_model(env, handmade_model_dir)
    web, base = start_web(env)
    worker = start_worker(env)
    from worker.intake import submit_batch

    result = submit_batch(good_files(120), user_id=None)
    with httpx.Client(base_url=base, timeout=60) as client:
        _login(client)
        wait_for(lambda: batch_state(env, result.batch_id)["predicted"] >= 6, 90, "the first chunks")
        private_postgres["stop"]()
        health = client.get("/healthz")
        assert (health.status_code, health.text) == (503, "database: unavailable\nqueue: ok\n")
        page = client.get("/_dash-layout")
        assert page.status_code == 503
        assert page.text.startswith("The database is unavailable right now; try again in a minute (request ")
        assert "Traceback" not in page.text and "psycopg" not in page.text
        wait_for(lambda: "OperationalError" in worker.log() or "Retry in" in worker.log(), 60,
                 "the worker to meet the outage")
        private_postgres["start"]()
        assert_predicted_once(wait_for_final(env, result.batch_id, timeout=240))
        assert client.get("/_dash-layout").status_code == 200
    assert web.alive() and worker.alive()


@pytest.mark.slow
def test_chunks_that_hang_past_the_soft_limit_fail_with_a_clear_error(make_env, handmade_model_dir,
                                                                      start_hanging_worker) -> None:
    from worker.intake import IntakeFile, submit_batch

    env = make_env(database="postgres", broker="redis", TUMORSCREEN_TASK_SOFT_LIMIT_S="2",
                   TUMORSCREEN_TASK_HARD_LIMIT_S="20", **FAST_SWEEP)
    install_model(env, handmade_model_dir)
    files = good_files(4) + [IntakeFile(f"slow-{i}.png", head_png(950 + i, 64)) for i in range(2)] + good_files(2, 990)
    worker = start_hanging_worker(env)
    result = submit_batch(files, user_id=None)
    state = wait_for_final(env, result.batch_id, timeout=120)
    assert_predicted_once(state, "done_with_errors")
    outcome = {s["file"]: (s["status"], s["error"]) for s in state["scans"]}
    assert outcome.pop("slow-0.png") == outcome.pop("slow-1.png") == ("failed", "screening timed out after 2 s")
    assert set(outcome.values()) == {("predicted", None)} and state["failed"] == 2
    assert worker.alive()
    after = submit_batch(good_files(3, 1200), user_id=None)  # the worker still screens
    assert_predicted_once(wait_for_final(env, after.batch_id, timeout=60))
