"""`python -m ml train --data PREPARED_DIR --out MODEL_DIR`: train and write a model directory."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ml.precision import PRECISIONS
from ml.train import TrainSettings, takes_masks

DEFAULTS = TrainSettings()
# Shared with `python -m worker train`, so that both name the same default.
RECALL_CONFIDENCE_HELP = ("share of bootstrap draws of validation's patients (similarity groups) in which the "
                          "threshold must reach the recall target, or 'off' for validation's own patients "
                          f"(default {DEFAULTS.recall_confidence or 'off'})")


def confidence(text: str) -> float | None:
    return None if text.strip().lower() in ("off", "none") else float(text)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ml train", description=__doc__.split(":", 1)[1].strip())
    parser.add_argument("--data", required=True, type=Path, help="prepared dataset folder (python -m ml prepare)")
    parser.add_argument("--out", required=True, type=Path, help="model directory to write")
    parser.add_argument("--epochs", type=int, default=DEFAULTS.epochs)
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    parser.add_argument("--image-size", type=int, default=DEFAULTS.image_size)
    parser.add_argument("--learning-rate", type=float, default=DEFAULTS.learning_rate)
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument("--recall-target", type=float, default=DEFAULTS.recall_target)
    parser.add_argument("--recall-confidence", type=confidence, default=DEFAULTS.recall_confidence,
                        help=RECALL_CONFIDENCE_HELP)
    parser.add_argument("--width", type=int, default=DEFAULTS.width, help="filters of the first block")
    parser.add_argument("--architecture", choices=("tumorscreen", "baseline"), default=DEFAULTS.architecture)
    parser.add_argument("--top-down", type=int, default=DEFAULTS.top_down, metavar="STEPS",
                        help="steps of the top-down path after the last block, each doubling the heatmap grid's side "
                             "(0: the last block's 8×8 grid at 128 px; 1: 16×16); by default 1 with --masks, else 0")
    parser.add_argument("--masks", type=Path, metavar="DIR",
                        help="the source dataset's tumor masks, <stem>.png per tumor image (python -m ml synth writes "
                             "them): a second training target that teaches the heatmap where tumors are")
    parser.add_argument("--mask-weight", type=float, default=DEFAULTS.mask_weight,
                        help="weight of the mask loss beside the label's (with --masks; 0: the labels alone)")
    parser.add_argument("--transplant", type=float, default=DEFAULTS.transplant_fraction, metavar="SHARE",
                        help="with --masks: this share of the tumor-free training scans, each given a lesion moved "
                             "from a tumor scan, joins training as extra tumor scans; 0: none "
                             f"(default {DEFAULTS.transplant_fraction})")
    parser.add_argument("--small-tumor-cells", type=int, default=DEFAULTS.small_tumor_cells, metavar="K",
                        help="with --masks: a tumor covering fewer than K cells of the heatmap's grid weighs in the "
                             "mask loss as one of K cells; 0: every tumor cell weighs the same "
                             f"(default {DEFAULTS.small_tumor_cells})")
    parser.add_argument("--no-augment", action="store_true", help="train without augmentation")
    parser.add_argument("--no-intensity-augment", action="store_true",
                        help="vary only the geometry, not contrast, brightness or gamma (CT in a fixed window)")
    parser.add_argument("--no-balance", action="store_true", help="train without oversampling the minority class")
    parser.add_argument("--appearance-clusters", type=int, default=DEFAULTS.appearance_clusters, metavar="K",
                        help="balance the classes within K k-means clusters of the scans' thumbnails (views, "
                             "sequences), so that a view that is nearly all one class cannot decide the label; "
                             f"0: balance overall only (default {DEFAULTS.appearance_clusters})")
    parser.add_argument("--precision", choices=PRECISIONS, default=DEFAULTS.precision,
                        help="what the convolutions compute in while training: bfloat16 (mixed, float32 weights) "
                             "takes about half the time where the processor has bfloat16 instructions, and scored "
                             "a little lower on brain-mri; auto picks it there and float32 elsewhere "
                             f"(default {DEFAULTS.precision}). The model is float32 either way")
    parser.add_argument("--float32-onnx", action="store_true",
                        help="export the ONNX network in float32 throughout (default: its convolutions in 8 bits, "
                             "faster, with the same answers on brain-mri; ml.quantize)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not (args.data / "metadata.csv").is_file():
        print(f"error: {args.data} is not a prepared dataset (no metadata.csv); run python -m ml prepare first",
              file=sys.stderr)
        return 2
    if args.masks is not None and not args.masks.is_dir():
        print(f"error: {args.masks}: no such masks folder", file=sys.stderr)
        return 2
    if args.masks is not None and not takes_masks(args.architecture):
        print(f"error: tumor masks need a pooling head; the {args.architecture} architecture has none", file=sys.stderr)
        return 2
    try:
        settings = TrainSettings(epochs=args.epochs, batch_size=args.batch_size, image_size=args.image_size,
                                 learning_rate=args.learning_rate, seed=args.seed, recall_target=args.recall_target,
                                 recall_confidence=args.recall_confidence,
                                 width=args.width, architecture=args.architecture, augment=not args.no_augment,
                                 intensity_augment=not args.no_intensity_augment, balance=not args.no_balance,
                                 top_down=args.top_down, mask_weight=args.mask_weight,
                                 appearance_clusters=args.appearance_clusters,
                                 transplant_fraction=args.transplant, small_tumor_cells=args.small_tumor_cells,
                                 precision=args.precision,
                                 quantize=not args.float32_onnx)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from ml.train import train

    started = time.monotonic()
    try:
        metrics = train(args.data, args.out, settings, masks_dir=args.masks)
    except FileNotFoundError as error:  # a tumor scan without its mask
        print(f"error: {error}", file=sys.stderr)
        return 2
    keys = ("accuracy", "recall", "specificity", "roc_auc", "ece", "threshold")
    print(json.dumps({key: metrics[key] for key in keys} | {"wall_seconds": round(time.monotonic() - started, 1)}))
    print(f"model written to {args.out}")
    return 0
