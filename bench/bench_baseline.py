"""The earlier product's architecture beside ours, through the same pipeline and the same split.

    python -m bench.bench_baseline [--prepared DIR] [--ours MODEL_DIR] [--out MODEL_DIR]

Baseline: three conv/ReLU/max-pool blocks (32, 64, 128), Flatten, Dense 128, sigmoid, trained by
`ml.train` with the same settings (oversampling, augmentation, early stopping, calibration and the
recall-target threshold on validation). `--ours` is a model directory trained with the defaults on
the same prepared folder (bench_real_data writes one); it is trained here when missing.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.common import WORK, print_table, write_results


def summary(model_dir: Path) -> dict:
    metrics = json.loads((model_dir / "metrics.json").read_text())
    metadata = json.loads((model_dir / "metadata.json").read_text())
    return {
        "parameters": metadata["parameters"],
        "onnx_mb": (model_dir / "model.onnx").stat().st_size / 2**20,
        **{key: metrics[key] for key in ("accuracy", "recall", "specificity", "roc_auc", "ece", "latency_ms_p50",
                                         "latency_ms_p95")},
        "epochs_run": metrics["training"]["epochs_run"],
        "fit_s": metrics["training"]["fit_seconds"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", type=Path, default=WORK / "real_prepared")
    parser.add_argument("--ours", type=Path, default=WORK / "real_model")
    parser.add_argument("--out", type=Path, default=WORK / "baseline_model")
    args = parser.parse_args(argv)
    if not (args.prepared / "metadata.csv").is_file():
        parser.error(f"{args.prepared} is not a prepared dataset: run bench_real_data first")

    from ml.train import TrainSettings, train

    if not (args.ours / "metrics.json").is_file():
        train(args.prepared, args.ours, TrainSettings())
    began = time.monotonic()
    train(args.prepared, args.out, TrainSettings(architecture="baseline"))
    baseline_s = time.monotonic() - began

    ours, baseline = summary(args.ours), summary(args.out)
    rows = [[key, baseline[key], ours[key]] for key in ours]
    print(f"\nsame prepared split ({args.prepared}), same training pipeline; baseline trained in {baseline_s:.0f} s")
    print_table(["", "earlier product (baseline)", "tumorscreen"], rows)
    write_results("baseline", {"prepared": str(args.prepared), "baseline": baseline, "ours": ours})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
