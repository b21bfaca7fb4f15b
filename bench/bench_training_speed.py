"""Where a training epoch's time goes: augmentation, training steps, batch-norm refresh, validation.

    python -m bench.bench_training_speed [--images 5632] [--val 800] [--epochs 2] [--variant NAME]...

Images are random: speed does not depend on what they show. The default sizes are one epoch of brain-mri
(5,632 oversampled training scans, about 800 validation scans) at the default settings. Each variant runs
in its own process, since TensorFlow's global switches (determinism, dtype policy) cannot be undone.
The first epoch carries graph tracing; the figures are from the later ones. Training returns a float32 network
whatever it trained in (ml.precision), so for "bfloat16" the separate refresh and validation columns are float32's;
its epoch times hold the bfloat16 refresh and validation.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

from bench.common import print_table, write_results

VARIANTS = ("defaults", "float32", "bfloat16", "no-augment", "no-determinism", "xla")


def _measure(variant: str, images: int, val: int, epochs: int) -> dict:
    import keras
    import tensorflow as tf

    import ml.train as train_module
    from ml.train import TrainSettings, _batch_norm_sample, _training_dataset, batch_norm_refresher

    if variant == "no-determinism":
        # _fit switches determinism on; this variant measures what that costs.
        tf.config.experimental.enable_op_determinism = lambda: None
    if variant == "xla":
        compile_model = keras.Model.compile
        keras.Model.compile = lambda self, *args, **kwargs: compile_model(self, *args, **kwargs, jit_compile=True)
    # "defaults" trains in TrainSettings' precision (ml.precision); these two name one.
    precision = variant if variant in ("float32", "bfloat16") else TrainSettings.precision
    settings = TrainSettings(epochs=epochs, augment=variant != "no-augment", precision=precision)
    rng = np.random.default_rng(0)
    X = rng.random((images, settings.image_size, settings.image_size, 1), dtype=np.float32)
    y = (np.arange(images) % 2).astype(np.int64)
    X_val = rng.random((val, settings.image_size, settings.image_size, 1), dtype=np.float32)
    y_val = (np.arange(val) % 2).astype(np.int64)

    epoch_s: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.began = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_s.append(time.perf_counter() - self.began)

    real_callbacks = train_module._callbacks
    train_module._callbacks = lambda *args, **kwargs: [*real_callbacks(*args, **kwargs), Clock()]
    try:
        model, _, _ = train_module._fit(X, y, X_val, y_val, settings, None, None)
    finally:
        train_module._callbacks = real_callbacks

    began = time.perf_counter()
    batches = sum(1 for _ in _training_dataset(X, y, settings))
    augment_s = time.perf_counter() - began
    sample = _batch_norm_sample(X, settings)
    refresh = batch_norm_refresher(model)
    refresh(sample)  # traced once, as in training
    began = time.perf_counter()
    refresh(sample)
    refresh_s = time.perf_counter() - began
    began = time.perf_counter()
    model.predict(X_val, batch_size=settings.batch_size, verbose=0)
    validate_s = time.perf_counter() - began
    return {"variant": variant, "epoch_s": epoch_s, "steady_epoch_s": float(np.mean(epoch_s[1:] or epoch_s)),
            "augment_only_s": augment_s, "batches": batches, "refresh_batch_norm_s": refresh_s,
            "validation_predict_s": validate_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5632)
    parser.add_argument("--val", type=int, default=800)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--variant", action="append", choices=VARIANTS, help="default: all")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_measure(args.child, args.images, args.val, args.epochs)))
        return 0

    results = []
    for variant in args.variant or VARIANTS:
        done = subprocess.run([sys.executable, "-m", "bench.bench_training_speed", "--child", variant,
                               "--images", str(args.images), "--val", str(args.val), "--epochs", str(args.epochs)],
                              check=True, capture_output=True, text=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{variant}: epochs {[round(s, 1) for s in results[-1]['epoch_s']]} s", flush=True)
    print_table(["variant", "epoch s (steady)", "augmentation alone s", "refresh BN s", "validation predict s"],
                [[r["variant"], r["steady_epoch_s"], r["augment_only_s"], r["refresh_batch_norm_s"],
                  r["validation_predict_s"]] for r in results])
    write_results("training_speed", {"images": args.images, "val": args.val, "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
