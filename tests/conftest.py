"""Fixtures shared by the whole suite: real databases, real brokers, real processes.

- `make_env(database=..., broker=...)` builds an isolated environment (its own data folder, a fresh
  SQLite file or a fresh PostgreSQL database, the filesystem broker or Redis) and activates it in
  this process; `env.vars()` gives the same settings to subprocesses (workers, web servers).
- `start_worker(env, queues)` starts a real Celery worker process and waits until it answers.
- `start_web(env)` starts the real web server and waits until it answers.
- `tiny_model_dir`: one tiny model directory, really trained once per session, for tests that only read it.
"""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent
PG_ADMIN_URL = os.environ.get("TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05,
             explain: Callable[[], str] | None = None) -> object:
    """Poll until `predicate()` is truthy; fail the test naming `what` if it never is, followed by
    `explain()` (say, the end of a worker's log: CI keeps nothing else of a process that hung)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            message = f"timed out after {timeout:.0f}s waiting for {what}"
            raise AssertionError(message + (f"\n{explain()}" if explain else ""))
        time.sleep(interval)


def migrate(database_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    command.upgrade(config, "head")


def create_pg_database() -> str:
    import psycopg

    name = f"ts_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_pg_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_db_url() -> str:
    """A Redis URL on a database number of its own, flushed, so tests do not see each other's queues."""
    import redis

    number = 1 + (os.getpid() % 14)
    url = f"{REDIS_URL}/{number}"
    redis.Redis.from_url(url).flushdb()
    return url


@dataclass
class TestEnv:
    data_dir: Path
    database_url: str
    redis_url: str | None
    secret_key: str = field(default_factory=lambda: secrets.token_hex(16))
    extra: dict[str, str] = field(default_factory=dict)

    def vars(self, **more: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
        env.update(
            TUMORSCREEN_DATA_DIR=str(self.data_dir),
            DATABASE_URL=self.database_url,
            SECRET_KEY=self.secret_key,
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
            TF_CPP_MIN_LOG_LEVEL="2",
        )
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        env.update(self.extra)
        env.update(more)
        return env

    def activate(self) -> None:
        """Make this process use this environment (settings, engine, Celery app)."""
        prefixes = ("TUMORSCREEN_", "DATABASE_", "SECRET_")
        os.environ.update({k: v for k, v in self.vars().items() if k.startswith(prefixes)})
        if self.redis_url:
            os.environ["REDIS_URL"] = self.redis_url
        else:
            os.environ.pop("REDIS_URL", None)
        reset_process_state()


def reset_process_state() -> None:
    from core.config import get_settings
    from core import db

    get_settings.cache_clear()
    db.dispose_engines()
    if "worker.celery_app" in sys.modules:
        from worker.celery_app import reconfigure

        reconfigure(get_settings())


@pytest.fixture
def make_env(tmp_path: Path) -> Iterator[Callable[..., TestEnv]]:
    saved = dict(os.environ)
    databases: list[str] = []

    def make(database: str = "sqlite", broker: str = "filesystem", **extra: str) -> TestEnv:
        data_dir = tmp_path / f"var-{len(databases)}-{uuid.uuid4().hex[:6]}"
        data_dir.mkdir()
        if database == "postgres":
            url = create_pg_database()
            databases.append(url)
        elif database == "sqlite":
            url = f"sqlite:///{data_dir / 'tumorscreen.sqlite'}"
            databases.append(url)
        else:
            raise ValueError(database)
        migrate(url)
        env = TestEnv(data_dir=data_dir, database_url=url,
                      redis_url=redis_db_url() if broker == "redis" else None, extra=dict(extra))
        env.activate()
        return env

    yield make
    os.environ.clear()
    os.environ.update(saved)
    reset_process_state()
    for url in databases:
        if url.startswith("postgresql"):
            drop_pg_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
def db_env(request: pytest.FixtureRequest, make_env: Callable[..., TestEnv]) -> TestEnv:
    """A migrated database, once on SQLite and once on PostgreSQL."""
    return make_env(database=request.param)


class ManagedProcess:
    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        tail = "\n".join(self.log().splitlines()[-lines:])
        return f"--- last {lines} lines of {self.log_path.name} ---\n{tail}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a Celery worker and its pool children)."""
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def discard(self) -> None:
        """End the process group at once: for a test's teardown, where how it stops is not under test.
        A graceful stop costs an idle Celery worker 5-7 s of warm shutdown, and gunicorn waits for
        open keep-alive connections up to `stop`'s timeout."""
        self.kill(signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def stop(self, timeout: float = 15) -> None:
        if self.alive():
            self.kill(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.proc.wait(5)
        else:
            self.kill(signal.SIGKILL)  # orphaned pool children
        self._log.close()


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., ManagedProcess]]:
    started: list[ManagedProcess] = []

    def start(env: TestEnv, queues: str = "screening", concurrency: int = 1, name: str | None = None,
              wait: bool = True, extra_args: list[str] | None = None) -> ManagedProcess:
        name = name or f"w{len(started)}-{uuid.uuid4().hex[:6]}"
        args = [str(BIN / "celery"), "-A", "worker.celery_app", "worker", "-Q", queues,
                "-c", str(concurrency), "-n", f"{name}@%h", "--loglevel", "INFO", "--without-gossip",
                "--without-mingle", *(extra_args or [])]
        proc = ManagedProcess(args, env.vars(), tmp_path / f"{name}.log")
        started.append(proc)
        if wait:
            wait_for(lambda: "ready." in proc.log() or not proc.alive(), 60, f"worker {name} to start")
            assert proc.alive(), proc.log()
        return proc

    yield start
    for proc in started:
        proc.discard()


@pytest.fixture
def start_web(tmp_path: Path) -> Iterator[Callable[..., tuple[ManagedProcess, str]]]:
    started: list[ManagedProcess] = []

    def start(env: TestEnv, workers: int = 1) -> tuple[ManagedProcess, str]:
        import urllib.request

        port = free_port()
        args = [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
                "--timeout", "120", "webapp.wsgi:server"]
        proc = ManagedProcess(args, env.vars(), tmp_path / f"web-{port}.log")
        started.append(proc)
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            if not proc.alive():
                raise AssertionError(f"web server died:\n{proc.log()}")
            try:
                return urllib.request.urlopen(f"{base}/healthz", timeout=1).status == 200
            except OSError:
                return False

        wait_for(up, 60, "the web server to answer")
        return proc, base

    yield start
    for proc in started:
        proc.discard()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny model really trained in a few seconds (tests/model_fixtures.py), shared by every test that
    only reads it: the model tests and the deployment test that screens with it."""
    from tests.model_fixtures import build_tiny_model_dir

    path = tmp_path_factory.mktemp("tiny_model")
    build_tiny_model_dir(path)
    return path


CHROMIUM = os.environ.get("TUMORSCREEN_CHROMIUM", "/usr/bin/chromium")
# Browser tests leave a picture of each page here; `make screenshots` points it at docs/screenshots for
# the README, so that an ordinary test run leaves the working tree clean.
SCREENSHOTS = Path(os.environ.get("TUMORSCREEN_SCREENSHOTS_DIR") or ROOT / "var" / "screenshots").resolve()


@pytest.fixture(scope="session")
def browser():
    """Debian's headless Chromium driven by Playwright (never Playwright's own browser download)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def browser_login(page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-submit")
    page.wait_for_selector("#nav-user")


def screenshot(page, name: str) -> None:
    """Keep a picture of the page (SCREENSHOTS/NAME.png; docs/screenshots with `make screenshots`)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
