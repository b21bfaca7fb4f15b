"""Single-image latency and batch throughput: ONNX Runtime against TensorFlow, on one model directory.

    python -m bench.bench_inference --model MODEL_DIR [--repeats 200] [--batch 64]

Both run the exported network with its named outputs (the one screening uses); TensorFlow through a compiled
`tf.function`, its fastest path. ONNX Runtime is timed for the bare forward pass (`Predictor.forward`, in
the predictor's chunks), for the whole `Predictor.predict` (calibration, heatmap upsampling, feature
position) and, for comparison, for the batch in one session run (as the predictor ran it until late 2026-12-05).
The last ONNX Runtime row predicts with `refine_heatmaps` (a second forward pass for each heatmap).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.common import WORK, print_table, write_results


def percentiles(samples_s: list[float]) -> tuple[float, float]:
    ms = np.array(samples_s) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def time_calls(call, repeats: int) -> list[float]:
    call()  # warm-up: first calls allocate and compile
    samples = []
    for _ in range(repeats):
        began = time.perf_counter()
        call()
        samples.append(time.perf_counter() - began)
    return samples


def onnx_rows(model_dir: Path, images: np.ndarray, repeats: int, batch: int) -> list[list]:
    from ml.predictor import Predictor

    def row(threads: int, refine: bool = False) -> list:
        predictor = Predictor.from_dir(model_dir, intra_op_threads=threads, refine_heatmaps=refine)
        one, many = images[:1], images[:batch]
        p50, p95 = percentiles(time_calls(lambda: predictor.forward(one), repeats))
        full50, full95 = percentiles(time_calls(lambda: predictor.predict(one), repeats))
        batch_s = min(time_calls(lambda: predictor.forward(many), 5))
        full_batch_s = min(time_calls(lambda: predictor.predict(many), 5))
        one_run_s = min(time_calls(lambda: predictor.session.run(None, {"image": many[..., None]}), 5))
        refined = ", heatmaps refined" if refine else ""
        return [f"onnxruntime ({threads} thread{'s' if threads > 1 else ''}{refined})", p50, p95, full50, full95,
                batch / batch_s, batch / full_batch_s, batch / one_run_s]

    return [row(1), row(2), row(2, refine=True)]


def tensorflow_row(model_dir: Path, images: np.ndarray, repeats: int, batch: int) -> list:
    import keras
    import tensorflow as tf

    from ml.model import inference_model

    model = inference_model(keras.saving.load_model(model_dir / "model.keras"))
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    one = tf.constant(images[:1, ..., None])
    many = tf.constant(images[:batch, ..., None])
    p50, p95 = percentiles(time_calls(lambda: [t.numpy() for t in forward(one)], repeats))
    batch_s = min(time_calls(lambda: [t.numpy() for t in forward(many)], 5))
    return ["tensorflow tf.function", p50, p95, None, None, batch / batch_s, None, None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=WORK / "real_model")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args(argv)

    import json

    size = json.loads((args.model / "metadata.json").read_text())["image_size"]
    images = np.random.default_rng(0).random((args.batch, size, size), dtype=np.float32)
    rows = onnx_rows(args.model, images, args.repeats, args.batch)
    rows.append(tensorflow_row(args.model, images, args.repeats, args.batch))
    headers = ["runtime", "1 img p50 ms", "1 img p95 ms", "predict p50 ms", "predict p95 ms",
               f"batch {args.batch} img/s", "predict img/s", "one run img/s"]
    print(f"model {args.model} ({size}×{size} px), {args.repeats} single-image runs")
    print_table(headers, rows)
    write_results("inference", {"model": str(args.model), "image_size": size,
                                "rows": [dict(zip(headers, row)) for row in rows]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
