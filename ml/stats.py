"""Dataset statistics for the data explorer: plain functions over a prepared dataset folder that return
tables and arrays (no plotting here). Images are streamed, so a full 5,500-image set needs no more
memory than one image plus the running sums."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ml.classes import CLASS_NAMES
from ml.dataset import load_image, read_metadata


def _rows(prepared_dir: str | Path, split: str | None) -> pd.DataFrame:
    rows = read_metadata(prepared_dir)
    return rows if split is None else rows[rows["split"] == split]


def class_counts(prepared_dir: str | Path) -> pd.DataFrame:
    """Long table with columns split, label, source_class, count (one row per non-empty cell)."""
    rows = read_metadata(prepared_dir)
    table = rows.groupby(["split", "label", "source_class"], sort=True).size().rename("count")
    return table.reset_index()


def label_counts(prepared_dir: str | Path, split: str | None = None) -> dict[str, int]:
    """{"no_tumor": n, "tumor": n} over one split, or all of them."""
    counts = _rows(prepared_dir, split)["label"].value_counts()
    return {name: int(counts.get(name, 0)) for name in CLASS_NAMES}


def mean_std_images(prepared_dir: str | Path, split: str | None = None, image_size: int | None = None
                    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{label: (mean image, standard-deviation image)}, float32 S×S, for each label present."""
    prepared_dir = Path(prepared_dir)
    result: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    rows = _rows(prepared_dir, split)
    for name in CLASS_NAMES:
        paths = rows.loc[rows["label"] == name, "path"]
        if paths.empty:
            continue
        total = squares = None
        for path in paths:
            image = load_image(prepared_dir / path, image_size).astype(np.float64)
            total = image if total is None else total + image
            squares = image**2 if squares is None else squares + image**2
        mean = total / len(paths)
        variance = np.maximum(squares / len(paths) - mean**2, 0.0)  # rounding can dip below zero
        result[name] = (mean.astype(np.float32), np.sqrt(variance).astype(np.float32))
    return result


def class_mean_difference(means: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Mean tumor image minus mean no-tumor image (from mean_std_images): where the classes differ
    on average, which also shows shortcuts such as view or sequence."""
    missing = [name for name in CLASS_NAMES if name not in means]
    if missing:
        raise ValueError(f"no images labelled {', '.join(missing)}")
    return (means["tumor"][0] - means["no_tumor"][0]).astype(np.float32)


def samples_per_class(prepared_dir: str | Path, per_class: int = 8, seed: int = 0, split: str | None = None,
                      image_size: int | None = None) -> dict[str, tuple[np.ndarray, list[str]]]:
    """{label: (images N×S×S float32, their paths)}: up to `per_class` images per label, drawn with `seed`."""
    prepared_dir = Path(prepared_dir)
    rows = _rows(prepared_dir, split)
    rng = np.random.default_rng(seed)
    result: dict[str, tuple[np.ndarray, list[str]]] = {}
    for name in CLASS_NAMES:
        paths = rows.loc[rows["label"] == name, "path"].tolist()
        chosen = [paths[i] for i in sorted(rng.choice(len(paths), size=min(per_class, len(paths)),
                                                      replace=False))] if paths else []
        images = [load_image(prepared_dir / p, image_size) for p in chosen]
        side = images[0].shape[0] if images else (image_size or 0)
        result[name] = (np.stack(images) if images else np.zeros((0, side, side), np.float32), chosen)
    return result
