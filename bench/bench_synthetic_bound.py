"""What the synthetic slices allow: a searching observer who knows each head, beside bench_synthetic's network.

    python -m bench.bench_synthetic_bound [--count 2000] [--seed 7] [--sizes 256,128] [--workers 2]

The observer is given every slice's tumor-free head as the scanner shows it without photon noise, and
the scanner's noise (ml.synthetic.known_head), but not whether there is a tumor, where, how large or
what shape. It subtracts the head it expects and searches the brain for the strongest blob: the residual
smoothed by Gaussians of nine widths (0.7-11.2 px at 256 px, steps of √2), each in units of that width's
noise. Those units come from independent noise fields of the same scans, pooled per reconstruction
kernel and scaled by each slice's own noise level. A slice's score is its strongest response anywhere
in the brain; the threshold is the highest that finds 99 % of the tumors, picked by training's own rule
(ml.calibration.choose_threshold).

This observer knows what the network must learn from the slices: the anatomy. It is strong, not ideal
(it matches blobs, not each tumor's outline, and takes the grain as uniform), so its misses do not prove
a tumor invisible; its hits show what the data allow. The slices are the ones `bench_synthetic --count N
--seed S` generates for the same N and S (its test split is 15 % of them).
"""
from __future__ import annotations

import argparse
import multiprocessing
import time
from dataclasses import dataclass

import cv2
import numpy as np

from bench.bench_synthetic import GENERATED_SIZE, SIZE_BINS, by_bin
from bench.common import print_table, write_results

SCALES_AT_256 = tuple(round(0.7 * 2 ** (k / 2), 1) for k in range(9))  # 0.7 ... 11.2 px
RECALL_TARGET = 0.99


@dataclass(frozen=True)
class SliceResponses:
    """One slice's strongest blob response and its noise at each width, for each image size."""

    label: int
    diameter: float  # of the tumor at 256 px, NaN without one
    kernel: str
    noise_level: float  # the scanner's nominal noise, HU (ml.synthetic.noise_hu)
    peaks: dict[int, np.ndarray]  # size -> |response| at its strongest, per width
    noise_sd: dict[int, np.ndarray]  # size -> the noise field's response's SD over the brain, per width
    inside: dict[int, np.ndarray]  # size -> whether that strongest response lies in the tumor, per width
    at_tumor: dict[int, np.ndarray]  # size -> |response| at its strongest within the tumor (NaN without one)


def widths(size: int) -> tuple[float, ...]:
    return tuple(s * size / GENERATED_SIZE for s in SCALES_AT_256 if s * size / GENERATED_SIZE >= 0.5)


def responses(job: tuple[int, bool, tuple[int, ...]]) -> SliceResponses:
    from ml.synthetic import known_head, noise_hu

    seed, with_tumor, sizes = job
    head = known_head(seed, GENERATED_SIZE, with_tumor)
    peaks, noise_sd, inside, at_tumor = {}, {}, {}, {}
    for size in sizes:
        residual, noise = head.image - head.expected, head.noise
        brain, lesion = head.brain_mask, head.lesion_mask
        if size != GENERATED_SIZE:
            residual, noise = (cv2.resize(a, (size, size), interpolation=cv2.INTER_AREA) for a in (residual, noise))
            brain = cv2.resize(brain.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST) > 0
            if lesion is not None:
                lesion = cv2.resize(lesion.astype(np.uint8), (size, size), interpolation=cv2.INTER_AREA) > 0
        rows = [], [], [], []
        for width in widths(size):
            smoothed = np.abs(cv2.GaussianBlur(residual, (0, 0), width))
            where = np.where(brain, smoothed, -1.0).argmax()
            rows[0].append(smoothed.flat[where])
            rows[1].append(cv2.GaussianBlur(noise, (0, 0), width)[brain].std())
            rows[2].append(lesion is not None and bool(lesion.flat[where]))
            rows[3].append(smoothed[lesion].max() if lesion is not None and lesion.any() else np.nan)
        peaks[size], noise_sd[size], inside[size], at_tumor[size] = (np.array(r) for r in rows)
    return SliceResponses(int(with_tumor), head.lesion.diameter_px if head.lesion else float("nan"),
                          head.acquisition.filter, noise_hu(head.acquisition), peaks, noise_sd, inside, at_tumor)


