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


def test_flips_alone_lose_nothing_and_each_of_the_four_occurs() -> None:
    from ml.augment import RandomGeometry

    images = np.random.default_rng(0).random((64, 12, 12, 1)).astype(np.float32)
    out = np.asarray(RandomGeometry(rotation=0.0, shift=0.0, zoom=0.0, seed=1)(images, training=True))
    seen = set()
    for moved, image in zip(out, images):
        views = [image, image[:, ::-1], image[::-1], image[::-1, ::-1]]
        matches = [k for k, view in enumerate(views) if np.allclose(moved, view, atol=1e-6)]
        assert matches, "an output that is no flip of its input"
        seen.add(matches[0])
    assert seen == {0, 1, 2, 3}


def test_a_rotation_turns_a_point_about_the_centre_and_keeps_its_distance() -> None:
    from ml.augment import RandomGeometry

    image = np.zeros((1, 33, 33, 1), np.float32)
    image[0, 16, 24] = 1.0  # 8 pixels right of the centre (16, 16)
    out = np.asarray(RandomGeometry(rotation=0.25, shift=0.0, zoom=0.0, flip=False, seed=2)(
        np.repeat(image, 16, axis=0), training=True))[..., 0]
    rows, cols = np.indices(out.shape[1:])
    for moved in out:
        row, col = (moved * rows).sum() / moved.sum(), (moved * cols).sum() / moved.sum()
        assert abs(np.hypot(row - 16, col - 16) - 8.0) < 0.6
    assert not np.allclose(out[0], out[1])


def test_geometry_is_left_alone_outside_training() -> None:
    from ml.augment import RandomGeometry

    images = np.random.default_rng(3).random((4, 8, 8, 1)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(RandomGeometry(seed=0)(images, training=False)), images)
