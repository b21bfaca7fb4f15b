from __future__ import annotations

import json

import numpy as np
import pytest

from ml.calibration import choose_threshold
from ml.dataset import load_split, read_metadata
from ml.predictor import Predictor
from ml.train import TrainSettings, TrainingCancelled, resolve_top_down, train_arrays
from tests.model_fixtures import build_tiny_model_dir, quantized_nodes, tiny_images, tiny_settings

METRIC_KEYS = {"n", "accuracy", "recall", "specificity", "precision", "f1", "roc_auc", "pr_auc", "ece", "threshold",
               "confusion", "latency_ms_p50", "latency_ms_p95", "rejected"}
METADATA_KEYS = {"format_version", "image_size", "preprocessing", "threshold", "temperature", "calibration_bias",
                 "review_band", "class_names", "cam_weights", "cam_bias", "projection", "training_data", "settings",
                 "balance", "created_at"}


def test_training_writes_every_artifact(tiny_model_dir):
    assert {p.name for p in tiny_model_dir.iterdir()} >= {"model.onnx", "model.keras", "metadata.json",
                                                          "metrics.json", "curves.json", "test_scores.json"}
    metadata = json.loads((tiny_model_dir / "metadata.json").read_text())
    assert METADATA_KEYS <= metadata.keys()
    assert metadata["image_size"] == 64 and metadata["class_names"] == ["no_tumor", "tumor"]
    assert np.asarray(metadata["projection"]["components"]).shape == (2, len(metadata["cam_weights"]))
    metrics = json.loads((tiny_model_dir / "metrics.json").read_text())
    assert METRIC_KEYS <= metrics.keys()
    assert metrics["accuracy"] >= 0.95  # the tiny task is easy: a model that learned nothing fails here
    curves = json.loads((tiny_model_dir / "curves.json").read_text())
    assert {"roc", "pr", "calibration", "history"} <= curves.keys()
    assert [entry["epoch"] for entry in curves["history"]] == list(range(1, len(curves["history"]) + 1))
    scores = json.loads((tiny_model_dir / "test_scores.json").read_text())
    assert len(scores["y_true"]) == len(scores["probability"]) == metrics["n"]


def test_threshold_meets_the_recall_target_on_validation(tiny_model_dir):
    # The fixture validates on tiny_images(64, seed=2): the same scans again.
    X_val, y_val, _ = tiny_images(64, seed=2)
    predictor = Predictor.from_dir(tiny_model_dir)
    probability = np.array([p.probability for p in predictor.predict(X_val[..., 0])])
    assert np.mean(probability[y_val == 1] >= predictor.threshold) >= 0.99


def test_each_epoch_is_reported_with_train_and_validation_metrics(tmp_path):
    seen: list[tuple[int, dict]] = []
    build_tiny_model_dir(tmp_path / "m", epochs=2, on_epoch=lambda epoch, logs: seen.append((epoch, logs)))
    assert [epoch for epoch, _ in seen] == [1, 2]
    for _, logs in seen:
        assert {"loss", "accuracy", "recall", "auc", "val_loss", "val_accuracy", "val_recall", "val_auc"} <= logs.keys()


def test_should_stop_cancels_training(tmp_path):
    X, y, _ = tiny_images(32, seed=1)
    with pytest.raises(TrainingCancelled, match="^training cancelled during epoch 1$"):
        train_arrays(X, y, X, y, X, y, tmp_path / "m", tiny_settings(epochs=3), should_stop=lambda: True)
    assert not (tmp_path / "m" / "model.onnx").exists()


def test_training_is_deterministic_for_a_seed(tiny_model_dir, tmp_path):
    build_tiny_model_dir(tmp_path / "again")
    first = json.loads((tiny_model_dir / "test_scores.json").read_text())["probability"]
    second = json.loads((tmp_path / "again" / "test_scores.json").read_text())["probability"]
    assert first == second


def test_settings_refuse_an_impossible_recall_target():
    with pytest.raises(ValueError, match=r"^recall_target must be in \(0, 1\], got 0.0$"):
        TrainSettings(recall_target=0.0)


