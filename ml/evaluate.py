"""Evaluation of a model directory: every screening metric, latency, and heatmap scores against masks."""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ml.classes import LABELS, resolve_classes
from ml.dataset import load_image, read_metadata
from ml.decode import decode_file
from ml.errors import RejectedFile
from ml.metrics import binary_metrics
from ml.normalise import normalise_like
from ml.predictor import Prediction, Predictor


def peak_inside(heatmap: np.ndarray, mask: np.ndarray) -> bool:
    """Whether the heatmap's peak (its first maximum) lies inside the mask."""
    mask = np.asarray(mask, bool)
    if mask.shape != heatmap.shape:
        raise ValueError(f"mask shape {mask.shape} differs from heatmap shape {heatmap.shape}")
    return bool(mask.flat[int(np.argmax(heatmap))])


def heatmap_score(heatmap: np.ndarray, mask: np.ndarray) -> tuple[bool, float]:
    """(whether the heatmap's peak lies inside the mask, the share of the heatmap's mass inside it)."""
    mask = np.asarray(mask, bool)
    total = float(heatmap.sum())
    return peak_inside(heatmap, mask), float(heatmap[mask].sum()) / total if total > 0 else 0.0


def summarise_heatmap_scores(scores: list[tuple[bool, float]]) -> dict:
    """pointing_game: share of masked scans whose heatmap peak lies inside the mask;
    mask_energy: mean share of heatmap mass inside the mask."""
    return {
        "pointing_game": float(np.mean([hit for hit, _ in scores])) if scores else None,
        "mask_energy": float(np.mean([energy for _, energy in scores])) if scores else None,
        "n_masks": len(scores),
    }


def heatmap_scores(heatmaps: list[np.ndarray], masks: list[np.ndarray | None]) -> dict:
    """`summarise_heatmap_scores` of every scan with a mask; scans without one are skipped."""
    return summarise_heatmap_scores([heatmap_score(h, m) for h, m in zip(heatmaps, masks) if m is not None])


def evaluate_arrays(predictor: Predictor, images: np.ndarray, y_true: np.ndarray,
                    masks: list[np.ndarray | None] | None = None,
                    on_prediction: Callable[[int, Prediction], None] | None = None) -> tuple[dict, np.ndarray]:
    """Metrics of `predictor` on normalised N×S×S images, and the calibrated probabilities.

    `on_prediction(i, prediction)` sees each scan's prediction, heatmap included, before it is dropped.

    Each scan is predicted alone so that the latency percentiles are those of screening one scan
    (forward pass, calibration and heatmap), not of a batch averaged out. No heatmap is kept past its
    scan: holding brain-mri's 807 test heatmaps (53 MB) while predicting grew a fresh process by 456 MiB,
    against 13 MiB for the probabilities alone (2026-12-05), and training ends with this pass.
    """
    images = np.asarray(images, np.float32)
    if images.ndim == 4:
        images = images[..., 0]
    if len(images) != len(y_true):
        raise ValueError(f"{len(images)} images but {len(y_true)} labels")
    probability, latency = np.empty(len(images)), np.empty(len(images))
    scored = []
    for i in range(len(images)):
        prediction = predictor.predict(images[i:i + 1])[0]
        probability[i], latency[i] = prediction.probability, prediction.latency_ms
        if on_prediction is not None:
            on_prediction(i, prediction)
        if masks is not None and masks[i] is not None:
            scored.append(heatmap_score(prediction.heatmap, masks[i]))
    metrics = binary_metrics(y_true, probability, predictor.threshold)
    metrics["latency_ms_p50"] = float(np.percentile(latency, 50))
    metrics["latency_ms_p95"] = float(np.percentile(latency, 95))
    metrics["rejected"] = []
    if masks is not None:
        metrics.update(summarise_heatmap_scores(scored))
    return metrics, probability


@dataclass
class Scans:
    """Scans ready for the predictor, with what could not be used and why."""

    images: np.ndarray  # N×S×S float32, normalised
    labels: np.ndarray  # N int8, 1 = tumor
    names: list[str]  # where each scan came from, relative to the data folder
    masks: list[np.ndarray | None] | None = None  # S×S bool per tumor scan, when masks were given
    rejected: list[dict] = field(default_factory=list)  # {"file", "reason"}


def normalised_mask(mask: np.ndarray, pixels: np.ndarray, size: int) -> np.ndarray:
    """`mask` (H×W, on the source image `pixels`) carried through normalise's geometry: the same head
    crop, square padding and resize, so that it lies on the normalised scan the heatmap is drawn on."""
    return normalise_like((np.asarray(mask) > 0).astype(np.float32), pixels, size) >= 0.5


def _read_mask(masks_dir: Path, stem: str) -> np.ndarray:
    path = masks_dir / f"{stem}.png"
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise FileNotFoundError(f"{path}: no mask for tumor scan {stem}")
    return mask > 127


