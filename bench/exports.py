"""One exported network judged as training judges it: calibrated and thresholded on the validation split
(ml.calibration.fit_operating_point), scored on the test split, its forward pass timed on the screening
worker's threads. For the benchmarks that compare ways of exporting the same trained model."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.bench_inference import percentiles, time_calls
from bench.common import print_table

if TYPE_CHECKING:
    from ml.evaluate import Scans

SCORES = ("accuracy", "recall", "specificity", "roc_auc", "ece")
HEATMAP_SCORES = ("pointing_game", "mask_energy")
THREADS = 2
BATCH = 64


def score_onnx(onnx_bytes: bytes, metadata: dict, val: Scans, val_groups: np.ndarray, test: Scans) -> dict:
    """An ONNX network calibrated and thresholded on `val` as training does, scored on `test`, its forward pass
    timed; with its ONNX bytes and metadata under "onnx" and "metadata"."""
    from ml.calibration import fit_operating_point
    from ml.evaluate import evaluate_arrays
    from ml.metrics import binary_metrics
    from ml.predictor import Predictor, chunk_size, inference_session, run_in_chunks

    session = inference_session(onnx_bytes, intra_op_threads=THREADS)
    (logits,) = run_in_chunks(session, ("logit",), val.images, chunk_size(session, metadata["largest_map_floats"]))
    settings = metadata["settings"]
    operating = fit_operating_point(logits[:, 0], val.labels, settings["recall_target"],
                                    confidence=settings["recall_confidence"], groups=val_groups,
                                    seed=settings["seed"])
    metadata = {**metadata, "threshold": operating.threshold, "temperature": operating.temperature,
                "calibration_bias": operating.bias}
    predictor = Predictor.from_files(onnx_bytes, metadata, intra_op_threads=THREADS)
    metrics, _ = evaluate_arrays(predictor, test.images, test.labels, test.masks)
    validation = binary_metrics(val.labels, operating.probability, operating.threshold)
    one_ms, _ = percentiles(time_calls(lambda: predictor.forward(test.images[:1]), 200))
    batch_s = min(time_calls(lambda: predictor.forward(test.images[:BATCH]), 5))
    return {"threshold": operating.threshold,
            "test": {key: metrics[key] for key in (*SCORES, *HEATMAP_SCORES, "confusion") if key in metrics},
            "validation": {key: validation[key] for key in ("roc_auc", "recall", "specificity")},
            "forward_ms_p50": one_ms, "images_per_s": BATCH / batch_s, "onnx": onnx_bytes, "metadata": metadata}


def write_model_dir(source: Path, out: Path, result: dict) -> None:
    """A copy of the model directory `source` at `out` with `result`'s ONNX network and metadata."""
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(source, out)
    (out / "model.onnx").write_bytes(result["onnx"])
    (out / "metadata.json").write_text(json.dumps(result["metadata"], indent=2))


def print_exports(title: str, results: dict[str, dict]) -> None:
    """The exports side by side: test scores, threshold, validation scores, forward timings."""
    first = next(iter(results.values()))
    scores = [key for key in (*SCORES, *HEATMAP_SCORES) if key in first["test"]]
    table = [[f"test {key}", *(f"{r['test'][key]:.4f}" for r in results.values())] for key in scores]
    table += [["test confusion", *(" ".join(f"{k}={v}" for k, v in r["test"]["confusion"].items())
                                   for r in results.values())]]
    table += [["threshold (chosen on validation)", *(f"{r['threshold']:.4f}" for r in results.values())]]
    table += [[f"validation {key}", *(f"{r['validation'][key]:.4f}" for r in results.values())]
              for key in ("roc_auc", "recall", "specificity")]
    table += [[f"forward, one scan, {THREADS} threads (ms, p50)",
               *(f"{r['forward_ms_p50']:.2f}" for r in results.values())],
              [f"forward, batches of {BATCH} (images/s)",
               *(f"{r['images_per_s']:.0f}" for r in results.values())]]
    print(f"\n{title}")
    print_table(["measure", *results], table)


def load_splits(model_dir: Path, prepared: Path, masks: Path | None) -> tuple[dict, Scans, np.ndarray, Scans]:
    """The model's metadata, the validation split with its similarity groups, and the test split."""
    from ml.dataset import read_metadata
    from ml.evaluate import load_prepared

    metadata = json.loads((model_dir / "metadata.json").read_text())
    size = metadata["image_size"]
    val = load_prepared(prepared, size, split="val")
    test = load_prepared(prepared, size, masks, split="test")
    rows = read_metadata(prepared)
    return metadata, val, rows.loc[rows["split"] == "val", "group"].to_numpy(), test