def test_settings_refuse_an_impossible_recall_confidence(capsys):
    from ml.commands.train import confidence, main as train_main

    assert (confidence("off"), confidence("None"), confidence("0.9")) == (None, None, 0.9)

    with pytest.raises(ValueError, match=r"^recall_confidence must be in \(0, 1\), got 1.5$"):
        TrainSettings(recall_confidence=1.5)
    assert TrainSettings(recall_confidence=None).recall_confidence is None
    with pytest.raises(SystemExit):
        train_main(["--data", "x", "--out", "y", "--recall-confidence", "most"])
    assert "argument --recall-confidence: invalid confidence value: 'most'" in capsys.readouterr().err


def test_settings_refuse_a_negative_mask_weight():
    with pytest.raises(ValueError, match="^mask_weight must be non-negative, got -1.0$"):
        TrainSettings(mask_weight=-1.0)


def test_settings_refuse_a_negative_small_tumor_cell_count():
    with pytest.raises(ValueError, match="^small_tumor_cells must be non-negative, got -1$"):
        TrainSettings(small_tumor_cells=-1)


def test_settings_refuse_a_single_appearance_cluster():
    with pytest.raises(ValueError, match="^appearance_clusters must be 0 or at least 2, got 1$"):
        TrainSettings(appearance_clusters=1)


def test_settings_refuse_a_top_down_path_that_cannot_be_built():
    with pytest.raises(ValueError, match="^a refined heatmap needs an image size divisible by 16, got 120$"):
        TrainSettings(image_size=120, top_down=1)
    with pytest.raises(ValueError, match=r"^top_down must be within \[0, 4\] for a depth of 5, got 5$"):
        TrainSettings(top_down=5)
    assert TrainSettings(image_size=120, top_down=0).image_size == 120  # the last block's map takes any size
    assert TrainSettings(architecture="baseline", top_down=7).top_down == 7  # no pooling head: ignored


@pytest.mark.parametrize("image_size, top_down, with_masks, steps", [
    (128, None, True, 1), (128, None, False, 0), (120, None, True, 0), (128, 2, False, 2), (128, 0, True, 0)])
def test_the_map_is_refined_by_default_only_where_masks_teach_it_and_the_size_allows(image_size, top_down,
                                                                                      with_masks, steps):
    assert resolve_top_down(TrainSettings(image_size=image_size, top_down=top_down), with_masks) == steps


def write_prepared(root, seed: int = 0, mislabelled_val: int = 0):
    """A prepared dataset folder of tiny images, as `python -m ml prepare` lays it out; each scan its own
    similarity group, except the first `mislabelled_val` validation normals: labelled tumor and one
    patient (group 9999)."""
    import cv2

    rows = ["source_path,path,label,source_class,group,split,sha256,width,height,format"]
    for split, count in (("train", 48), ("val", 24), ("test", 16)):
        X, y, _ = tiny_images(count, seed=seed + len(rows))
        mislabelled = set(np.flatnonzero(y == 0)[:mislabelled_val]) if split == "val" else set()
        for i, (image, label) in enumerate(zip(X, y)):
            name = "tumor" if label or i in mislabelled else "no_tumor"
            group = 9999 if i in mislabelled else len(rows)
            path = f"images/{split}/{name}/{split}{i}.png"
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / path), np.round(image[..., 0] * 255).astype(np.uint8))
            rows.append(f"src/{split}{i}.png,{path},{name},{name},{group},{split},{len(rows):064x},64,64,png")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root


