"""Synthetic head-CT slices with and without tumors, with a true tumor mask: one in memory, or a dataset.

A slice is a random head phantom (`ml.phantom`), optionally with a tumor, scanned by a simulated CT
(`ml.ct_acquisition`), then shown in the brain window (W80/L40) as an 8-bit image, as a CT viewer would
export it. Everything derives from one integer seed: the anatomy, the lesion and the scan each draw from
their own child stream, so the same seed with and without a tumor gives the same head (the photon noise
differs: it depends on every ray's attenuation).
"""
from __future__ import annotations

import csv
import json
import multiprocessing
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ml.ct_acquisition import Acquisition, scan
from ml.phantom import Anatomy, HeadPhantom, Lesion, add_lesion, head_phantom

BRAIN_WINDOW = (80.0, 40.0)  # (width, level) in HU
FIELD_OF_VIEW_CM = 25.0
MANIFEST_COLUMNS = (
    "file", "label", "mask", "seed", "diameter_px", "area_px", "contrast_hu", "kind",
    "centre_x", "centre_y", "oedema", "extra_axial", "level", "kernel",
)


@dataclass(frozen=True)
class SliceParams:
    """How one slice was made; `lesion` is None for a slice without a tumor."""

    seed: int
    size: int
    anatomy: Anatomy
    acquisition: Acquisition
    lesion: Lesion | None


def window_to_uint8(hu: np.ndarray, width: float = BRAIN_WINDOW[0], level: float = BRAIN_WINDOW[1]) -> np.ndarray:
    """Map HU through a display window to 0..255, as a CT viewer exports a slice."""
    low = level - width / 2.0
    scaled = np.clip((hu - low) / width, 0.0, 1.0) * 255.0
    return np.round(scaled).astype(np.uint8)


# Image noise (HU) of each kernel at 3e7 photons per bin through a typical head; noise ~ photons^-1/2.
_KERNEL_NOISE_AT_3E7 = {"shepp-logan": 1.55, "cosine": 1.0, "hann": 0.72}


