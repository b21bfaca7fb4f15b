from __future__ import annotations

import numpy as np

from ml.augment import build_augmenter


def _augment(images: np.ndarray, intensity: bool) -> np.ndarray:
    # Flips only on the geometric side, so that a flat image stays flat unless the grey levels change.
    augmenter = build_augmenter(seed=3, rotation=0.0, shift=0.0, zoom=0.0, intensity=intensity)
    return np.asarray(augmenter(images, training=True))


def test_geometry_only_keeps_every_grey_level() -> None:
    flat = np.full((16, 24, 24, 1), 0.4, np.float32)
    np.testing.assert_allclose(_augment(flat, intensity=False), flat, atol=1e-6)


def test_intensity_augmentation_changes_grey_levels_within_range() -> None:
    flat = np.full((16, 24, 24, 1), 0.4, np.float32)
    out = _augment(flat, intensity=True)
    means = out.mean(axis=(1, 2, 3))
    assert means.std() > 0.01
    assert out.min() >= 0.0 and out.max() <= 1.0