def test_train_command_trains_from_a_prepared_folder(tmp_path, capsys):
    import hashlib

    from ml.commands.train import main as train_main

    data = write_prepared(tmp_path / "prepared", mislabelled_val=3)
    (data / "report.json").write_text(json.dumps({"settings": {"size": 64, "window": [35, 90]}}))
    out = tmp_path / "model"
    assert train_main(["--data", str(data), "--out", str(out), "--epochs", "2", "--image-size", "64", "--width", "8",
                       "--batch-size", "16", "--no-intensity-augment", "--top-down", "2", "--recall-target", "0.75",
                       "--recall-confidence", "0.9", "--appearance-clusters", "3", "--float32-onnx"]) == 0
    metadata = json.loads((out / "metadata.json").read_text())
    digest = hashlib.sha256((data / "metadata.csv").read_bytes()).hexdigest()
    assert metadata["training_data"] == {"fingerprint": f"sha256:{digest}", "n_train": 48, "n_val": 24, "n_test": 16,
                                         "n_train_masks": 0}
    # How a file becomes this model's input: normalised as the prepared set was (report.json), then 64 px.
    assert metadata["preprocessing"] == {"input": "ml.normalise.prepare_for_model", "size": 64, "channels": 1,
                                         "value_range": [0.0, 1.0], "prepared_size": 64, "window": [35.0, 90.0]}
    assert metadata["settings"]["epochs"] == 2 and metadata["settings"]["width"] == 8
    assert metadata["settings"]["augment"] and not metadata["settings"]["intensity_augment"]
    assert metadata["settings"]["top_down"] == 2 and metadata["settings"]["appearance_clusters"] == 3
    assert not metadata["settings"]["quantize"] and not quantized_nodes(out / "model.onnx")
    # 48 training scans are too few for 3 clusters of 50: the classes were balanced overall.
    _, y_train = load_split(data, "train")
    assert metadata["balance"] == {"appearance_clusters": 0, "transplants": 0,
                                   "epoch_scans": 2 * max(np.bincount(y_train))}
    assert metadata["recall_confidence"] == metadata["settings"]["recall_confidence"] == 0.9
    # The threshold was chosen with the validation scans' similarity groups from metadata.csv (the three
    # mislabelled, low-scoring "tumors" are one patient there), not scan by scan.
    X_val, y_val = load_split(data, "val", image_size=64)
    probability = np.array([p.probability for p in Predictor.from_dir(out).predict(X_val[..., 0])])
    groups = read_metadata(data).query("split == 'val'")["group"].to_numpy()
    chosen = choose_threshold(y_val, probability, 0.75, confidence=0.9, groups=groups)
    assert chosen != choose_threshold(y_val, probability, 0.75, confidence=0.9)  # the groups do matter here
    assert metadata["threshold"] == chosen
    assert json.loads(capsys.readouterr().out.splitlines()[-2])["wall_seconds"] > 0


def test_train_command_needs_a_prepared_folder(tmp_path, capsys):
    from ml.commands.train import main as train_main

    assert train_main(["--data", str(tmp_path), "--out", str(tmp_path / "m")]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path} is not a prepared dataset (no metadata.csv); "
                                       "run python -m ml prepare first\n")


def test_training_balances_within_appearance_clusters_when_there_are_enough_scans(tmp_path):
    build_tiny_model_dir(tmp_path / "m", epochs=1, appearance_clusters=3)  # 160 training scans: 3 clusters of 50
    balance = json.loads((tmp_path / "m" / "metadata.json").read_text())["balance"]
    assert balance["appearance_clusters"] == 3
    _, y_train, _ = tiny_images(160, seed=1, tumor_fraction=0.4)  # as build_tiny_model_dir draws them
    # Each scan at least once and the clusters' rarer class repeated, then the classes balanced overall.
    assert balance["epoch_scans"] >= 2 * max(np.bincount(y_train))


def test_train_command_refuses_a_single_appearance_cluster(tmp_path, capsys):
    from ml.commands.train import main as train_main

    data = write_prepared(tmp_path / "prepared")
    assert train_main(["--data", str(data), "--out", str(tmp_path / "m"), "--appearance-clusters", "1"]) == 2
    assert capsys.readouterr().err == "error: appearance_clusters must be 0 or at least 2, got 1\n"
    assert not (tmp_path / "m").exists()


def test_train_command_refuses_a_transplant_share_above_one(tmp_path, capsys):
    from ml.commands.train import main as train_main

    data = write_prepared(tmp_path / "prepared")
    assert train_main(["--data", str(data), "--out", str(tmp_path / "m"), "--transplant", "2"]) == 2
    assert capsys.readouterr().err == "error: transplant_fraction must be within [0, 1], got 2.0\n"
    assert not (tmp_path / "m").exists()


