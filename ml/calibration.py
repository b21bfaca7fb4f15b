"""Temperature scaling and the recall-first decision threshold, both fitted on the validation split.

NumPy and SciPy only: the predictor applies the same sigmoid at inference without TensorFlow.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

# log T is searched within these bounds: T from about 0.05 to 20 covers any sane network.
_LOG_T_BOUNDS = (-3.0, 3.0)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    positive = x >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-x[positive]))
    e = np.exp(x[~positive])
    out[~positive] = e / (1.0 + e)
    return out


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Calibrated probability sigmoid(logit / T)."""
    return sigmoid(np.asarray(logits, dtype=np.float64) / temperature)


def _negative_log_likelihood(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    # log(1 + e^z) − y·z, written so that large |z| never overflows.
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def fit_temperature(logits: np.ndarray, y_true: np.ndarray) -> float:
    """The temperature T > 0 that minimises the log loss of sigmoid(logit / T) on (logits, y_true)."""
    logits = np.asarray(logits, dtype=np.float64).ravel()
    y = np.asarray(y_true, dtype=np.float64).ravel()
    if logits.size == 0 or logits.size != y.size:
        raise ValueError(f"fit_temperature: {logits.size} logits for {y.size} labels")
    result = minimize_scalar(
        lambda log_t: _negative_log_likelihood(logits, y, float(np.exp(log_t))),
        bounds=_LOG_T_BOUNDS,
        method="bounded",
    )
    return float(np.exp(result.x))


def choose_threshold(y_true: np.ndarray, probability: np.ndarray, recall_target: float) -> float:
    """The threshold with the best specificity among those whose recall reaches `recall_target`.

    Specificity only grows with the threshold, so this is the highest threshold that still keeps
    enough tumors at or above it. It is then moved halfway down to the next lower score, which
    changes no decision on these data but leaves a margin for unseen scans just below the last
    tumor kept.
    """
    y = np.asarray(y_true).astype(bool).ravel()
    probability = np.asarray(probability, dtype=np.float64).ravel()
    if not 0.0 < recall_target <= 1.0:
        raise ValueError(f"recall target must be in (0, 1], got {recall_target}")
    positives = np.sort(probability[y])[::-1]
    if positives.size == 0:
        raise ValueError("choose_threshold: the validation split has no tumor scans")
    needed = int(np.ceil(recall_target * positives.size - 1e-9))
    threshold = positives[max(needed, 1) - 1]
    below = probability[probability < threshold]
    return float((threshold + below.max()) / 2.0) if below.size else float(threshold)
