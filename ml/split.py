"""Train/validation/test split by similarity group, stratified by label.

A greedy assignment, largest groups first (ties in a seeded random order): each group goes to the
split where it most reduces the squared shortfall against the target count of every (split, label)
cell. Whole groups move, so no group can straddle two splits; `check_groups_within_splits` proves it.
scikit-learn's StratifiedGroupKFold was the alternative, but it only makes equal folds, and a
15/15/70 split would need two nested runs with rounding in both.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")


def split_fractions(val_fraction: float, test_fraction: float) -> dict[str, float]:
    """{"train": …, "val": …, "test": …}; raises ValueError unless both are in [0, 1) and sum below 1."""
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(f"val_fraction + test_fraction must be below 1, got "
                         f"{val_fraction + test_fraction:g}")
    return {"train": 1.0 - val_fraction - test_fraction, "val": val_fraction, "test": test_fraction}


def group_split(groups: np.ndarray, labels: np.ndarray, fractions: Mapping[str, float],
                seed: int = 0) -> np.ndarray:
    """Split name per item (an object array of "train"/"val"/"test"), whole groups at a time."""
    groups = np.asarray(groups)
    labels = np.asarray(labels)
    names = [name for name in SPLIT_NAMES if name in fractions]
    classes = np.unique(labels)
    share = np.array([fractions[name] for name in names], dtype=np.float64)
    totals = np.array([np.sum(labels == c) for c in classes], dtype=np.float64)
    target = share[:, None] * totals[None, :]  # splits × classes
    current = np.zeros_like(target)

    unique_groups, group_index = np.unique(groups, return_inverse=True)
    counts = np.zeros((len(unique_groups), len(classes)))
    np.add.at(counts, (group_index, np.searchsorted(classes, labels)), 1)
    order = np.random.default_rng(seed).permutation(len(unique_groups))
    order = order[np.argsort(-counts[order].sum(axis=1), kind="stable")]

    assignment = np.empty(len(unique_groups), dtype=np.int64)
    weight = 1.0 / np.maximum(target, 1.0)  # relative shortfall, so small splits matter as much
    for g in order:
        gains = [np.sum(weight[s] * ((target[s] - current[s]) ** 2
                                     - (target[s] - current[s] - counts[g]) ** 2))
                 for s in range(len(names))]
        best = int(np.argmax(gains))
        assignment[g] = best
        current[best] += counts[g]
    return np.array(names, dtype=object)[assignment[group_index]]


def check_groups_within_splits(groups: np.ndarray, splits: np.ndarray) -> None:
    """Raise ValueError naming the groups that appear in more than one split."""
    seen: dict[object, object] = {}
    crossing = set()
    for group, split in zip(np.asarray(groups).tolist(), np.asarray(splits).tolist()):
        if seen.setdefault(group, split) != split:
            crossing.add(group)
    if crossing:
        listed = ", ".join(str(g) for g in sorted(crossing)[:10])
        raise ValueError(f"{len(crossing)} group(s) straddle two splits: {listed}")
