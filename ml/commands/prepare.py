"""`python -m ml prepare SRC --out DIR`: prepare a folder-per-class dataset for training."""
from __future__ import annotations

import argparse
import sys

from ml.classes import DEFAULT_NORMAL_CLASSES, DEFAULT_TUMOR_CLASSES


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _window(text: str) -> tuple[float, float]:
    try:
        center, width = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected CENTER,WIDTH in HU, got {text!r}") from None
    return center, width


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ml prepare",
        description="Decode, normalise, deduplicate, group and split a folder-per-class dataset.")
    parser.add_argument("src", help="folder with one sub-folder per class")
    parser.add_argument("--out", required=True, help="output folder (created; a previous output is replaced)")
    parser.add_argument("--tumor-classes", type=_names, default=None,
                        help=f"folder names meaning tumor (default: {','.join(DEFAULT_TUMOR_CLASSES)})")
    parser.add_argument("--normal-classes", type=_names, default=None,
                        help=f"folder names meaning no tumor (default: {','.join(DEFAULT_NORMAL_CLASSES)})")
    parser.add_argument("--size", type=int, default=224, help="output image side in pixels (default 224)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and oversampling (default 0)")
    parser.add_argument("--val-fraction", type=float, default=0.15, help="default 0.15")
    parser.add_argument("--test-fraction", type=float, default=0.15, help="default 0.15")
    parser.add_argument("--window", type=_window, default=None,
                        help="CT window CENTER,WIDTH in HU for CT DICOM (default 40,80: brain)")
    parser.add_argument("--processes", type=int, default=2, help="decode processes (default 2)")
    parser.add_argument("--group-threshold", type=float, default=None,
                        help="thumbnail correlation that groups near-duplicates (default 0.92; exact "
                             "copies only for a source whose dataset.json declares independent slices)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ml.prepare import prepare_dataset

    try:
        report = prepare_dataset(args.src, args.out, size=args.size, seed=args.seed,
                                 val_fraction=args.val_fraction, test_fraction=args.test_fraction,
                                 tumor_classes=args.tumor_classes, normal_classes=args.normal_classes,
                                 window=args.window, processes=args.processes,
                                 group_threshold=args.group_threshold, show_progress=True)
    except ValueError as error:
        print(f"prepare: {error}", file=sys.stderr)
        return 2
    files, near, splits = report["files"], report["near_duplicate_groups"], report["splits"]
    print(f"files seen {files['seen']}, decoded {files['decoded']}, rejected {files['rejected']}")
    print(f"exact duplicates dropped {report['exact_duplicates']['dropped']}, excluded under both labels "
          f"{report['cross_label_duplicates']['excluded_images']}")
    print(f"near-duplicate groups: {near['groups']} groups, {near['groups_with_several_images']} with "
          f"several images ({near['images_in_such_groups']} images), largest {near['largest_sizes'][:5]}")
    for name, counts in splits["per_label"].items():
        print(f"{name}: no_tumor {counts['no_tumor']}, tumor {counts['tumor']}")
    balance = report["class_balance"]
    print(f"class ratio {balance['ratio_before']} → train after oversampling {balance['ratio_after']}")
    print(f"groups crossing splits: {splits['groups_crossing_splits']}")
    print(f"wrote {args.out}/metadata.csv, report.json, report.md in {report['timings']['total_s']} s")
    return 0
