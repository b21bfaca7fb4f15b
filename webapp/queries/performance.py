"""What the model performance page computes: the threshold explorer, curves from stored test scores,
latencies and agreement with reviewers. numpy only (no scikit-learn in the web process)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timezone
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import ModelVersion, Prediction, Review
from ml.reliability import calibration_points

# The metrics compared side by side, in the order shown, with their labels.
METRICS: tuple[tuple[str, str], ...] = (
    ("accuracy", "Accuracy"),
    ("recall", "Recall"),
    ("specificity", "Specificity"),
    ("precision", "Precision"),
    ("f1", "F1"),
    ("roc_auc", "ROC-AUC"),
    ("pr_auc", "PR-AUC"),
    ("ece", "Calibration error (ECE)"),
)


@dataclass(frozen=True)
class ThresholdResult:
    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def specificity(self) -> float | None:
        return self.tn / (self.tn + self.fp) if self.tn + self.fp else None

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None


def scores_arrays(test_scores: dict[str, Any] | None) -> tuple[np.ndarray, np.ndarray]:
    """(y_true int, probability float) from a version's stored test scores; empty when it has none."""
    if not test_scores:
        return np.zeros(0, int), np.zeros(0, float)
    y_true = np.asarray(test_scores.get("y_true", []), dtype=int)
    probability = np.asarray(test_scores.get("probability", []), dtype=float)
    if y_true.shape != probability.shape:
        raise ValueError(f"test scores hold {y_true.size} labels but {probability.size} probabilities")
    return y_true, probability


def at_threshold(y_true: np.ndarray, probability: np.ndarray, threshold: float) -> ThresholdResult:
    """The confusion matrix when a scan is called tumor at probability ≥ threshold (as the predictor does)."""
    called = probability >= threshold
    positive = y_true == 1
    return ThresholdResult(
        threshold=float(threshold),
        tp=int(np.sum(called & positive)),
        fp=int(np.sum(called & ~positive)),
        tn=int(np.sum(~called & ~positive)),
        fn=int(np.sum(~called & positive)),
    )


def roc_points(y_true: np.ndarray, probability: np.ndarray) -> dict[str, list[float]]:
    """ROC curve (fpr, tpr) over every distinct score, from (0, 0) to (1, 1)."""
    thresholds = np.r_[np.inf, np.unique(probability)[::-1]]
    positives, negatives = max(int(np.sum(y_true == 1)), 1), max(int(np.sum(y_true == 0)), 1)
    fpr = [float(np.sum((probability >= t) & (y_true == 0)) / negatives) for t in thresholds]
    tpr = [float(np.sum((probability >= t) & (y_true == 1)) / positives) for t in thresholds]
    return {"fpr": fpr, "tpr": tpr, "threshold": [float(min(t, 1.0)) for t in thresholds]}


def pr_points(y_true: np.ndarray, probability: np.ndarray) -> dict[str, list[float]]:
    thresholds = np.unique(probability)[::-1]
    positives = max(int(np.sum(y_true == 1)), 1)
    precision, recall = [], []
    for t in thresholds:
        called = probability >= t
        precision.append(float(np.sum(called & (y_true == 1)) / max(int(called.sum()), 1)))
        recall.append(float(np.sum(called & (y_true == 1)) / positives))
    return {"precision": precision, "recall": recall, "threshold": [float(t) for t in thresholds]}


def version_curves(version: ModelVersion) -> dict[str, Any]:
    """ROC, PR and calibration curves: the stored ones, or computed from the stored test scores."""
    stored = dict(version.curves or {})
    y_true, probability = scores_arrays(version.test_scores)
    if y_true.size:
        if not stored.get("roc"):
            stored["roc"] = roc_points(y_true, probability)
        if not stored.get("pr"):
            stored["pr"] = pr_points(y_true, probability)
        if not stored.get("calibration"):
            stored["calibration"] = calibration_points(y_true, probability)
    return stored


def latencies(session: Session, version_id: int, limit: int = 20000) -> list[float]:
    """Per-image latency (ms) of the version's most recent predictions."""
    return list(session.scalars(
        select(Prediction.latency_ms).where(Prediction.model_version_id == version_id)
        .order_by(Prediction.created_at.desc()).limit(limit)
    ))


@dataclass(frozen=True)
class Agreement:
    reviewed: int
    agreed: int
    # keys "tumor/tumor" etc.: reviewer's label / model's label
    matrix: dict[str, int]

    @property
    def rate(self) -> float | None:
        return self.agreed / self.reviewed if self.reviewed else None


def agreement_with_reviewers(session: Session, version: ModelVersion) -> Agreement:
    """Since the version went live: its predictions on scans a reviewer labelled (latest review counts)."""
    query = (select(Prediction.scan_id, Prediction.label, Review.confirmed_label, Review.created_at)
             .join(Review, Review.scan_id == Prediction.scan_id)
             .where(Prediction.model_version_id == version.id, Review.confirmed_label.is_not(None))
             .order_by(Review.created_at))
    if version.promoted_at is not None:
        promoted = version.promoted_at
        if promoted.tzinfo is None:
            promoted = promoted.replace(tzinfo=timezone.utc)
        query = query.where(Prediction.created_at >= promoted)
    latest: dict[int, tuple[str, str]] = {}
    for scan_id, model_label, reviewer_label, _at in session.execute(query):
        latest[scan_id] = (reviewer_label, model_label)  # ordered by time: the last one wins
    matrix = {f"{a}/{b}": 0 for a in ("tumor", "no_tumor") for b in ("tumor", "no_tumor")}
    for reviewer_label, model_label in latest.values():
        matrix[f"{reviewer_label}/{model_label}"] = matrix.get(f"{reviewer_label}/{model_label}", 0) + 1
    agreed = sum(1 for a, b in latest.values() if a == b)
    return Agreement(reviewed=len(latest), agreed=agreed, matrix=matrix)


def versions(session: Session) -> list[ModelVersion]:
    """Every registered version, newest first."""
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.created_at.desc(),
                                                                ModelVersion.id.desc())))
