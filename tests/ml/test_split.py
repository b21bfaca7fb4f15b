from __future__ import annotations

import numpy as np
import pytest

from ml.split import check_groups_within_splits, group_split, split_fractions


def grouped_labels(seed: int = 0, groups: int = 900) -> tuple[np.ndarray, np.ndarray]:
    """Groups of 1-12 images, each group of one label (73% tumor), like slices of patients."""
    rng = np.random.default_rng(seed)
    sizes = rng.geometric(0.35, groups).clip(max=12)
    group_ids = np.repeat(np.arange(groups), sizes)
    labels = np.repeat((rng.random(groups) < 0.73).astype(int), sizes)
    return group_ids, labels


def test_no_group_crosses_splits_and_sizes_follow_the_fractions():
    groups, labels = grouped_labels()
    splits = group_split(groups, labels, split_fractions(0.15, 0.15), seed=0)
    check_groups_within_splits(groups, splits)
    for name, share in (("train", 0.70), ("val", 0.15), ("test", 0.15)):
        assert np.mean(splits == name) == pytest.approx(share, abs=0.01)


def test_each_split_keeps_the_label_balance():
    groups, labels = grouped_labels(seed=1)
    splits = group_split(groups, labels, split_fractions(0.2, 0.1), seed=0)
    overall = labels.mean()
    for name in ("train", "val", "test"):
        assert labels[splits == name].mean() == pytest.approx(overall, abs=0.02)


def test_mixed_label_groups_stay_whole():
    groups = np.array([0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9])
    labels = np.array([1, 0, 1, 0, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1])
    splits = group_split(groups, labels, split_fractions(0.2, 0.2), seed=3)
    check_groups_within_splits(groups, splits)
    assert set(splits[:3]) == {splits[0]}


def test_same_seed_same_split_other_seed_other_split():
    groups, labels = grouped_labels(seed=2)
    fractions = split_fractions(0.15, 0.15)
    first = group_split(groups, labels, fractions, seed=5)
    assert (first == group_split(groups, labels, fractions, seed=5)).all()
    assert (first != group_split(groups, labels, fractions, seed=6)).any()


def test_a_group_in_two_splits_is_named():
    with pytest.raises(ValueError) as caught:
        check_groups_within_splits(np.array([4, 4, 7, 7, 9]), np.array(["train", "test", "val", "val", "test"]))
    assert str(caught.value) == "1 group(s) straddle two splits: 4"


@pytest.mark.parametrize(("val", "test", "message"), [
    (-0.1, 0.1, "val_fraction must be in [0, 1), got -0.1"),
    (0.1, 1.0, "test_fraction must be in [0, 1), got 1.0"),
    (0.6, 0.5, "val_fraction + test_fraction must be below 1, got 1.1"),
])
def test_bad_fractions_are_refused(val, test, message):
    with pytest.raises(ValueError) as caught:
        split_fractions(val, test)
    assert str(caught.value) == message
