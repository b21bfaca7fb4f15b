"""A synthetic CT set prepares into usable splits: phantoms are independent slices, not neighbours."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ml.prepare import prepare_dataset
from ml.synthetic import generate_dataset


def test_synthetic_set_splits_into_train_val_and_test(tmp_path: Path) -> None:
    generate_dataset(tmp_path / "raw", count=40, seed=3, size=96, workers=1)
    assert json.loads((tmp_path / "raw" / "dataset.json").read_text())["independent_slices"] is True

    report = prepare_dataset(tmp_path / "raw", tmp_path / "prepared", size=64, processes=1)

    metadata = pd.read_csv(tmp_path / "prepared" / "metadata.csv")
    assert set(metadata["split"]) == {"train", "val", "test"}
    assert metadata["group"].nunique() == len(metadata) == 40
    assert report["settings"]["grouping"] == "source declares independent slices (dataset.json): exact copies only"


def test_explicit_threshold_wins_over_the_declaration(tmp_path: Path) -> None:
    generate_dataset(tmp_path / "raw", count=20, seed=4, size=96, workers=1)
    report = prepare_dataset(tmp_path / "raw", tmp_path / "prepared", size=64, processes=1,
                             group_threshold=0.5)
    assert report["settings"]["grouping"] == "thresholds given by the caller"
    assert report["settings"]["group_threshold"] == 0.5
    assert report["near_duplicate_groups"]["groups"] < 20
