"""Lesion transplants (ml.transplant): a lesion moved onto a tumor-free scan keeps its contrast against the
tissue around it and nothing else of the scan changes; unlike surroundings are refused; training records them."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from ml.train import TrainSettings
from ml.transplant import transplant, transplant_lesions
from tests.model_fixtures import build_tiny_model_dir, tiny_images

SIZE = 64


def disc(cy: float, cx: float, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2


def test_a_lesion_keeps_its_contrast_against_the_recipients_tissue_and_the_rest_is_untouched():
    rng = np.random.default_rng(0)
    mask = disc(30, 34, 5)
    donor = np.full((SIZE, SIZE), 0.40, np.float32) + rng.normal(0, 0.02, (SIZE, SIZE)).astype(np.float32)
    donor[mask] += 0.30
    recipient = np.full((SIZE, SIZE), 0.50, np.float32) + rng.normal(0, 0.02, (SIZE, SIZE)).astype(np.float32)
    made = transplant(donor, mask.astype(np.float32), recipient)
    # Inside: the donor's lesion, 0.30 above the recipient's 0.50, with the donor's own noise (not added to the
    # recipient's: the pixels are replaced).
    assert np.mean(made[mask]) == pytest.approx(0.80, abs=0.01)
    assert np.std(made[mask] - donor[mask]) < 0.005
    far = ~disc(30, 34, 9)
    np.testing.assert_array_equal(made[far], recipient[far])


def test_a_lesion_is_not_moved_onto_unlike_surroundings():
    mask = disc(30, 34, 5).astype(np.float32)
    donor = np.full((SIZE, SIZE), 0.40, np.float32)
    donor[mask > 0] += 0.30
    brighter = np.full((SIZE, SIZE), 0.60, np.float32)  # tissue 0.2 brighter than the donor's
    edge = np.full((SIZE, SIZE), 0.40, np.float32)
    edge[:, 34:] = 0.05  # a ventricle's edge through the lesion's place
    assert transplant(donor, mask, brighter) is None
    assert transplant(donor, mask, edge) is None
    assert transplant(donor, np.zeros_like(mask), donor) is None  # no lesion to move


def test_transplants_are_new_tumor_scans_made_from_tumor_free_ones_the_inputs_kept():
    X, y, masks = tiny_images(40, seed=4)
    stacked = np.stack([np.zeros((SIZE, SIZE), np.float32) if m is None else m.astype(np.float32) for m in masks])
    before = X.copy()
    images, labels, made_masks = transplant_lesions(X, y, stacked, fraction=0.5, seed=1)
    negatives = int((y == 0).sum())
    assert 0 < len(images) <= round(0.5 * negatives) and len(labels) == len(made_masks) == len(images)
    assert images.shape[1:] == X.shape[1:] and made_masks.shape[1:] == stacked.shape[1:]
    assert set(labels) == {1}
    # Each new scan is a tumor-free scan away from its lesion, and its mask is one of the tumor scans'.
    tumor_masks, tumor_free = stacked[y == 1], X[y == 0, ..., 0]
    for image, mask in zip(images[..., 0], made_masks):
        assert any(np.array_equal(mask, m) for m in tumor_masks)
        away = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
        assert sum(np.array_equal(image[away], scan[away]) for scan in tumor_free) >= 1
        assert not any(np.array_equal(image, scan) for scan in tumor_free)
    np.testing.assert_array_equal(X, before)
    again = transplant_lesions(X, y, stacked, fraction=0.5, seed=1)
    np.testing.assert_array_equal(again[0], images)  # the same seed, the same scans


def test_without_tumor_scans_there_is_nothing_to_transplant():
    X, y, _ = tiny_images(12, seed=2, tumor_fraction=0.0)
    images, labels, made_masks = transplant_lesions(X, y, np.zeros((12, SIZE, SIZE), np.float32), 1.0, seed=0)
    assert images.shape == (0, SIZE, SIZE, 1) and labels.shape == (0,) and made_masks.shape == (0, SIZE, SIZE)


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_settings_refuse_a_transplant_share_outside_zero_to_one(fraction):
    with pytest.raises(ValueError, match=rf"^transplant_fraction must be within \[0, 1\], got {fraction}$"):
        TrainSettings(transplant_fraction=fraction)


def test_training_with_masks_records_its_transplants_and_without_them_makes_none(tmp_path):
    _, y_train, _ = tiny_images(160, seed=1, tumor_fraction=0.4)  # as build_tiny_model_dir draws them
    build_tiny_model_dir(tmp_path / "masked", masks=True, epochs=1, transplant_fraction=0.5)
    build_tiny_model_dir(tmp_path / "labels", epochs=1, transplant_fraction=0.5)
    masked, labels = (json.loads((tmp_path / name / "metadata.json").read_text())["balance"]
                      for name in ("masked", "labels"))
    assert 0 < masked["transplants"] <= round(0.5 * int((y_train == 0).sum()))
    tumors = int(y_train.sum()) + masked["transplants"]
    assert masked["epoch_scans"] == 2 * max(tumors, int((y_train == 0).sum()))
    assert labels["transplants"] == 0 and labels["epoch_scans"] == 2 * max(np.bincount(y_train))
