"""What the exported network's second view buys: one trained model exported as screening runs it (upright
and turned by 180°, ml.model.inference_model) and upright only, each calibrated and thresholded on the
validation split as training does, then scored on the test split, with the forward pass timed.

    python -m bench.bench_views --model MODEL_DIR --prepared PREPARED_DIR [--masks DIR] [--upright-out DIR]

MODEL_DIR must hold the Keras model (`model.keras`) that training writes beside `model.onnx`; PREPARED_DIR is
the dataset it was trained on. `--masks` (synthetic CT) also scores the heatmaps. `--upright-out` writes the
upright-only model directory, for bench_source_shift or bench_inference to run on.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from bench.bench_inference import percentiles, time_calls
from bench.common import print_table, write_results

EXPORTS = {"two views (as exported)": True, "upright only": False}
SCORES = ("accuracy", "recall", "specificity", "roc_auc", "ece")
HEATMAP_SCORES = ("pointing_game", "mask_energy")
THREADS = 2
BATCH = 64


def export_and_score(model, metadata: dict, turned_view: bool, val, val_groups: np.ndarray, test) -> dict:
    """One export of `model`, calibrated and thresholded on `val`, scored on `test`; with its ONNX bytes and
    metadata under "onnx" and "metadata"."""
    from ml.calibration import fit_operating_point
    from ml.evaluate import evaluate_arrays
    from ml.export import to_onnx_bytes
    from ml.metrics import binary_metrics
    from ml.predictor import Predictor, chunk_size, inference_session, run_in_chunks

    onnx_bytes = to_onnx_bytes(model, turned_view=turned_view)
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


def main(argv: list[str] | None = None) -> int:
    import keras

    import ml.model  # noqa: F401  (registers the network's own layers, which loading the Keras model needs)
    from ml.dataset import read_metadata
    from ml.evaluate import load_prepared

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--masks", type=Path, default=None, help="tumor masks (synthetic CT): score the heatmaps")
    parser.add_argument("--upright-out", type=Path, default=None, help="write the upright-only model directory")
    args = parser.parse_args(argv)

    metadata = json.loads((args.model / "metadata.json").read_text())
    model = keras.saving.load_model(args.model / "model.keras")
    size = metadata["image_size"]
    val = load_prepared(args.prepared, size, split="val")
    test = load_prepared(args.prepared, size, args.masks, split="test")
    rows = read_metadata(args.prepared)
    val_groups = rows.loc[rows["split"] == "val", "group"].to_numpy()
    results = {name: export_and_score(model, metadata, turned, val, val_groups, test)
               for name, turned in EXPORTS.items()}

    if args.upright_out is not None:
        upright = results["upright only"]
        shutil.rmtree(args.upright_out, ignore_errors=True)
        shutil.copytree(args.model, args.upright_out)
        (args.upright_out / "model.onnx").write_bytes(upright["onnx"])
        (args.upright_out / "metadata.json").write_text(json.dumps(upright["metadata"], indent=2))
    for result in results.values():
        del result["onnx"], result["metadata"]

    scores = [key for key in (*SCORES, *HEATMAP_SCORES) if key in results["upright only"]["test"]]
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
    print(f"\n{args.model}: each export calibrated and thresholded on validation ({len(val.labels)} scans), "
          f"scored on test ({len(test.labels)})")
    print_table(["measure", *results], table)
    if args.upright_out is not None:
        print(f"upright-only model directory written to {args.upright_out}")
    write_results("views", {"model": str(args.model), "prepared": str(args.prepared), "exports": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
