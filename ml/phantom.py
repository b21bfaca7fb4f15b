"""Random head phantoms in Hounsfield units, and tumors placed inside them.

A phantom is an axial slice through a head seen as on a CT console: anterior at the top. It is drawn
in the head's own frame (u across, v from front to back, in pixels) from the outside in, each layer at
a depth below the outer surface measured along rays from the head's centre: scalp (skin, fat, temporal
muscle), skull (inner and outer tables of dense bone, diploe between), a thin subarachnoid CSF layer,
then brain: a grey-matter cortex folded by sulci over white matter, and, depending on the level of the
slice, lateral ventricles, third ventricle, deep grey nuclei, Sylvian fissures, the falx. Every boundary
is anti-aliased over one pixel (partial volume), and tissues carry a faint smooth texture.

Anatomy is random within plausible limits: head size, shape, position and rotation in the field of view,
bone and scalp thickness, tissue densities, the slice level, and how much CSF there is (atrophy widens
sulci and ventricles). None of it is real anatomy; see docs/SYNTHETIC_CT.md.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

LEVELS = ("basal", "body", "vertex")  # ventricles with deep grey nuclei, lateral ventricle bodies, above them
LEVEL_PROBABILITIES = (0.35, 0.45, 0.2)
AIR_HU = -1000.0


@dataclass(frozen=True)
class Anatomy:
    """The random choices that shaped one head, in pixels and degrees of the image."""

    level: str
    centre: tuple[float, float]  # (x, y)
    rotation_deg: float
    semi_axes: tuple[float, float]  # (across, front-to-back), outer surface of the scalp
    atrophy: float  # 0..1: how wide the CSF spaces are


@dataclass(frozen=True)
class HeadPhantom:
    hu: np.ndarray  # float32, HU
    bone_fraction: np.ndarray  # float32 0..1: share of each pixel that is bone
    head_mask: np.ndarray  # bool: any part of the pixel inside the skin; outside it is air
    brain_mask: np.ndarray  # bool: at least half of the pixel inside the inner table of the skull
    ventricle_mask: np.ndarray  # bool
    white_matter: np.ndarray  # float32 0..1 coverage, where oedema spreads
    csf: np.ndarray  # float32 0..1 coverage of CSF (sulci, ventricles, fissures)
    anatomy: Anatomy


@dataclass(frozen=True)
class Lesion:
    """A tumor as it was drawn; sizes are measured on its mask."""

    kind: str  # "hyper" (denser than the tissue it replaces) or "hypo"
    diameter_px: float  # diameter of the circle with the mask's area
    area_px: int
    contrast_hu: float  # mean lesion HU minus the mean HU of the tissue it replaced
    centre: tuple[float, float]  # (x, y) of the mask's centroid
    oedema: bool
    extra_axial: bool  # placed against the inner table, as a meningioma is


def _ramp(signed_distance: np.ndarray) -> np.ndarray:
    """Coverage of a pixel by a region, from its signed distance (px, positive inside) to the edge."""
    return np.clip(signed_distance + 0.5, 0.0, 1.0)


def _lerp(base: np.ndarray, value: np.ndarray | float, weight: np.ndarray) -> np.ndarray:
    return base + (value - base) * weight


_TABLE = 4096  # samples per turn of the angle tables that stand in for full-grid trigonometry


def _angle_index(angle: np.ndarray) -> np.ndarray:
    """Index of each angle (radians) into a table of `_TABLE` samples over one turn."""
    return np.round((angle + np.pi) * (_TABLE / (2 * np.pi))).astype(np.int32) % _TABLE


def _periodic(rng: np.random.Generator, index: np.ndarray, orders: range, amplitude: float) -> np.ndarray:
    """A smooth random function of an angle (given by `_angle_index`): harmonics with amplitudes ~ 1/k."""
    table_angle = np.arange(_TABLE) * (2 * np.pi / _TABLE) - np.pi
    table = np.zeros(_TABLE, dtype=np.float32)
    for k in orders:
        table += (amplitude / k) * rng.uniform(-1.0, 1.0) * np.cos(k * table_angle + rng.uniform(0, 2 * np.pi))
    return table[index]


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Gaussian-filtered white noise scaled to unit standard deviation."""
    field = cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), sigma_px)
    return field / (float(field.std()) + 1e-8)


