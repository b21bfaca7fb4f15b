"""Balance the training split by oversampling the minority class, at the level of indices.

Only indices are resampled (imbalanced-learn's RandomOverSampler on an index column), so images are
neither copied nor altered here; augmentation later makes the repeats differ. Apply it to the
training split only: validation and test must keep the real class balance.
"""
from __future__ import annotations

import numpy as np
from imblearn.over_sampling import RandomOverSampler

# Appearance clusters (appearance_clusters): thumbnail side, and how many copies of one scan an epoch may hold.
THUMBNAIL = (16, 16)
MAX_REPEAT = 8


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


def appearance_clusters(images: np.ndarray, clusters: int, seed: int = 0) -> np.ndarray:
    """A cluster number per scan, from k-means on its 16×16 thumbnail (each standardised, so that
    brightness and contrast do not count): slices of one view and sequence land together."""
    import cv2
    from sklearn.cluster import KMeans

    images = np.asarray(images, np.float32)
    images = images[..., 0] if images.ndim == 4 else images
    thumbs = np.stack([cv2.resize(image, THUMBNAIL, interpolation=cv2.INTER_AREA).ravel() for image in images])
    thumbs = (thumbs - thumbs.mean(axis=1, keepdims=True)) / (thumbs.std(axis=1, keepdims=True) + 1e-6)
    return KMeans(clusters, n_init=4, random_state=seed).fit_predict(thumbs).astype(np.int64)


def oversample_within_clusters(y: np.ndarray, clusters: np.ndarray, seed: int = 0,
                               max_repeat: int = MAX_REPEAT) -> np.ndarray:
    """Indices into `y` in which every cluster keeps its share of the whole and splits it evenly between
    the classes it holds; each scan comes at least once and, at this stage, at most `max_repeat` times.
    The classes are then balanced overall as `oversample_indices` does, which repeats the minority class's
    scans further (brain-mri: up to about 12 copies of a no-tumor scan in a cluster that is nearly all tumor).

    When one view or sequence is nearly all one class (brain-mri at 128 px, 8 clusters: five clusters with
    64 % of the training scans are 87-99 % tumor; bench/bench_appearance_clusters.py), a network can call
    the class from the view; the few scans of the other class in that view are then the ones that teach it
    otherwise, and plain class balancing repeats them no more than any other.
    """
    y, clusters = np.asarray(y).ravel(), np.asarray(clusters).ravel()
    if y.size != clusters.size:
        raise ValueError(f"oversample_within_clusters: {clusters.size} clusters for {y.size} labels")
    if len(np.unique(y)) < 2:
        return np.arange(len(y))
    total = 2 * max(class_counts(y).values())
    expected = np.zeros(len(y))
    for cluster in np.unique(clusters):
        members = clusters == cluster
        present = np.unique(y[members])
        for label in present:
            cell = members & (y == label)
            expected[cell] = total * members.mean() / len(present) / cell.sum()
    expected = np.clip(expected, 1.0, max_repeat)
    rng = np.random.default_rng(seed)
    copies = np.floor(expected).astype(np.int64)
    copies += rng.random(len(y)) < expected - copies
    indices = np.repeat(np.arange(len(y)), copies)
    return indices[oversample_indices(y[indices], seed)]
