"""How large and how small a scan may be, checked from headers before any pixel is decoded."""
from __future__ import annotations

from ml.errors import RejectedFile

# 25 megapixels (e.g. 5000×5000) is far above any CT or MR slice (512×512 typical) and keeps the
# decoded float32 image near 100 MB, which the 400 MiB screening worker can still afford.
MAX_PIXELS = 25_000_000
# Below this a slice holds too little anatomy to screen; it is also where thumbnails and icons live.
MIN_SIDE = 32


def check_dimensions(name: str, width: int, height: int, *, max_pixels: int = MAX_PIXELS,
                     min_side: int = MIN_SIDE) -> None:
    """Raise RejectedFile when width×height is empty, over `max_pixels`, or under `min_side` a side."""
    if width <= 0 or height <= 0:
        raise RejectedFile(name, f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise RejectedFile(name, f"too many pixels ({width}x{height} = {width * height:,}; the limit "
                                 f"is {max_pixels:,})")
    if min(width, height) < min_side:
        raise RejectedFile(name, f"too small ({width}x{height}; at least {min_side} pixels a side)")
