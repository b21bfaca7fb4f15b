"""Re-render a slice the way another source might have stored it: a proxy for data from elsewhere.

The product is judged on slices collected from the web — varied size, borders, crops, compression —
which cannot be seen here. What can be measured is how far the model's answers move when the slices
it was tested on are re-stored in those ways and sent through the product's whole path again (file
bytes → decode → normalise → predict). Each family below changes one habit of a source, `web` several
at once; every draw depends only on the seed and the scan's index, so a run repeats exactly.

These are not new images: they say nothing about other scanners, sequences or patients, only about the
habits of the file. See bench/bench_source_shift.py.
"""
from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

Shift = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _as_uint8(pixels: np.ndarray) -> np.ndarray:
    return np.round(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8)


def resize(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A larger or smaller copy: the longer side drawn from 128..640 px."""
    long_side = int(rng.integers(128, 641))
    scale = long_side / max(pixels.shape)
    width = max(8, round(pixels.shape[1] * scale))
    height = max(8, round(pixels.shape[0] * scale))
    return cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def border(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A uniform frame (black, grey or white), 2–25 % of the side on each edge, not the same on all four."""
    height, width = pixels.shape
    top, bottom = (int(rng.uniform(0.02, 0.25) * height) for _ in range(2))
    left, right = (int(rng.uniform(0.02, 0.25) * width) for _ in range(2))
    value = float(rng.choice([0.0, 0.5, 1.0]))
    return cv2.copyMakeBorder(pixels, top, bottom, left, right, cv2.BORDER_CONSTANT, value=value)


def crop(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Up to 8 % cut from each edge: a screenshot or a tighter frame that may clip the skull."""
    height, width = pixels.shape
    top, bottom = (int(rng.uniform(0.0, 0.08) * height) for _ in range(2))
    left, right = (int(rng.uniform(0.0, 0.08) * width) for _ in range(2))
    return pixels[top:height - bottom, left:width - right]


def aspect(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One axis stretched by 0.8–1.25: an image saved at the wrong aspect ratio."""
    factor = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
    height, width = pixels.shape
    if rng.random() < 0.5:
        return cv2.resize(pixels, (max(8, round(width * factor)), height), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(pixels, (width, max(8, round(height * factor))), interpolation=cv2.INTER_LINEAR)


def contrast(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another display mapping: gamma 0.6–1.6, then the range squeezed to 70–100 % and shifted."""
    gamma = float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
    span = float(rng.uniform(0.7, 1.0))
    offset = float(rng.uniform(0.0, 1.0 - span))
    return offset + span * np.power(np.clip(pixels, 0.0, 1.0), gamma)


def annotate(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Burnt-in text in two corners and a scale bar, as on a figure taken from a report or a web page."""
    image = _as_uint8(pixels)
    height, width = image.shape
    scale = max(height, width) / 512.0
    colour = int(rng.choice([200, 255]))
    thickness = max(1, round(2 * scale))
    label = f"L  {int(rng.integers(1, 40))}/{int(rng.integers(40, 60))}"
    cv2.putText(image, label, (round(8 * scale), round(28 * scale)),
                cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, colour, thickness)
    cv2.putText(image, "R", (width - round(30 * scale), height - round(12 * scale)),
                cv2.FONT_HERSHEY_SIMPLEX, 0.9 * scale, colour, thickness)
    bar_y = height - round(20 * scale)
    cv2.line(image, (round(10 * scale), bar_y), (round(90 * scale), bar_y), colour, thickness)
    return image.astype(np.float32) / 255.0


def web(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Several habits at once, each with probability one half, in the order a file would gather them."""
    for shift in (crop, aspect, contrast, annotate, border, resize):
        if rng.random() < 0.5:
            pixels = shift(pixels, rng)
    return pixels


# Family name → (how the pixels change, or None; how the file is stored: png, or jpeg at a quality
# drawn from JPEG_QUALITY).
FAMILIES: dict[str, tuple[Shift | None, str]] = {
    "none": (None, "png"),
    "resize": (resize, "png"),
    "border": (border, "png"),
    "crop": (crop, "png"),
    "aspect": (aspect, "png"),
    "contrast": (contrast, "png"),
    "annotate": (annotate, "png"),
    "jpeg": (None, "jpeg"),
    "web": (web, "jpeg"),
}
JPEG_QUALITY = (35, 85)


def shifted_file(pixels: np.ndarray, family: str, seed: int, index: int) -> tuple[bytes, str]:
    """`pixels` (float H×W in [0, 1]) re-stored as family `family` would: (file bytes, file name).

    The draw depends on (seed, family, index) only, so one scan shifts the same way in every run."""
    if family not in FAMILIES:
        raise ValueError(f"unknown shift family {family!r}; known: {', '.join(FAMILIES)}")
    shift, storage = FAMILIES[family]
    rng = np.random.default_rng([seed, list(FAMILIES).index(family), index])
    shifted = shift(np.asarray(pixels, np.float32), rng) if shift is not None else pixels
    image = _as_uint8(shifted)
    if storage == "jpeg":
        quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        name = f"{index}.jpg"
    else:
        ok, encoded = cv2.imencode(".png", image)
        name = f"{index}.png"
    if not ok:
        raise RuntimeError(f"could not encode scan {index} as {storage}")
    return encoded.tobytes(), name
