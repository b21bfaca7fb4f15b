from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from ml.dataset import METADATA_COLUMNS, load_split, read_metadata


def write_prepared(root, items):
    """items: (split, label, pixel value) → a prepared folder with 16×16 constant images."""
    rows = []
    for index, (split, label, value) in enumerate(items):
        path = f"images/{split}/{label}/img{index}.png"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / path), np.full((16, 16), value, np.uint8))
        rows.append({"source_path": f"{label}/img{index}.jpg", "path": path, "label": label,
                     "source_class": label, "group": index, "split": split, "sha256": f"{index:064x}",
                     "width": 16, "height": 16, "format": "jpeg"})
    with (root / "metadata.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=METADATA_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return root


def test_load_split_returns_images_and_labels_in_metadata_order(tmp_path):
    write_prepared(tmp_path, [("train", "tumor", 255), ("val", "tumor", 0), ("train", "no_tumor", 51)])
    x, y = load_split(tmp_path, "train")
    assert x.shape == (2, 16, 16, 1) and x.dtype == np.float32 and y.dtype == np.int8
    assert y.tolist() == [1, 0]
    assert x[0].max() == 1.0 and x[1].max() == pytest.approx(0.2)


def test_load_split_resizes_on_request(tmp_path):
    write_prepared(tmp_path, [("test", "no_tumor", 102)])
    x, _ = load_split(tmp_path, "test", image_size=8)
    assert x.shape == (1, 8, 8, 1) and x[0, 0, 0, 0] == pytest.approx(0.4)


def test_load_split_gives_the_8_bit_pixels_whose_floats_it_gives_otherwise(tmp_path):
    write_prepared(tmp_path, [("train", "tumor", value) for value in range(0, 256, 5)])
    pixels, y = load_split(tmp_path, "train", image_size=8, pixels=True)
    floats, _ = load_split(tmp_path, "train", image_size=8)
    assert pixels.dtype == np.uint8 and pixels.shape == (52, 8, 8, 1) and y.tolist() == [1] * 52
    assert np.array_equal(pixels.astype(np.float32) / np.float32(255), floats)


def test_an_empty_split_is_empty_not_an_error(tmp_path):
    write_prepared(tmp_path, [("train", "tumor", 1)])
    x, y = load_split(tmp_path, "val", image_size=16)
    assert x.shape == (0, 16, 16, 1) and y.shape == (0,)


def test_unknown_split_is_refused(tmp_path):
    write_prepared(tmp_path, [("train", "tumor", 1)])
    with pytest.raises(ValueError) as caught:
        load_split(tmp_path, "holdout")
    assert str(caught.value) == "split must be one of train, val, test, got 'holdout'"


def test_metadata_keeps_its_columns_and_types(tmp_path):
    table = read_metadata(write_prepared(tmp_path, [("train", "tumor", 1)]))
    assert tuple(table.columns) == METADATA_COLUMNS
    assert table["sha256"][0] == "0" * 64 and table["group"].dtype.kind == "i"
