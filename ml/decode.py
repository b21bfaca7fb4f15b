"""One decoder for every path (upload, training, CLI, tests): file bytes → one float32 channel in [0, 1].

The format is decided by content (ml.sniff), sizes are checked from headers before decoding
(ml.limits), and every way a file can be unusable ends as RejectedFile with a one-line reason that
names the file. No other exception escapes decode_bytes, whatever the bytes.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.dicom import BRAIN_WINDOW, decode_dicom
from ml.errors import RejectedFile
from ml.limits import MAX_PIXELS, MIN_SIDE, check_dimensions
from ml.raster import decode_raster
from ml.sniff import IMAGE_FORMATS, jpeg_size, png_size, sniff_format

# Larger than any single slice could honestly be; refused before reading it into memory.
MAX_FILE_BYTES = 256 * 1024 * 1024

_NOT_IMAGE = {
    "zip": "a ZIP archive",
    "pdf": "a PDF document",
    "gzip": "a gzip archive",
    "html": "an HTML document",
    "xml": "an XML or SVG document",
    "script": "a script",
    "json": "a JSON document",
    "text": "a text file",
}


@dataclass(frozen=True)
class DecodedImage:
    """A decoded slice. `pixels` is float32 H×W in [0, 1]; `width`/`height` are the original size;
    `modality` is the DICOM Modality ("CT", "MR", ...) or None for non-DICOM files; `dicom` holds the
    kept DICOM acquisition fields (never patient data), or None."""

    pixels: np.ndarray
    format: str
    modality: str | None
    width: int
    height: int
    dicom: dict[str, Any] | None = None


def decode_bytes(data: bytes, name: str, *, window: tuple[float, float] | None = None,
                 max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE) -> DecodedImage:
    """Decode one file. `window` is the CT display window as (center, width) in HU, brain (40, 80) by
    default; it only applies to CT DICOM. Raises RejectedFile, and nothing else, for a bad file."""
    window = _checked_window(window)
    try:
        return _decode(bytes(data), name, window, max_pixels, min_side)
    except RejectedFile:
        raise
    except Exception as error:  # a library failing in a way we did not foresee is still a bad file
        detail = (str(error).strip().splitlines() or [""])[0][:160]
        raise RejectedFile(name, f"could not be decoded ({type(error).__name__}: {detail})") from None


def decode_file(path: str | os.PathLike[str], *, window: tuple[float, float] | None = None,
                max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE) -> DecodedImage:
    """Read and decode the file at `path`; an unreadable or oversized file is a RejectedFile too."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise RejectedFile(path.name, f"file too large ({size:,} bytes)")
        data = path.read_bytes()
    except OSError as error:
        raise RejectedFile(path.name, f"cannot read file ({error.strerror or error})") from None
    return decode_bytes(data, path.name, window=window, max_pixels=max_pixels, min_side=min_side)


def _decode(data: bytes, name: str, window: tuple[float, float], max_pixels: int,
            min_side: int) -> DecodedImage:
    if not data:
        raise RejectedFile(name, "empty file")
    fmt = sniff_format(data)
    if fmt not in IMAGE_FORMATS:
        kind = _NOT_IMAGE.get(fmt or "", None)
        raise RejectedFile(name, f"not an image ({kind})" if kind else "not an image (unrecognised content)")
    if fmt == "dicom":
        pixels, modality, fields = decode_dicom(data, name, window=window, max_pixels=max_pixels,
                                                min_side=min_side)
        height, width = pixels.shape
        return DecodedImage(_finished(pixels), "dicom", modality, width, height, fields)
    if fmt in ("png", "jpeg"):
        # Our own header read, so a bomb is refused with its real size before Pillow sees it.
        size = png_size(data) if fmt == "png" else jpeg_size(data)
        if size is None:
            raise RejectedFile(name, f"truncated or corrupt {fmt.upper()} (no image header)")
        check_dimensions(name, *size, max_pixels=max_pixels, min_side=min_side)
    pixels, width, height = decode_raster(data, name, fmt, max_pixels=max_pixels, min_side=min_side)
    return DecodedImage(_finished(pixels), fmt, None, width, height, None)


def _finished(pixels: np.ndarray) -> np.ndarray:
    pixels = np.nan_to_num(np.asarray(pixels, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return np.ascontiguousarray(np.clip(pixels, 0.0, 1.0))


def _checked_window(window: tuple[float, float] | None) -> tuple[float, float]:
    if window is None:
        return BRAIN_WINDOW
    center, width = (float(value) for value in window)
    if not (math.isfinite(center) and math.isfinite(width) and width > 0):
        raise ValueError(f"window must be (center, width) with a finite center and width > 0, "
                         f"got {tuple(window)!r}")
    return center, width
