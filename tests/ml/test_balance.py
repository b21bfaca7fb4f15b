from __future__ import annotations

import numpy as np
import pytest

from ml.balance import appearance_clusters, class_counts, oversample_indices, oversample_within_clusters


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


def test_clusters_split_their_share_evenly_between_the_classes_they_hold():
    # Cluster 0: 40 tumors and 4 normals (a view that is nearly all tumor); cluster 1: 20 tumors, 36 normals.
    y = np.array([1] * 40 + [0] * 4 + [1] * 20 + [0] * 36)
    clusters = np.array([0] * 44 + [1] * 56)
    indices = oversample_within_clusters(y, clusters, seed=0, max_repeat=8)
    copies = np.bincount(indices, minlength=len(y))
    assert class_counts(y[indices])[0] == class_counts(y[indices])[1]
    assert copies.min() >= 1  # no scan is left out
    rare, plain = copies[40:44], np.bincount(oversample_indices(y, 0), minlength=len(y))[40:44]
    assert rare.mean() >= 8 and rare.mean() > 2 * plain.mean()
    # The normals of the mostly-normal cluster are not repeated beyond what balancing overall asks.
    assert copies[64:].mean() < rare.mean() / 2


def test_within_cluster_oversampling_is_seeded_and_checks_its_input():
    y = np.array([1] * 30 + [0] * 3 + [1] * 10 + [0] * 20)
    clusters = np.array([0] * 33 + [1] * 30)
    assert (oversample_within_clusters(y, clusters, 3) == oversample_within_clusters(y, clusters, 3)).all()
    with pytest.raises(ValueError, match=r"^oversample_within_clusters: 62 clusters for 63 labels$"):
        oversample_within_clusters(y, clusters[:-1], 3)
    assert oversample_within_clusters(np.ones(4, int), np.zeros(4, int)).tolist() == [0, 1, 2, 3]


def test_appearance_clusters_group_by_layout_not_brightness():
    rng = np.random.default_rng(0)
    left = np.zeros((64, 64), np.float32)
    left[:, :24] = 1.0
    top = np.zeros((64, 64), np.float32)
    top[:20] = 1.0
    images, kinds = [], []
    for i in range(40):
        kind = i % 2
        gain, offset = rng.uniform(0.3, 1.0), rng.uniform(0.0, 0.2)
        images.append((left if kind else top) * gain + offset + rng.normal(0, 0.05, (64, 64)).astype(np.float32))
        kinds.append(kind)
    clusters = appearance_clusters(np.stack(images)[..., None], 2, seed=0)
    kinds = np.array(kinds)
    assert len(set(clusters[kinds == 0])) == 1 and len(set(clusters[kinds == 1])) == 1
    assert clusters[kinds == 0][0] != clusters[kinds == 1][0]
