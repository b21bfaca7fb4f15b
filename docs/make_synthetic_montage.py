"""Draw docs/synthetic_montage.png: synthetic slices from `ml.synthetic`, tumor and no tumor labelled.

Each tumor slice is shown twice, as generated and with the outline of its true mask in red, so that the
lesion can be found and judged. Run from the repository root:

    .venv/bin/python docs/make_synthetic_montage.py [--seed 0] [--out docs/synthetic_montage.png]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml.synthetic import slice_seed, synth_slice  # noqa: E402

TILE = 256
LABEL_BAR = 22


def _tile(image: np.ndarray, caption: str, outline: np.ndarray | None = None) -> np.ndarray:
    tile = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if outline is not None:
        contours, _ = cv2.findContours(outline, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(tile, contours, -1, (0, 0, 255), 1)
    bar = np.full((LABEL_BAR, tile.shape[1], 3), 32, np.uint8)
    cv2.putText(bar, caption, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([bar, tile])


def montage(seed: int, columns: int = 6, rows: int = 4) -> np.ndarray:
    """Rows alternate: tumor slices (generated, then outlined) and slices without a tumor."""
    tiles = []
    index = 0
    while len(tiles) < columns * rows:
        with_tumor = index % 3 != 2
        image, mask, params = synth_slice(slice_seed(seed, index), TILE, with_tumor)
        level = params.anatomy.level
        if params.lesion is None:
            tiles.append(_tile(image, f"no tumor  ({level}, {params.acquisition.filter})"))
        else:
            lesion = params.lesion
            tiles.append(_tile(image, f"tumor  {lesion.kind} {lesion.contrast_hu:+.0f} HU"))
            oedema = " +oedema" if lesion.oedema else ""
            tiles.append(_tile(image, f"outline  d={lesion.diameter_px:.0f}px{oedema}", mask))
        index += 1
    tiles = tiles[: columns * rows]
    grid = [np.hstack(tiles[r * columns:(r + 1) * columns]) for r in range(rows)]
    return np.vstack(grid)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).with_name("synthetic_montage.png")))
    args = parser.parse_args()
    image = montage(args.seed)
    cv2.imwrite(args.out, image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
