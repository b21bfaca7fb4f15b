"""Evaluation of a model directory: every screening metric, latency, and heatmap scores against masks."""
from __future__ import annotations

import numpy as np

from ml.metrics import binary_metrics
from ml.predictor import Predictor


def heatmap_scores(heatmaps: list[np.ndarray], masks: list[np.ndarray | None]) -> dict:
    """pointing_game: share of masked scans whose heatmap peak lies inside the mask;
    mask_energy: mean share of heatmap mass inside the mask. Scans without a mask are skipped."""
    hits, energies = [], []
    for heatmap, mask in zip(heatmaps, masks):
        if mask is None:
            continue
        mask = np.asarray(mask, bool)
        if mask.shape != heatmap.shape:
            raise ValueError(f"mask shape {mask.shape} differs from heatmap shape {heatmap.shape}")
        hits.append(bool(mask.flat[int(np.argmax(heatmap))]))
        total = float(heatmap.sum())
        energies.append(float(heatmap[mask].sum()) / total if total > 0 else 0.0)
    return {
        "pointing_game": float(np.mean(hits)) if hits else None,
        "mask_energy": float(np.mean(energies)) if energies else None,
        "n_masks": len(hits),
    }


def evaluate_arrays(predictor: Predictor, images: np.ndarray, y_true: np.ndarray,
                    masks: list[np.ndarray | None] | None = None) -> tuple[dict, np.ndarray]:
    """Metrics of `predictor` on normalised N×S×S images, and the calibrated probabilities.

    Each scan is predicted alone so that the latency percentiles are those of screening one scan
    (forward pass, calibration and heatmap), not of a batch averaged out.
    """
    images = np.asarray(images, np.float32)
    if images.ndim == 4:
        images = images[..., 0]
    if len(images) != len(y_true):
        raise ValueError(f"{len(images)} images but {len(y_true)} labels")
    predictions = [predictor.predict(images[i:i + 1])[0] for i in range(len(images))]
    probability = np.array([p.probability for p in predictions])
    latency = np.array([p.latency_ms for p in predictions])
    metrics = binary_metrics(y_true, probability, predictor.threshold)
    metrics["latency_ms_p50"] = float(np.percentile(latency, 50))
    metrics["latency_ms_p95"] = float(np.percentile(latency, 95))
    metrics["rejected"] = []
    if masks is not None:
        metrics.update(heatmap_scores([p.heatmap for p in predictions], masks))
    return metrics, probability
