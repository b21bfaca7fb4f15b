"""One scan, from intake to stored prediction with its heatmap, on a warm worker (PostgreSQL + Redis).

    python -m bench.bench_screening_latency [--model MODEL_DIR] [--scans 40]

Each scan is its own batch, submitted through the same intake as an upload; the clock stops when its
prediction (with the heatmap blob) is committed. Target: p50 under 300 ms, p95 under 1 s.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.common import WORK, print_table, write_results
from bench.screening_stack import default_model_dir, load_average, screening_stack


def _p50_p95(values_ms: np.ndarray) -> dict[str, float]:
    return {"p50": float(np.percentile(values_ms, 50)), "p95": float(np.percentile(values_ms, 95))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model directory (default: the local active model)")
    parser.add_argument("--scans", type=int, default=40)
    parser.add_argument("--side", type=int, default=512, help="side of the uploaded PNG slices")
    args = parser.parse_args(argv)
    model_dir = args.model or default_model_dir(WORK / "screening")

    from sqlalchemy import select

    from core.db import session_scope
    from core.models import Prediction, Scan
    from tests.builders import make_head_slice, make_png
    from worker.intake import IntakeFile, submit_batch

    files = [make_png(make_head_slice(args.side, seed=1000 + i)) for i in range(args.scans + 3)]
    with screening_stack(model_dir):
        def screen(data: bytes, name: str) -> tuple[float, float]:
            began = time.perf_counter()
            result = submit_batch([IntakeFile(name, data)], user_id=None)
            intake = time.perf_counter() - began
            while True:
                with session_scope() as session:
                    heatmap = session.scalar(select(Prediction.heatmap_blob).join(Scan)
                                             .where(Scan.batch_id == result.batch_id))
                if heatmap:
                    return intake, time.perf_counter() - began
                time.sleep(0.002)

        for i in range(3):  # warm: the worker loads the model on its first chunk
            screen(files[i], f"warm-{i}.png")
        samples = [screen(files[3 + i], f"scan-{i}.png") for i in range(args.scans)]
    intake_ms = np.array([s[0] for s in samples]) * 1000
    total_ms = np.array([s[1] for s in samples]) * 1000
    intake, total = _p50_p95(intake_ms), _p50_p95(total_ms)
    rows = [["intake (decode, normalise, store, enqueue)", *intake.values()],
            ["intake to stored prediction with heatmap", *total.values()]]
    print(f"\none scan ({args.side}x{args.side} PNG) at a time, {args.scans} scans, warm worker; "
          f"load average {load_average()}")
    print_table(["stage", "p50 ms", "p95 ms"], rows)
    write_results("screening_latency", {"scans": args.scans, "side": args.side, "load_average": load_average(),
                                        "intake_ms": intake, "total_ms": total})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
