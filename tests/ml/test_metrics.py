from __future__ import annotations

import numpy as np
import pytest

from ml.metrics import binary_metrics, confusion, curves, expected_calibration_error

# Ten scans by hand: tumors at 0.9 0.8 0.7 0.4, normals at 0.6 0.3 0.2 0.2 0.1 0.05.
Y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
P = np.array([0.9, 0.8, 0.7, 0.4, 0.6, 0.3, 0.2, 0.2, 0.1, 0.05])


def test_confusion_counts_each_cell():
    assert confusion(Y, P >= 0.5) == {"tp": 3, "fp": 1, "tn": 5, "fn": 1}


def test_binary_metrics_on_a_hand_made_case():
    m = binary_metrics(Y, P, threshold=0.5)
    assert m["n"] == 10
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["recall"] == pytest.approx(0.75)
    assert m["specificity"] == pytest.approx(5 / 6)
    assert m["precision"] == pytest.approx(0.75)
    assert m["f1"] == pytest.approx(0.75)
    # Of 24 tumor/normal pairs, the tumor at 0.4 ranks below 0.6 only: AUC = 23/24.
    assert m["roc_auc"] == pytest.approx(23 / 24)
    # Average precision: recall steps of 1/4 at precisions 1, 1, 1, 4/5.
    assert m["pr_auc"] == pytest.approx((1 + 1 + 1 + 0.8) / 4)
    assert m["threshold"] == 0.5


def test_threshold_is_inclusive():
    assert binary_metrics(Y, P, threshold=0.4)["confusion"] == {"tp": 4, "fp": 1, "tn": 5, "fn": 0}


def test_ratios_without_a_denominator_are_none_not_zero():
    m = binary_metrics(np.zeros(3), np.array([0.1, 0.2, 0.3]), threshold=0.5)
    assert m["recall"] is None and m["precision"] is None and m["roc_auc"] is None
    assert m["specificity"] == 1.0


def test_expected_calibration_error_by_hand():
    # Bin [0.2, 0.267): 2 scans at 0.2, one positive → |0.5 − 0.2|; bin [0.8, 0.867): 2 at 0.8, both positive.
    y = np.array([1, 0, 1, 1])
    p = np.array([0.2, 0.2, 0.8, 0.8])
    assert expected_calibration_error(y, p) == pytest.approx((2 * 0.3 + 2 * 0.2) / 4)


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="^binary_metrics: 3 labels but 2 probabilities$"):
        binary_metrics(np.array([0, 1, 1]), np.array([0.1, 0.2]), threshold=0.5)


def test_curves_hold_roc_pr_and_calibration():
    c = curves(Y, P)
    assert c["roc"]["fpr"][0] == 0.0 and c["roc"]["tpr"][-1] == 1.0
    assert len(c["pr"]["precision"]) == len(c["pr"]["recall"]) == len(c["pr"]["threshold"])
    assert sum(c["calibration"]["count"]) == 10
