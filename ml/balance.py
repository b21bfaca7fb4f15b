"""Balance the training split by oversampling the minority class, at the level of indices.

Only indices are resampled (imbalanced-learn's RandomOverSampler on an index column), so images are
neither copied nor altered here; augmentation later makes the repeats differ. Apply it to the
training split only: validation and test must keep the real class balance.
"""
from __future__ import annotations

import numpy as np
from imblearn.over_sampling import RandomOverSampler


def oversample_indices(y: np.ndarray, seed: int = 0) -> np.ndarray:
    """Indices into `y` (each original index once, plus minority repeats drawn with `seed`) whose
    labels are balanced between the classes. A single-class or empty `y` is returned as is."""
    y = np.asarray(y).ravel()
    indices = np.arange(len(y))
    if len(np.unique(y)) < 2:
        return indices
    sampler = RandomOverSampler(random_state=seed)
    resampled, _ = sampler.fit_resample(indices.reshape(-1, 1), y)
    return resampled.ravel().astype(np.int64)


def class_counts(y: np.ndarray) -> dict[int, int]:
    """{label: count} for the labels present in `y`."""
    labels, counts = np.unique(np.asarray(y).ravel(), return_counts=True)
    return {int(label): int(count) for label, count in zip(labels, counts)}