def _empty(size: int) -> np.ndarray:
    return np.zeros((0, size, size), np.float32)


def load_raw(data_dir: str | Path, predictor: Predictor, tumor_classes=None, normal_classes=None,
             masks_dir: str | Path | None = None) -> Scans:
    """Every file of a folder-per-class dataset, brought to `predictor`'s input as its training scans were
    (`Predictor.prepare_file`); bad files end in `rejected`."""
    data_dir = Path(data_dir)
    size = predictor.image_size
    mapping = resolve_classes(data_dir, tumor_classes, normal_classes)
    images, labels, names, masks, rejected = [], [], [], [], []
    for folder, label in sorted(mapping.folders.items()):
        for path in sorted(p for p in (data_dir / folder).iterdir() if p.is_file() and not p.name.startswith(".")):
            name = f"{folder}/{path.name}"
            try:
                image, decoded = predictor.prepare_file(path.read_bytes(), path.name)
            except RejectedFile as error:
                rejected.append({"file": name, "reason": error.reason})
                continue
            images.append(image)
            labels.append(LABELS[label])
            names.append(name)
            if masks_dir is not None:
                has_mask = label == "tumor"
                masks.append(normalised_mask(_read_mask(Path(masks_dir), path.stem), decoded.pixels, size)
                             if has_mask else None)
    return Scans(np.stack(images) if images else _empty(size), np.array(labels, np.int8), names,
                 masks if masks_dir is not None else None, rejected)


def source_root(prepared_dir: Path) -> Path:
    """The folder `source_path` is relative to: the source that prepare read (report.json settings.src)."""
    report = prepared_dir / "report.json"
    if report.is_file():
        src = json.loads(report.read_text()).get("settings", {}).get("src")
        if src:
            return Path(src)
    return prepared_dir


def load_prepared(data_dir: str | Path, size: int, masks_dir: str | Path | None = None, split: str = "test") -> Scans:
    """One split (the test split by default) of a prepared dataset, with its tumor masks from `masks_dir`."""
    data_dir = Path(data_dir)
    rows = read_metadata(data_dir)
    rows = rows[rows["split"] == split]
    images = [load_image(data_dir / p, size) for p in rows["path"]]
    masks = None if masks_dir is None else _masks(data_dir, rows, size, Path(masks_dir))
    return Scans(np.stack(images) if images else _empty(size), rows["label"].map(LABELS).to_numpy(np.int8),
                 list(rows["path"]), masks)


def split_masks(data_dir: str | Path, size: int, masks_dir: str | Path, split: str) -> list[np.ndarray | None]:
    """The tumor mask of every scan of one split of a prepared dataset, in metadata order (None for
    tumor-free scans), on the normalised scan at `size`."""
    rows = read_metadata(data_dir)
    return _masks(Path(data_dir), rows[rows["split"] == split], size, Path(masks_dir))


def _masks(data_dir: Path, rows, size: int, masks_dir: Path) -> list[np.ndarray | None]:
    """Masks need the source files (metadata `source_path`): each is carried through the geometry that
    normalisation applied to its source image."""
    root = source_root(data_dir)
    masks: list[np.ndarray | None] = []
    for source, label in zip(rows["source_path"], rows["label"]):
        if label != "tumor":
            masks.append(None)
            continue
        source = Path(source)
        decoded = decode_file(source if source.is_absolute() else root / source)
        masks.append(normalised_mask(_read_mask(masks_dir, source.stem), decoded.pixels, size))
    return masks


def is_prepared(data_dir: str | Path) -> bool:
    return (Path(data_dir) / "metadata.csv").is_file()


def evaluate_dir(model_dir: str | Path, data_dir: str | Path, masks_dir: str | Path | None = None,
                 tumor_classes=None, normal_classes=None, intra_op_threads: int = 1,
                 refine_heatmaps: bool = False,
                 on_prediction: Callable[[int, Prediction], None] | None = None) -> tuple[dict, Scans, np.ndarray]:
    """Evaluate a model directory on a raw folder-per-class dataset or a prepared one (its test split).

    Returns (metrics with `rejected` filled in, the scans, their calibrated probabilities); `on_prediction`
    as in `evaluate_arrays`."""
    predictor = Predictor.from_dir(model_dir, intra_op_threads=intra_op_threads, refine_heatmaps=refine_heatmaps)
    if is_prepared(data_dir):
        scans = load_prepared(data_dir, predictor.image_size, masks_dir)
    else:
        scans = load_raw(data_dir, predictor, tumor_classes, normal_classes, masks_dir)
    if len(scans.images) == 0:
        raise ValueError(f"{data_dir}: no scan could be used ({len(scans.rejected)} rejected)")
    metrics, probability = evaluate_arrays(predictor, scans.images, scans.labels, scans.masks, on_prediction)
    metrics["rejected"] = scans.rejected
    return metrics, scans, probability
