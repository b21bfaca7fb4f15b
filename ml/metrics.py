"""Screening metrics over binary labels (1 = tumor) and probabilities.

Ratios whose denominator is empty (recall with no tumors, say) are `None`, not 0: a report must not
claim a recall it never measured. Everything returned is plain Python, ready for JSON.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from ml.reliability import CALIBRATION_BINS, calibration_points, expected_calibration_error

# Curves are stored for plotting; a few hundred points draw the same line as thousands.
MAX_CURVE_POINTS = 400


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, int]:
    """Counts of true/false positives/negatives; both arrays hold 0/1."""
    y_true = np.asarray(y_true).astype(bool)
    y_pred = np.asarray(y_pred).astype(bool)
    return {
        "tp": int(np.sum(y_true & y_pred)),
        "fp": int(np.sum(~y_true & y_pred)),
        "tn": int(np.sum(~y_true & ~y_pred)),
        "fn": int(np.sum(y_true & ~y_pred)),
    }


def _both_classes(y_true: np.ndarray) -> bool:
    return np.unique(y_true).size == 2


def binary_metrics(y_true: np.ndarray, probability: np.ndarray, threshold: float) -> dict:
    """Every headline metric at `threshold` (a scan is called tumor when probability ≥ threshold)."""
    y_true = np.asarray(y_true).astype(int).ravel()
    probability = np.asarray(probability, dtype=np.float64).ravel()
    if y_true.shape != probability.shape:
        raise ValueError(f"binary_metrics: {y_true.size} labels but {probability.size} probabilities")
    if y_true.size == 0:
        raise ValueError("binary_metrics: no samples")
    counts = confusion(y_true, probability >= threshold)
    tp, fp, tn, fn = counts["tp"], counts["fp"], counts["tn"], counts["fn"]
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    separable = _both_classes(y_true)
    return {
        "n": int(y_true.size),
        "accuracy": (tp + tn) / y_true.size,
        "recall": recall,
        "specificity": _ratio(tn, tn + fp),
        "precision": precision,
        "f1": f1,
        "roc_auc": float(roc_auc_score(y_true, probability)) if separable else None,
        "pr_auc": float(average_precision_score(y_true, probability)) if separable else None,
        "ece": expected_calibration_error(y_true, probability),
        "threshold": float(threshold),
        "confusion": counts,
    }


def _thin(*columns: np.ndarray) -> list[list[float]]:
    n = len(columns[0])
    keep = np.unique(np.linspace(0, n - 1, min(n, MAX_CURVE_POINTS)).round().astype(int)) if n else []
    return [[float(c[i]) for i in keep] for c in columns]


def curves(y_true: np.ndarray, probability: np.ndarray, bins: int = CALIBRATION_BINS) -> dict:
    """ROC, precision-recall and reliability (calibration) curves as lists, thinned for storage."""
    y_true = np.asarray(y_true).astype(int).ravel()
    probability = np.asarray(probability, dtype=np.float64).ravel()
    result: dict = {"roc": None, "pr": None}
    if _both_classes(y_true):
        fpr, tpr, roc_thresholds = roc_curve(y_true, probability)
        fpr, tpr, roc_thresholds = _thin(fpr, tpr, np.minimum(roc_thresholds, 1.0))
        result["roc"] = {"fpr": fpr, "tpr": tpr, "threshold": roc_thresholds}
        precision, recall, pr_thresholds = precision_recall_curve(y_true, probability)
        # precision_recall_curve's last point (recall 0, precision 1) has no threshold.
        precision, recall, pr_thresholds = _thin(precision[:-1], recall[:-1], pr_thresholds)
        result["pr"] = {"precision": precision, "recall": recall, "threshold": pr_thresholds}
    result["calibration"] = calibration_points(y_true, probability, bins)
    return result
