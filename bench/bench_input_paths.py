"""Ways into the network: one split's source files brought to the model's input three ways, and scored.

    python -m bench.bench_input_paths --model MODEL_DIR --prepared PREPARED_DIR [--split test] [--masks DIR]

- `as training`: what the model records (ml.normalise.prepare_for_model: normalised at the size its set was
  prepared at, 8 bits, area-averaged to the model's size), which `ml evaluate` on raw folders and `ml predict`
  use since 2026-12-07. It should match the prepared PNGs training read to the bit: the largest difference is
  printed.
- `as the worker`: normalised at TUMORSCREEN_IMAGE_SIZE (224 unless set), stored as 8-bit PNG, its codes read
  back and resized to the model's size (worker.intake, worker.screening): training's way where the set was
  prepared at that size.
- `straight`: normalised at the model's size in float, what both commands did before, and still do for a
  model that records no preparation.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.common import model_preparation, print_table, write_results
from core.config import get_settings
from ml.classes import LABELS
from ml.dataset import read_metadata
from ml.evaluate import evaluate_arrays, load_prepared, source_root, split_masks
from ml.normalise import prepare_for_model, prepare_image
from ml.pixels import codes_as_input
from ml.predictor import Predictor
from worker.images import decode_png_codes, png_bytes

Route = Callable[[bytes, str], np.ndarray]


def routes(predictor: Predictor, prepared_dir: Path, worker_size: int) -> dict[str, Route]:
    size = predictor.image_size
    prepared_size, window = model_preparation(predictor, prepared_dir)
    return {
        "as training": lambda data, name: prepare_for_model(data, name, size, prepared_size, window)[0],
        "as the worker": lambda data, name: codes_as_input(
            decode_png_codes(png_bytes(prepare_image(data, name, worker_size)[0])), size),
        "straight": lambda data, name: prepare_image(data, name, size)[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--prepared", type=Path, required=True, help="the prepared set the model was trained on")
    parser.add_argument("--split", default="test")
    parser.add_argument("--masks", type=Path, help="tumor masks of the source (synthetic sets): pointing game too")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    args = parser.parse_args(argv)

    predictor = Predictor.from_dir(args.model, intra_op_threads=args.threads)
    worker_size = get_settings().image_size
    rows = read_metadata(args.prepared)
    rows = rows[rows["split"] == args.split]
    root = source_root(args.prepared)
    files = [Path(p) if Path(p).is_absolute() else root / p for p in rows["source_path"]]
    labels = rows["label"].map(LABELS).to_numpy(np.int8)
    masks = split_masks(args.prepared, predictor.image_size, args.masks, args.split) if args.masks else None
    read_by_training = load_prepared(args.prepared, predictor.image_size, split=args.split).images

    table, record = [], {}
    for name, route in routes(predictor, args.prepared, worker_size).items():
        images = np.stack([route(path.read_bytes(), path.name) for path in files])
        metrics, _ = evaluate_arrays(predictor, images, labels, masks)
        off = float(np.abs(images - read_by_training).max())
        table.append([name, metrics["roc_auc"], metrics["accuracy"], metrics["recall"], metrics["specificity"],
                      metrics["ece"], metrics.get("pointing_game"), off])
        record[name] = {**metrics, "largest_difference_from_prepared_pngs": off}

    print(f"\n{args.split} split of {args.prepared}: {len(files)} source files, model {args.model} "
          f"({predictor.image_size} px), threshold {predictor.threshold:.3f}; "
          f"the worker normalises at {worker_size}")
    print_table(["into the network", "roc_auc", "accuracy", "recall", "specificity", "ece", "pointing_game",
                 "max |x - prepared PNG|"], table)
    write_results("input_paths", {"model": str(args.model), "prepared": str(args.prepared), "split": args.split,
                                  "worker_size": worker_size, "paths": record})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
