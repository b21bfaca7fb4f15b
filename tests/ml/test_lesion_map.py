"""Tumor masks as a second training target (ml.lesion_map): the cell targets, one geometry for a scan
and its mask, and what training with masks writes, reports and teaches the heatmap."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ml.evaluate import heatmap_scores
from ml.predictor import Predictor
from ml.train import train_arrays
from tests.model_fixtures import build_tiny_model_dir, tiny_images, tiny_settings


def test_a_cell_is_tumor_when_any_of_its_pixels_is():
    from ml.lesion_map import cell_targets

    masks = np.zeros((2, 64, 64, 1), np.float32)
    masks[0, 9, 20] = 1.0  # one pixel in row-cell 1, column-cell 2 of an 8×8 grid
    masks[1, 40, 40] = 0.4  # what a rotation's interpolation left below one half: not tumor
    masks[1, 50, 3] = 0.6
    cells = np.asarray(cell_targets(masks, 8))[..., 0]
    expected = np.zeros((2, 8, 8), np.float32)
    expected[0, 1, 2] = expected[1, 6, 0] = 1.0
    np.testing.assert_array_equal(cells, expected)


def test_a_tumor_of_fewer_cells_than_small_tumor_cells_weighs_in_the_mask_loss_as_one_of_that_many():
    from ml.lesion_map import TUMOR_CELL_WEIGHT, lesion_map_loss

    truth = np.zeros((4, 4, 4, 1), np.float32)  # tumor-free; a tumor of 1 cell; of 4 cells; of 8 cells
    truth[1, 0, 0] = 1.0
    truth[2, :2, :2] = 1.0
    truth[3, :2, :] = 1.0
    probability = np.where(truth > 0, 0.2, 0.1).astype(np.float32)  # every tumor cell missed alike
    missed, clear = -np.log(0.2), -np.log(0.9)

    def expected(tumor_cell_weights: list[float]) -> np.ndarray:
        return np.array([(weight * cells * missed + (16 - cells) * clear) / 16
                         for cells, weight in zip((0, 1, 4, 8), tumor_cell_weights)])

    plain = np.asarray(lesion_map_loss(truth, probability))
    np.testing.assert_allclose(plain, expected([TUMOR_CELL_WEIGHT] * 4), rtol=1e-5)
    weighted = np.asarray(lesion_map_loss(truth, probability, small_tumor_cells=4))
    # The 1-cell tumor weighs as one of 4 cells; the tumors of 4 and 8 cells, and the tumor-free slice, as before.
    np.testing.assert_allclose(weighted, expected([TUMOR_CELL_WEIGHT * w for w in (1, 4, 1, 1)]), rtol=1e-5)


def test_one_random_geometry_moves_a_scan_and_its_mask_and_only_the_scan_changes_grey_levels():
    from ml.augment import ImageMaskAugmenter

    images = tiny_images(8, seed=5)[0]
    stacked = np.concatenate([images, images], axis=-1)
    moved = np.asarray(ImageMaskAugmenter(3, intensity=False)(stacked, training=True))
    assert not np.allclose(moved[..., 0], images[..., 0], atol=1e-3)  # something did move
    np.testing.assert_array_equal(moved[..., 0], moved[..., 1])
    greyed = np.asarray(ImageMaskAugmenter(3, intensity=True)(stacked, training=True))
    np.testing.assert_array_equal(greyed[..., 1], moved[..., 1])  # the same geometry, the mask's grey levels kept
    assert not np.allclose(greyed[..., 0], moved[..., 0], atol=1e-3)


@pytest.fixture(scope="module")
def masked_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("masked_model")
    epochs: list[dict] = []
    # 8 epochs: the map refined by one top-down step (the default with masks) labelled 46 of the 48 tumors of
    # test_masks_concentrate_the_heatmap_on_the_lesion after 6, all of them after 8 (measured).
    build_tiny_model_dir(path, masks=True, epochs=8, on_epoch=lambda epoch, logs: epochs.append(logs))
    return path, epochs


def test_training_with_masks_reports_the_label_loss_apart_and_exports_the_plain_classifier(masked_model,
                                                                                           tiny_model_dir):
    import onnx

    path, epochs = masked_model
    for logs in epochs:
        assert {"loss", "accuracy", "recall", "auc", "mask_loss", "total_loss",
                "val_loss", "val_accuracy", "val_recall", "val_auc", "val_mask_loss", "val_total_loss"} <= logs.keys()
        # "loss" is the label's alone, comparable with a run without masks; the sum is total_loss. (Exact on
        # validation, whose batches are all full; Keras averages training's last, short batch differently.)
        assert logs["val_total_loss"] == pytest.approx(logs["val_loss"] + logs["val_mask_loss"], rel=1e-4)
        assert logs["total_loss"] > logs["loss"]
    kept = min(range(len(epochs)), key=lambda i: epochs[i]["val_total_loss"]) + 1  # what early stopping watched
    assert json.loads((path / "metrics.json").read_text())["training"]["best_epoch"] == kept
    outputs = [[o.name for o in onnx.load(str(d / "model.onnx")).graph.output] for d in (path, tiny_model_dir)]
    assert outputs[0] == outputs[1] == ["probability", "logit", "features", "activations", "moved_activations"]
    # The masks refine the map by one top-down step (TrainSettings.top_down's default): 16×16 on these 64 px scans.
    settings = [json.loads((d / "metadata.json").read_text())["settings"] for d in (path, tiny_model_dir)]
    assert [s["top_down"] for s in settings] == [1, 0]
    _, y_train, _ = tiny_images(160, seed=1, tumor_fraction=0.4)
    assert json.loads((path / "metadata.json").read_text())["training_data"]["n_train_masks"] == int(y_train.sum())
    assert json.loads((tiny_model_dir / "metadata.json").read_text())["training_data"]["n_train_masks"] == 0


def test_masks_concentrate_the_heatmap_on_the_lesion(masked_model, tiny_model_dir):
    """The same training without masks (tiny_model_dir) puts 9 % of the heatmap's mass inside the lesions; with
    them and the 8×8 map 25 % (6 epochs), and with them and the 16×16 map they refine by default 44 % (8 epochs;
    measured); all point inside 98–100 %."""
    images, _, masks = tiny_images(48, seed=11, tumor_fraction=1.0)
    energy = {}
    for name, path in (("masks", masked_model[0]), ("labels", tiny_model_dir)):
        predictions = Predictor.from_dir(path).predict(images[..., 0])
        scores = heatmap_scores([p.heatmap for p in predictions], masks)
        assert scores["pointing_game"] >= 0.9 and all(p.label == "tumor" for p in predictions)
        energy[name] = scores["mask_energy"]
    assert energy["masks"] >= 2 * energy["labels"]


def test_masks_for_only_one_of_training_and_validation_or_without_a_pooling_head_are_refused(tmp_path):
    X, y, masks = tiny_images(16, seed=1)
    with pytest.raises(ValueError, match="^masks are needed for both training and validation scans, or for neither$"):
        train_arrays(X, y, X, y, X, y, tmp_path / "m", tiny_settings(epochs=1), train_masks=masks)
    with pytest.raises(ValueError, match="^tumor masks need a pooling head; the baseline architecture has none$"):
        train_arrays(X, y, X, y, X, y, tmp_path / "m", tiny_settings(epochs=1, architecture="baseline"),
                     train_masks=masks, val_masks=masks)
    assert not (tmp_path / "m").exists()


def test_a_mask_weight_of_zero_trains_on_the_labels_alone(tmp_path):
    epochs: list[dict] = []
    build_tiny_model_dir(tmp_path / "m", masks=True, mask_weight=0.0, epochs=1,
                         on_epoch=lambda epoch, logs: epochs.append(logs))
    assert "val_loss" in epochs[0] and not any("mask" in key or "total" in key for key in epochs[0])
    assert json.loads((tmp_path / "m" / "metadata.json").read_text())["training_data"]["n_train_masks"] == 0


@pytest.fixture(scope="module")
def synthetic_prepared(tmp_path_factory):
    """A 40-slice synthetic CT set with its masks, prepared at 64 px."""
    from ml.prepare import prepare_dataset
    from ml.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(root / "raw", count=40, seed=3, size=96, workers=1)
    prepare_dataset(root / "raw", root / "prepared", size=64, processes=1)
    return root


TINY_CLI = ["--epochs", "1", "--image-size", "64", "--width", "8", "--batch-size", "16", "--no-intensity-augment"]


def test_train_command_learns_from_the_masks_of_a_synthetic_set(synthetic_prepared, tmp_path, capsys):
    from ml.commands.train import main as train_main
    from ml.dataset import read_metadata

    out = tmp_path / "model"
    assert train_main(["--data", str(synthetic_prepared / "prepared"), "--out", str(out), "--masks",
                       str(synthetic_prepared / "raw" / "masks"), "--mask-weight", "0.5", "--small-tumor-cells", "4",
                       *TINY_CLI]) == 0
    metadata = json.loads((out / "metadata.json").read_text())
    rows = read_metadata(synthetic_prepared / "prepared")
    tumors_in_training = int(((rows["split"] == "train") & (rows["label"] == "tumor")).sum())
    assert metadata["training_data"]["n_train_masks"] == tumors_in_training > 0
    assert metadata["settings"]["mask_weight"] == 0.5
    assert metadata["settings"]["small_tumor_cells"] == 4
    assert "mask_loss" in json.loads((out / "curves.json").read_text())["history"][0]


def test_train_command_refuses_missing_masks_before_training(synthetic_prepared, tmp_path, capsys):
    import shutil
    from pathlib import Path

    from ml.commands.train import main as train_main
    from ml.dataset import read_metadata

    prepared = synthetic_prepared / "prepared"
    assert train_main(["--data", str(prepared), "--out", str(tmp_path / "m"), "--masks", str(tmp_path / "none"),
                       *TINY_CLI]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'none'}: no such masks folder\n"
    assert train_main(["--data", str(prepared), "--out", str(tmp_path / "m"), "--architecture", "baseline",
                       "--masks", str(synthetic_prepared / "raw" / "masks"), *TINY_CLI]) == 2
    assert capsys.readouterr().err == "error: tumor masks need a pooling head; the baseline architecture has none\n"

    masks = shutil.copytree(synthetic_prepared / "raw" / "masks", tmp_path / "masks")
    rows = read_metadata(prepared).query("split == 'train' and label == 'tumor'")
    lost = masks / f"{Path(rows['source_path'].iloc[0]).stem}.png"
    lost.unlink()
    assert train_main(["--data", str(prepared), "--out", str(tmp_path / "m"), "--masks", str(masks), *TINY_CLI]) == 2
    assert capsys.readouterr().err == f"error: {lost}: no mask for tumor scan {lost.stem}\n"
    assert not (tmp_path / "m").exists()


def test_masks_given_with_a_weight_of_zero_are_not_read(synthetic_prepared, tmp_path):
    """Weight 0 is the labels alone, so a masks folder missing every mask does not stop training."""
    from ml.commands.train import main as train_main

    empty_masks = tmp_path / "no-masks"
    empty_masks.mkdir()
    out = tmp_path / "model"
    assert train_main(["--data", str(synthetic_prepared / "prepared"), "--out", str(out), "--masks",
                       str(empty_masks), "--mask-weight", "0", *TINY_CLI]) == 0
    assert json.loads((out / "metadata.json").read_text())["training_data"]["n_train_masks"] == 0
