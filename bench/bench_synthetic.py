"""Synthetic head CT: generate → prepare → train → evaluate with masks, and recall by lesion size.

    python -m bench.bench_synthetic [--count 2000] [--image-size 128] [--epochs 12] [--reuse]

The heatmap is scored against the true tumor masks: pointing_game (the heatmap's peak lies inside
the tumor) and mask_energy (share of the heatmap's mass inside the tumor), on the test split.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import WORK, print_table, write_results

SIZE_BINS = (0, 8, 16, 32, 64, 1000)  # lesion diameter in pixels of the 256 px slice


def by_lesion_size(manifest: pd.DataFrame, metadata: pd.DataFrame, names: list[str], labels: np.ndarray,
                   called: np.ndarray) -> list[list]:
    """Recall per lesion diameter bin: prepared path → source file (metadata) → diameter (manifest)."""
    diameter = dict(zip(manifest["file"], manifest["diameter_px"]))
    source = dict(zip(metadata["path"], metadata["source_path"]))
    rows = []
    sizes = np.array([float(diameter.get(source.get(n), np.nan)) for n in names])
    for low, high in zip(SIZE_BINS, SIZE_BINS[1:]):
        chosen = (labels == 1) & (sizes >= low) & (sizes < high)
        if chosen.any():
            rows.append([f"{low}-{high} px", int(chosen.sum()), float(called[chosen].mean())])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--work", type=Path, default=WORK / "synthetic")
    parser.add_argument("--reuse", action="store_true", help="keep a generated and prepared set from an earlier run")
    args = parser.parse_args(argv)

    from ml.evaluate import evaluate_dir
    from ml.prepare import prepare_dataset
    from ml.synthetic import generate_dataset
    from ml.train import TrainSettings, train

    raw, prepared, model = args.work / "raw", args.work / "prepared", args.work / "model"
    timings = {}
    began = time.monotonic()
    if not (args.reuse and (raw / "manifest.csv").is_file()):
        generate_dataset(raw, args.count, args.seed, size=256)
    timings["generate_s"] = time.monotonic() - began
    began = time.monotonic()
    if not (args.reuse and (prepared / "metadata.csv").is_file() and
            (prepared / "images" / "test").is_dir()):
        # The generator's dataset.json declares the phantoms independent: prepare groups exact copies only.
        prepare_dataset(raw, prepared, size=256, seed=args.seed)
    timings["prepare_s"] = time.monotonic() - began
    settings = TrainSettings(image_size=args.image_size, epochs=args.epochs, seed=args.seed)
    began = time.monotonic()
    train(prepared, model, settings)
    timings["train_s"] = time.monotonic() - began
    metrics, scans, probability = evaluate_dir(model, prepared, masks_dir=raw / "masks")
    called = probability >= metrics["threshold"]
    size_rows = by_lesion_size(pd.read_csv(raw / "manifest.csv"), pd.read_csv(prepared / "metadata.csv"),
                               scans.names, scans.labels, called)

    print(f"\nsynthetic CT: {args.count} slices, test split {metrics['n']} ({metrics['n_masks']} with a tumor mask); "
          f"model at {args.image_size} px; " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    keys = ("accuracy", "recall", "specificity", "roc_auc", "ece", "pointing_game", "mask_energy", "threshold")
    targets = {"accuracy": ">= 0.99", "pointing_game": ">= 0.90"}
    print_table(["metric", "value", "target"], [[k, metrics[k], targets.get(k, "")] for k in keys])
    print("recall by lesion diameter (256 px slice):")
    print_table(["diameter", "tumors", "recall"], size_rows)
    write_results("synthetic", {"count": args.count, "settings": settings.__dict__, "timings": timings,
                                "metrics": metrics, "recall_by_size": size_rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
