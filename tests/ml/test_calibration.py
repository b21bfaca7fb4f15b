from __future__ import annotations

import numpy as np
import pytest

from ml.calibration import apply_temperature, choose_threshold, fit_calibration, fit_temperature, sigmoid


def test_sigmoid_is_stable_at_extremes():
    assert sigmoid(np.array([-1000.0, 0.0, 1000.0])).tolist() == [0.0, 0.5, 1.0]


def test_fit_temperature_recovers_an_overconfident_scale():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, 20000)
    y = (rng.random(true_logits.size) < sigmoid(true_logits)).astype(int)
    # A network three times too confident: the fitted temperature undoes it.
    assert fit_temperature(3 * true_logits, y) == pytest.approx(3.0, rel=0.05)


def test_fit_calibration_recovers_scale_and_the_shift_that_oversampling_causes():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(1.0, 2, 20000)
    y = (rng.random(true_logits.size) < sigmoid(true_logits)).astype(int)
    # Three times too confident and trained at even odds: its logits are 3·(z − 1.0).
    temperature, bias = fit_calibration(3 * (true_logits - 1.0), y)
    assert temperature == pytest.approx(3.0, rel=0.05)
    assert bias == pytest.approx(1.0, abs=0.08)


def test_calibration_refuses_mismatched_inputs():
    with pytest.raises(ValueError, match="calibration: 2 logits for 3 labels"):
        fit_calibration(np.array([0.1, 0.2]), np.array([0, 1, 1]))


def test_apply_temperature_softens():
    assert apply_temperature(np.array([2.0]), 2.0)[0] == pytest.approx(sigmoid(np.array([1.0]))[0])


def test_threshold_keeps_the_recall_target_with_the_best_specificity():
    # 10 tumors; recall ≥ 0.9 allows missing one, so the lowest tumor (0.3) may fall below.
    tumors = np.array([0.95, 0.9, 0.9, 0.85, 0.8, 0.8, 0.75, 0.7, 0.65, 0.3])
    normals = np.array([0.6, 0.5, 0.2, 0.1])
    y = np.r_[np.ones(10), np.zeros(4)]
    p = np.r_[tumors, normals]
    threshold = choose_threshold(y, p, recall_target=0.9)
    # Highest admissible cut is 0.65; halfway to the next lower score (0.6).
    assert threshold == pytest.approx(0.625)
    assert choose_threshold(y, p, recall_target=1.0) == pytest.approx(0.25)


def test_threshold_meets_the_target_on_random_scores():
    rng = np.random.default_rng(1)
    y = rng.random(500) < 0.7
    p = np.clip(rng.normal(0.3 + 0.4 * y, 0.2), 0, 1)
    threshold = choose_threshold(y, p, recall_target=0.99)
    assert np.mean(p[y] >= threshold) >= 0.99


def test_threshold_refuses_a_target_outside_zero_one():
    with pytest.raises(ValueError, match=r"^recall target must be in \(0, 1\], got 1.5$"):
        choose_threshold(np.array([1, 0]), np.array([0.9, 0.1]), recall_target=1.5)


def test_threshold_needs_tumors():
    with pytest.raises(ValueError, match="^choose_threshold: the validation split has no tumor scans$"):
        choose_threshold(np.array([0, 0]), np.array([0.9, 0.1]), recall_target=0.99)
