from __future__ import annotations

import numpy as np
import pytest

from ml.ct_acquisition import (
    FILTERS,
    MU_WATER_PER_CM,
    Acquisition,
    back_project,
    fbp_filter,
    filtered_back_projection,
    forward_project,
    hu_to_mu,
    mu_to_hu,
    projection_angles,
    scan,
)

SIZE = 128
PIXEL_CM = 0.2


def _radius() -> np.ndarray:
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    centre = (SIZE - 1) / 2
    return np.hypot(xs - centre, ys - centre)


def _water_disc(radius_px: float = SIZE * 0.3) -> np.ndarray:
    """A disc of water (0 HU) in air (-1000 HU)."""
    return np.where(_radius() < radius_px, 0.0, -1000.0).astype(np.float32)


def test_hu_and_attenuation_convert_both_ways() -> None:
    hu = np.array([-1000.0, 0.0, 40.0, 1000.0], dtype=np.float32)
    assert hu_to_mu(hu)[1] == pytest.approx(MU_WATER_PER_CM)
    assert hu_to_mu(hu)[0] == 0.0
    np.testing.assert_allclose(mu_to_hu(hu_to_mu(hu)), hu, atol=1e-3)


def test_projection_of_a_disc_is_the_chord_length_at_every_angle() -> None:
    radius = SIZE * 0.3
    mu = hu_to_mu(_water_disc(radius))
    sinogram = forward_project(mu, projection_angles(90))
    assert sinogram.shape == (90, SIZE)
    centre_ray = sinogram[:, (SIZE - 1) // 2]
    np.testing.assert_allclose(centre_ray, 2 * radius * MU_WATER_PER_CM, rtol=0.02)
    # Every view sees the whole object: the same total attenuation.
    np.testing.assert_allclose(sinogram.sum(axis=1), mu.sum(), rtol=0.005)


def _off_centre_object() -> np.ndarray:
    """An asymmetric smooth object, so that a view mixed up with its mirror image would show."""
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    blob = np.exp(-((xs - SIZE * 0.6) ** 2 + (ys - SIZE * 0.35) ** 2) / (2 * (SIZE * 0.06) ** 2))
    return (np.where(_radius() < SIZE * 0.4, 0.5, 0.0) + blob + 0.01 * xs).astype(np.float32)


def test_views_a_quarter_turn_apart_project_as_if_each_were_projected_alone() -> None:
    image = _off_centre_object()
    angles = projection_angles(36)  # 0, 5, ... 175 degrees: every view below 90 has a partner 90 on
    together = forward_project(image, angles)
    alone = np.concatenate([forward_project(image, angles[i : i + 1]) for i in range(len(angles))])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-4 * float(alone.max()))


def test_views_a_quarter_turn_apart_back_project_as_if_each_were_back_projected_alone() -> None:
    angles = projection_angles(36)
    rows = np.random.default_rng(0).normal(size=(len(angles), SIZE)).astype(np.float32)
    together = back_project(rows, angles)
    alone = sum(back_project(rows[i : i + 1], angles[i : i + 1]) for i in range(len(angles)))
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-4 * float(np.abs(alone).max()))


@pytest.mark.parametrize("window", FILTERS)
def test_filtered_back_projection_reconstructs_a_disc(window: str) -> None:
    hu = _water_disc()
    angles = projection_angles(144)
    sinogram = forward_project(hu_to_mu(hu), angles) * PIXEL_CM
    reconstructed = mu_to_hu(filtered_back_projection(sinogram, angles, window) / PIXEL_CM)
    radius = _radius()
    water = radius < SIZE * 0.3 - 4
    air = (radius > SIZE * 0.3 + 4) & (radius < SIZE * 0.45)
    assert abs(float(reconstructed[water].mean())) < 2.0
    assert float(np.abs(reconstructed[water]).max()) < 25.0
    assert abs(float(reconstructed[air].mean()) + 1000.0) < 2.0
    assert float(np.abs(reconstructed[air] + 1000.0).max()) < 40.0


def test_unknown_filter_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown FBP filter"):
        fbp_filter(64, "butterworth")


def _scan_disc(photons: float, beam_hardening: float = 0.0, bone: bool = False) -> np.ndarray:
    hu = _water_disc()
    bone_fraction = np.zeros_like(hu)
    if bone:
        # A ring of skull-like bone around the water.
        radius = _radius()
        ring = (radius >= SIZE * 0.3) & (radius < SIZE * 0.3 + 4)
        hu[ring] = 1400.0
        bone_fraction[ring] = 1.0
    acquisition = Acquisition(n_angles=144, photons=photons, beam_hardening=beam_hardening, pixel_cm=PIXEL_CM)
    return scan(hu, bone_fraction, acquisition, np.random.default_rng(0))


def test_scan_adds_photon_noise_that_falls_with_dose() -> None:
    centre = _radius() < SIZE * 0.15
    low_dose = float(_scan_disc(1e5)[centre].std())
    high_dose = float(_scan_disc(1e7)[centre].std())
    assert low_dose > 3.0
    # Noise scales as photons^-1/2: 100x the dose, a tenth of the noise (plus a noise-free floor).
    assert high_dose < low_dose / 5.0


def test_scan_without_noise_keeps_water_at_zero() -> None:
    reconstructed = _scan_disc(1e15)
    assert abs(float(reconstructed[_radius() < SIZE * 0.2].mean())) < 2.0


def test_beam_hardening_lowers_bone_and_leaves_its_mark_inside() -> None:
    clean = _scan_disc(1e15, bone=True)
    hardened = _scan_disc(1e15, beam_hardening=0.05, bone=True)
    radius = _radius()
    ring = (radius >= SIZE * 0.3 + 1) & (radius < SIZE * 0.3 + 3)
    assert float(hardened[ring].mean()) < float(clean[ring].mean()) - 50.0
    inside = radius < SIZE * 0.25
    assert float(np.abs(hardened[inside] - clean[inside]).mean()) > 1.0


def test_scan_is_deterministic_for_a_generator_seed() -> None:
    np.testing.assert_array_equal(_scan_disc(1e6), _scan_disc(1e6))
