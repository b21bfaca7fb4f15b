"""Decode ordinary raster images (PNG, JPEG, GIF, TIFF, BMP, WebP) to one float32 channel in [0, 1].

Pillow is used rather than OpenCV because it refuses truncated files (OpenCV's libjpeg fills the
missing part with grey and carries on) and reads every PNG mode, 16-bit included.
"""
from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

from ml.errors import RejectedFile
from ml.limits import check_dimensions

_PILLOW_FORMATS = {"png": "PNG", "jpeg": "JPEG", "gif": "GIF", "tiff": "TIFF", "bmp": "BMP",
                   "webp": "WEBP"}
# ITU-R BT.601 luma, the weights Pillow's own "L" conversion uses.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def decode_raster(data: bytes, name: str, fmt: str, *, max_pixels: int, min_side: int
                  ) -> tuple[np.ndarray, int, int]:
    """Return (pixels float32 H×W in [0, 1], width, height). Colour is reduced to luma; transparent
    pixels are composited over black (the background of a scan); 16-bit samples keep their precision.
    Animated GIF/PNG/WebP and multi-page TIFF are rejected: one file must be one slice."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's DecompressionBombWarning: we check sizes ourselves
        try:
            image = Image.open(io.BytesIO(data), formats=[_PILLOW_FORMATS[fmt]])
        except Image.DecompressionBombError as error:
            raise RejectedFile(name, f"too many pixels ({error})") from None
        except Exception as error:  # Pillow raises many kinds for a corrupt header
            raise RejectedFile(name, f"corrupt {fmt.upper()} header ({_describe(error)})") from None
        width, height = image.size
        check_dimensions(name, width, height, max_pixels=max_pixels, min_side=min_side)
        frames = _frame_count(image, fmt)
        if frames > 1:
            kind = "multi-page TIFF" if fmt == "tiff" else f"animated {fmt.upper()}"
            raise RejectedFile(name, f"{kind} with {frames} frames: upload one slice per file")
        try:
            image.load()
        except Exception as error:
            detail = _describe(error)
            if "truncated" in detail:  # Pillow adds a byte count that varies with the cut
                detail = "the file ends before the image does"
            raise RejectedFile(name, f"truncated or corrupt {fmt.upper()} ({detail})") from None
    return _to_gray(image), width, height


def _frame_count(image: Image.Image, fmt: str) -> int:
    # A JPEG may be an MPO (camera preview frames); its first frame is the picture itself.
    if fmt == "jpeg":
        return 1
    try:
        return int(getattr(image, "n_frames", 1))
    except Exception:
        return 1  # counting frames walks the file; a broken tail shows up again at load()


def _to_gray(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode.startswith("I;16"):
        return np.asarray(image, dtype=np.float32) / 65535.0
    if mode in ("I", "F"):
        return _scale_wide(np.asarray(image), integer=mode == "I")
    if mode == "L":
        return np.asarray(image, dtype=np.float32) / 255.0
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    rgba = np.asarray(image.convert("RGBA" if has_alpha else "RGB"), dtype=np.float32) / 255.0
    gray = rgba[..., :3] @ _LUMA
    if has_alpha:
        gray = gray * rgba[..., 3]
    return np.clip(gray, 0.0, 1.0).astype(np.float32)


def _scale_wide(samples: np.ndarray, *, integer: bool) -> np.ndarray:
    """32-bit integer or float samples: 16-bit range when integers fit it, else their own min..max."""
    values = np.nan_to_num(samples.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(values.min()), float(values.max())
    if integer and low >= 0 and high <= 65535:
        return (values / 65535.0).astype(np.float32)
    if high <= low:
        return np.zeros(values.shape, dtype=np.float32)
    return ((values - low) / (high - low)).astype(np.float32)


def _describe(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:160]
