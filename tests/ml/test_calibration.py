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


def grouped_scores(rng: np.random.Generator, n_groups: int,
                   per_group: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tumor scores that share a per-patient difficulty (neighbouring slices alike), and normals."""
    difficulty = rng.normal(0.0, 1.0, n_groups)
    tumor = np.repeat(difficulty, per_group) + rng.normal(0.0, 0.3, n_groups * per_group) + 3.0
    normal = rng.normal(0.0, 1.0, n_groups * 2)
    groups = np.r_[np.repeat(np.arange(n_groups), per_group), n_groups + np.arange(n_groups * 2)]
    return np.r_[np.ones(tumor.size), np.zeros(normal.size)], sigmoid(np.r_[tumor, normal]), groups


def test_threshold_with_confidence_meets_the_target_on_new_patients_far_more_often():
    rng = np.random.default_rng(4)
    y_new, p_new, _ = grouped_scores(rng, 20_000)  # the population the product will meet
    met = {"plain": 0, "confident": 0}
    for _ in range(40):
        y, p, groups = grouped_scores(rng, 120)  # one validation split of 120 patients
        plain = choose_threshold(y, p, 0.95)
        confident = choose_threshold(y, p, 0.95, confidence=0.95, groups=groups)
        assert confident <= plain
        met["plain"] += np.mean(p_new[y_new == 1] >= plain) >= 0.95
        met["confident"] += np.mean(p_new[y_new == 1] >= confident) >= 0.95
    assert met["plain"] <= 28 and met["confident"] >= 36, met


def test_threshold_confidence_counts_a_patient_once_not_per_slice():
    # 100 tumors: 95 clearly found, and 5 missed slices all from one patient (group 99).
    p = np.r_[np.linspace(0.99, 0.6, 95), np.full(5, 0.2), [0.1]]
    y = np.r_[np.ones(100), [0]]
    by_slice = choose_threshold(y, p, 0.9, confidence=0.95)
    by_patient = choose_threshold(y, p, 0.9, confidence=0.95, groups=np.r_[np.arange(95), np.full(5, 99), [200]])
    # Slice by slice, 5 misses in 100 are a safe margin for 90 %; as one patient of 96, one bad draw
    # brings several copies of it, so the threshold goes below the missed patient.
    assert by_slice > 0.2 and by_patient == pytest.approx(0.15)


def test_threshold_confidence_repeats_for_a_seed():
    y, p, groups = grouped_scores(np.random.default_rng(5), 60)
    first = choose_threshold(y, p, 0.95, confidence=0.9, groups=groups, seed=3)
    assert choose_threshold(y, p, 0.95, confidence=0.9, groups=groups, seed=3) == first


def test_threshold_confidence_refuses_bad_input():
    y, p = np.array([1, 1, 0]), np.array([0.9, 0.8, 0.1])
    with pytest.raises(ValueError, match=r"^recall confidence must be in \(0, 1\), got 1.0$"):
        choose_threshold(y, p, 0.9, confidence=1.0)
    with pytest.raises(ValueError, match=r"^choose_threshold: 2 groups for 3 scans$"):
        choose_threshold(y, p, 0.9, confidence=0.9, groups=np.array([1, 2]))
