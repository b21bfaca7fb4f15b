from __future__ import annotations

import numpy as np
import pytest

from ml.phantom import LEVELS, HeadPhantom, add_lesion, head_phantom

SIZE = 256


@pytest.fixture(scope="module")
def phantoms() -> list[HeadPhantom]:
    return [head_phantom(np.random.default_rng(seed), SIZE) for seed in range(12)]


def test_head_has_skull_brain_and_csf_in_plausible_hounsfield_units(phantoms: list[HeadPhantom]) -> None:
    for phantom in phantoms:
        assert phantom.hu.shape == (SIZE, SIZE) and phantom.hu.dtype == np.float32
        assert not (phantom.brain_mask & ~phantom.head_mask).any()
        assert float(phantom.hu[~phantom.head_mask].max()) == -1000.0
        brain = phantom.hu[phantom.brain_mask]
        assert 18.0 < float(np.median(brain)) < 42.0
        assert (brain > 100.0).mean() < 0.02  # only partial volume with the inner table, and calcifications
        skull = phantom.head_mask & ~phantom.brain_mask & (phantom.bone_fraction > 0.99)
        assert 700.0 < float(np.median(phantom.hu[skull])) < 1700.0
        # Below the vertex the ventricles show, filled with CSF, darker than brain tissue.
        if phantom.anatomy.level != "vertex":
            assert phantom.ventricle_mask.sum() > 50
            assert float(np.median(phantom.hu[phantom.ventricle_mask])) < float(np.median(brain)) - 10.0


def test_head_stays_inside_the_scanned_circle(phantoms: list[HeadPhantom]) -> None:
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    outside = np.hypot(xs - (SIZE - 1) / 2, ys - (SIZE - 1) / 2) > SIZE / 2 - 2
    for phantom in phantoms:
        assert not (phantom.head_mask & outside).any()


def test_anatomy_varies_between_heads(phantoms: list[HeadPhantom]) -> None:
    anatomies = [phantom.anatomy for phantom in phantoms]
    assert len({round(a.semi_axes[1]) for a in anatomies}) > 4
    assert len({round(a.rotation_deg) for a in anatomies}) > 4
    assert {a.level for a in anatomies} <= set(LEVELS) and len({a.level for a in anatomies}) > 1
    brain_areas = {int(phantom.brain_mask.sum()) for phantom in phantoms}
    assert len(brain_areas) == len(phantoms)


def test_lesion_mask_lies_in_the_brain_outside_the_ventricles(phantoms: list[HeadPhantom]) -> None:
    for seed, phantom in enumerate(phantoms):
        with_lesion, mask, lesion = add_lesion(np.random.default_rng(seed), phantom)
        assert mask.dtype == bool and mask.any()
        assert not (mask & ~phantom.brain_mask).any()
        assert not (mask & phantom.ventricle_mask).any()
        assert lesion.area_px == int(mask.sum())
        ys, xs = np.nonzero(mask)
        assert lesion.centre == pytest.approx((xs.mean(), ys.mean()), abs=0.01)
        # The head outside the lesion's neighbourhood is untouched.
        changed = np.abs(with_lesion.hu - phantom.hu) > 0.01
        assert changed[mask].mean() > 0.9
        assert not changed[~phantom.brain_mask].any()


def test_lesion_contrast_follows_its_kind(phantoms: list[HeadPhantom]) -> None:
    # Necrotic cores and calcifications must not turn a lesion into the opposite kind or into nothing.
    for seed in range(200):
        phantom = phantoms[seed % len(phantoms)]
        _, _, lesion = add_lesion(np.random.default_rng(100 + seed), phantom)
        if lesion.kind == "hyper":
            assert lesion.contrast_hu > 3.0
        else:
            assert lesion.contrast_hu < -3.0


def test_lesions_range_from_a_few_pixels_to_large_in_both_kinds(phantoms: list[HeadPhantom]) -> None:
    lesions = [add_lesion(np.random.default_rng(1000 + seed), phantoms[seed % len(phantoms)])[2] for seed in range(60)]
    diameters = np.array([lesion.diameter_px for lesion in lesions])
    assert diameters.min() < 6.0  # a few pixels across
    assert diameters.max() > 35.0
    assert (diameters < 10.0).mean() > 0.15  # small lesions are common, not a rarity
    assert {lesion.kind for lesion in lesions} == {"hyper", "hypo"}
    contrasts = np.abs([lesion.contrast_hu for lesion in lesions])
    assert contrasts.min() < 8.0 and contrasts.max() > 15.0
    assert any(lesion.oedema for lesion in lesions)
