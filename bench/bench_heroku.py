"""Heroku's limits, measured: slug size against 500 MB, each process's memory against its dyno.

    python bench/bench_heroku.py slug      # fresh venvs in /tmp from requirements.txt and requirements-web.txt
    python bench/bench_heroku.py memory    # RSS of web (gunicorn), screening worker, trainer
    python bench/bench_heroku.py           # both

`slug` installs each requirements file into a new virtualenv under /tmp (pip's cache makes the second
run quick), then tars and gzips site-packages the way a slug is packed and prints the compressed and
unpacked sizes. The Python runtime itself adds to a buildpack slug (a few tens of MB) and is not counted.

`memory` needs PostgreSQL and Redis (TEST_PG_URL, TEST_REDIS_URL, defaults as in the tests). It starts
each process type with the Procfile's own command line and samples the resident memory of the process
and all its children (psutil) while it works: the web after serving pages, the worker after screening a
batch, the trainer during a small training run.
"""
from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import create_database, drop_database, open_every_page  # noqa: E402  (after the path is set)

SLUG_LIMIT_MB = 500
MiB = 1024 * 1024
MB = 1000 * 1000
DYNOS = {"web": ("standard-1X", 512), "worker": ("standard-1X", 512), "trainer": ("performance-M", 2560)}


def tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def tar_gz_size(directory: Path, names: list[str]) -> int:
    """Bytes of `tar czf` of `names` inside `directory` (Heroku packs a slug with tar and gzip),
    counted as they stream by rather than written to disk."""
    proc = subprocess.Popen(["tar", "-C", str(directory), "-czf", "-", "--", *names], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    size = 0
    while chunk := proc.stdout.read(1 << 20):
        size += len(chunk)
    if proc.wait() != 0:
        raise RuntimeError(f"tar failed in {directory}")
    return size


def measure_slug(requirements: Path, keep: bool = False) -> dict[str, float]:
    venv = Path(tempfile.mkdtemp(prefix=f"tumorscreen-slug-{requirements.stem}-", dir="/tmp"))
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        started = time.monotonic()
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-compile", "-r", str(requirements)],
                       check=True, cwd=ROOT)
        install_s = time.monotonic() - started
        site = next((venv / "lib").glob("python*/site-packages"))
        # pip itself is not part of what the requirements install
        for name in ("pip", "setuptools"):
            for leftover in site.glob(f"{name}*"):
                shutil.rmtree(leftover, ignore_errors=True)
        return {"unpacked_mb": tree_size(site) / MB, "compressed_mb": tar_gz_size(site.parent, [site.name]) / MB,
                "install_s": install_s, "app_mb": gzip_size_of_app() / MB}
    finally:
        if not keep:
            shutil.rmtree(venv, ignore_errors=True)


def gzip_size_of_app() -> int:
    """The project's own tracked files, as git would push them."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return tar_gz_size(ROOT, [name for name in files if (ROOT / name).is_file()])


def cmd_slug(_: argparse.Namespace) -> None:
    print(f"slug limit: {SLUG_LIMIT_MB} MB compressed (MB = 10^6 bytes)")
    for name in ("requirements.txt", "requirements-web.txt"):
        figures = measure_slug(ROOT / name)
        total = figures["compressed_mb"] + figures["app_mb"]
        verdict = "fits" if total <= SLUG_LIMIT_MB else "DOES NOT FIT"
        print(f"{name:<22} site-packages {figures['unpacked_mb']:7.0f} MB unpacked, "
              f"{figures['compressed_mb']:6.0f} MB tar.gz; + app {figures['app_mb']:.1f} MB "
              f"= {total:6.0f} MB -> {verdict} ({total / SLUG_LIMIT_MB:.0%} of the limit; "
              f"pip install {figures['install_s']:.0f} s)", flush=True)


REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
BENCH_REDIS_DB = 15  # a database number of its own, flushed before and after
ADMIN_PASSWORD = "bench-" + secrets.token_hex(8)


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {name: command.strip() for name, command in (line.split(":", 1) for line in lines if line.strip())}


def tree_memory(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes of a process and all its descendants. RSS counts pages shared between a
    forked parent and its children once per process; PSS splits them, so its sum is what the tree
    really occupies (closer to a dyno's memory metric)."""
    import psutil

    rss = pss = 0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    for proc in procs:
        try:
            info = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return rss, pss


