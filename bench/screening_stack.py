"""A real screening stack for the screening benchmarks: a fresh PostgreSQL database, a Redis
database of its own, a model in the registry and one screening worker process (as the Procfile runs
it). Torn down on exit.
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from bench.common import create_database, drop_database

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")


def default_model_dir(work: Path) -> Path:
    """The active model of the local installation (the first-run model after `make run`)."""
    from core.config import load_settings
    from core.db import session_scope
    from worker.model_registry import active_version

    settings = load_settings({k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")})
    with session_scope(settings.database_url) as session:
        version = active_version(session)
        if version is None:
            raise SystemExit("no active model in the local installation: run `python -m worker first-run` "
                             "or pass --model DIR")
        from core.storage import blob_store

        folder = work / f"model-{version.version}"
        folder.mkdir(parents=True, exist_ok=True)
        import json

        (folder / "metadata.json").write_text(json.dumps(version.model_metadata))
        (folder / "model.onnx").write_bytes(blob_store.get(session, version.onnx_blob))
        print(f"model: active version {version.version} of the local installation ({version.image_size} px)")
        return folder


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextmanager
def screening_stack(model_dir: Path, **settings: str) -> Iterator[dict]:
    import redis

    database_url = create_database("screening_bench")
    redis.Redis.from_url(REDIS_URL).flushdb()
    data_dir = Path(tempfile.mkdtemp(prefix="ts-bench-"))
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": REDIS_URL, "TUMORSCREEN_DATA_DIR": str(data_dir),
           "SECRET_KEY": secrets.token_hex(16), "PYTHONPATH": str(ROOT), **settings}
    prefixes = ("TUMORSCREEN_", "DATABASE_", "REDIS_", "SECRET_")
    os.environ.update({k: v for k, v in env.items() if k.startswith(prefixes)})
    from core.config import get_settings
    from core.db import dispose_engines, session_scope
    from worker.celery_app import reconfigure

    get_settings.cache_clear()
    dispose_engines()
    reconfigure(get_settings())
    subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    from worker import model_registry

    with session_scope() as session:
        version = model_registry.register_model_dir(session, model_dir)
        model_registry.promote(session, version.version, None, force=True)
    log = open(data_dir / "worker.log", "wb")
    worker = subprocess.Popen([str(Path(sys.executable).parent / "celery"), "-A", "worker.celery_app", "worker",
                               "-Q", "screening", "--concurrency", "1", "-n", "bench@%h", "--loglevel", "INFO",
                               "--without-gossip", "--without-mingle"],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait(lambda: b"ready." in (data_dir / "worker.log").read_bytes() or worker.poll() is not None, 120,
              "the worker to start")
        if worker.poll() is not None:
            raise SystemExit((data_dir / "worker.log").read_text())
        yield {"worker_pid": worker.pid, "data_dir": data_dir, "database_url": database_url}
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(30)
        log.close()
        dispose_engines()
        drop_database(database_url)
        shutil.rmtree(data_dir, ignore_errors=True)


class MemorySampler:
    """Peak memory of a process and its children, sampled every `interval` seconds: the sum of their
    resident sets (which counts the pages a forked child shares with its parent twice) and the sum of
    their proportional set sizes (each shared page split between its sharers: the true total)."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak_mib = 0.0
        self.peak_pss_mib = 0.0
        self.per_process_mib: dict[str, float] = {}
        self.tensorflow_loaded = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _processes(self):
        return [self.root, *self.root.children(recursive=True)]

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                infos = [(p, p.memory_full_info()) for p in self._processes()]
                rss = sum(info.rss for _, info in infos) / 2**20
                if rss > self.peak_mib:
                    self.per_process_mib = {("main" if p.pid == self.root.pid else f"child {p.pid}"): info.rss / 2**20
                                            for p, info in infos}
                self.peak_mib = max(self.peak_mib, rss)
                self.peak_pss_mib = max(self.peak_pss_mib, sum(info.pss for _, info in infos) / 2**20)
            except Exception:  # a child recycled between listing and reading
                pass
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        paths = {m.path for p in self._processes() for m in p.memory_maps()}
        self.tensorflow_loaded = any("tensorflow" in path for path in paths)


def load_average() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())