def soft_blob(
    u: np.ndarray,
    v: np.ndarray,
    centre: tuple[float, float],
    semi_axes: tuple[float, float],
    rotation: float = 0.0,
    bend: float = 0.0,
    outline: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Coverage (0..1) of a rotated, optionally bent and lobulated ellipse on the grid (u, v).

    `bend` curves the long (second) axis into a banana, as the lateral ventricles are; `outline` is
    (amplitudes, phases) of radial harmonics k = 2, 3, ... that make the edge irregular.
    """
    coverage = np.zeros(u.shape, dtype=np.float32)
    reach = max(semi_axes) * (1.0 + (float(np.abs(outline[0]).sum()) if outline is not None else 0.0)) + 2.0
    reach = reach * (1.0 + abs(bend))
    near = (np.abs(u - centre[0]) < reach) & (np.abs(v - centre[1]) < reach)
    rows, cols = np.flatnonzero(near.any(axis=1)), np.flatnonzero(near.any(axis=0))
    if rows.size == 0:
        return coverage
    window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    coverage[window] = _blob_coverage(u[window], v[window], centre, semi_axes, rotation, bend, outline)
    return coverage


def _blob_coverage(
    u: np.ndarray,
    v: np.ndarray,
    centre: tuple[float, float],
    semi_axes: tuple[float, float],
    rotation: float,
    bend: float,
    outline: tuple[np.ndarray, np.ndarray] | None,
) -> np.ndarray:
    cos_r, sin_r = np.cos(rotation), np.sin(rotation)
    du, dv = u - centre[0], v - centre[1]
    x = cos_r * du + sin_r * dv
    y = -sin_r * du + cos_r * dv
    if bend:
        x = x - bend * (y / semi_axes[1]) ** 2 * semi_axes[0]
    radius = np.sqrt((x / semi_axes[0]) ** 2 + (y / semi_axes[1]) ** 2) + 1e-6
    boundary = np.ones_like(radius)
    if outline is not None:
        angle = np.arctan2(y / semi_axes[1], x / semi_axes[0])
        for k, (amplitude, phase) in enumerate(zip(*outline), start=2):
            boundary += amplitude * np.cos(k * angle + phase)
    # Pixel distance from the edge along the ray from the centre: (boundary - radius) scaled by px per unit.
    px_per_unit = np.hypot(x, y) / radius
    return _ramp((boundary - radius) * px_per_unit).astype(np.float32)


def random_outline(rng: np.random.Generator, irregularity: float, orders: int = 5) -> tuple[np.ndarray, np.ndarray]:
    amplitudes = irregularity * rng.uniform(0.3, 1.0, orders - 1) / np.arange(2, orders + 1) ** 0.8
    return amplitudes, rng.uniform(0, 2 * np.pi, orders - 1)


def head_phantom(rng: np.random.Generator, size: int = 256) -> HeadPhantom:
    """Draw one random head in an image of size × size pixels (field of view about 25 cm)."""
    scale = size / 256.0
    level = str(rng.choice(LEVELS, p=LEVEL_PROBABILITIES))
    half_length = size * rng.uniform(0.35, 0.41) * (rng.uniform(0.86, 0.95) if level == "vertex" else 1.0)
    half_width = half_length * rng.uniform(0.76, 0.87)
    centre = ((size - 1) / 2 + rng.uniform(-0.03, 0.03) * size, (size - 1) / 2 + rng.uniform(-0.03, 0.03) * size)
    rotation_deg = rng.uniform(-10.0, 10.0)
    atrophy = float(rng.beta(2.0, 4.0))
    anatomy = Anatomy(level, centre, rotation_deg, (half_width, half_length), atrophy)

    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    rot = np.deg2rad(rotation_deg)
    dx, dy = xs - centre[0], ys - centre[1]
    u = np.cos(rot) * dx + np.sin(rot) * dy  # across the head
    v = -np.sin(rot) * dx + np.cos(rot) * dy  # front (negative) to back
    dist = np.hypot(u, v)
    psi = np.arctan2(v, u)
    at = _angle_index(psi)

    # Distance from the centre to the skin along each ray: a lobulated ellipse.
    shape = 1.0 + _periodic(rng, at, range(2, 6), 0.05)
    surface = shape / np.sqrt((np.cos(psi) / half_width) ** 2 + (np.sin(psi) / half_length) ** 2)
    depth = surface - dist  # below the skin, px

    lateral = np.abs(np.cos(psi)) ** 4  # the temples, where the temporal muscle thickens the scalp
    muscle = 0.0 if level == "vertex" else rng.uniform(2.0, 7.0) * scale
    scalp = rng.uniform(4.0, 7.0) * scale * (1.0 + _periodic(rng, at, range(1, 4), 0.3)) + muscle * lateral
    skull = rng.uniform(4.0, 7.0) * scale * (
        1.0 - 0.2 * np.cos(2 * psi) + _periodic(rng, at, range(1, 6), 0.25)
    )
    subarachnoid = np.maximum(scale * (0.3 + 1.8 * atrophy) * (1.0 + _periodic(rng, at, range(1, 5), 0.6)), 0.0)
    inner_table = scalp + skull  # depth of the inner table below the skin
    below_table = depth - inner_table
    inner_radius = surface - inner_table  # centre to inner table along the ray

    # Scalp: skin, a layer of subcutaneous fat, then galea and muscle against the bone.
    into_scalp = depth / np.maximum(scalp, 1e-3)
    fat = np.exp(-(((into_scalp - 0.45) / 0.12) ** 2)) * (1.0 - lateral * (muscle > 0))
    scalp_hu = (rng.uniform(30.0, 50.0) + (rng.uniform(-70.0, -20.0) - 40.0) * fat).astype(np.float32)

    # Skull: dense tables with less dense diploe between them where the bone is thick enough.
    into_skull = (depth - scalp) / np.maximum(skull, 1e-3)
    table_hu, diploe_hu = rng.uniform(1200.0, 1600.0), rng.uniform(550.0, 850.0)
    diploe = np.exp(-(((into_skull - 0.5) / 0.2) ** 2)) * np.clip((skull - 3.0 * scale) / (2.0 * scale), 0.0, 1.0)
    bone_hu = table_hu + (diploe_hu - table_hu) * diploe + 40.0 * smooth_noise(rng, (size, size), 1.0)

    brain_hu, csf, white, ventricles = _brain(
        rng, size, scale, level, atrophy, u, v, dist, psi, at, below_table, inner_radius, subarachnoid
    )

    hu = np.full((size, size), AIR_HU, dtype=np.float32)
    in_head, in_bone, in_brain = _ramp(depth), _ramp(depth - scalp), _ramp(below_table)
    hu = _lerp(hu, scalp_hu, in_head)
    hu = _lerp(hu, bone_hu, in_bone)
    hu = _lerp(hu, brain_hu, in_brain)
    return HeadPhantom(
        hu=hu.astype(np.float32),
        bone_fraction=(in_bone * (1.0 - in_brain)).astype(np.float32),
        head_mask=depth > -0.5,
        brain_mask=below_table > 0,
        ventricle_mask=(ventricles >= 0.5) & (below_table > 0),
        white_matter=(white * in_brain).astype(np.float32),
        csf=(csf * in_brain).astype(np.float32),
        anatomy=anatomy,
    )


def _brain(
    rng: np.random.Generator,
    size: int,
    scale: float,
    level: str,
    atrophy: float,
    u: np.ndarray,
    v: np.ndarray,
    dist: np.ndarray,
    psi: np.ndarray,
    at: np.ndarray,
    below_table: np.ndarray,
    inner_radius: np.ndarray,
    subarachnoid: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Intracranial HU, CSF coverage, white-matter coverage and ventricle coverage."""
    csf_hu = rng.uniform(2.0, 10.0)
    white_hu = rng.uniform(22.0, 29.0)
    grey_hu = white_hu + rng.uniform(7.0, 12.0)

    # Sulci: thin CSF clefts running inward from the surface, one per gyrus around the brain, each with
    # its own depth and width, meandering and narrowing to the fundus; the cortex is the grey ribbon
    # within a few pixels of the surface or of a sulcus.
    spacing = rng.uniform(9.0, 13.0) * scale
    n_gyri = max(12, int(round(2 * np.pi * float(np.median(inner_radius)) / spacing)))
    below_csf = below_table - subarachnoid
    meander = 1.6 * smooth_noise(rng, (size, size), 5.0 * scale)
    phase = n_gyri * psi + _periodic(rng, at, range(1, 9), 6.0) + meander
    index = np.round(phase / (2 * np.pi))
    to_sulcus = np.abs(phase - 2 * np.pi * index) * dist / n_gyri  # px across to the sulcus's mid-line
    index = index.astype(np.int64) % n_gyri
    deep = 1.5 if level == "vertex" else 1.0
    sulcus_depth = (rng.uniform(3.0, 18.0, n_gyri) * scale * deep * (0.7 + 0.6 * atrophy))[index]
    taper = 1.0 - 0.6 * np.clip(below_csf / sulcus_depth, 0.0, 1.0)
    sulcus_half_width = (rng.uniform(0.3, 0.8, n_gyri) * scale * (0.5 + 1.5 * atrophy))[index] * taper
    sulci = _ramp(sulcus_half_width - to_sulcus) * _ramp(sulcus_depth - below_csf)
    outer_csf = np.maximum(_ramp(-below_csf), sulci)
    to_csf = cv2.distanceTransform((outer_csf < 0.5).astype(np.uint8), cv2.DIST_L2, 5)
    grey = cv2.GaussianBlur(_ramp(rng.uniform(2.5, 4.0) * scale - to_csf), (0, 0), 0.7)

    # Ventricles, fissures and deep nuclei, placed in brain-normalised coordinates (unit = the brain's
    # semi-axis), drawn on a pixel grid.
    brain_half = (
        float(np.median(inner_radius[np.abs(np.sin(psi)) < 0.05])),
        float(np.median(inner_radius[np.abs(np.cos(psi)) < 0.05])),
    )

    def blob(cu: float, cv: float, au: float, av: float, rotation_deg: float = 0.0, bend: float = 0.0,
             irregularity: float = 0.08) -> np.ndarray:
        return soft_blob(
            u, v, (cu * brain_half[0], cv * brain_half[1]),
            (max(au * brain_half[0], 0.6), max(av * brain_half[1], 0.6)),
            np.deg2rad(rotation_deg), bend, random_outline(rng, irregularity),
        )

    widen = 0.7 + 1.3 * atrophy + rng.uniform(-0.1, 0.2)
    shift = rng.uniform(-0.02, 0.02)  # midline structures are rarely exactly central
    ventricles = np.zeros_like(u)
    deep_grey = np.zeros_like(u)
    fissures = np.zeros_like(u)
    if level == "basal":
        spread = rng.uniform(15.0, 35.0)
        for side in (-1.0, 1.0):
            ventricles = np.maximum(ventricles, blob(shift + side * 0.085 * widen ** 0.5, -0.24, 0.045 * widen, 0.15,
                                                     side * spread))
            if rng.random() < 0.8:  # atria and occipital horns, often asymmetric
                ventricles = np.maximum(ventricles, blob(shift + side * 0.2, 0.3, 0.04 * widen * rng.uniform(0.6, 1.3),
                                                         0.11, -side * rng.uniform(10.0, 30.0)))
            deep_grey = np.maximum(deep_grey, blob(side * 0.16 * widen ** 0.3, -0.2, 0.05, 0.08))  # caudate head
            deep_grey = np.maximum(deep_grey, blob(side * 0.32, -0.04, 0.07, 0.17, side * 12.0))  # lentiform
            deep_grey = np.maximum(deep_grey, blob(side * 0.1, 0.12, 0.08, 0.11))  # thalamus
            fissures = np.maximum(fissures, blob(side * 0.86, -0.06, 0.14, 0.012 + 0.025 * atrophy,
                                                 -side * rng.uniform(0.0, 25.0), rng.uniform(-2.0, 2.0), 0.3))
        ventricles = np.maximum(ventricles, blob(shift, 0.03, 0.01 + 0.012 * widen, 0.09))  # third ventricle
    elif level == "body":
        for side in (-1.0, 1.0):
            ventricles = np.maximum(ventricles, blob(shift + side * 0.15 * widen ** 0.5, 0.02, 0.055 * widen, 0.36,
                                                     side * rng.uniform(-3.0, 6.0), side * rng.uniform(-1.0, 2.5)))
    # Interhemispheric fissure with the falx in it: in front of and behind the ventricles, or all the way.
    gap = 0.0 if level == "vertex" else rng.uniform(0.35, 0.5)
    half_fissure = scale * (0.5 + 1.2 * atrophy) * rng.uniform(0.8, 1.2)
    midline_u = u - shift * brain_half[0]
    along = np.abs(v) / brain_half[1]
    fissures = np.maximum(fissures, _ramp(half_fissure - np.abs(midline_u)) * _ramp((along - gap) * brain_half[1]))
    falx = _ramp(0.45 * scale - np.abs(midline_u)) * _ramp((along - gap - 0.05) * brain_half[1])

    csf = np.maximum.reduce([_ramp(subarachnoid - below_table), sulci, ventricles, fissures])
    texture = 1.2 * smooth_noise(rng, (size, size), 2.0 * scale) + 1.5 * smooth_noise(rng, (size, size), 16.0 * scale)
    tissue = _lerp(np.float32(white_hu), grey_hu, grey)
    tissue = _lerp(tissue, grey_hu - rng.uniform(0.0, 3.0), deep_grey)
    brain = _lerp(tissue + texture, csf_hu, csf)
    brain = _lerp(brain, rng.uniform(45.0, 90.0), falx * 0.8)
    csf = csf * (1.0 - falx * 0.8)
    if level != "vertex" and rng.random() < 0.5:  # calcified choroid plexus in the atria
        for side in (-1.0, 1.0):
            speck = blob(shift + side * 0.2, 0.32, 0.02, 0.02)
            brain = _lerp(brain, rng.uniform(80.0, 200.0), speck * (ventricles > 0.5))
            csf = csf * (1.0 - speck * (ventricles > 0.5))
    white = (1.0 - grey) * (1.0 - csf) * (1.0 - deep_grey)
    return brain.astype(np.float32), csf.astype(np.float32), white.astype(np.float32), ventricles


def add_lesion(rng: np.random.Generator, phantom: HeadPhantom) -> tuple[HeadPhantom, np.ndarray, Lesion]:
    """Draw a random tumor into the brain; returns the new phantom, the tumor mask (bool) and its record.

    Diameters are log-uniform over about 4-60 px at 256 px, so small lesions are common; the smaller a
    lesion, the stronger its minimum contrast (a 4-px lesion at 5 HU would be invisible under CT noise),
    while large ones go down to 4 HU, barely visible. Some have oedema (hypodense, spreading in white
    matter), some a necrotic core or calcification.
    """
    size = phantom.hu.shape[0]
    scale = size / 256.0
    kind = "hyper" if rng.random() < 0.5 else "hypo"
    diameter = float(np.exp(rng.uniform(np.log(4.0), np.log(60.0)))) * scale
    minimum = max(4.0, 48.0 * scale / diameter)
    maximum = 32.0 if kind == "hyper" else 24.0
    contrast = minimum + (maximum - minimum) * rng.uniform() ** 1.3
    contrast = contrast if kind == "hyper" else -contrast
    extra_axial = kind == "hyper" and rng.random() < 0.35
    aspect = rng.uniform(0.6, 1.0)
    outline = random_outline(rng, rng.uniform(0.05, 0.35), orders=6)
    reach = 1.0 + float(outline[0].sum())  # largest radius relative to the semi-axes

    ventricles = cv2.dilate(phantom.ventricle_mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    inside = phantom.brain_mask & ~ventricles
    room = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 5)
    from_table = cv2.distanceTransform(phantom.brain_mask.astype(np.uint8), cv2.DIST_L2, 5)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    while True:
        semi = (diameter / 2 / np.sqrt(aspect), diameter / 2 * np.sqrt(aspect))
        radius = semi[0] * reach
        candidates = room >= radius + 1.5
        if extra_axial:
            candidates &= from_table <= radius + 3.0
        if candidates.any() or diameter < 3.0 * scale:
            break
        diameter *= 0.85
    if not candidates.any():
        raise ValueError("no room for a lesion in this phantom")
    pick = rng.integers(int(candidates.sum()))
    cy, cx = (int(c[pick]) for c in np.nonzero(candidates))
    rotation = rng.uniform(0, np.pi)
    centre = (cx + rng.uniform(-0.5, 0.5), cy + rng.uniform(-0.5, 0.5))  # off the pixel grid
    coverage = soft_blob(xs, ys, centre, semi, rotation, 0.0, outline)
    mask = coverage >= 0.5

    hu = phantom.hu.copy()
    oedema = diameter > 10.0 * scale and rng.random() < (0.6 if kind == "hypo" else 0.3)
    if oedema:
        spread = rng.uniform(1.6, 2.8)
        halo = soft_blob(xs, ys, (cx, cy), (semi[0] * spread, semi[1] * spread), rotation, 0.0,
                         random_outline(rng, 0.4, orders=7))
        halo = cv2.GaussianBlur(halo, (0, 0), 1.5 * scale) * phantom.white_matter
        hu += halo * rng.uniform(-14.0, -6.0)
    replaced = float(phantom.hu[mask].mean())
    lesion_hu = replaced + contrast + abs(contrast) * 0.25 * smooth_noise(rng, (size, size), 1.5 * scale)
    if kind == "hypo" and diameter > 20.0 * scale and rng.random() < 0.4:  # necrotic or cystic centre
        core = soft_blob(xs, ys, (cx, cy), (semi[0] * 0.5, semi[1] * 0.5), rotation, 0.0, random_outline(rng, 0.2))
        lesion_hu = _lerp(lesion_hu, replaced - rng.uniform(8.0, 18.0), core)
    if kind == "hyper" and diameter > 8.0 * scale and rng.random() < 0.15:  # calcification
        speck = soft_blob(xs, ys, (cx + rng.uniform(-0.3, 0.3) * semi[0], cy + rng.uniform(-0.3, 0.3) * semi[1]),
                          (1.2 * scale, 1.2 * scale))
        lesion_hu = _lerp(lesion_hu, rng.uniform(100.0, 250.0), speck)
    hu = _lerp(hu, lesion_hu, coverage)

    area = int(mask.sum())
    my, mx = np.nonzero(mask)
    lesion = Lesion(
        kind=kind,
        diameter_px=round(float(np.sqrt(4.0 * area / np.pi)), 2),
        area_px=area,
        contrast_hu=round(float(hu[mask].mean()) - replaced, 2),
        centre=(round(float(mx.mean()), 2), round(float(my.mean()), 2)),
        oedema=bool(oedema),
        extra_axial=bool(extra_axial),
    )
    return replace(phantom, hu=hu.astype(np.float32)), mask, lesion
