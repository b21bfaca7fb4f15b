"""1,000 scans in one batch, one screening worker, from intake to the last prediction stored.

    python -m bench.bench_screening_batch [--model MODEL_DIR] [--scans 1000] [--side 256]

Reports scans per second end to end (intake included: decoding, normalising, storing, enqueueing,
then screening with heatmaps), the ratio to the bare ONNX forward throughput of the same model, and
the worker's peak resident memory (main process and pool children, sampled every 50 ms). Targets:
under 10 s (100 scans/s or more) and under 400 MiB, with no TensorFlow loaded.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.common import WORK, print_table, write_results
from bench.screening_stack import MemorySampler, default_model_dir, load_average, screening_stack


def forward_throughput(model_dir: Path, threads: int, batch: int = 64, repeats: int = 8) -> float:
    """Images per second of the bare ONNX forward pass (no calibration, no heatmap), batches of 64."""
    from ml.predictor import Predictor

    predictor = Predictor.from_dir(model_dir, intra_op_threads=threads)
    images = np.random.default_rng(0).random((batch, predictor.image_size, predictor.image_size), np.float32)
    predictor.forward(images)
    began = time.perf_counter()
    for _ in range(repeats):
        predictor.forward(images)
    return batch * repeats / (time.perf_counter() - began)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="model directory (default: the local active model)")
    parser.add_argument("--scans", type=int, default=1000)
    parser.add_argument("--side", type=int, default=256, help="side of the uploaded PNG slices")
    args = parser.parse_args(argv)
    model_dir = args.model or default_model_dir(WORK / "screening")

    from sqlalchemy import func, select

    from core.db import session_scope
    from core.models import BATCH_FINAL_STATUSES, Batch, Prediction, Scan
    from tests.builders import make_head_slice, make_png
    from worker.intake import IntakeFile, submit_batch

    print(f"building {args.scans} distinct {args.side}x{args.side} PNG slices...")
    files = [IntakeFile(f"scan-{i:04d}.png", make_png(make_head_slice(args.side, seed=i))) for i in range(args.scans)]
    with screening_stack(model_dir) as stack:
        submit_batch([IntakeFile("warm.png", make_png(make_head_slice(args.side, seed=99_999)))], user_id=None)
        time.sleep(2)  # the warm-up scan loads the model in the worker
        with MemorySampler(stack["worker_pid"]) as memory:
            began = time.perf_counter()
            result = submit_batch(files, user_id=None)
            intake_s = time.perf_counter() - began
            while True:
                with session_scope() as session:
                    status = session.scalar(select(Batch.status).where(Batch.id == result.batch_id))
                if status in BATCH_FINAL_STATUSES:
                    break
                time.sleep(0.02)
            total_s = time.perf_counter() - began
        with session_scope() as session:
            predicted = session.scalar(select(func.count()).select_from(Prediction).join(Scan)
                                       .where(Scan.batch_id == result.batch_id, Prediction.heatmap_blob.is_not(None)))
    from core.config import get_settings

    worker_threads = get_settings().inference_threads
    forward = {threads: forward_throughput(model_dir, threads) for threads in sorted({1, 2, worker_threads})}
    rate = args.scans / total_s
    rows = [
        ["batch status", status],
        ["scans predicted with heatmap", predicted],
        ["intake (decode, normalise, store, enqueue)", f"{intake_s:.2f} s"],
        ["intake to last prediction stored", f"{total_s:.2f} s"],
        ["screening after intake", f"{total_s - intake_s:.2f} s"],
        ["end-to-end throughput", f"{rate:.0f} scans/s"],
        ["bare ONNX forward, 1 thread", f"{forward[1]:.0f} img/s"],
        ["bare ONNX forward, 2 threads", f"{forward[2]:.0f} img/s"],
        [f"end-to-end / bare forward on the worker's threads ({worker_threads})",
         f"{rate / forward[worker_threads]:.2f}"],
        ["worker peak resident memory, RSS sum (main + children)", f"{memory.peak_mib:.0f} MiB"],
        ["  at that moment, per process", ", ".join(f"{k} {v:.0f}" for k, v in memory.per_process_mib.items())],
        ["worker peak proportional memory, PSS sum", f"{memory.peak_pss_mib:.0f} MiB"],
        ["TensorFlow mapped in the worker", "yes" if memory.tensorflow_loaded else "no"],
    ]
    print(f"\n{args.scans} scans in one batch, one worker (concurrency 1, TUMORSCREEN_INFERENCE_THREADS="
          f"{worker_threads}); load average {load_average()}")
    print_table(["measure", "value"], rows)
    write_results("screening_batch", {"scans": args.scans, "side": args.side, "status": status, "predicted": predicted,
                                      "intake_s": intake_s, "total_s": total_s, "scans_per_s": rate,
                                      "forward_img_per_s_1_thread": forward[1],
                                      "forward_img_per_s_2_threads": forward[2], "worker_threads": worker_threads,
                                      "ratio_to_forward": rate / forward[worker_threads],
                                      "worker_peak_mib": memory.peak_mib,
                                      "worker_peak_pss_mib": memory.peak_pss_mib,
                                      "per_process_mib": memory.per_process_mib,
                                      "tensorflow_loaded": memory.tensorflow_loaded, "load_average": load_average()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
