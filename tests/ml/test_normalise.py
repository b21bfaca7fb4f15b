from __future__ import annotations

import cv2
import numpy as np
import pytest

from ml.normalise import (head_box, normalise, normalise_like, prepare_image, square_resample,
                          trim_uniform_margins)
from tests.builders import make_head_slice, make_jpeg, make_png

HEAD = make_head_slice(256, seed=3, lesion=True)


def pad(image: np.ndarray, top: int, bottom: int, left: int, right: int, value: float = 0.0) -> np.ndarray:
    return np.pad(image, ((top, bottom), (left, right)), constant_values=value)


def with_text(image: np.ndarray) -> np.ndarray:
    """`image` in a 24-pixel margin with scanner-style annotations in two corners."""
    canvas = np.round(pad(image, 24, 24, 24, 24) * 255).astype(np.uint8)
    height, width = canvas.shape
    cv2.putText(canvas, "L  R  2024-01-01", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 255, 1)
    cv2.putText(canvas, "W:80 L:40", (width - 80, height - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 255, 1)
    return canvas.astype(np.float32) / 255


VARIANTS = {
    "black margin": pad(HEAD, 60, 60, 60, 60),
    "white frame around a margin": pad(pad(HEAD, 20, 20, 20, 20), 6, 6, 6, 6, value=1.0),
    "grey letterbox": pad(HEAD, 30, 30, 10, 10, value=0.5),
    "shifted into a corner": pad(HEAD, 0, 80, 90, 0),
    "downscaled": cv2.resize(HEAD, (150, 150), interpolation=cv2.INTER_AREA),
    "upscaled": cv2.resize(HEAD, (420, 420), interpolation=cv2.INTER_LINEAR),
    "brighter, lower contrast": np.clip(HEAD * 0.6 + 0.2, 0, 1),
    "burnt-in text": with_text(HEAD),
}


def test_output_is_square_float_in_unit_range():
    result = normalise(pad(HEAD, 0, 0, 0, 100), 64)
    assert result.shape == (64, 64) and result.dtype == np.float32
    assert result.min() >= 0.0 and result.max() <= 1.0


@pytest.mark.parametrize("name", VARIANTS)
def test_the_same_head_normalises_alike_whatever_the_framing(name):
    reference = normalise(HEAD, 128)
    result = normalise(VARIANTS[name], 128)
    # Downscaling loses detail at the phantom's sharp edges: that, not the crop, sets these bounds
    # (two different heads differ by more than 0.1; see below).
    assert np.abs(result - reference).mean() < 0.045
    assert np.corrcoef(result.ravel(), reference.ravel())[0, 1] > 0.92


def test_different_heads_stay_different():
    reference = normalise(HEAD, 128)
    other = normalise(make_head_slice(256, seed=4, lesion=True), 128)
    assert np.abs(other - reference).mean() > 0.1


def test_crop_keeps_the_aspect_ratio_of_a_wide_head():
    wide = cv2.resize(HEAD, (384, 192), interpolation=cv2.INTER_AREA)  # twice as wide as tall
    result = normalise(pad(wide, 40, 40, 40, 40), 128)
    rows, cols = np.flatnonzero(result.max(axis=1) > 0.3), np.flatnonzero(result.max(axis=0) > 0.3)
    aspect = (cols[-1] - cols[0]) / (rows[-1] - rows[0])
    original = normalise(wide, 128)
    rows0, cols0 = np.flatnonzero(original.max(axis=1) > 0.3), np.flatnonzero(original.max(axis=0) > 0.3)
    assert aspect == pytest.approx((cols0[-1] - cols0[0]) / (rows0[-1] - rows0[0]), rel=0.05)
    assert aspect > 1.6


def test_head_box_finds_the_head_and_ignores_a_white_frame_and_text():
    framed = pad(with_text(HEAD), 10, 10, 30, 30)
    framed[:2, :] = framed[-2:, :] = 1.0
    framed[:, :2] = framed[:, -2:] = 1.0
    (top, bottom, left, right), mask = head_box(framed)
    (t0, b0, l0, r0), _ = head_box(HEAD)
    assert abs(top - (t0 + 34)) <= 3 and abs(bottom - (b0 + 34)) <= 3
    assert abs(left - (l0 + 54)) <= 3 and abs(right - (r0 + 54)) <= 3
    assert mask.shape == framed.shape and mask[int(top):int(bottom), int(left):int(right)].mean() > 0.5


def test_trim_uniform_margins_removes_frames_of_any_brightness():
    framed = pad(pad(HEAD, 5, 5, 7, 7, value=0.0), 3, 3, 3, 3, value=1.0)
    top, bottom, left, right = trim_uniform_margins(framed)
    inner = framed[top:bottom, left:right]
    assert inner.shape[0] <= HEAD.shape[0] and inner.shape[1] <= HEAD.shape[1]
    assert inner.shape[0] >= HEAD.shape[0] - 40  # only the flat background around the head went


def test_blank_image_gives_zeros_rather_than_an_error():
    assert not normalise(np.full((100, 80), 0.3, np.float32), 32).any()


def test_square_resample_centres_the_box_and_keeps_its_aspect():
    image = np.zeros((100, 100), np.float32)
    image[30:50, 10:90] = 1.0  # an 80×20 bar
    square = square_resample(image, (30.0, 50.0, 10.0, 90.0), 40)
    assert square.shape == (40, 40)
    rows = np.flatnonzero(square.max(axis=1) > 0.5)
    assert (rows[0], rows[-1]) == (15, 24) and square[:, 0].max() > 0.5  # 10 rows tall, full width


def test_square_resample_places_a_box_with_subpixel_precision():
    image = np.zeros((64, 64), np.float32)
    image[20:44, 20:44] = 1.0
    shifted = cv2.warpAffine(image, np.float32([[1, 0, 0.5], [0, 1, 0.5]]), (64, 64))  # half a pixel
    a = square_resample(image, (20.0, 44.0, 20.0, 44.0), 32, margin=0.1)
    followed = square_resample(shifted, (20.5, 44.5, 20.5, 44.5), 32, margin=0.1)
    rounded = square_resample(shifted, (20.0, 44.0, 20.0, 44.0), 32, margin=0.1)
    assert np.abs(a - followed).mean() < 0.5 * np.abs(a - rounded).mean()


def test_normalise_refuses_a_colour_array():
    with pytest.raises(ValueError) as caught:
        normalise(np.zeros((10, 10, 3)), 32)
    assert str(caught.value) == "normalise expects a 2-D image, got shape (10, 10, 3)"


def test_prepare_image_decodes_and_normalises_any_format_alike():
    from_png, decoded = prepare_image(make_png(HEAD, "RGB"), "a.png", size=96)
    from_jpeg, _ = prepare_image(make_jpeg(pad(HEAD, 50, 50, 50, 50)), "b.jpg", size=96)
    assert decoded.format == "png" and (decoded.width, decoded.height) == (256, 256)
    assert from_png.shape == (96, 96)
    assert np.abs(from_png - from_jpeg).mean() < 0.03


def test_normalise_like_carries_a_mask_onto_the_normalised_image():
    canvas = pad(HEAD, 40, 10, 70, 0)
    lesion = canvas > 0.85  # the lesion (and skull) pixels
    normalised = normalise(canvas, 96)
    carried = normalise_like(lesion.astype(np.float32), canvas, 96) >= 0.5
    assert carried.shape == (96, 96) and carried.any()
    assert normalised[carried].mean() > normalised[~carried].mean() + 0.3
    with pytest.raises(ValueError) as caught:
        normalise_like(np.zeros((3, 3)), canvas, 96)
    assert str(caught.value) == "array shape (3, 3) differs from the image's (306, 326)"
