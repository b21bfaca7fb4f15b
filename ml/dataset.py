"""Read a prepared dataset folder (written by `python -m ml prepare`): its metadata and its images."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ml.classes import LABELS
from ml.pixels import as_floats, resize_square

if TYPE_CHECKING:
    import pandas as pd

METADATA_COLUMNS: tuple[str, ...] = ("source_path", "path", "label", "source_class", "group", "split",
                                     "sha256", "width", "height", "format")
SPLITS: tuple[str, ...] = ("train", "val", "test")


def read_metadata(prepared_dir: str | Path) -> pd.DataFrame:
    """metadata.csv as a DataFrame with the columns of METADATA_COLUMNS, in file order."""
    import pandas as pd  # here: the web process imports this module through ml.train, and needs no pandas

    path = Path(prepared_dir) / "metadata.csv"
    table = pd.read_csv(path, dtype={"source_path": str, "path": str, "label": str, "source_class": str,
                                     "sha256": str, "format": str, "split": str})
    missing = [c for c in METADATA_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {', '.join(missing)}")
    return table


def preparation(prepared_dir: str | Path) -> dict:
    """How a prepared dataset's scans were made, as its report.json records it: the normalisation size
    ("prepared_size") and the CT window ("window", center and width); {} for a folder without a report."""
    report = Path(prepared_dir) / "report.json"
    settings = json.loads(report.read_text()).get("settings", {}) if report.is_file() else {}
    made = {}
    if settings.get("size"):
        made["prepared_size"] = int(settings["size"])
    if settings.get("window"):
        made["window"] = [float(v) for v in settings["window"]]
    return made


def load_pixels(path: str | Path, image_size: int | None = None) -> np.ndarray:
    """One prepared image as its 8-bit pixels, uint8 S×S, resized to image_size when given."""
    pixels = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if pixels is None:
        raise FileNotFoundError(f"{path}: missing or unreadable image")
    return pixels if image_size is None else resize_square(pixels, image_size)


def load_image(path: str | Path, image_size: int | None = None) -> np.ndarray:
    """One prepared image as float32 S×S in [0, 1], resized to image_size when given."""
    return as_floats(load_pixels(path, image_size))


def load_split(prepared_dir: str | Path, split: str, image_size: int | None = None, pixels: bool = False
               ) -> tuple[np.ndarray, np.ndarray]:
    """(X float32 N×S×S×1 in [0, 1], y int8 N) for one split, in metadata order; 1 = tumor. With `pixels`,
    X is the 8-bit pixels (uint8, X / 255 in float32 being the floats): a quarter of the memory."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    prepared_dir = Path(prepared_dir)
    rows = read_metadata(prepared_dir)
    rows = rows[rows["split"] == split]
    load = load_pixels if pixels else load_image
    dtype = np.uint8 if pixels else np.float32
    images = [load(prepared_dir / p, image_size) for p in rows["path"]]
    if images:
        x = np.stack(images)[..., np.newaxis]
    else:
        side = image_size or 0
        x = np.zeros((0, side, side, 1), dtype=dtype)
    y = rows["label"].map(LABELS).to_numpy(dtype=np.int8)
    return x.astype(dtype, copy=False), y
