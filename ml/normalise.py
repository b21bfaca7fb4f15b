"""One normalisation for every source, so that what differs between scanners, sites and file habits
(image size, borders, burnt-in text, empty margins, where the head sits, overall brightness) does not
reach the model: crop to the head, pad to a square, resize, then scale intensities by robust percentiles.
"""
from __future__ import annotations

import cv2
import numpy as np

from ml.decode import DecodedImage, decode_bytes
from ml.pixels import codes_as_input, to_uint8

# The head is found on a copy at most this large: plenty for a bounding box, and fast.
_MASK_SIDE = 256
# Margin kept around the head, as a fraction of its larger side, so it never touches the border.
_MARGIN = 0.04
# Intensities: the 1st..99th percentile of the head's pixels maps to 0..1.
PERCENTILES = (1.0, 99.0)


def normalise(pixels: np.ndarray, size: int = 224) -> np.ndarray:
    """Crop `pixels` (float H×W in [0, 1]) to the head, pad to a square keeping the aspect ratio,
    resize to size×size and scale intensities robustly. Returns float32 size×size in [0, 1]."""
    image = np.asarray(pixels, dtype=np.float32)
    if image.ndim != 2 or min(image.shape) < 2:
        raise ValueError(f"normalise expects a 2-D image, got shape {image.shape}")
    if size < 8:
        raise ValueError(f"size must be at least 8, got {size}")
    image = np.nan_to_num(image, nan=0.0, posinf=1.0, neginf=0.0)
    box, mask = head_box(image)
    scaled = scale_intensity(image, mask)
    top, bottom, left, right = _whole_pixels(box, image.shape)
    inside = np.zeros_like(scaled)
    inside[top:bottom, left:right] = scaled[top:bottom, left:right]  # frames and text beyond the head go
    return np.clip(square_resample(inside, box, size, margin=_MARGIN), 0.0, 1.0).astype(np.float32)


def normalise_like(array: np.ndarray, pixels: np.ndarray, size: int = 224) -> np.ndarray:
    """Carry `array` (on the same grid as `pixels`: a tumor mask, an overlay) through exactly the
    geometry that normalise(pixels, size) applies (head box, square, resampling), without the
    intensity scaling. Returns float32 size×size; threshold it again for a mask."""
    image = np.nan_to_num(np.asarray(pixels, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    values = np.asarray(array, dtype=np.float32)
    if values.shape != image.shape:
        raise ValueError(f"array shape {values.shape} differs from the image's {image.shape}")
    box, _ = head_box(image)
    top, bottom, left, right = _whole_pixels(box, image.shape)
    inside = np.zeros_like(values)
    inside[top:bottom, left:right] = values[top:bottom, left:right]
    return square_resample(inside, box, size, margin=_MARGIN)


def prepare_image(data: bytes, name: str, size: int = 224,
                  window: tuple[float, float] | None = None) -> tuple[np.ndarray, DecodedImage]:
    """Decode one file and normalise it: (size×size float32 in [0, 1], the DecodedImage)."""
    decoded = decode_bytes(data, name, window=window)
    return normalise(decoded.pixels, size), decoded


def prepare_for_model(data: bytes, name: str, model_size: int, prepared_size: int | None = None,
                      window: tuple[float, float] | None = None) -> tuple[np.ndarray, DecodedImage]:
    """Decode one file and bring it to a model's input (model_size×model_size float32) as its training
    scans were: normalised at the size its dataset was prepared at, stored as 8 bits, resized to the
    model's size (ml.dataset.load_pixels). Normalising straight at the model's size instead, what happens
    without `prepared_size`, cost a brain-mri model six of 601 tumors and a synthetic one half its
    specificity (docs/MODEL.md, "Ways into the network")."""
    if prepared_size is None:
        return prepare_image(data, name, model_size, window)
    normalised, decoded = prepare_image(data, name, prepared_size, window)
    return codes_as_input(to_uint8(normalised), model_size), decoded


def head_box(image: np.ndarray) -> tuple[tuple[float, float, float, float], np.ndarray]:
    """Bounding box (top, bottom, left, right) of the head, in pixel-edge coordinates with sub-pixel
    precision, and its mask at full resolution.

    The head is the largest foreground region: uniform frames are trimmed, the image is thresholded
    at half its Otsu level (low enough to keep dark brain tissue attached to the bright rim), a
    morphological opening removes thin lines, text and speckle, and a closing joins the head's parts.
    An image with no clear foreground keeps its full extent."""
    height, width = image.shape
    top, bottom, left, right = trim_uniform_margins(image)
    region = image[top:bottom, left:right]
    # One working size for every input, so that the same head gives the same mask whatever its
    # resolution (a file and its resized copy must crop alike).
    scale = _MASK_SIDE / max(region.shape)
    small = cv2.resize(region, (max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale))),
                       interpolation=cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR)
    mask_small = _largest_region(small)
    full_mask = np.zeros((height, width), dtype=bool)
    if mask_small is None:
        full_mask[top:bottom, left:right] = True
        return (float(top), float(bottom), float(left), float(right)), full_mask
    region_mask = cv2.resize(mask_small.astype(np.uint8), (region.shape[1], region.shape[0]),
                             interpolation=cv2.INTER_NEAREST).astype(bool)
    full_mask[top:bottom, left:right] = region_mask
    rows, cols = np.flatnonzero(mask_small.any(axis=1)), np.flatnonzero(mask_small.any(axis=0))
    scale_y, scale_x = small.shape[0] / region.shape[0], small.shape[1] / region.shape[1]
    return (top + rows[0] / scale_y, top + (rows[-1] + 1) / scale_y,
            left + cols[0] / scale_x, left + (cols[-1] + 1) / scale_x), full_mask


