"""PNG encoding of what is stored for the web: the normalised image, its thumbnail, the heatmap."""
from __future__ import annotations

import cv2
import numpy as np

from ml.pixels import to_uint8

THUMBNAIL_SIZE = 96


def png_bytes(image: np.ndarray) -> bytes:
    """8-bit grayscale PNG of a float image in [0, 1]."""
    ok, encoded = cv2.imencode(".png", to_uint8(image))
    if not ok:
        raise ValueError(f"could not encode an image of shape {np.shape(image)} as PNG")
    return encoded.tobytes()


def thumbnail_png(image: np.ndarray, size: int = THUMBNAIL_SIZE) -> bytes:
    return png_bytes(cv2.resize(np.asarray(image, np.float32), (size, size), interpolation=cv2.INTER_AREA))


def decode_png_codes(data: bytes) -> np.ndarray:
    """A stored 8-bit PNG back to its codes (uint8)."""
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if pixels is None:
        raise ValueError("stored image is not a readable PNG")
    return pixels

