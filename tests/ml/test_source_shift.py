from __future__ import annotations

import numpy as np
import pytest

from ml.decode import decode_bytes
from ml.normalise import normalise, prepare_image
from ml.source_shift import FAMILIES, shifted_file
from tests.builders import make_head_slice

HEAD = make_head_slice(224, seed=5, lesion=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_writes_a_file_the_product_decodes_and_repeats_for_a_seed(family):
    data, name = shifted_file(HEAD, family, seed=1, index=7)
    decoded = decode_bytes(data, name)
    assert decoded.format == ("jpeg" if FAMILIES[family][1] == "jpeg" else "png")
    assert decoded.pixels.ndim == 2 and min(decoded.pixels.shape) >= 64
    assert shifted_file(HEAD, family, seed=1, index=7) == (data, name)


@pytest.mark.parametrize("family", [name for name, (shift, _) in FAMILIES.items() if shift is not None])
def test_draws_differ_between_scans_and_seeds(family):
    first, _ = shifted_file(HEAD, family, seed=1, index=0)
    other_scans = {shifted_file(HEAD, family, seed=1, index=i)[0] for i in range(1, 5)}
    other_seed, _ = shifted_file(HEAD, family, seed=2, index=0)
    assert first not in other_scans and len(other_scans) > 1
    assert other_seed != first


def test_none_keeps_every_8_bit_pixel():
    data, name = shifted_file(HEAD, "none", seed=0, index=0)
    assert np.array_equal(np.round(decode_bytes(data, name).pixels * 255), np.round(HEAD * 255))


def test_each_family_changes_what_it_says():
    sizes = [decode_bytes(*shifted_file(HEAD, "resize", 0, i)).pixels.shape for i in range(20)]
    assert all(128 <= max(s) <= 640 for s in sizes) and min(max(s) for s in sizes) < 224 < max(max(s) for s in sizes)

    framed = decode_bytes(*shifted_file(HEAD, "border", 0, 3)).pixels
    assert framed.shape[0] > 224 * 1.04 and framed.shape[1] > 224 * 1.04
    edge = np.concatenate([framed[0], framed[-1], framed[:, 0], framed[:, -1]])
    assert edge.max() - edge.min() < 1 / 255 + 1e-6  # one uniform frame all round

    cropped = decode_bytes(*shifted_file(HEAD, "crop", 0, 3)).pixels
    assert cropped.shape[0] <= 224 and cropped.shape[1] <= 224 and cropped.size < 224 * 224
    assert cropped.shape[0] > 224 * 0.84 and cropped.shape[1] > 224 * 0.84

    stretched = [decode_bytes(*shifted_file(HEAD, "aspect", 0, i)).pixels.shape for i in range(10)]
    ratios = [w / h for h, w in stretched]
    assert all(0.79 <= r <= 1.26 for r in ratios) and max(abs(r - 1) for r in ratios) > 0.05

    annotated = decode_bytes(*shifted_file(HEAD, "annotate", 0, 3)).pixels
    assert annotated.shape == HEAD.shape and (np.abs(annotated - HEAD) > 0.3).sum() > 50

    windowed = decode_bytes(*shifted_file(HEAD, "contrast", 0, 3)).pixels
    assert windowed.shape == HEAD.shape and np.abs(windowed - HEAD).mean() > 0.01


@pytest.mark.parametrize("family", ["none", "resize", "border", "annotate", "jpeg"])
def test_the_product_undoes_how_a_file_was_stored(family):
    """Framing, size, burnt-in text and compression are what normalisation exists to remove."""
    reference = normalise(HEAD, 128)
    for index in range(3):
        result, _ = prepare_image(*shifted_file(HEAD, family, seed=0, index=index), size=128)
        assert np.abs(result - reference).mean() < 0.045, (family, index)


def test_unknown_family_is_refused_by_name():
    with pytest.raises(ValueError, match=r"^unknown shift family 'blur'; known: none, resize, border, crop, "
                                         r"aspect, contrast, annotate, jpeg, web$"):
        shifted_file(HEAD, "blur", 0, 0)