def square_resample(image: np.ndarray, box: tuple[float, float, float, float], size: int,
                    margin: float = 0.0) -> np.ndarray:
    """The square of side max(box height, box width)·(1 + 2·margin) centred on `box`, resampled to
    size×size; what lies outside the image is 0.

    Placement is sub-pixel: cropping to whole pixels moved the same head by up to a pixel between a
    file and its resized copy, which at the sharp edge of the skull cost as much similarity as a
    different slice. Shrinking goes by area averaging (cv2.INTER_AREA) to within a factor of two, then
    a Gaussian anti-alias and a bilinear affine warp place the square exactly."""
    top, bottom, left, right = box
    height, width = image.shape
    side = max(bottom - top, right - left) * (1 + 2 * margin)
    centre_y, centre_x = (top + bottom) / 2, (left + right) / 2
    y0, y1 = max(0, int(np.floor(centre_y - side / 2))), min(height, int(np.ceil(centre_y + side / 2)))
    x0, x1 = max(0, int(np.floor(centre_x - side / 2))), min(width, int(np.ceil(centre_x + side / 2)))
    region = image[y0:y1, x0:x1]
    centre_y, centre_x = centre_y - y0, centre_x - x0
    factor = side / size  # source pixels per output pixel
    shrink_y = shrink_x = 1.0
    if factor > 2:
        new_height = max(1, round(region.shape[0] * 2 / factor))
        new_width = max(1, round(region.shape[1] * 2 / factor))
        shrink_y, shrink_x = new_height / region.shape[0], new_width / region.shape[1]
        region = cv2.resize(region, (new_width, new_height), interpolation=cv2.INTER_AREA)
    step_y, step_x = factor * shrink_y, factor * shrink_x
    sigma_y, sigma_x = max(0.0, (step_y - 1) / 2), max(0.0, (step_x - 1) / 2)
    if max(sigma_y, sigma_x) > 0.05:
        region = cv2.GaussianBlur(region, (0, 0), sigmaX=max(sigma_x, 1e-3), sigmaY=max(sigma_y, 1e-3))
    # Output pixel u has its centre at u + 0.5; OpenCV samples source pixel i at coordinate i.
    matrix = np.array([[step_x, 0.0, centre_x * shrink_x + (0.5 - size / 2) * step_x - 0.5],
                       [0.0, step_y, centre_y * shrink_y + (0.5 - size / 2) * step_y - 0.5]])
    return cv2.warpAffine(np.ascontiguousarray(region, dtype=np.float32), matrix, (size, size),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0.0)


def _whole_pixels(box: tuple[float, float, float, float], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    top, bottom, left, right = box
    return (max(0, int(np.floor(top))), min(shape[0], int(np.ceil(bottom))),
            max(0, int(np.floor(left))), min(shape[1], int(np.ceil(right))))


def trim_uniform_margins(image: np.ndarray, tolerance: float = 0.02) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) after removing edge rows and columns that are one flat value (a
    frame or padding of any brightness); never trims the image to under half its size a side."""
    height, width = image.shape
    top, bottom, left, right = 0, height, 0, width

    def flat(line: np.ndarray) -> bool:
        return float(line.max() - line.min()) <= tolerance

    # Repeat until nothing changes: a frame's sides only become flat once the other sides are gone.
    while True:
        before = (top, bottom, left, right)
        while bottom - top > height // 2 and flat(image[top, left:right]):
            top += 1
        while bottom - top > height // 2 and flat(image[bottom - 1, left:right]):
            bottom -= 1
        while right - left > width // 2 and flat(image[top:bottom, left]):
            left += 1
        while right - left > width // 2 and flat(image[top:bottom, right - 1]):
            right -= 1
        if (top, bottom, left, right) == before:
            return top, bottom, left, right


def _largest_region(small: np.ndarray) -> np.ndarray | None:
    side = min(small.shape)
    gray = np.round(cv2.GaussianBlur(small, (3, 3), 0) * 255).astype(np.uint8)
    if int(gray.max()) - int(gray.min()) < 8:
        return None  # a blank image: nothing to crop to
    otsu, _ = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    low = float(np.percentile(gray, 1))
    mask = (gray > low + (otsu - low) / 2).astype(np.uint8)
    opening_side, closing_side = max(3, round(side * 0.02)), max(3, round(side * 0.05))
    # OpenCV treats outside the image as foreground when eroding, so a closing would glue anything
    # near the border to it; a zero frame as wide as the kernel keeps the border neutral.
    mask = cv2.copyMakeBorder(mask, *(closing_side,) * 4, cv2.BORDER_CONSTANT, value=0)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _ellipse(opening_side))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _ellipse(closing_side))
    mask = mask[closing_side:-closing_side, closing_side:-closing_side]
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[largest, cv2.CC_STAT_AREA] < 0.01 * small.size:
        return None
    return labels == largest


def _ellipse(diameter: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (diameter, diameter))


def scale_intensity(image: np.ndarray, mask: np.ndarray, percentiles: tuple[float, float] = PERCENTILES
                    ) -> np.ndarray:
    """Map the given percentiles of the pixels under `mask` (all pixels when it is empty) to 0..1,
    clipped; a flat image becomes all zeros."""
    values = image[mask] if mask.any() else image.ravel()
    low, high = (float(v) for v in np.percentile(values, percentiles))
    if high - low < 1e-6:
        low, high = float(values.min()), float(values.max())
    if high - low < 1e-6:
        return np.zeros_like(image, dtype=np.float32)
    return np.clip((image - low) / (high - low), 0.0, 1.0).astype(np.float32)
