"""`python -m ml evaluate --model MODEL_DIR --data DIR --json OUT`: every metric of a model on a dataset.

DIR is a raw folder-per-class dataset (class folders as for `prepare`) or a prepared one, whose test
split is then used. With --masks (synthetic sets) the heatmaps are scored against the true tumors.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ml.classes import UnknownClassFolder
from ml.evaluate import evaluate_dir

SUMMARY = ("n", "accuracy", "recall", "specificity", "precision", "f1", "roc_auc", "pr_auc", "ece", "threshold",
           "latency_ms_p50", "latency_ms_p95", "pointing_game", "mask_energy")


def _names(text: str) -> list[str]:
    """A comma-separated list of class folder names, as `prepare` takes them."""
    return [name.strip() for name in text.split(",") if name.strip()]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ml evaluate", description="evaluate a model on a dataset")
    parser.add_argument("--model", required=True, type=Path, help="model directory (python -m ml train)")
    parser.add_argument("--data", required=True, type=Path, help="raw folder-per-class or prepared dataset")
    parser.add_argument("--json", required=True, type=Path, help="where to write the metrics")
    parser.add_argument("--masks", type=Path, metavar="DIR",
                        help="folder of tumor masks, <image stem>.png (synthetic sets)")
    parser.add_argument("--tumor-classes", type=_names,
                        help="comma-separated class folders meaning tumor (raw datasets)")
    parser.add_argument("--normal-classes", type=_names, help="comma-separated class folders meaning no tumor")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    parser.add_argument("--refine-heatmaps", action="store_true",
                        help="each heatmap from two passes, the second half a cell apart (twice the forward "
                             "cost; little gain with networks exported since 2026-12-07)")
    return parser.parse_args(argv)


def _format(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        metrics, _, _ = evaluate_dir(args.model, args.data, args.masks, args.tumor_classes, args.normal_classes,
                                     intra_op_threads=args.threads, refine_heatmaps=args.refine_heatmaps)
    except (UnknownClassFolder, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(metrics, indent=2))
    for key in SUMMARY:
        if key in metrics:
            print(f"{key:<16} {_format(metrics[key])}")
    print(f"{'confusion':<16} {metrics['confusion']}")
    print(f"{'rejected':<16} {len(metrics['rejected'])}")
    for item in metrics["rejected"]:
        print(f"  {item['file']}: {item['reason']}")
    return 0
