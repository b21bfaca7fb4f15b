"""Read a prepared dataset folder (written by `python -m ml prepare`): its metadata and its images."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ml.classes import LABELS

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


def load_pixels(path: str | Path, image_size: int | None = None) -> np.ndarray:
    """One prepared image as its 8-bit pixels, uint8 S×S, resized to image_size when given."""
    pixels = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if pixels is None:
        raise FileNotFoundError(f"{path}: missing or unreadable image")
    if image_size is not None and pixels.shape != (image_size, image_size):
        shrink = pixels.shape[0] > image_size
        pixels = cv2.resize(pixels, (image_size, image_size),
                            interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return pixels


def as_floats(scans: np.ndarray) -> np.ndarray:
    """float32 scans in [0, 1] from either 8-bit codes (uint8) or float32 scans."""
    if scans.dtype == np.uint8:
        return scans.astype(np.float32) / np.float32(255.0)
    return np.asarray(scans, np.float32)


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
