from __future__ import annotations

import numpy as np
import pytest

from ml.stats import class_counts, class_mean_difference, label_counts, mean_std_images, samples_per_class
from tests.ml.test_dataset import write_prepared


@pytest.fixture
def prepared(tmp_path):
    return write_prepared(tmp_path, [("train", "tumor", 255), ("train", "tumor", 51), ("val", "tumor", 153),
                                     ("train", "no_tumor", 0), ("test", "no_tumor", 102)])


def test_class_counts_table(prepared):
    table = class_counts(prepared)
    assert table.to_dict("records") == [
        {"split": "test", "label": "no_tumor", "source_class": "no_tumor", "count": 1},
        {"split": "train", "label": "no_tumor", "source_class": "no_tumor", "count": 1},
        {"split": "train", "label": "tumor", "source_class": "tumor", "count": 2},
        {"split": "val", "label": "tumor", "source_class": "tumor", "count": 1},
    ]
    assert label_counts(prepared) == {"no_tumor": 2, "tumor": 3}
    assert label_counts(prepared, "train") == {"no_tumor": 1, "tumor": 2}


def test_mean_and_std_images_per_class(prepared):
    stats = mean_std_images(prepared)
    tumor_mean, tumor_std = stats["tumor"]
    values = np.array([1.0, 0.2, 0.6])
    assert tumor_mean.shape == (16, 16)
    np.testing.assert_allclose(tumor_mean, values.mean(), atol=1e-6)
    np.testing.assert_allclose(tumor_std, values.std(), atol=1e-6)
    np.testing.assert_allclose(stats["no_tumor"][0], 0.2, atol=1e-6)
    np.testing.assert_allclose(class_mean_difference(stats), 0.6 - 0.2, atol=1e-6)


def test_mean_images_of_one_split_and_size(prepared):
    stats = mean_std_images(prepared, split="train", image_size=4)
    assert stats["tumor"][0].shape == (4, 4)
    np.testing.assert_allclose(stats["tumor"][0], 0.6, atol=1e-6)


def test_difference_needs_both_classes(prepared):
    with pytest.raises(ValueError) as caught:
        class_mean_difference(mean_std_images(prepared, split="val"))
    assert str(caught.value) == "no images labelled no_tumor"


def test_samples_per_class_are_seeded_and_capped(prepared):
    samples = samples_per_class(prepared, per_class=2, seed=1)
    images, paths = samples["tumor"]
    assert images.shape == (2, 16, 16) and len(paths) == 2
    assert samples_per_class(prepared, per_class=2, seed=1)["tumor"][1] == paths
    assert len(samples["no_tumor"][1]) == 2 and len(samples_per_class(prepared, 5)["tumor"][1]) == 3
