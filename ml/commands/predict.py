"""`python -m ml predict --model MODEL_DIR FILE...`: screen files with ONNX Runtime (no TensorFlow).

One line per file (or one JSON object with --json); a file that cannot be read or decoded gets its
reason and the others still run. Exit status 0 only when every file was predicted.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from ml.errors import RejectedFile, one_line
from ml.predictor import Prediction, Predictor


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ml predict", description="screen image files with a model")
    parser.add_argument("--model", required=True, type=Path, help="model directory (python -m ml train)")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument("--heatmaps", type=Path, help="write a heatmap overlay PNG per file into this folder")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    parser.add_argument("--refine-heatmaps", action="store_true",
                        help="each heatmap from two passes, the second half a cell apart (twice the forward "
                             "cost; little gain with networks exported since 2026-12-07)")
    return parser.parse_args(argv)


def heatmap_overlay(image: np.ndarray, heatmap: np.ndarray, opacity: float = 0.4) -> np.ndarray:
    """BGR uint8: the scan in grey with the heatmap in the jet colour map over it."""
    grey = cv2.cvtColor((np.clip(image, 0, 1) * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    colour = cv2.applyColorMap((heatmap * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.addWeighted(colour, opacity, grey, 1 - opacity, 0)


def _heatmap_path(folder: Path, source: Path, taken: set[Path]) -> Path:
    path, n = folder / f"{source.stem}.heatmap.png", 1
    while path in taken:  # two inputs with one stem (from different folders) keep both heatmaps
        n += 1
        path = folder / f"{source.stem}-{n}.heatmap.png"
    taken.add(path)
    return path


def _load(path: Path, predictor: Predictor) -> np.ndarray:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise RejectedFile(path.name, f"cannot read file ({error.strerror or error})") from None
    image, _ = predictor.prepare_file(data, path.name)
    return image


def _report(path: Path, prediction: Prediction | None, error: str | None, heatmap: Path | None, as_json: bool) -> str:
    if as_json:
        if prediction is None:
            return json.dumps({"file": str(path), "error": error})
        return json.dumps({"file": str(path), "probability": round(prediction.probability, 6),
                           "label": prediction.label, "needs_review": prediction.needs_review,
                           "heatmap": str(heatmap) if heatmap else None})
    # A file name may hold newlines, terminal escapes or bytes that are not UTF-8: shown escaped, so
    # that every file stays one line and nothing is written to the terminal but text.
    shown = one_line(os.fsencode(path).decode("utf-8", errors="replace"), limit=4096)
    if prediction is None:
        return f"{shown}: error: {error}"
    review = " needs review" if prediction.needs_review else ""
    where = f" heatmap={heatmap}" if heatmap else ""
    return f"{shown}: {prediction.label} p={prediction.probability:.4f}{review}{where}"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        predictor = Predictor.from_dir(args.model, intra_op_threads=args.threads,
                                       refine_heatmaps=args.refine_heatmaps)
    except (OSError, KeyError, ValueError) as error:
        print(f"error: cannot load model from {args.model}: {error}", file=sys.stderr)
        return 2
    images: dict[int, np.ndarray] = {}
    errors: dict[int, str] = {}
    for index, path in enumerate(args.files):
        try:
            images[index] = _load(path, predictor)
        except RejectedFile as error:
            errors[index] = error.reason
    predicted = dict(zip(images, predictor.predict(np.stack(list(images.values()))))) if images else {}
    if args.heatmaps:
        args.heatmaps.mkdir(parents=True, exist_ok=True)
    taken: set[Path] = set()
    for index, path in enumerate(args.files):
        prediction, heatmap = predicted.get(index), None
        if prediction is not None and args.heatmaps:
            heatmap = _heatmap_path(args.heatmaps, path, taken)
            cv2.imwrite(str(heatmap), heatmap_overlay(images[index], prediction.heatmap))
        print(_report(path, prediction, errors.get(index), heatmap, args.json))
    return 0 if not errors else 1
