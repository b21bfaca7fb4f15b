from __future__ import annotations

import numpy as np

from ml.balance import class_counts, oversample_indices


def test_oversampling_balances_and_keeps_every_original_index():
    y = np.array([1] * 30 + [0] * 11)
    indices = oversample_indices(y, seed=0)
    assert class_counts(y[indices]) == {0: 30, 1: 30}
    assert set(range(len(y))) <= set(indices.tolist())
    assert set(indices[np.isin(indices, np.flatnonzero(y == 1))].tolist()) == set(range(30))
    assert np.bincount(indices[y[indices] == 1]).max() == 1  # the majority is not repeated


def test_oversampling_is_seeded():
    y = np.array([0, 1, 1, 1, 1, 1, 0, 1, 1])
    assert (oversample_indices(y, 4) == oversample_indices(y, 4)).all()
    assert any((oversample_indices(y, 4) != oversample_indices(y, s)).any() for s in range(5, 10))


def test_a_single_class_is_left_alone():
    assert oversample_indices(np.ones(5, dtype=int), 0).tolist() == [0, 1, 2, 3, 4]
