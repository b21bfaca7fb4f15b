"""Equal-width probability bins: the reliability diagram and the calibration error read from it.

numpy only, so that the web process draws the same diagram as training reports without loading
scikit-learn.
"""
from __future__ import annotations

import numpy as np

CALIBRATION_BINS = 15


def calibration_points(y_true: np.ndarray, probability: np.ndarray, bins: int = CALIBRATION_BINS) -> dict[str, list]:
    """Per non-empty bin: mean predicted probability, observed rate of positives, and count."""
    y_true = np.asarray(y_true, dtype=np.float64)
    probability = np.asarray(probability, dtype=np.float64)
    index = np.minimum((probability * bins).astype(int), bins - 1)
    mean_probability, observed, count = [], [], []
    for b in range(bins):
        in_bin = index == b
        if in_bin.any():
            mean_probability.append(float(probability[in_bin].mean()))
            observed.append(float(y_true[in_bin].mean()))
            count.append(int(in_bin.sum()))
    return {"mean_probability": mean_probability, "observed_rate": observed, "count": count}


def expected_calibration_error(y_true: np.ndarray, probability: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Mean |observed rate − mean probability| over equal-width bins, weighted by bin size."""
    if np.asarray(y_true).size == 0:
        raise ValueError("expected_calibration_error: no samples")
    points = calibration_points(y_true, probability, bins)
    gaps = np.abs(np.array(points["observed_rate"]) - np.array(points["mean_probability"]))
    return float(np.sum(np.array(points["count"]) * gaps) / np.asarray(y_true).size)
