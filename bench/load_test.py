"""Load test: simulated screeners against the real stack on this machine.

Starts gunicorn (2 workers), one screening worker (Celery, concurrency 1), on a fresh PostgreSQL
database and a Redis database of their own, installs a model (the tiny trained CNN by default), and
creates USERS screeners. Each simulated user logs in, then until the time is up: uploads a batch of
BATCH scans through the Screen page's own upload callback, polls its progress as the page does, and
opens the batch's montage (the montage callback, then the tiles' heatmap thumbnails). Plain asyncio +
httpx, one client (one session cookie) per user.

Prints requests per second, p50/p95/p99 latency per endpoint, errors, scans screened and the resident
memory of every process at the end; writes bench/results/load_test.json.

    .venv/bin/python bench/load_test.py                 # 20 users, batches of 50, 5 minutes
    .venv/bin/python bench/load_test.py --seconds 60    # shorter
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent

from bench.common import create_database, drop_database, print_table, write_results  # noqa: E402  (after the path is set)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")
PASSWORD = "load-test-password-1"
FINAL = ("done", "done with errors", "failed")

def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=300, help="how long the users work (default 300)")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--batch", type=int, default=50, help="scans per upload")
    parser.add_argument("--model", choices=("tiny", "handmade"), default="tiny",
                        help="tiny: a really trained 64-px CNN (a few seconds with TensorFlow); handmade: instant")
    parser.add_argument("--poll-s", type=float, default=1.0, help="progress polling interval (the page: 0.7 s)")
    parser.add_argument("--tiles", type=int, default=12, help="montage tiles each user opens per batch")
    return parser.parse_args()


class Stats:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, list[str]] = defaultdict(list)

    async def call(self, name: str, request) -> httpx.Response | None:
        began = time.perf_counter()
        try:
            response = await request
        except httpx.HTTPError as error:
            self.errors[name].append(f"{type(error).__name__}: {error}")
            return None
        self.latency[name].append(time.perf_counter() - began)
        if response.status_code >= 400:
            self.errors[name].append(f"HTTP {response.status_code}: {response.text[:120]}")
            return None
        return response


def callback_body(spec: dict, values: dict, changed: str) -> dict:
    def fill(items: list[dict]) -> list[dict]:
        return [{**i, "value": values.get(f"{i['id']}.{i['property']}")} for i in items]

    key = spec["output"]
    parts = key.strip(".").split("...")
    outputs = [dict(zip(("id", "property"), p.rsplit(".", 1))) for p in parts]
    return {"output": key, "outputs": outputs if key.startswith("..") else outputs[0],
            "inputs": fill(spec["inputs"]), "state": fill(spec["state"]), "changedPropIds": [changed]}


async def user(index: int, base: str, deadline: float, args, pool: list[tuple[str, str]], stats: Stats,
               screened_batches: list[int]) -> None:
    rng = random.Random(index)
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        page = await stats.call("GET /login", client.get("/login"))
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        await stats.call("POST /login", client.post("/login", data={
            "username": f"user{index:02d}", "password": PASSWORD, "csrf_token": token, "next": "/"}))
        deps = await stats.call("GET /_dash-dependencies", client.get("/_dash-dependencies"))
        specs = deps.json()
        find = lambda part: next(s for s in specs if part in s["output"])  # noqa: E731
        upload_spec, poll_spec, montage_spec = (find("screen-result.children"), find("screen-progress.value"),
                                                find("montage-grid.children"))
        while time.monotonic() < deadline:
            chosen = rng.sample(pool, args.batch)
            body = callback_body(upload_spec, {"screen-upload.contents": [c for _, c in chosen],
                                               "screen-upload.filename": [n for n, _ in chosen]},
                                 "screen-upload.contents")
            response = await stats.call("upload (Screen callback)", client.post("/_dash-update-component", json=body))
            if response is None:
                continue
            batch_id = response.json()["response"]["screen-batch"]["data"]
            screened_batches.append(batch_id)
            while time.monotonic() < deadline:
                await asyncio.sleep(args.poll_s)
                body = callback_body(poll_spec, {"screen-poll.n_intervals": 1, "screen-batch.data": batch_id},
                                     "screen-poll.n_intervals")
                response = await stats.call("progress (poll callback)", client.post("/_dash-update-component",
                                                                                    json=body))
                if response is not None and any(word in response.text for word in FINAL):
                    break
            if time.monotonic() >= deadline:
                break
            body = callback_body(montage_spec, {"montage-batch.value": batch_id, "montage-label.value": "any",
                                                "montage-colour.value": "predicted",
                                                "montage-heatmaps.value": ["on"]}, "montage-batch.value")
            response = await stats.call("montage (callback)", client.post("/_dash-update-component", json=body))
            if response is None:
                continue
            # Re-serialised: Dash escapes "/" in its JSON as \u002f.
            tiles = re.findall(r"/media/scans/\d+/thumbnail-heatmap\.png", json.dumps(response.json()))[:args.tiles]
            await asyncio.gather(*(stats.call("montage tile (media route)", client.get(t)) for t in tiles))


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q)) if values else float("nan")


def process_memory(label: str, child_label: str, pid: int) -> list[list]:
    rows = []
    try:
        main = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return [[label, pid, "gone"]]
    rows.append([label, pid, round(main.memory_info().rss / 2**20, 1)])
    for child in main.children(recursive=True):
        rows.append([child_label, child.pid, round(child.memory_info().rss / 2**20, 1)])
    return rows


def main() -> int:
    args = parse_args()
    import redis

    from tests.builders import make_head_slice, make_png

    data_dir = Path(tempfile.mkdtemp(prefix="ts-load-"))
    database_url = create_database("ts_load")
    redis_url = f"{REDIS_URL}/15"
    redis.Redis.from_url(redis_url).flushdb()
    env = {**os.environ, "TUMORSCREEN_DATA_DIR": str(data_dir), "DATABASE_URL": database_url,
           "REDIS_URL": redis_url, "SECRET_KEY": uuid.uuid4().hex, "PYTHONPATH": str(ROOT),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    os.environ.update({k: env[k] for k in ("TUMORSCREEN_DATA_DIR", "DATABASE_URL", "REDIS_URL", "SECRET_KEY")})
    processes: list[tuple[str, subprocess.Popen]] = []
    try:
        subprocess.run([str(BIN / "alembic"), "upgrade", "head"], cwd=ROOT, env=env, check=True, capture_output=True)
        from core.db import session_scope
        from core.users import create_user
        from worker import model_registry

        with session_scope() as db:
            for index in range(args.users):
                create_user(db, f"user{index:02d}", PASSWORD, "screener")
        model_dir = data_dir / "model"
        if args.model == "tiny":
            from tests.model_fixtures import build_tiny_model_dir

            build_tiny_model_dir(model_dir)
        else:
            from tests.model_fixtures import build_handmade_model_dir

            build_handmade_model_dir(model_dir, size=32)
        with session_scope() as db:
            version = model_registry.register_model_dir(db, model_dir)
            model_registry.promote(db, version.version, None, force=True)
        pool = [(f"scan-{seed:04d}.png", "data:image/png;base64," +
                 base64.b64encode(make_png(make_head_slice(128, seed=seed, lesion=seed % 2 == 0))).decode())
                for seed in range(max(200, args.batch * 2))]

        port = 8793
        logs = data_dir / "logs"
        logs.mkdir()
        web = subprocess.Popen([str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "2",
                                "--timeout", "120", "webapp.wsgi:server"], cwd=ROOT, env=env,
                               stdout=open(logs / "web.log", "wb"), stderr=subprocess.STDOUT)
        processes.append(("gunicorn master", web))
        worker = subprocess.Popen([str(BIN / "celery"), "-A", "worker.celery_app", "worker", "-Q", "screening",
                                   "-c", "1", "-n", "load@%h", "--loglevel", "WARNING", "--without-gossip",
                                   "--without-mingle"], cwd=ROOT, env=env, stdout=open(logs / "worker.log", "wb"),
                                  stderr=subprocess.STDOUT)
        processes.append(("celery worker", worker))
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"the web server did not answer; see {logs / 'web.log'}")

        stats = Stats()
        batches: list[int] = []
        began = time.monotonic()
        deadline = began + args.seconds

        async def everyone() -> None:
            await asyncio.gather(*(user(i, base, deadline, args, pool, stats, batches) for i in range(args.users)))

        print(f"{args.users} users, batches of {args.batch}, {args.seconds:.0f} s against {base} "
              f"(model: {args.model}) ...", flush=True)
        asyncio.run(everyone())
        elapsed = time.monotonic() - began

        from sqlalchemy import func, select

        from core.models import Batch, Prediction, Scan

        with session_scope() as db:
            screened = db.scalar(select(func.count()).select_from(Prediction))
            uploaded = db.scalar(select(func.count()).select_from(Scan))
            unfinished = db.scalar(select(func.count()).select_from(Batch).where(
                Batch.status.in_(("queued", "running"))))
        memory = (process_memory("gunicorn master", "gunicorn worker", web.pid)
                  + process_memory("celery worker (main)", "celery pool child", worker.pid))

        total = sum(len(v) for v in stats.latency.values())
        rows = [[name, len(values), round(len(values) / elapsed, 2), percentile(values, 50), percentile(values, 95),
                 percentile(values, 99), len(stats.errors.get(name, []))]
                for name, values in sorted(stats.latency.items())]
        print_table(["endpoint", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"], rows)
        errors = sum(len(v) for v in stats.errors.values())
        print(f"total: {total} requests in {elapsed:.0f} s = {total / elapsed:.1f} req/s; errors: {errors}")
        for name, messages in stats.errors.items():
            print(f"  {name}: {messages[:3]}")
        print(f"scans uploaded {uploaded}, screened {screened} ({screened / elapsed:.1f}/s); "
              f"batches {len(batches)}, unfinished at the end {unfinished}")
        print_table(["process", "pid", "RSS MiB"], memory)
        write_results("load_test", {
            "settings": vars(args), "elapsed_s": round(elapsed, 1), "requests": total,
            "requests_per_s": round(total / elapsed, 2), "errors": errors,
            "error_samples": {k: v[:3] for k, v in stats.errors.items()},
            "endpoints": {r[0]: {"requests": r[1], "per_s": r[2], "p50_ms": r[3], "p95_ms": r[4], "p99_ms": r[5],
                                 "errors": r[6]} for r in rows},
            "scans_uploaded": uploaded, "scans_screened": screened, "batches": len(batches),
            "batches_unfinished": unfinished,
            "memory_mib": [{"process": r[0], "pid": r[1], "rss": r[2]} for r in memory],
            "load_average": os.getloadavg(),
        })
        return 0 if errors == 0 else 1
    finally:
        for _, process in processes:
            process.terminate()
        for _, process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        from core.db import dispose_engines

        dispose_engines()
        drop_database(database_url)


if __name__ == "__main__":
    raise SystemExit(main())