class PeakSampler:
    """Samples a process tree's memory in a thread; keeps the peak RSS and PSS."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid, self.interval = pid, interval
        self.peak_rss = self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss, pss = tree_memory(self.pid)
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


class Dyno:
    """One Procfile process type started as Heroku starts it: `sh -c COMMAND` with the config vars."""

    def __init__(self, name: str, config: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(["sh", "-c", procfile()[name]], cwd=ROOT, env=config, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.log()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not log {pattern!r}:\n{self.log()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


def heroku_config(database_url: str, redis_url: str, data_dir: Path) -> dict[str, str]:
    return {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": os.environ.get("HOME", str(data_dir)),
        "LANG": "C.UTF-8",
        "DATABASE_URL": "postgres://" + database_url.split("://", 1)[1],
        "REDIS_URL": redis_url,
        "SECRET_KEY": secrets.token_hex(32),
        "TUMORSCREEN_ENV": "production",
        "TUMORSCREEN_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "TUMORSCREEN_DATA_DIR": str(data_dir),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONUNBUFFERED": "1",
        # As the container images set it (Dockerfile): without it the trainer's spawned preparation
        # processes cannot import the project (`celery -A` adds the folder to sys.path only briefly).
        "PYTHONPATH": str(ROOT),
    }


def train_tiny_model(slices: int, epochs: int) -> str:
    """Register a synthetic dataset and start a training run as the admin page does; the trainer dyno
    generates the slices, prepares them and trains. Returns the candidate's version name."""
    from sqlalchemy import select

    from core.db import session_scope
    from core.models import ModelVersion, TrainingRun
    from worker.datasets import register_dataset
    from worker.training_runs import start_training_run

    with session_scope() as session:
        dataset_id = register_dataset(session, "synthetic", slices, "bench_heroku", None).id
        run_id = start_training_run(session, dataset_id, {"epochs": epochs}, None).id
    while True:
        with session_scope() as session:
            run = session.get(TrainingRun, run_id)
            if run.status in ("succeeded", "failed", "cancelled"):
                if run.status != "succeeded":
                    raise RuntimeError(f"training run {run_id} {run.status}: {run.error}")
                return session.scalar(select(ModelVersion.version).where(ModelVersion.training_run_id == run_id))
        time.sleep(0.5)


def web_session(base: str) -> int:
    """Log in as the admin and load every page through Dash's router, as a browser would; returns pages."""
    import httpx

    with httpx.Client(base_url=base, timeout=60) as client:
        # Production cookies are Secure: on Heroku the router speaks HTTPS to the browser; over this
        # plain-HTTP loopback httpx would not send them back, so a hook carries them by hand.
        def keep(response: httpx.Response) -> None:
            jar = dict(p.split("=", 1) for p in client.headers.get("Cookie", "").split("; ") if "=" in p)
            jar.update(response.cookies.items())
            client.headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())

        client.event_hooks["response"] = [keep]
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
        answer = client.post("/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token,
                                             "next": "/"})
        if answer.status_code != 302:
            raise RuntimeError(f"login failed: {answer.status_code}")
        return open_every_page(client)