def random_acquisition(rng: np.random.Generator, size: int) -> Acquisition:
    """Scanner settings that vary from slice to slice as dose and kernels do between scans.

    The dose is set so that noise inside the brain is about 2.5-6 HU, as in clinical head CT.
    """
    kernel = str(rng.choice(list(_KERNEL_NOISE_AT_3E7)))
    target_noise = rng.uniform(2.5, 6.0)
    return Acquisition(
        n_angles=max(90, (size * 9) // 8),
        photons=3e7 * (_KERNEL_NOISE_AT_3E7[kernel] / target_noise) ** 2,
        beam_hardening=rng.uniform(0.005, 0.03),
        pixel_cm=FIELD_OF_VIEW_CM / size,
        filter=kernel,
    )


def noise_hu(acquisition: Acquisition) -> float:
    """Standard deviation of the photon noise inside the brain (HU) that `random_acquisition` aimed at.

    Measured at 256 px, the size the kernel constants were set for, it is within about 10 % of this;
    at 128 px the noise comes out at about two thirds of it.
    """
    return _KERNEL_NOISE_AT_3E7[acquisition.filter] * float(np.sqrt(3e7 / acquisition.photons))


def _slice_streams(seed: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """Independent random streams for a slice's anatomy, lesion and scan."""
    return tuple(np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(3))


@dataclass(frozen=True)
class _Drawn:
    """A slice's random choices before the scan: the head without a tumor, the phantom to scan (with the
    tumor when there is one), and the scanner; `scan_rng` then draws the photon noise."""

    healthy: HeadPhantom
    phantom: HeadPhantom
    lesion_mask: np.ndarray | None
    lesion: Lesion | None
    acquisition: Acquisition
    scan_rng: np.random.Generator


def _draw(seed: int, size: int, with_tumor: bool) -> _Drawn:
    anatomy_rng, lesion_rng, scan_rng = _slice_streams(seed)
    healthy = phantom = head_phantom(anatomy_rng, size)
    lesion_mask = lesion = None
    if with_tumor:
        phantom, lesion_mask, lesion = add_lesion(lesion_rng, healthy)
    return _Drawn(healthy, phantom, lesion_mask, lesion, random_acquisition(scan_rng, size), scan_rng)


def synth_slice(
    seed: int, size: int = 256, with_tumor: bool = True
) -> tuple[np.ndarray, np.ndarray | None, SliceParams]:
    """One synthetic slice: (image uint8 size×size in the brain window, tumor mask uint8 0/255 or None, params)."""
    drawn = _draw(seed, size, with_tumor)
    hu = scan(drawn.phantom.hu, drawn.phantom.bone_fraction, drawn.acquisition, drawn.scan_rng)
    mask = None if drawn.lesion_mask is None else np.where(drawn.lesion_mask, 255, 0).astype(np.uint8)
    params = SliceParams(seed, size, drawn.phantom.anatomy, drawn.acquisition, drawn.lesion)
    return window_to_uint8(hu), mask, params


def lesion_detectability(seed: int, size: int = 256) -> float:
    """How visible the tumor of slice `seed` is to an ideal observer: the signal-to-noise ratio
    ‖ΔHU‖ / σ of a matched filter that knows the head, the tumor and where it is, against the
    slice's photon noise taken as white (ΔHU: the tumor slice minus the same head without it, through
    the scanner's blur, oedema included).

    An upper bound on what any reader can do: a real one must search the whole brain and tell the
    tumor from anatomy. Around 5 a tumor is at the edge of visibility even when its place is known.
    """
    drawn = _draw(seed, size, with_tumor=True)
    difference = cv2.GaussianBlur(drawn.phantom.hu - drawn.healthy.hu, (0, 0), drawn.acquisition.blur_px)
    return float(np.sqrt(np.square(difference, dtype=np.float64).sum()) / noise_hu(drawn.acquisition))


@dataclass(frozen=True)
class KnownHead:
    """One slice beside what an observer who knows the head and the scanner, but not the tumor, can compute:
    all in HU as the brain window shows them (clipped to it; `image` and `noise` also rounded to its 8 bits)."""

    image: np.ndarray  # the slice, as synth_slice exports it
    expected: np.ndarray  # the same head without a tumor, scanned without photon noise
    noise: np.ndarray  # a second, independent noisy scan of that head less `expected`: the noise alone
    brain_mask: np.ndarray  # bool
    lesion_mask: np.ndarray | None  # bool
    lesion: Lesion | None
    acquisition: Acquisition


def known_head(seed: int, size: int = 256, with_tumor: bool = True) -> KnownHead:
    """Slice `seed` with the tumor-free head it was drawn on, for the known-background bound of
    `python -m bench.bench_synthetic_bound`: the image less `expected` is the tumor plus noise."""
    drawn = _draw(seed, size, with_tumor)
    healthy = drawn.healthy
    image = scan(drawn.phantom.hu, drawn.phantom.bone_fraction, drawn.acquisition, drawn.scan_rng)
    expected = scan(healthy.hu, healthy.bone_fraction, drawn.acquisition, None)
    noise_rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    another = scan(healthy.hu, healthy.bone_fraction, drawn.acquisition, noise_rng)
    width, level = BRAIN_WINDOW
    low = level - width / 2.0
    shown = np.clip(expected, low, low + width).astype(np.float32)
    return KnownHead(
        image=_exported_hu(image), expected=shown, noise=_exported_hu(another) - shown,
        brain_mask=healthy.brain_mask, lesion_mask=drawn.lesion_mask, lesion=drawn.lesion,
        acquisition=drawn.acquisition,
    )


def _exported_hu(hu: np.ndarray) -> np.ndarray:
    """A scan as the exported 8-bit slice shows it (window_to_uint8), mapped back to HU."""
    width, level = BRAIN_WINDOW
    codes = window_to_uint8(hu, width, level).astype(np.float32)
    return (level - width / 2.0 + codes * np.float32(width / 255.0)).astype(np.float32)


def slice_seed(dataset_seed: int, index: int) -> int:
    """The seed of slice `index` of a dataset: independent of how the work is split between processes."""
    return int(np.random.SeedSequence([dataset_seed, index]).generate_state(1, np.uint32)[0])


def tumor_indices(count: int, seed: int, tumor_fraction: float) -> set[int]:
    """Which slices carry a tumor: exactly round(count × fraction) of them, spread at random."""
    if not 0.0 <= tumor_fraction <= 1.0:
        raise ValueError(f"tumor fraction must be within [0, 1], got {tumor_fraction}")
    n_tumor = int(round(count * tumor_fraction))
    order = np.random.default_rng(np.random.SeedSequence([seed, count])).permutation(count)
    return {int(i) for i in order[:n_tumor]}


@dataclass(frozen=True)
class _Job:
    out_dir: str
    index: int
    seed: int
    size: int
    with_tumor: bool
    dataset_seed: int


def _write_slice(job: _Job) -> dict[str, str]:
    image, mask, params = synth_slice(job.seed, job.size, job.with_tumor)
    stem = f"synth_s{job.dataset_seed}_{job.index:05d}"
    label = "tumor" if job.with_tumor else "no_tumor"
    out = Path(job.out_dir)
    _write_png(out / label / f"{stem}.png", image)
    row = {column: "" for column in MANIFEST_COLUMNS}
    row.update(file=f"{label}/{stem}.png", label=label, seed=str(job.seed), level=params.anatomy.level,
               kernel=params.acquisition.filter)
    if mask is not None and params.lesion is not None:
        _write_png(out / "masks" / f"{stem}.png", mask)
        lesion = params.lesion
        row.update(
            mask=f"masks/{stem}.png", diameter_px=f"{lesion.diameter_px:.2f}", area_px=str(lesion.area_px),
            contrast_hu=f"{lesion.contrast_hu:.2f}", kind=lesion.kind, centre_x=f"{lesion.centre[0]:.2f}",
            centre_y=f"{lesion.centre[1]:.2f}", oedema=str(int(lesion.oedema)),
            extra_axial=str(int(lesion.extra_axial)),
        )
    return row


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise OSError(f"could not encode {path.name}")
    path.write_bytes(encoded.tobytes())


def _single_threaded_opencv() -> None:
    # Two worker processes on two cores: OpenCV's own threads would only contend with each other.
    cv2.setNumThreads(1)


def generate_dataset(
    out_dir: str | os.PathLike[str],
    count: int,
    seed: int,
    size: int = 256,
    tumor_fraction: float = 0.5,
    *,
    workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Path:
    """Write `count` slices as a folder-per-class dataset with masks and a manifest; returns the manifest path.

    Layout: tumor/<stem>.png, no_tumor/<stem>.png, masks/<stem>.png (one per tumor image, same stem),
    manifest.csv (one row per slice, in index order). The bytes depend only on (count, seed, size,
    tumor_fraction), not on `workers`. `on_progress(n)` is called as each slice is done.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    out = Path(out_dir)
    for folder in ("tumor", "no_tumor", "masks"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    with_tumor = tumor_indices(count, seed, tumor_fraction)
    jobs = [_Job(str(out), i, slice_seed(seed, i), size, i in with_tumor, seed) for i in range(count)]
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    rows = []
    for row in _run(jobs, workers):
        rows.append(row)
        if on_progress is not None:
            on_progress(1)
    manifest = out / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    write_source_declaration(out, count=count, seed=seed, size=size, tumor_fraction=tumor_fraction)
    return manifest


SOURCE_DECLARATION = "dataset.json"


def write_source_declaration(out: Path, **settings: object) -> None:
    """Tell `prepare` that every slice is an independent phantom.

    Phantom heads share a skull ring, so at thumbnail scale they look alike and near-duplicate
    grouping would chain them all into one group; but no two slices come from one "patient", so only
    exact copies may group them. `prepare` reads this file and says so in its report.
    """
    declaration = {"generator": "tumorscreen synthetic CT", "independent_slices": True, **settings}
    (out / SOURCE_DECLARATION).write_text(json.dumps(declaration, indent=2) + "\n")


def _run(jobs: list[_Job], workers: int) -> Iterator[dict[str, str]]:
    if workers <= 1 or len(jobs) < 8:
        yield from map(_write_slice, jobs)
        return
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_single_threaded_opencv) as pool:
        yield from pool.imap(_write_slice, jobs, chunksize=4)
