from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from ml.commands.synth import main as synth_main
from ml.ct_acquisition import scan
from ml.phantom import head_phantom
from ml.synthetic import (
    MANIFEST_COLUMNS,
    generate_dataset,
    known_head,
    lesion_detectability,
    noise_hu,
    random_acquisition,
    slice_seed,
    synth_slice,
    tumor_indices,
    window_to_uint8,
)

SIZE = 128  # small images keep the tests quick; the generator scales its anatomy with the size


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _head_region(image: np.ndarray) -> np.ndarray:
    """The head as a viewer sees it: the largest bright region with its holes filled."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats((image > 20).astype(np.uint8))
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    contours, _ = cv2.findContours((labels == largest).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(image)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool)


def test_slice_is_an_8_bit_brain_window_image_with_a_mask() -> None:
    image, mask, params = synth_slice(7, SIZE, with_tumor=True)
    assert image.shape == (SIZE, SIZE) and image.dtype == np.uint8
    assert mask is not None and mask.shape == (SIZE, SIZE) and mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 255}
    assert params.lesion is not None and params.lesion.area_px == int((mask == 255).sum())
    # Air is black and bone white in a brain window; the brain sits in between.
    assert image[0, 0] == 0 and (image == 255).sum() > 100
    brain = image[_head_region(image) & (image > 0) & (image < 255)]
    assert 60 < float(np.median(brain)) < 160


def test_slice_without_tumor_has_no_mask() -> None:
    image, mask, params = synth_slice(7, SIZE, with_tumor=False)
    assert mask is None and params.lesion is None
    assert image.shape == (SIZE, SIZE)


def test_same_seed_gives_identical_bytes_and_different_seeds_differ() -> None:
    first_image, first_mask, first_params = synth_slice(11, SIZE, with_tumor=True)
    again_image, again_mask, again_params = synth_slice(11, SIZE, with_tumor=True)
    assert first_image.tobytes() == again_image.tobytes()
    assert first_mask is not None and again_mask is not None and first_mask.tobytes() == again_mask.tobytes()
    assert first_params == again_params
    other_image, other_mask, _ = synth_slice(12, SIZE, with_tumor=True)
    assert other_image.tobytes() != first_image.tobytes()
    assert other_mask is not None and other_mask.tobytes() != first_mask.tobytes()


def test_tumor_and_healthy_slices_of_one_seed_share_the_head() -> None:
    _, _, with_tumor = synth_slice(5, SIZE, with_tumor=True)
    _, _, without = synth_slice(5, SIZE, with_tumor=False)
    assert with_tumor.anatomy == without.anatomy


@pytest.mark.parametrize("seed", range(6))
def test_mask_lies_inside_the_head(seed: int) -> None:
    image, mask, _ = synth_slice(100 + seed, SIZE, with_tumor=True)
    assert mask is not None and (mask > 0).any()
    # Strictly inside: the skull ring and scalp lie between the lesion and the outside.
    inner_head = cv2.erode(_head_region(image).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert not ((mask > 0) & ~inner_head).any()


def test_detectability_ranks_tumors_as_their_contrast_size_and_noise_do() -> None:
    seeds = range(200, 216)
    detectability = [lesion_detectability(seed, SIZE) for seed in seeds]
    crude = []
    for seed in seeds:
        _, _, params = synth_slice(seed, SIZE, with_tumor=True)
        lesion = params.lesion
        crude.append(abs(lesion.contrast_hu) * np.sqrt(lesion.area_px) / noise_hu(params.acquisition))
    assert all(np.isfinite(d) and d > 0 for d in detectability)
    ranks = [np.argsort(np.argsort(values)) for values in (detectability, crude)]
    assert np.corrcoef(*ranks)[0, 1] > 0.8


def test_a_scan_without_photon_noise_is_what_the_noisy_scans_of_a_head_average_to() -> None:
    rng = np.random.default_rng(3)
    phantom = head_phantom(rng, SIZE)
    acquisition = random_acquisition(rng, SIZE)
    expected = scan(phantom.hu, phantom.bone_fraction, acquisition, None)
    assert np.array_equal(expected, scan(phantom.hu, phantom.bone_fraction, acquisition, None))
    noisy = [scan(phantom.hu, phantom.bone_fraction, acquisition, np.random.default_rng(s)) for s in range(4)]
    brain = phantom.brain_mask
    # The mean of four noisy scans sits half a noise SD from the truth; a bias would show as a mean shift.
    residual = (np.mean(noisy, axis=0) - expected)[brain]
    assert abs(float(residual.mean())) < 0.1 and float(residual.std()) < 0.6 * float((noisy[0] - expected)[brain].std())


@pytest.mark.parametrize("with_tumor", [True, False])
def test_the_known_head_leaves_the_tumor_and_the_noise(with_tumor: bool) -> None:
    head = known_head(21, SIZE, with_tumor)
    image, mask, params = synth_slice(21, SIZE, with_tumor)
    assert np.array_equal(np.rint(head.image * 255 / 80).astype(np.uint8), image)  # the slice, W80/L40 in HU
    tumor = np.zeros_like(head.brain_mask) if mask is None else mask > 0
    residual = (head.image - head.expected)[head.brain_mask & ~tumor]
    noise = head.noise[head.brain_mask]
    # Away from the tumor (and its oedema, a few pixels of it) the residual is noise like the independent field.
    assert abs(float(np.median(residual))) < 0.5 and abs(float(noise.mean())) < 0.3
    assert 0.6 < float(np.median(np.abs(residual))) / float(np.median(np.abs(noise))) < 1.5
    if with_tumor:
        lesion = head.lesion
        inside = (head.image - head.expected)[head.lesion_mask]
        assert lesion is not None and np.sign(inside.mean()) == np.sign(lesion.contrast_hu)
        assert abs(float(inside.mean()) - lesion.contrast_hu) < 0.35 * abs(lesion.contrast_hu) + 2.0
    else:
        assert head.lesion is None and head.lesion_mask is None


@pytest.mark.parametrize("seed", range(3))
def test_noise_hu_is_the_noise_a_scan_has_in_the_brain(seed: int) -> None:
    # Two scans of one head differ only by their photon noise: std(a - b) / √2 is the noise of one.
    rng = np.random.default_rng(seed)
    phantom = head_phantom(rng, 256)
    acquisition = random_acquisition(rng, 256)
    a, b = (scan(phantom.hu, phantom.bone_fraction, acquisition, np.random.default_rng(s)) for s in (1, 2))
    measured = float((a - b)[phantom.brain_mask].std() / np.sqrt(2))
    assert 2.5 <= noise_hu(acquisition) <= 6.0
    assert measured == pytest.approx(noise_hu(acquisition), rel=0.2)


def test_window_maps_level_and_width_to_grey_levels() -> None:
    hu = np.array([-1000.0, 0.0, 40.0, 80.0, 1000.0], dtype=np.float32)
    assert window_to_uint8(hu).tolist() == [0, 0, 128, 255, 255]
    assert window_to_uint8(hu, width=400.0, level=40.0).tolist() == [0, 102, 128, 153, 255]


@pytest.mark.parametrize(("count", "fraction", "expected"), [(10, 0.5, 5), (7, 0.0, 0), (7, 1.0, 7), (9, 0.3, 3)])
def test_tumor_fraction_is_honoured_exactly(count: int, fraction: float, expected: int) -> None:
    chosen = tumor_indices(count, 0, fraction)
    assert len(chosen) == expected and chosen <= set(range(count))


def test_tumor_fraction_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="tumor fraction"):
        tumor_indices(10, 0, 1.5)


def test_slice_seeds_are_distinct_per_index_and_dataset() -> None:
    seeds = {slice_seed(dataset, index) for dataset in range(3) for index in range(200)}
    assert len(seeds) == 600


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    generate_dataset(out, count=12, seed=4, size=SIZE, tumor_fraction=0.25, workers=1)
    return out


def test_dataset_has_class_folders_masks_and_manifest(dataset: Path) -> None:
    tumors = sorted(path.name for path in (dataset / "tumor").glob("*.png"))
    healthy = sorted(path.name for path in (dataset / "no_tumor").glob("*.png"))
    masks = sorted(path.name for path in (dataset / "masks").glob("*.png"))
    assert len(tumors) == 3 and len(healthy) == 9
    assert masks == tumors  # one mask per tumor image, same stem
    with (dataset / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == MANIFEST_COLUMNS
    assert [row["file"] for row in rows if row["label"] == "tumor"] == [f"tumor/{name}" for name in tumors]
    for row in rows:
        image = cv2.imread(str(dataset / row["file"]), cv2.IMREAD_UNCHANGED)
        assert image.shape == (SIZE, SIZE) and image.dtype == np.uint8
        if row["label"] == "tumor":
            mask = cv2.imread(str(dataset / row["mask"]), cv2.IMREAD_UNCHANGED)
            assert int(row["area_px"]) == int((mask == 255).sum())
            assert row["kind"] in {"hyper", "hypo"} and float(row["diameter_px"]) > 0
            assert mask[round(float(row["centre_y"])), round(float(row["centre_x"]))] in (0, 255)
        else:
            assert row["mask"] == "" and row["diameter_px"] == ""


def test_dataset_bytes_depend_on_the_seed_not_on_the_worker_count(dataset: Path, tmp_path: Path) -> None:
    generate_dataset(tmp_path / "parallel", count=12, seed=4, size=SIZE, tumor_fraction=0.25, workers=2)
    assert _tree_digest(tmp_path / "parallel") == _tree_digest(dataset)
    generate_dataset(tmp_path / "other", count=12, seed=5, size=SIZE, tumor_fraction=0.25, workers=1)
    other = _tree_digest(tmp_path / "other")
    assert set(other.values()).isdisjoint(
        digest for name, digest in _tree_digest(dataset).items() if name.endswith(".png")
    )


def test_synth_command_writes_a_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    code = synth_main(
        ["--out", str(out), "--count", "4", "--seed", "2", "--size", str(SIZE), "--tumor-fraction", "0.5"]
    )
    assert code == 0
    assert len(list((out / "tumor").glob("*.png"))) == 2
    assert len(list((out / "no_tumor").glob("*.png"))) == 2
    assert "wrote 4 slices" in capsys.readouterr().out


def test_synth_command_refuses_a_bad_fraction(tmp_path: Path) -> None:
    assert synth_main(["--out", str(tmp_path / "x"), "--count", "4", "--tumor-fraction", "2"]) == 2
