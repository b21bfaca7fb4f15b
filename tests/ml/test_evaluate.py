from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from ml.commands.evaluate import main as evaluate_main
from ml.errors import RejectedFile
from ml.dataset import SPLITS, read_metadata
from ml.evaluate import evaluate_arrays, load_prepared, load_raw, normalised_mask, peak_inside
from ml.normalise import normalise, prepare_image
from ml.prepare import prepare_dataset
from ml.predictor import Predictor, unit_range, upsampled_cam
from tests.builders import make_head_slice, make_png
from tests.model_fixtures import build_handmade_model_dir

KEYS = {"n", "accuracy", "recall", "specificity", "precision", "f1", "roc_auc", "pr_auc", "ece", "threshold",
        "confusion", "latency_ms_p50", "latency_ms_p95", "rejected"}


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def patched(background: float) -> np.ndarray:
    """A flat 32×32 scan with a bright 4×4 patch at rows 8-11, columns 20-23."""
    image = np.full((32, 32), background, np.float32)
    image[8:12, 20:24] = 1.0
    return image


def test_evaluate_arrays_on_a_hand_made_case(handmade_model_dir):
    # The hand-made model scores sigmoid(10·(mean − 0.5)). Tumors: two clearly above 0.5, one below;
    # normals: one above, two below. At threshold 0.5: tp 2, fn 1, fp 1, tn 2.
    images = np.stack([patched(b) for b in (0.69, 0.59, 0.43, 0.54, 0.29, 0.19)])
    y = np.array([1, 1, 1, 0, 0, 0])
    expected = sigmoid(10 * (images.mean(axis=(1, 2)) - 0.5))
    inside = np.zeros((32, 32), bool)
    inside[6:14, 18:26] = True
    elsewhere = np.zeros((32, 32), bool)
    elsewhere[24:30, 2:8] = True
    masks = [inside, elsewhere, inside, None, None, None]

    seen = []
    metrics, probability = evaluate_arrays(Predictor.from_dir(handmade_model_dir), images, y, masks,
                                           on_prediction=lambda i, prediction: seen.append((i, prediction)))

    np.testing.assert_allclose(probability, expected, atol=1e-4)  # ONNX averages in float32
    assert [i for i, _ in seen] == list(range(6))
    assert [prediction.probability for _, prediction in seen] == list(probability)
    assert all(int(np.argmax(prediction.heatmap)) // 32 in range(8, 12) for _, prediction in seen)  # the patch
    assert KEYS | {"pointing_game", "mask_energy"} <= metrics.keys()
    assert metrics["confusion"] == {"tp": 2, "fp": 1, "tn": 2, "fn": 1}
    assert metrics["n"] == 6
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["recall"] == metrics["specificity"] == metrics["precision"] == metrics["f1"] == pytest.approx(2 / 3)
    assert metrics["roc_auc"] == pytest.approx(8 / 9)  # only the tumor at 0.43 ranks below a normal (0.54)
    assert metrics["pr_auc"] == pytest.approx((1 + 1 + 3 / 4) / 3)
    # Six scores in six different calibration bins: the ECE is the mean |y − p|.
    assert metrics["ece"] == pytest.approx(np.mean(np.abs(y - expected)), abs=1e-4)
    assert metrics["threshold"] == 0.5
    # Heatmaps are the patch: two of the three masks hold the peak and all of the heatmap's mass.
    assert metrics["pointing_game"] == pytest.approx(2 / 3)
    assert metrics["mask_energy"] == pytest.approx(2 / 3)
    assert metrics["latency_ms_p95"] >= metrics["latency_ms_p50"] > 0
    assert metrics["rejected"] == []


def test_mask_follows_the_normalisation_geometry():
    # A head off-centre in a wide frame, with a bright lesion: after normalisation the mask must
    # still cover the lesion's bright pixels.
    head = make_head_slice(160, seed=3)
    canvas = np.zeros((200, 300), np.float32)
    canvas[30:190, 120:280] = head
    mask = np.zeros_like(canvas, bool)
    mask[90:110, 180:205] = True
    canvas[mask] = 1.0
    image = normalise(canvas, 64)
    carried = normalised_mask(mask, canvas, 64)
    bright = image >= 0.99
    overlap = (carried & bright).sum() / (carried | bright).sum()
    assert overlap >= 0.6


def write_raw_dataset(root, size=96):
    for label, lesion in (("tumor", True), ("no_tumor", False)):
        (root / label).mkdir(parents=True)
        for seed in range(3):
            (root / label / f"s{seed}.png").write_bytes(make_png(make_head_slice(size, seed, lesion=lesion)))
    (root / "no_tumor" / "notes.png").write_bytes(b"these are not pixels")
    return root


def test_evaluate_command_on_a_raw_dataset(handmade_model_dir, tmp_path, capsys):
    data = write_raw_dataset(tmp_path / "raw")
    out = tmp_path / "out" / "metrics.json"
    assert evaluate_main(["--model", str(handmade_model_dir), "--data", str(data), "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert KEYS <= metrics.keys()
    assert metrics["n"] == 6
    with pytest.raises(RejectedFile) as rejection:
        prepare_image(b"these are not pixels", "notes.png", 32)
    reason = rejection.value.reason
    assert metrics["rejected"] == [{"file": "no_tumor/notes.png", "reason": reason}]
    # The same scans through the predictor directly give the same confusion matrix.
    predictor = Predictor.from_dir(handmade_model_dir)
    images = [prepare_image((data / label / f"s{s}.png").read_bytes(), "x.png", 32)[0]
              for label in ("no_tumor", "tumor") for s in range(3)]
    called = np.array([p.probability >= predictor.threshold for p in predictor.predict(np.stack(images))])
    assert metrics["confusion"]["tp"] + metrics["confusion"]["fp"] == int(called.sum())
    assert f"no_tumor/notes.png: {reason}" in capsys.readouterr().out


def test_a_raw_folder_reaches_the_model_as_its_prepared_copy_reached_training(tmp_path):
    # The model records that its training set was prepared at 64 px: each raw file is then normalised at 64,
    # stored as 8 bits and area-averaged to 32, exactly the array training read from the prepared PNG.
    raw = write_raw_dataset(tmp_path / "raw")
    prepared = tmp_path / "prepared"
    # Thresholds above any similarity: the six drawn heads look alike, and every one is to be kept.
    prepare_dataset(raw, prepared, size=64, seed=0, processes=1, group_threshold=1.01, copy_threshold=1.01)
    model = build_handmade_model_dir(tmp_path / "model", size=32, prepared_size=64)
    from_raw = load_raw(raw, Predictor.from_dir(model))
    by_source = dict(zip(from_raw.names, from_raw.images))
    rows = read_metadata(prepared)
    compared = 0
    for split in SPLITS:
        scans = load_prepared(prepared, 32, split=split)
        for image, source in zip(scans.images, rows.loc[rows["split"] == split, "source_path"]):
            np.testing.assert_array_equal(by_source[source], image)
            compared += 1
    assert compared == len(from_raw.names) == 6
    # A model that records no preparation (written before 2026-12-07) gets each file normalised at 32.
    straight = load_raw(raw, Predictor.from_dir(build_handmade_model_dir(tmp_path / "older", size=32)))
    assert straight.names == from_raw.names
    np.testing.assert_array_equal(straight.images[0], prepare_image((raw / straight.names[0]).read_bytes(), "x.png",
                                                                    32)[0])
    assert np.abs(straight.images - from_raw.images).max() > 1 / 255


def test_evaluate_command_uses_the_test_split_of_a_prepared_dataset(handmade_model_dir, tmp_path):
    data = tmp_path / "prepared"
    rows = ["source_path,path,label,source_class,group,split,sha256,width,height,format"]
    for i, (split, label, value) in enumerate([("train", "tumor", 200), ("test", "tumor", 230),
                                               ("test", "no_tumor", 40), ("val", "no_tumor", 10)]):
        path = f"images/{split}/{label}/s{i}.png"
        (data / path).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(data / path), np.full((32, 32), value, np.uint8))
        rows.append(f"src/s{i}.png,{path},{label},{label},{i},{split},{i:064x},32,32,png")
    (data / "metadata.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "metrics.json"
    assert evaluate_main(["--model", str(handmade_model_dir), "--data", str(data), "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["n"] == 2 and metrics["accuracy"] == 1.0


def test_evaluate_command_reports_an_unknown_class_folder(handmade_model_dir, tmp_path, capsys):
    (tmp_path / "raw" / "cats").mkdir(parents=True)
    out = tmp_path / "metrics.json"
    assert evaluate_main(["--model", str(handmade_model_dir), "--data", str(tmp_path / "raw"), "--json", str(out)]) == 2
    assert capsys.readouterr().err.startswith("error: unrecognised class folder 'cats'")
    assert not out.exists()


def test_masks_of_a_prepared_dataset_are_found_through_its_source(handmade_model_dir, tmp_path):
    # prepare records source paths relative to the source folder it read (report.json settings.src).
    raw, data = tmp_path / "raw", tmp_path / "prepared"
    (raw / "tumor").mkdir(parents=True)
    (raw / "masks").mkdir()
    scan = make_head_slice(96, seed=5)
    lesion = np.zeros((96, 96), bool)
    lesion[40:52, 50:62] = True
    scan[lesion] = 1.0
    (raw / "tumor" / "a.png").write_bytes(make_png(scan))
    cv2.imwrite(str(raw / "masks" / "a.png"), lesion.astype(np.uint8) * 255)
    (data / "images/test/tumor").mkdir(parents=True)
    cv2.imwrite(str(data / "images/test/tumor/a.png"), np.round(normalise(scan, 32) * 255).astype(np.uint8))
    (data / "metadata.csv").write_text("source_path,path,label,source_class,group,split,sha256,width,height,format\n"
                                       f"tumor/a.png,images/test/tumor/a.png,tumor,tumor,0,test,{0:064x},96,96,png\n")
    (data / "report.json").write_text(json.dumps({"settings": {"src": str(raw)}}))
    out = tmp_path / "metrics.json"
    assert evaluate_main(["--model", str(handmade_model_dir), "--data", str(data), "--json", str(out),
                          "--masks", str(raw / "masks")]) == 0
    metrics = json.loads(out.read_text())
    # The hand-made heatmap is the scan itself, brightest on the lesion.
    assert metrics["n_masks"] == 1 and metrics["pointing_game"] == 1.0


def test_the_pointing_game_scores_the_heatmaps_the_predictor_makes(tmp_path):
    """A spot at the far corner of an 8 px cell: the single pass's map peaks at the cell's centre, outside it;
    the refined map on it (tests/ml/test_predictor.py)."""
    model_dir = build_handmade_model_dir(tmp_path / "pooled", size=32, pool=8)
    image = np.full((1, 32, 32), 0.1, np.float32)
    image[0, 13:16, 13:16] = 0.9
    scores = [evaluate_arrays(Predictor.from_dir(model_dir, refine_heatmaps=refine), image, np.array([1]),
                              [image[0] > 0.5])[0] for refine in (False, True)]
    assert [s["pointing_game"] for s in scores] == [0.0, 1.0]
    assert scores[0]["roc_auc"] == scores[1]["roc_auc"] and scores[0]["confusion"] == scores[1]["confusion"]


def square_mask(top: int, left: int, side: int = 2, size: int = 32) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[top:top + side, left:left + side] = True
    return mask


def cam(cells: dict[tuple[int, int], float], grid: int = 4, size: int = 32) -> np.ndarray:
    """The predictor's heatmap of a grid×grid map with the given cell values (zero elsewhere)."""
    activations = np.zeros((grid, grid, 1), np.float32)
    for cell, value in cells.items():
        activations[cell] = value
    return unit_range(upsampled_cam(activations, np.ones(1, np.float32), size))


# A 4×4 map on 32 px: cells of 8 px, centres between pixels 3|4, 11|12, 19|20, 27|28.
def test_a_heatmap_points_between_two_cells_that_see_a_tumor_alike():
    """A bilinear map would peak on one of the two centres, outside a tumor that lies between them."""
    heatmap = cam({(1, 1): 1.0, (1, 2): 1.0})
    assert peak_inside(heatmap, square_mask(10, 14, side=4))
    assert not peak_inside(heatmap, square_mask(10, 10, side=4))  # around the left cell's centre
    assert not peak_inside(heatmap, square_mask(10, 18, side=4))  # around the right one's


def test_the_peak_lies_between_two_unequal_cells_nearer_the_stronger():
    peak = np.unravel_index(int(np.argmax(cam({(1, 1): 1.0, (1, 2): 0.6}))), (32, 32))
    # Off the stronger cell's centre (pixels 11|12) towards the weaker, short of the midpoint (15|16).
    assert 10 <= peak[0] <= 13 and 13 <= peak[1] <= 15


def test_the_heatmap_is_zero_where_no_cell_reaches():
    """Bicubic interpolation undershoots around a peak; cut off, it does not lift the rest of the map when scaled."""
    heatmap = cam({(0, 0): 1.0})
    assert heatmap.max() == 1.0 and not heatmap[20:, :].any() and not heatmap[:, 20:].any()


def test_peak_inside_refuses_a_mask_of_another_shape():
    with pytest.raises(ValueError, match=r"^mask shape \(16, 16\) differs from heatmap shape \(32, 32\)$"):
        peak_inside(np.zeros((32, 32), np.float32), np.zeros((16, 16), bool))