def cmd_memory(args: argparse.Namespace) -> None:
    import httpx
    import redis

    from ml.synthetic import generate_dataset

    import signal

    # Started in the background SIGINT may be ignored: let SIGTERM unwind, so the finally below
    # stops the dynos and drops the database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    work = Path(tempfile.mkdtemp(prefix="tumorscreen-bench-heroku-"))
    database_url = create_database("ts_heroku_bench")
    redis_url = f"{REDIS_URL}/{BENCH_REDIS_DB}"
    redis.Redis.from_url(redis_url).flushdb()
    config = heroku_config(database_url, redis_url, work / "dyno")
    # This process enqueues and reads the database like a one-off dyno, with the same config vars.
    os.environ.update({k: v for k, v in config.items() if k not in {"PATH", "HOME"}})
    dynos: list[Dyno] = []
    figures: dict[str, dict[str, float]] = {}
    try:
        subprocess.run(["sh", "-c", procfile()["release"]], cwd=ROOT, env=config, check=True, capture_output=True)
        subprocess.run([sys.executable, "-m", "webapp", "ensure-admin"], cwd=ROOT, env=config, check=True,
                       capture_output=True)

        trainer = Dyno("trainer", config, work)
        dynos.append(trainer)
        trainer.wait_for_log(r"training@\S+ ready\.", 120)
        idle = tree_memory(trainer.proc.pid)
        with PeakSampler(trainer.proc.pid) as peak:
            started = time.monotonic()
            version = train_tiny_model(args.train_slices, args.epochs)
            train_s = time.monotonic() - started
        figures["trainer"] = {"idle_rss": idle[0], "rss": peak.peak_rss, "pss": peak.peak_pss}
        print(f"trainer: generated and prepared {args.train_slices} synthetic slices, trained {args.epochs} epochs "
              f"at the default 128 px -> {version} in {train_s:.0f} s", flush=True)
        trainer.stop()

        from core.db import session_scope
        from worker.model_registry import promote

        with session_scope() as session:
            promote(session, version, None, force=True)  # a 2-epoch model is for measuring, not for use

        batch = work / "batch"
        generate_dataset(batch, args.batch, seed=11, size=256)
        worker = Dyno("worker", config, work)
        dynos.append(worker)
        worker.wait_for_log(r"screening@\S+ ready\.", 120)
        idle = tree_memory(worker.proc.pid)
        with PeakSampler(worker.proc.pid) as peak:
            started = time.monotonic()
            subprocess.run([sys.executable, "-m", "worker", "screen", str(batch / "tumor"), str(batch / "no_tumor"),
                            "--wait", "--json"], cwd=ROOT, env=config, check=True, capture_output=True)
            screen_s = time.monotonic() - started
        after = tree_memory(worker.proc.pid)
        figures["worker"] = {"idle_rss": idle[0], "rss": peak.peak_rss, "pss": peak.peak_pss, "after_rss": after[0]}
        print(f"worker: screened {args.batch} slices in {screen_s:.1f} s (intake included)", flush=True)
        worker.stop()

        port = free_port()
        web = Dyno("web", {**config, "PORT": str(port)}, work)
        dynos.append(web)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if web.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(web.log()[-3000:])
            time.sleep(0.1)
        idle = tree_memory(web.proc.pid)
        with PeakSampler(web.proc.pid) as peak:
            pages = sum(web_session(base) for _ in range(2))  # two sessions: both gunicorn workers serve
        after = tree_memory(web.proc.pid)
        figures["web"] = {"idle_rss": idle[0], "rss": peak.peak_rss, "pss": peak.peak_pss, "after_rss": after[0]}
        print(f"web: gunicorn as in the Procfile, {pages} page loads", flush=True)
    finally:
        for dyno in dynos:
            dyno.stop()
        redis.Redis.from_url(redis_url).flushdb()
        from core import db

        db.dispose_engines()
        drop_database(database_url)
        shutil.rmtree(work, ignore_errors=True)

    print(f"{'process':<8} {'dyno':<14} {'limit':>9} {'idle RSS':>9} {'peak RSS':>9} {'peak PSS':>9}  verdict")
    for process, values in figures.items():
        dyno, limit = DYNOS[process]
        peak_mib, pss_mib = values["rss"] / MiB, values["pss"] / MiB
        verdict = "fits" if pss_mib <= limit else "OVER"
        print(f"{process:<8} {dyno:<14} {limit:>5} MiB {values['idle_rss'] / MiB:>5.0f} MiB {peak_mib:>5.0f} MiB "
              f"{pss_mib:>5.0f} MiB  {verdict} ({pss_mib / limit:.0%} of the dyno)")
    print("RSS and PSS are sums over the process and its children (gunicorn master + 2 workers; Celery "
          "main process + pool child); PSS counts pages shared after fork once.")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("slug", help="slug sizes").set_defaults(func=cmd_slug)
    memory = sub.add_parser("memory", help="resident memory of each process type")
    memory.add_argument("--train-slices", type=int, default=400, help="synthetic slices the trainer makes and uses")
    memory.add_argument("--epochs", type=int, default=2)
    memory.add_argument("--batch", type=int, default=128, help="slices in the screened batch")
    memory.set_defaults(func=cmd_memory)
    args = parser.parse_args(argv)
    if args.command is None:
        cmd_slug(args)
        cmd_memory(parser.parse_args(["memory"]))
    else:
        args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
