"""A training step of the default network with Keras's batch normalisation against the fused one.

    python -m bench.bench_batch_norm [--batch 32] [--size 128] [--rounds 6] [--steps 15]

Both networks are built, compiled as training compiles them (Adam with a moving average of the weights,
op determinism on) and timed in alternating rounds in one process, so that a host whose speed drifts
over minutes slows both alike. Prints the median over rounds of wall and CPU milliseconds per step.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from bench.common import print_table, write_results


def _network(fused: bool, size: int):
    import keras

    import ml.model
    from ml.batch_norm import FusedBatchNormalization

    ml.model.FusedBatchNormalization = FusedBatchNormalization if fused else keras.layers.BatchNormalization
    try:
        model = ml.model.build_model(image_size=size)
    finally:
        ml.model.FusedBatchNormalization = FusedBatchNormalization
    model.compile(optimizer=keras.optimizers.Adam(2e-3, use_ema=True), loss="binary_crossentropy")
    return model


def _round(model, images, labels, steps: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        model.train_on_batch(images, labels)
    return (time.perf_counter() - wall) / steps * 1e3, (time.process_time() - cpu) / steps * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=15)
    args = parser.parse_args(argv)

    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(0)
    images = rng.random((args.batch, args.size, args.size, 1), dtype=np.float32)
    labels = (np.arange(args.batch) % 2).astype(np.float32)
    models = {"keras BatchNormalization": _network(False, args.size),
              "fused (ml.batch_norm)": _network(True, args.size)}
    for model in models.values():
        _round(model, images, labels, 3)  # tracing and warm-up
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            times[name].append(_round(model, images, labels, args.steps))
    rows = [[name, float(np.median([w for w, _ in runs])), float(np.median([c for _, c in runs]))]
            for name, runs in times.items()]
    print(f"training step, batch {args.batch}, {args.size} px, median of {args.rounds} rounds of {args.steps} steps")
    print_table(["batch normalisation", "wall ms / step", "CPU ms / step"], rows)
    write_results("batch_norm", {"batch": args.batch, "size": args.size, "rows": rows,
                                 "rounds": {name: runs for name, runs in times.items()}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
