"""Web process footprint: start time (to first answered request) and resident memory after the pages.

Starts the real web server (gunicorn, one worker) on a fresh SQLite database, logs in, loads the layout
and every registered page through Dash's router, then reads the resident memory of master and worker.

    .venv/bin/python bench/bench_web_process.py
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import open_every_page  # noqa: E402  (after the path is set)
BIN = Path(sys.executable).parent


def main() -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="ts-bench-web-"))
    env = {**os.environ, "TUMORSCREEN_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    subprocess.run([str(BIN / "alembic"), "upgrade", "head"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    subprocess.run([sys.executable, "-m", "webapp", "create-user", "bench", "--role", "admin"], cwd=ROOT,
                   env=env, input="bench-password-1\n", text=True, check=True, capture_output=True)
    port = 8791
    started = time.perf_counter()
    proc = subprocess.Popen([str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "1",
                             "webapp.wsgi:server"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.02)
        start_s = time.perf_counter() - started
        client = httpx.Client(base_url=base)
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
        client.post("/login", data={"username": "bench", "password": "bench-password-1",
                                    "csrf_token": token, "next": "/"})
        pages = open_every_page(client)
        master = psutil.Process(proc.pid)
        worker = master.children()[0]
        has_tf = "tensorflow" in " ".join(m.path for m in worker.memory_maps())
        rows = {
            "start_to_first_response_s": round(start_s, 2),
            "master_rss_mib": round(master.memory_info().rss / 2**20, 1),
            "worker_rss_mib": round(worker.memory_info().rss / 2**20, 1),
            "pages_loaded": pages,
            "tensorflow_mapped": has_tf,
        }
    finally:
        proc.terminate()
        proc.wait(10)
    width = max(map(len, rows))
    for key, value in rows.items():
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
