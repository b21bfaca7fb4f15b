"""The random geometry of training augmentation: Keras's layers in a row against one affine resample.

    python -m bench.bench_augment [--images 5632] [--size 128] [--repeats 3]

For each pipeline: seconds to augment one brain-mri epoch of scans (batches of 32 through tf.data, as
training draws them), and how much fine noise survives the resampling (standard deviation of white noise
on a flat slice after augmentation, over before, in the centre where no fill reaches). Flips only would
keep 1.0; each bilinear resample at a fractional offset averages neighbouring pixels and lowers it.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from bench.common import print_table, write_results

BATCH = 32


def _pipelines(seed: int) -> dict:
    import keras
    from keras import layers

    from ml.augment import RandomGeometry

    keras_layers = keras.Sequential([
        layers.RandomFlip("horizontal_and_vertical", seed=seed),
        layers.RandomRotation(0.04, fill_mode="constant", seed=seed + 1),
        layers.RandomTranslation(0.06, 0.06, fill_mode="constant", seed=seed + 2),
        layers.RandomZoom(0.1, fill_mode="constant", seed=seed + 3),
    ])
    return {"Keras flip, rotation, translation, zoom": keras_layers,
            "one affine resample (ml.augment.RandomGeometry)": RandomGeometry(seed=seed)}


def _epoch_seconds(augmenter, images: np.ndarray) -> float:
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(images).batch(BATCH)
    dataset = dataset.map(lambda batch: augmenter(batch, training=True)).prefetch(tf.data.AUTOTUNE)
    began = time.perf_counter()
    for _ in dataset:
        pass
    return time.perf_counter() - began


def _noise_kept(augmenter, size: int) -> float:
    rng = np.random.default_rng(1)
    noise = rng.normal(0.0, 0.1, (256, size, size, 1)).astype(np.float32)
    out = np.asarray(augmenter(0.5 + noise, training=True)) - 0.5
    centre = slice(size // 4, size - size // 4)
    return float(out[:, centre, centre].std() / noise[:, centre, centre].std())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5632)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    images = np.random.default_rng(0).random((args.images, args.size, args.size, 1), dtype=np.float32)
    rows, results = [], []
    for name, augmenter in _pipelines(seed=0).items():
        _epoch_seconds(augmenter, images[:BATCH * 4])  # traces the graph
        seconds = [_epoch_seconds(augmenter, images) for _ in range(args.repeats)]
        kept = _noise_kept(augmenter, args.size)
        results.append({"pipeline": name, "epoch_s": seconds, "noise_kept": kept})
        rows.append([name, min(seconds), float(np.median(seconds)), kept])
    print_table(["pipeline", "epoch s (best)", "epoch s (median)", "noise std kept"], rows)
    write_results("augment", {"images": args.images, "size": args.size, "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
