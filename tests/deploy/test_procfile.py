"""The Procfile's processes, started the way Heroku starts them, run the product end to end.

Heroku runs each Procfile line with `sh -c` in the app folder, with the add-ons' settings in the
environment: DATABASE_URL with the `postgres://` scheme, REDIS_URL, PORT for the web dyno. The release
phase runs before anything else on a fresh database; app.json's postdeploy script creates the admin.
Here honcho plays Heroku's part on a fresh PostgreSQL database and a Redis database of its own.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import conftest as harness
from tests.conftest import (BIN, ROOT, ManagedProcess, create_pg_database, drop_pg_database, free_port,
                            redis_db_url, reset_process_state, wait_for)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

ADMIN_PASSWORD = "release-phase-" + uuid.uuid4().hex[:8]


@pytest.fixture
def heroku_env(tmp_path: Path) -> Iterator[tuple[dict[str, str], harness.TestEnv]]:
    """Heroku-like config vars on a fresh, unmigrated database; also activated in this process."""
    database_url = create_pg_database()
    saved = dict(os.environ)
    env = harness.TestEnv(data_dir=tmp_path / "dyno", database_url=database_url, redis_url=redis_db_url())
    env.data_dir.mkdir()
    config = {
        # Only what a dyno has: PATH finds the venv's commands like the buildpack's; no PYTHONPATH.
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "LANG": "C.UTF-8",
        "DATABASE_URL": "postgres://" + database_url.split("://", 1)[1],
        "REDIS_URL": env.redis_url or "",
        "SECRET_KEY": env.secret_key,
        "TUMORSCREEN_ENV": "production",
        "TUMORSCREEN_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "TUMORSCREEN_DATA_DIR": str(env.data_dir),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONUNBUFFERED": "1",
    }
    try:
        yield config, env
    finally:
        os.environ.clear()
        os.environ.update(saved)
        reset_process_state()
        drop_pg_database(database_url)


def honcho(args: list[str], config: dict[str, str], log: Path) -> ManagedProcess:
    return ManagedProcess([str(BIN / "honcho"), "--no-colour", "-f", "Procfile", *args], config, log)


def procfile_types() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_procfile_declares_the_four_process_types() -> None:
    assert set(procfile_types()) == {"release", "web", "worker", "trainer"}
    assert "$PORT" in procfile_types()["web"]


def test_release_web_worker_and_trainer_screen_a_batch_as_on_heroku(
        heroku_env: tuple[dict[str, str], harness.TestEnv], tmp_path: Path, tiny_model_dir: Path) -> None:
    import httpx

    config, env = heroku_env

    # Release phase: migrations on the empty database, then app.json's postdeploy script.
    release = honcho(["start", "release"], config, tmp_path / "release.log")
    assert release.proc.wait(120) == 0, release.log()
    release.stop()
    postdeploy = json.loads((ROOT / "app.json").read_text())["scripts"]["postdeploy"]
    done = subprocess.run(["sh", "-c", postdeploy], cwd=ROOT, env=config, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "created user 'admin'" in done.stdout

    # An admin would train a first model on the trainer dyno; a ready model keeps this test short.
    env.activate()
    from core.db import session_scope
    from worker import model_registry

    with session_scope() as session:
        version = model_registry.register_model_dir(session, tiny_model_dir).version
        model_registry.promote(session, version, None, force=True)  # a test model: no recall to gate on

    port = free_port()
    dynos = honcho(["start", "web", "worker", "trainer"], {**config, "PORT": str(port)}, tmp_path / "dynos.log")
    try:
        for name in ("screening", "training"):
            wait_for(lambda name=name: re.search(rf"{name}@\S+ ready\.", dynos.log()) or not dynos.alive(), 90,
                     f"the {name} worker to start")
        assert dynos.alive(), dynos.log()
        base = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            try:
                return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, 60, "the web dyno to answer on $PORT")

        with https_like_client(base) as browser:
            page = browser.get("/login")
            assert page.status_code == 200 and 'name="password"' in page.text
            assert page.cookies and all(cookie.secure for cookie in page.cookies.jar)
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            answer = browser.post("/login", data={"csrf_token": token, "username": "admin",
                                                  "password": ADMIN_PASSWORD, "next": "/"})
            assert answer.status_code == 302 and answer.headers["location"] == "/", answer.text
            assert browser.get("/", headers={"Accept": "text/html"}).status_code == 200
            assert browser.get("/_dash-layout").status_code == 200

        report = screen_through_the_cli(config, tmp_path)
        assert report["status"] == "done", report
        assert [(f["file"], f["status"]) for f in report["files"]] == [
            (f"scans/slice-{seed}.png", "predicted") for seed in range(3)]
        assert all(f["label"] in {"tumor", "no_tumor"} and 0 <= f["probability"] <= 1 for f in report["files"])
        assert predicted_by(env, report["batch_id"]) == {version}

        # The trainer dyno consumes its own queue.
        from worker.celery_app import celery_app

        ping = celery_app.send_task("tumorscreen.screening.ping", args=["trainer"], queue="training")
        assert ping.get(timeout=60) == "trainer"
    finally:
        dynos.stop()
    assert "Traceback" not in dynos.log(), dynos.log()


def https_like_client(base: str):  # type: ignore[no-untyped-def]
    """An httpx client that sends back Secure cookies over plain HTTP. Production cookies are
    Secure, as they must be behind Heroku's HTTPS router; a browser there sends them, an HTTP client
    on this loopback would not, so a response hook keeps them in the Cookie header."""
    import httpx

    client = httpx.Client(base_url=base, timeout=10)

    def keep(response: httpx.Response) -> None:
        jar = dict(pair.split("=", 1) for pair in client.headers.get("Cookie", "").split("; ") if "=" in pair)
        jar.update(response.cookies.items())
        client.headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in jar.items())

    client.event_hooks["response"] = [keep]
    return client


def screen_through_the_cli(config: dict[str, str], tmp_path: Path) -> dict:
    """`python -m worker screen FOLDER --wait --json` run as a one-off dyno (`heroku run`) would."""
    from tests.builders import make_head_slice, make_png

    folder = tmp_path / "scans"
    folder.mkdir()
    for seed in range(3):
        (folder / f"slice-{seed}.png").write_bytes(make_png(make_head_slice(128, seed=seed)))
    done = subprocess.run([str(BIN / "python"), "-m", "worker", "screen", str(folder), "--wait", "--json"],
                          cwd=ROOT, env=config, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def predicted_by(env: harness.TestEnv, batch_id: int) -> set[str]:
    """The model versions that made the batch's predictions."""
    from sqlalchemy import select

    from core.db import session_scope
    from core.models import ModelVersion, Prediction, Scan

    with session_scope(env.database_url) as session:
        return set(session.scalars(select(ModelVersion.version).join(Prediction).join(Scan)
                                   .where(Scan.batch_id == batch_id)))
