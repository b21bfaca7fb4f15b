"""Resident memory of what training holds and passes over besides its own steps.

    python -m bench.bench_training_memory [--scans 1024] [--size 128] [--epoch-scans 3800]

- the batch-norm refresh before every validation (ml.train.batch_norm_refresher): as a graph in training's
  batches of 32 as it is, in batches of 256 as until late 2026-12-05, and eagerly in batches of 256 (tf.function
  replaced with a plain call) as until 2026-12-05;
- the ONNX pass over validation and a training sample after training (ml.train._raw_outputs): in the
  predictor's chunks as it is, or in batches of 256 as before 2026-12-05;
- the epoch's scans (`--epoch-scans`, about brain-mri's) and one pass over training's augmented batches of
  them: as 8-bit codes (ml.train.eight_bit_codes) as it is, or as float32 as before (until 2026-12-05).

Each measurement runs in a process of its own (resident memory does not shrink back far enough to compare
two in one process) on the default network, seeded, and random scans. Prints the process's resident
memory before and after, its peak and the seconds; for the refresh also the largest difference between
graph and eager statistics in batches of 256, which should be 0 (other batch sizes give other statistics:
upstream layers are normalised by their batch).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

from bench.common import print_table, write_results

MEASUREMENTS = {"refresh, graph, batches of 32": ("refresh", "graph-32"),
                "refresh, graph, batches of 256 (before)": ("refresh", "graph-256"),
                "refresh, eager, batches of 256 (before)": ("refresh", "eager-256"),
                "ONNX pass, predictor's chunks": ("onnx", "chunks"),
                "ONNX pass, batches of 256 (before)": ("onnx", "256"),
                "epoch's scans, 8-bit codes": ("dataset", "codes"),
                "epoch's scans, float32 (before)": ("dataset", "floats")}


def _plain_call(function=None, **_):
    """tf.function's stand-in for the eager measurement, with or without arguments."""
    return function if function is not None else (lambda decorated: decorated)


def _rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _refresh(way: str, model, images: np.ndarray) -> list[float]:
    import keras
    import tensorflow as tf

    from ml.train import refresh_batch_norm

    kind, batch_size = way.split("-")
    in_graph = tf.function
    if kind == "eager":
        tf.function = _plain_call
    try:
        refresh_batch_norm(model, images, batch_size=int(batch_size))
    finally:
        tf.function = in_graph
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    return np.concatenate([np.concatenate([keras.ops.convert_to_numpy(layer.moving_mean),
                                           keras.ops.convert_to_numpy(layer.moving_variance)])
                           for layer in norms]).tolist()


def _onnx_session(model):
    from ml.export import to_onnx_bytes
    from ml.predictor import inference_session

    return inference_session(to_onnx_bytes(model), intra_op_threads=0)  # as ml.train.train_arrays makes it


def _onnx_pass(way: str, session, images: np.ndarray, largest_map_floats: int) -> None:
    import ml.train

    if way == "256":
        for start in range(0, len(images), 256):
            session.run(["logit", "features"], {"image": images[start:start + 256]})
    else:
        ml.train._raw_outputs(session, images[..., 0], largest_map_floats)


def _epoch_pass(way: str, scans: int, size: int) -> dict:
    """What _fit holds of the training scans besides the caller's float32 array: the epoch's copy (every
    scan once and a sixth again, as balancing gave on brain-mri) and the dataset over it, read once."""
    from ml.train import TrainSettings, _compact, _training_dataset

    codes = np.random.default_rng(0).integers(0, 256, (scans, size, size, 1), dtype=np.uint8)
    images = codes.astype(np.float32) / np.float32(255.0)
    labels = np.arange(scans) % 2
    order = np.random.default_rng(1).choice(scans, scans * 7 // 6)
    before = _rss_mib()
    began = time.perf_counter()
    epoch_scans = (_compact(images, None)[0] if way == "codes" else images)[order]
    for _ in _training_dataset(epoch_scans, labels[order], TrainSettings(image_size=size)):
        pass
    return {"before_mib": before, "after_mib": _rss_mib(), "seconds": time.perf_counter() - began,
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "statistics": []}


def _measure(part: str, way: str, scans: int, size: int, epoch_scans: int) -> dict:
    import keras

    from ml.model import build_model, largest_map_floats

    keras.utils.set_random_seed(0)
    if part == "dataset":
        return _epoch_pass(way, epoch_scans, size)
    model = build_model(image_size=size)
    images = np.random.default_rng(0).random((scans, size, size, 1), dtype=np.float32)
    model(images[:2])
    session = _onnx_session(model) if part == "onnx" else None  # the export, before what is measured
    before = _rss_mib()
    began = time.perf_counter()
    statistics = (_refresh(way, model, images) if part == "refresh"
                  else _onnx_pass(way, session, images, largest_map_floats(model)))
    return {"before_mib": before, "after_mib": _rss_mib(), "seconds": time.perf_counter() - began,
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "statistics": statistics}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=1024,
                        help="scans (training refreshes on ml.train.BATCH_NORM_SAMPLE)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epoch-scans", type=int, default=3800,
                        help="training scans for the epoch's measurement (brain-mri's training split: about 3,800)")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # PART WAY: one measurement, in a child process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(_measure(*args.one, args.scans, args.size, args.epoch_scans)))
        return 0
    results = {}
    for name, (part, way) in MEASUREMENTS.items():
        child = subprocess.run([sys.executable, "-m", "bench.bench_training_memory", "--one", part, way,
                                "--scans", str(args.scans), "--size", str(args.size),
                                "--epoch-scans", str(args.epoch_scans)],
                               capture_output=True, text=True, check=True)
        results[name] = json.loads(child.stdout.strip().splitlines()[-1])
    graph, eager = (results[name]["statistics"] for name in list(MEASUREMENTS)[1:3])
    difference = float(np.max(np.abs(np.subtract(graph, eager))))
    print(f"{args.scans} random scans at {args.size} px ({args.epoch_scans} for the epoch), default network, "
          "one process each")
    print_table(["pass", "RSS before MiB", "RSS after MiB", "peak RSS MiB", "seconds"],
                [[name, r["before_mib"], r["after_mib"], r["peak_mib"], r["seconds"]] for name, r in results.items()])
    print(f"largest difference between the refresh's statistics, graph against eager (batches of 256): "
          f"{difference:.3g}")
    write_results("training_memory", {"scans": args.scans, "size": args.size, "epoch_scans": args.epoch_scans,
                                      "refresh_difference": difference,
                                      **{name: {key: value for key, value in r.items() if key != "statistics"}
                                         for name, r in results.items()}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
