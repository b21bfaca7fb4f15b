"""Scans as prepared datasets store them: 8-bit codes, and square resizing to a model's input.

Kept apart from ml.normalise (which pulls in every decoder) so that ml.dataset, which the web process
imports through ml.train, stays light.
"""
from __future__ import annotations

import cv2
import numpy as np


def to_uint8(image: np.ndarray) -> np.ndarray:
    """A float image in [0, 1] as 8-bit codes, rounded to nearest (what prepare writes as PNG)."""
    return np.clip(np.rint(np.asarray(image, np.float32) * 255.0), 0, 255).astype(np.uint8)


def as_floats(scans: np.ndarray) -> np.ndarray:
    """float32 scans in [0, 1] from either 8-bit codes (uint8) or float32 scans."""
    if scans.dtype == np.uint8:
        return scans.astype(np.float32) / np.float32(255.0)
    return np.asarray(scans, np.float32)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a square image (8-bit codes or floats) to size×size: area averaging down, bilinear up."""
    if image.shape == (size, size):
        return image
    interpolation = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def codes_as_input(codes: np.ndarray, size: int) -> np.ndarray:
    """8-bit codes (a prepared PNG's, a stored scan's) as a model's float32 input at size×size: resized as
    codes, then scaled, which is how training reads a prepared dataset (ml.dataset.load_image)."""
    return as_floats(resize_square(codes, size))
