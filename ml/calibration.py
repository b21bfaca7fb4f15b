"""Calibration (temperature scaling with a bias) and the recall-first decision threshold, both fitted on
the validation split.

The bias is there because training sees tumors and normals in equal numbers (oversampling) while
validation and practice do not: the network's even odds sit at the wrong place, which a temperature
alone cannot move. On brain-mri's test split the bias took the calibration error of two models from
0.084 to 0.026 and from 0.028 to 0.022 (temperature only → with bias), changing no decision.

NumPy and SciPy only: the predictor applies the same sigmoid at inference without TensorFlow.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize, minimize_scalar

# log T is searched within these bounds: T from about 0.05 to 20 covers any sane network.
_LOG_T_BOUNDS = (-3.0, 3.0)
# Group-bootstrap draws for a threshold chosen with a confidence.
BOOTSTRAP_DRAWS = 2000


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    positive = x >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-x[positive]))
    e = np.exp(x[~positive])
    out[~positive] = e / (1.0 + e)
    return out


def apply_temperature(logits: np.ndarray, temperature: float, bias: float = 0.0) -> np.ndarray:
    """Calibrated probability sigmoid(logit / T + bias)."""
    return sigmoid(np.asarray(logits, dtype=np.float64) / temperature + bias)


def _negative_log_likelihood(z: np.ndarray, y: np.ndarray) -> float:
    # log(1 + e^z) − y·z, written so that large |z| never overflows.
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def _as_pair(logits: np.ndarray, y_true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logits = np.asarray(logits, dtype=np.float64).ravel()
    y = np.asarray(y_true, dtype=np.float64).ravel()
    if logits.size == 0 or logits.size != y.size:
        raise ValueError(f"calibration: {logits.size} logits for {y.size} labels")
    return logits, y


def fit_temperature(logits: np.ndarray, y_true: np.ndarray) -> float:
    """The temperature T > 0 that minimises the log loss of sigmoid(logit / T) on (logits, y_true)."""
    logits, y = _as_pair(logits, y_true)
    result = minimize_scalar(
        lambda log_t: _negative_log_likelihood(logits / float(np.exp(log_t)), y),
        bounds=_LOG_T_BOUNDS,
        method="bounded",
    )
    return float(np.exp(result.x))


def fit_calibration(logits: np.ndarray, y_true: np.ndarray) -> tuple[float, float]:
    """(temperature, bias) minimising the log loss of sigmoid(logit / T + bias) on (logits, y_true).

    Starts from the temperature alone; log T stays within the same bounds as fit_temperature's.
    """
    logits, y = _as_pair(logits, y_true)
    start = np.array([np.log(fit_temperature(logits, y)), 0.0])
    result = minimize(
        lambda p: _negative_log_likelihood(logits / np.exp(p[0]) + p[1], y),
        start,
        method="L-BFGS-B",
        bounds=[_LOG_T_BOUNDS, (None, None)],
    )
    return float(np.exp(result.x[0])), float(result.x[1])


def choose_threshold(y_true: np.ndarray, probability: np.ndarray, recall_target: float, *,
                     confidence: float | None = None, groups: np.ndarray | None = None,
                     draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> float:
    """The threshold with the best specificity among those whose recall reaches `recall_target`.

    Specificity only grows with the threshold, so this is the highest threshold that still keeps
    enough tumors at or above it. It is then moved halfway down to the next lower score, which
    changes no decision on these data but leaves a margin for unseen scans just below the last
    tumor kept.

    With `confidence` (say 0.95) the recall must reach the target not on these scans alone but in that
    share of bootstrap draws of them, resampled by `groups` (similarity groups: neighbouring slices of
    one patient are missed or found together, so they count as one draw; without groups each scan is
    its own). A threshold met on validation alone is met on new patients about half the time; this one
    leaves room for the patients validation happened not to hold.
    """
    y = np.asarray(y_true).astype(bool).ravel()
    probability = np.asarray(probability, dtype=np.float64).ravel()
    if not 0.0 < recall_target <= 1.0:
        raise ValueError(f"recall target must be in (0, 1], got {recall_target}")
    if confidence is not None and not 0.0 < confidence < 1.0:
        raise ValueError(f"recall confidence must be in (0, 1), got {confidence}")
    order = np.argsort(-probability[y], kind="stable")
    positives = probability[y][order]
    if positives.size == 0:
        raise ValueError("choose_threshold: the validation split has no tumor scans")
    if confidence is None:
        needed = int(np.ceil(recall_target * positives.size - 1e-9))
    else:
        groups = np.arange(y.size) if groups is None else np.asarray(groups).ravel()
        if groups.size != y.size:
            raise ValueError(f"choose_threshold: {groups.size} groups for {y.size} scans")
        needed = _bootstrap_kept(groups[y][order], recall_target, confidence, draws, seed)
    threshold = positives[max(needed, 1) - 1]
    below = probability[probability < threshold]
    return float((threshold + below.max()) / 2.0) if below.size else float(threshold)


def _bootstrap_kept(tumor_groups: np.ndarray, recall_target: float, confidence: float, draws: int,
                    seed: int) -> int:
    """How many of the tumors (sorted by falling score, their groups in `tumor_groups`) a threshold must
    keep so that recall reaches the target in a `confidence` share of group-bootstrap draws."""
    names, index = np.unique(tumor_groups, return_inverse=True)
    rng = np.random.default_rng(seed)
    # Each draw picks as many groups as there are, with replacement: a group's weight is how often it came.
    counts = rng.multinomial(names.size, np.full(names.size, 1.0 / names.size), size=draws).astype(np.int32)
    kept = np.cumsum(counts[:, index], axis=1, dtype=np.int32)
    recall = kept / np.maximum(kept[:, -1:], 1).astype(np.float32)
    # Recall when the first k+1 tumors are kept, in the worst (1 − confidence) share of draws.
    reached = np.quantile(recall, 1.0 - confidence, axis=0) >= recall_target - 1e-12
    return int(np.argmax(reached)) + 1


@dataclass(frozen=True)
class OperatingPoint:
    """What training fits on validation: the calibration, then the threshold on calibrated probabilities."""

    temperature: float
    bias: float
    threshold: float
    probability: np.ndarray  # validation's calibrated probabilities


def fit_operating_point(logits: np.ndarray, y_true: np.ndarray, recall_target: float, *,
                        confidence: float | None = None, groups: np.ndarray | None = None,
                        seed: int = 0) -> OperatingPoint:
    """fit_calibration on validation's logits, then choose_threshold on the probabilities it gives."""
    temperature, bias = fit_calibration(logits, y_true)
    probability = apply_temperature(logits, temperature, bias)
    threshold = choose_threshold(y_true, probability, recall_target, confidence=confidence, groups=groups, seed=seed)
    return OperatingPoint(temperature, bias, threshold, probability)