def test_batch_norm_statistics_are_measured_on_the_given_scans():
    import keras

    from ml.model import build_model
    from ml.train import refresh_batch_norm

    model = build_model(image_size=32, width=4, depth=3)
    images = np.random.default_rng(0).random((300, 32, 32, 1)).astype(np.float32)
    refresh_batch_norm(model, images, batch_size=64)  # 4 full batches and a short one, pooled
    first = next(layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    inputs = keras.ops.convert_to_numpy(keras.Model(model.inputs[0], first.input)(images))
    assert np.allclose(first.moving_mean.numpy(), inputs.mean(axis=(0, 1, 2)), atol=1e-5)
    assert np.allclose(first.moving_variance.numpy(), inputs.var(axis=(0, 1, 2)), atol=1e-5)


def test_batch_norm_statistics_with_a_single_batch_norm_layer():
    import keras

    from ml.train import refresh_batch_norm

    inputs = keras.Input((16, 16, 1))
    features = keras.layers.Conv2D(3, 3, padding="same")(inputs)
    norm = keras.layers.BatchNormalization()
    outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(norm(features)))
    model = keras.Model(inputs, outputs)
    images = np.random.default_rng(1).random((50, 16, 16, 1)).astype(np.float32)
    refresh_batch_norm(model, images, batch_size=16)
    activations = keras.ops.convert_to_numpy(keras.Model(inputs, features)(images))
    assert np.allclose(norm.moving_mean.numpy(), activations.mean(axis=(0, 1, 2)), atol=1e-5)
    assert np.allclose(norm.moving_variance.numpy(), activations.var(axis=(0, 1, 2)), atol=1e-5)


def eight_bit(images: np.ndarray) -> np.ndarray:
    """Scans as a PNG gives them back: each value k/255."""
    return np.rint(images * 255).astype(np.uint8).astype(np.float32) / 255.0


def test_eight_bit_scans_become_codes_that_give_back_the_same_floats():
    from ml.pixels import as_floats
    from ml.train import eight_bit_codes

    every_code = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    scans = every_code.astype(np.float32) / 255.0
    codes = eight_bit_codes(scans)
    assert codes.dtype == np.uint8 and np.array_equal(codes, every_code)
    assert np.array_equal(as_floats(codes), scans)  # bit for bit, not within a tolerance


@pytest.mark.parametrize("value", [0.5, -1 / 255, 256 / 255])
def test_scans_that_are_not_eight_bit_stay_floats(value):
    from ml.train import eight_bit_codes

    scans = np.zeros((600, 4, 4, 1), np.float32)  # the odd value in the second chunk of CODE_CHUNK scans
    scans[-1, 0, 0, 0] = value
    assert eight_bit_codes(scans) is None


@pytest.mark.parametrize("with_masks", [False, True])
def test_training_batches_from_codes_equal_those_from_floats(with_masks):
    from ml.train import _training_dataset, eight_bit_codes

    X, y, masks = tiny_images(40, seed=3)
    X = eight_bit(X)
    masks = np.stack([np.zeros(X.shape[1:3], np.float32) if m is None else m.astype(np.float32) for m in masks])
    settings = tiny_settings(batch_size=16)
    grid = 8 if with_masks else None
    from_floats = _training_dataset(X, y, settings, masks if with_masks else None, grid)
    from_codes = _training_dataset(eight_bit_codes(X), y, settings, eight_bit_codes(masks) if with_masks else None,
                                   grid)
    pairs = list(zip(from_floats, from_codes))
    assert len(pairs) == 3
    for (floats, float_targets), (codes, code_targets) in pairs:
        assert codes.dtype == floats.dtype and np.array_equal(codes.numpy(), floats.numpy())
        if with_masks:
            assert all(np.array_equal(code_targets[key].numpy(), float_targets[key].numpy()) for key in float_targets)
        else:
            assert np.array_equal(code_targets.numpy(), float_targets.numpy())


def test_eight_bit_scans_train_the_same_model_as_their_floats(tmp_path, monkeypatch):
    import ml.train

    X, y, _ = tiny_images(64, seed=4)
    X = eight_bit(X)
    assert ml.train.eight_bit_codes(X) is not None
    settings = tiny_settings(epochs=1)
    pixels = np.rint(X * 255).astype(np.uint8)  # as `train` loads a prepared training split
    train_arrays(pixels, y, X[:32], y[:32], X[32:], y[32:], tmp_path / "pixels", settings)
    train_arrays(X, y, X[:32], y[:32], X[32:], y[32:], tmp_path / "codes", settings)
    monkeypatch.setattr(ml.train, "eight_bit_codes", lambda images: None)  # as before: float32 throughout
    train_arrays(X, y, X[:32], y[:32], X[32:], y[32:], tmp_path / "floats", settings)
    scores = [json.loads((tmp_path / name / "test_scores.json").read_text())["probability"]
              for name in ("pixels", "codes", "floats")]
    assert scores[0] == scores[1] == scores[2]
