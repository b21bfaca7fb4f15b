"""What every benchmark shares: a plain-text table on stdout and a JSON record under bench/results/."""
from __future__ import annotations

import json
import os
import platform
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
# Benchmarks run against the real PostgreSQL, each in a scratch database of its own.
PG_ADMIN_URL = os.environ.get("TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
WORK = Path(__file__).resolve().parents[1] / "var" / "bench"


def model_preparation(predictor, prepared_dir: Path) -> tuple[int | None, list[float] | None]:
    """(prepared size, CT window) a model's input is made with (ml.normalise.prepare_for_model). Models
    written before 2026-12-07 do not record them: the report of the set they were trained on does."""
    from ml.dataset import preparation

    made = preparation(prepared_dir)
    return predictor.prepared_size or made.get("prepared_size"), predictor.window or made.get("window")


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, (float, np.floating)):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def print_table(headers: list[str], rows: list[list]) -> None:
    cells = [headers] + [[fmt(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    line = "  ".join("-" * w for w in widths)
    print(line)
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            print(line)
    print(line)


def write_results(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    record = {"benchmark": name, "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()}, **data}
    path.write_text(json.dumps(record, indent=2, default=float))
    print(f"results written to {path}")
    return path


def open_every_page(client) -> int:
    """With a logged-in httpx client: load the layout, then every page in its navbar through Dash's
    router, as a browser would. Returns how many pages were opened."""
    layout = client.get("/_dash-layout")
    layout.raise_for_status()
    client.get("/_dash-dependencies").raise_for_status()
    paths = sorted(set(re.findall(r'"href": "(/[^"]*)"', json.dumps(layout.json()))) | {"/"})
    for path in paths:
        client.post("/_dash-update-component", json={
            "output": ".._pages_content.children..._pages_store.data..",
            "outputs": [{"id": "_pages_content", "property": "children"},
                        {"id": "_pages_store", "property": "data"}],
            "inputs": [{"id": "_pages_location", "property": "pathname", "value": path},
                       {"id": "_pages_location", "property": "search", "value": ""}],
            "state": [], "changedPropIds": ["_pages_location.pathname"]}).raise_for_status()
    return len(paths)


def create_database(prefix: str) -> str:
    """A fresh, empty PostgreSQL database named PREFIX_<random>; returns its URL."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_database(url: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