def noise_units(slices: list[SliceResponses], size: int, responses_of: str) -> np.ndarray:
    """Slices × widths: the responses named (`peaks` or `at_tumor`) over their width's noise SD, which is
    pooled per reconstruction kernel and scaled by each slice's noise level."""
    kernels = np.array([s.kernel for s in slices])
    level = np.array([s.noise_level for s in slices])[:, None]
    found = np.stack([getattr(s, responses_of)[size] for s in slices]) / level
    per_unit_noise = np.stack([s.noise_sd[size] for s in slices]) / level
    z = np.empty_like(found)
    for kernel in np.unique(kernels):
        chosen = kernels == kernel
        z[chosen] = found[chosen] / np.median(per_unit_noise[chosen], axis=0)
    return z


def scores(slices: list[SliceResponses], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Each slice's strongest response in noise units, and whether it lay in the tumor."""
    z = noise_units(slices, size, "peaks")
    best = z.argmax(axis=1)
    inside = np.stack([s.inside[size] for s in slices])[np.arange(len(slices)), best]
    return z.max(axis=1), inside


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sizes", default=f"{GENERATED_SIZE},128", help="image sizes the observer works at")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--results", default="synthetic_bound")
    args = parser.parse_args(argv)
    from sklearn.metrics import roc_auc_score

    from ml.calibration import choose_threshold
    from ml.synthetic import slice_seed, tumor_indices

    sizes = tuple(int(s) for s in args.sizes.split(","))
    with_tumor = tumor_indices(args.count, args.seed, 0.5)
    jobs = [(slice_seed(args.seed, i), i in with_tumor, sizes) for i in range(args.count)]
    began = time.monotonic()
    with multiprocessing.Pool(args.workers, initializer=cv2.setNumThreads, initargs=(1,)) as pool:
        slices = pool.map(responses, jobs, chunksize=8)
    seconds = time.monotonic() - began
    labels = np.array([s.label for s in slices])
    diameter = np.array([s.diameter for s in slices])
    print(f"\nknown-head observer: {args.count} slices of seed {args.seed} ({labels.sum()} with a tumor), "
          f"{seconds:.0f} s")
    record: dict = {"count": args.count, "seed": args.seed, "seconds": seconds, "by_size": {}}
    for size in sizes:
        score, inside = scores(slices, size)
        threshold = choose_threshold(labels, score, RECALL_TARGET)
        called = score >= threshold
        summary = {
            "roc_auc": float(roc_auc_score(labels, score)),
            "threshold_z": threshold,
            "recall": float(called[labels == 1].mean()),
            "specificity": float((~called[labels == 0]).mean()),
            "accuracy": float((called == labels.astype(bool)).mean()),
            "best_accuracy": max(float(((score >= t) == labels.astype(bool)).mean()) for t in np.unique(score)),
            "pointing_game": float(inside[labels == 1].mean()),
        }
        pointed = np.where(labels == 1, inside.astype(float), np.nan)
        size_rows = by_bin(diameter, SIZE_BINS, labels, score, called, pointed, "px")
        # The cost of the search: the same responses with the tumor's place given (the strongest within it).
        null = score[labels == 0]
        located = noise_units(slices, size, "at_tumor").max(axis=1)[labels == 1]
        missed = ~called[labels == 1]
        search = {
            "tumor_free_strongest_median": float(np.median(null)),
            "tumor_free_strongest_p99": float(np.percentile(null, 99)),
            "tumors_told_their_place_under_that_p99": float((located < np.percentile(null, 99)).mean()),
            "missed": int(missed.sum()),
            "missed_told_their_place_median": float(np.median(located[missed])) if missed.any() else float("nan"),
            "missed_told_their_place_max": float(located[missed].max()) if missed.any() else float("nan"),
        }
        print(f"\nat {size} px (widths {', '.join(f'{w:g}' for w in widths(size))} px); scores in noise units")
        print_table(["metric", "value"], [[k, v] for k, v in {**summary, **search}.items()])
        print(f"by lesion diameter ({GENERATED_SIZE} px slice); ROC-AUC against every tumor-free slice; pointing: "
              "the strongest response inside the tumor:")
        print_table(["diameter", "tumors", "recall", "roc_auc", "pointing"], size_rows)
        record["by_size"][size] = {**summary, **search, "by_diameter": size_rows}
    write_results(args.results, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
