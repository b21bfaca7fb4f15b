from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from ml.commands.predict import main as predict_main
from ml.errors import RejectedFile
from ml.normalise import prepare_image
from ml.predictor import Predictor
from tests.builders import make_head_slice, make_png
from tests.model_fixtures import build_handmade_model_dir


@pytest.fixture
def scans(tmp_path):
    paths = []
    for seed, lesion in ((1, True), (2, False)):
        path = tmp_path / f"scan{seed}.png"
        path.write_bytes(make_png(make_head_slice(96, seed, lesion=lesion)))
        paths.append(path)
    return paths


def expected_probability(model_dir, path) -> float:
    image, _ = prepare_image(path.read_bytes(), path.name, 32)
    return Predictor.from_dir(model_dir).predict(image[None])[0].probability


def test_every_file_predicted_exits_zero(handmade_model_dir, scans, capsys):
    assert predict_main(["--model", str(handmade_model_dir), *map(str, scans), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["file"] for line in lines] == [str(p) for p in scans]
    for line, path in zip(lines, scans):
        assert line["probability"] == pytest.approx(expected_probability(handmade_model_dir, path), abs=1e-6)
        assert line["label"] == ("tumor" if line["probability"] >= 0.5 else "no_tumor")
        assert line["needs_review"] == (abs(line["probability"] - 0.5) <= 0.1)
        assert line["heatmap"] is None


def test_a_file_reaches_the_model_as_its_training_scans_did(tmp_path, scans, capsys):
    # The model's training set was prepared at 64 px (8-bit PNGs) and read at 32 by area averaging.
    model = build_handmade_model_dir(tmp_path / "model", size=32, prepared_size=64)
    assert predict_main(["--model", str(model), *map(str, scans), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for line, path in zip(lines, scans):
        normalised, _ = prepare_image(path.read_bytes(), path.name, 64)
        stored = np.round(normalised * 255).astype(np.uint8)
        read = cv2.resize(stored, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        assert line["probability"] == pytest.approx(Predictor.from_dir(model).predict(read[None])[0].probability,
                                                    abs=1e-6)
        assert line["probability"] != pytest.approx(expected_probability(model, path), abs=1e-4)  # not straight


def test_a_bad_file_gets_its_reason_and_the_rest_still_run(handmade_model_dir, scans, tmp_path, capsys):
    bad = tmp_path / "report.pdf"
    bad.write_bytes(b"%PDF-1.4 not a scan")
    missing = tmp_path / "gone.png"
    code = predict_main(["--model", str(handmade_model_dir), str(scans[0]), str(bad), str(missing), str(scans[1])])
    assert code == 1
    lines = capsys.readouterr().out.splitlines()
    with pytest.raises(RejectedFile) as rejection:
        prepare_image(bad.read_bytes(), bad.name, 32)
    assert lines[1] == f"{bad}: error: {rejection.value.reason}"
    assert lines[2] == f"{missing}: error: cannot read file (No such file or directory)"
    for line, path in ((lines[0], scans[0]), (lines[3], scans[1])):
        assert line.startswith(f"{path}: ") and " p=" in line


def test_heatmaps_are_written_per_file(handmade_model_dir, scans, tmp_path, capsys):
    folder = tmp_path / "heatmaps"
    assert predict_main(["--model", str(handmade_model_dir), *map(str, scans), "--heatmaps", str(folder),
                         "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for line in lines:
        overlay = cv2.imread(line["heatmap"])
        assert overlay.shape == (32, 32, 3)
    assert sorted(p.name for p in folder.iterdir()) == ["scan1.heatmap.png", "scan2.heatmap.png"]


def test_a_missing_model_is_reported(tmp_path, scans, capsys):
    assert predict_main(["--model", str(tmp_path / "nowhere"), str(scans[0])]) == 2
    assert capsys.readouterr().err.startswith(f"error: cannot load model from {tmp_path / 'nowhere'}:")


def test_refined_heatmaps_change_the_map_not_the_probability(tmp_path, scans, capsys):
    model_dir = build_handmade_model_dir(tmp_path / "pooled", size=32, pool=8)  # a 4×4 map: cells of 8 px
    results = {}
    for refine in ([], ["--refine-heatmaps"]):
        folder = tmp_path / f"heatmaps{len(refine)}"
        assert predict_main(["--model", str(model_dir), *map(str, scans), "--heatmaps", str(folder), "--json",
                             *refine]) == 0
        results[bool(refine)] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for single, refined in zip(results[False], results[True]):
        assert refined["probability"] == single["probability"] and refined["label"] == single["label"]
        assert not np.array_equal(cv2.imread(refined["heatmap"]), cv2.imread(single["heatmap"]))
