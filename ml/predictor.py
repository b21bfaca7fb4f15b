"""Inference from a model directory with ONNX Runtime alone: TensorFlow is never imported here.

One forward pass gives the logit, the pooled features and the last convolution block's activations (of
both views, in networks whose second view is moved); calibration, the label, the review flag, the class
activation map and the 2-D feature position are cheap NumPy on top of those. A second pass refines the
heatmap where asked (`Predictor`, `refine_heatmaps`).
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import onnxruntime as ort

from ml.calibration import apply_temperature

if TYPE_CHECKING:
    from ml.decode import DecodedImage

CLASS_NAMES = ("no_tumor", "tumor")
# A batch is cut into chunks of at most CHUNK scans, bounded twice. Memory: the activations (the largest
# output, kept for the heatmaps) fit in ACTIVATION_BUDGET bytes; a 16×16×128 map (one top-down step, 128 KiB a
# scan) allows 32.
# Speed: the session runs without ONNX Runtime's arena, so every intermediate map is a fresh allocation; glibc
# serves those under 32 MiB from its heap, reused from layer to layer and call to call, and maps larger ones
# afresh from the kernel, page by page. The largest map of a chunk (the first block's) is kept within
# MAP_BUDGET: at 128 px, 16 scans of 1 MiB. Batches of 64 went from 550 to 700 scans/s with 2 threads
# (python -m bench.bench_inference, late 2026-12-05), as fast as with the arena, which kept 175 MiB more.
CHUNK = 64
ACTIVATION_BUDGET = 4 * 2**20
MAP_BUDGET = 16 * 2**20
# Models written before late 2026-12-05 do not record their largest map: the default network's first block,
# 16 maps at the input's size.
FIRST_BLOCK_MAPS = 16
# The maps a heatmap is drawn from: the upright view's and, in networks exported since 2026-12-07, the turned
# view's on the scan moved half a cell (ml.model.inference_model).
MAP_OUTPUTS = ("activations", "moved_activations")


@dataclass(frozen=True)
class Prediction:
    probability: float
    label: str
    needs_review: bool
    heatmap: np.ndarray
    feature_xy: tuple[float, float]
    latency_ms: float


def upsampled_cam(activations: np.ndarray, weights: np.ndarray | None, size: int) -> np.ndarray:
    """Σ wₖ·Aₖ over channels (h×w×C activations), upsampled bicubically to size×size, not yet scaled.

    Bicubic, not bilinear: a bilinear map peaks at a cell centre, so a tumor smaller than a cell that lies
    between two centres could never be pointed at; a bicubic one peaks between the cells that see the tumor,
    towards the stronger. Synthetic CT, one model, 8×8 map: the peak inside 0.57 of the test tumors against
    0.44 (3,000 slices, 12 epochs, python -m bench.bench_synthetic). Its undershoot below the lowest cell is cut off,
    so that it does not lift the background when the map is scaled. Without weights (a head that is not
    pooling + one dense unit) the channel mean stands in as a plain saliency map.
    """
    raw = (activations @ weights if weights is not None else activations.mean(axis=-1)).astype(np.float32)
    return np.maximum(cv2.resize(raw, (size, size), interpolation=cv2.INTER_CUBIC), raw.min())


def unit_range(heatmap: np.ndarray) -> np.ndarray:
    """Min-max scaled to [0, 1] rather than cut at 0: for a scan predicted negative the whole map can be
    below zero, and the reader still needs to see which region pushed the score up the most."""
    low, span = float(heatmap.min()), float(np.ptp(heatmap))
    if span <= 1e-12:
        return np.zeros(heatmap.shape, np.float32)
    return ((heatmap - low) / span).astype(np.float32)


def moved(images: np.ndarray, by: int) -> np.ndarray:
    """…×H×W `images` moved `by` pixels down and right (up and left where negative); the strip left behind is
    filled with the image's own edge, so that no new border appears."""
    height, width = images.shape[-2:]
    lead = [(0, 0)] * (images.ndim - 2)
    if by >= 0:
        return np.pad(images, lead + [(by, 0), (by, 0)], mode="edge")[..., :height, :width]
    return np.pad(images, lead + [(0, -by), (0, -by)], mode="edge")[..., -by:, -by:]


def half_cell(image_size: int, map_side: int) -> int:
    """Pixels of half a heatmap cell at the input: how far the refining pass moves the scan (0: nothing to refine)."""
    return image_size // (2 * map_side)


def chunk_size(session: ort.InferenceSession, largest_map_floats: int) -> int:
    """Scans per forward pass: CHUNK, or fewer where one scan's activations or largest map are large."""
    activation_bytes = sum(4 * int(np.prod([d for d in output.shape[1:] if isinstance(d, int)]))
                           for output in session.get_outputs() if output.name in MAP_OUTPUTS)
    chunk = min(ACTIVATION_BUDGET // max(activation_bytes, 1), MAP_BUDGET // max(4 * largest_map_floats, 1))
    return int(np.clip(chunk, 1, CHUNK))


def run_in_chunks(session: ort.InferenceSession, names: tuple[str, ...], images: np.ndarray, chunk: int,
                  as_input: Callable[[np.ndarray], np.ndarray] = lambda scans: scans) -> list[np.ndarray]:
    """The `names` outputs for N×S×S `images`, run `chunk` scans at a time and joined. `as_input` makes a chunk
    float32 (training passes 8-bit codes); an empty batch still runs once, so that its outputs have their shapes."""
    runs = [session.run(list(names), {"image": as_input(images[start:start + chunk])[..., None]})
            for start in range(0, max(len(images), 1), chunk)]
    return [np.concatenate([run[i] for run in runs]) for i in range(len(names))]


def inference_session(onnx_bytes: bytes, intra_op_threads: int = 1) -> ort.InferenceSession:
    """An ONNX Runtime session on the CPU without its memory arena (0 threads: as many as ONNX Runtime picks)."""
    options = ort.SessionOptions()
    # The arena keeps the peak of the largest batch ever seen; without it a worker stays small.
    options.enable_cpu_mem_arena = False
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    # Idle threads sleep instead of spinning, so that a worker sharing its cores with the web process
    # or another worker does not burn them between layers. 2 threads, Intel host, 2026-12-06: alone,
    # no difference beyond the host's noise (`bench.bench_inference` twice each way: batches of 64
    # 286-319 scans/s against 247-314, one scan 3.8-4.0 ms against 3.8-4.2); with one core kept busy
    # by another process, batches of 16 ran at 201 scans/s against 180 spinning.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


class Predictor:
    """Loads `model.onnx` + `metadata.json` and predicts batches of normalised images.

    Max pooling makes the network's map depend on where a small tumor falls on the cell grid: one lit cell's
    bicubic map peaks at the cell's centre. Networks exported since 2026-12-07 see the scan a second time turned
    and, where half a heatmap cell is at most 4 px (ml.model.inference_model; not brain-mri's 8×8 map), moved half
    a cell, and the heatmap is the mean of the two views' maps (`cam`), sampled at both phases of the grid, in the
    one forward pass. With `refine_heatmaps` a second pass of the scan moved half a cell down and right adds its
    maps, moved back: for networks exported before, the same sampling at twice the forward cost; for newer ones,
    two more views at the same two phases. The probability always comes from the first pass. Synthetic CT (python
    -m bench.bench_synthetic --refine-heatmaps, an Intel host, late 2026-12-06): two models trained 16 epochs on
    10,000 slices pointed inside 0.775 and 0.739 of the tumors against 0.689 and 0.676; one trained 12 epochs on
    3,000, whose map spreads a small tumor over the neighbouring cells anyway, 0.667 against 0.676. `predict`, 2
    threads (bench.bench_inference): 5.8-5.9 ms a scan against 2.8-3.1, 231-239 scans/s in batches of 64 against
    472-482. Another 16-epoch model (an AMD EPYC host, 2026-12-07) exported with the moved view pointed inside
    0.747 against 0.680 with the turn in place, and 0.759 with a second pass on top.
    """

    def __init__(self, session: ort.InferenceSession, metadata: dict, refine_heatmaps: bool = False):
        self.session = session
        self.refine_heatmaps = refine_heatmaps
        self.metadata = metadata
        self.image_size = int(metadata["image_size"])
        self.threshold = float(metadata["threshold"])
        self.temperature = float(metadata["temperature"])
        # Models written before the calibration had a bias carry none.
        self.calibration_bias = float(metadata.get("calibration_bias", 0.0))
        self.review_band = float(metadata["review_band"])
        self.class_names = tuple(metadata.get("class_names", CLASS_NAMES))
        # How a file becomes this model's input (ml.normalise.prepare_for_model); models written before
        # 2026-12-07 record neither, and files are normalised straight at image_size for them.
        preprocessing = metadata.get("preprocessing", {})
        self.prepared_size: int | None = preprocessing.get("prepared_size")
        window = preprocessing.get("window")
        self.window: tuple[float, float] | None = tuple(window) if window else None
        weights = metadata.get("cam_weights")
        self._cam_weights = np.asarray(weights, np.float32) if weights is not None else None
        largest_map = metadata.get("largest_map_floats") or self.image_size ** 2 * FIRST_BLOCK_MAPS
        self.chunk = chunk_size(session, int(largest_map))
        self._maps = tuple(o.name for o in session.get_outputs() if o.name in MAP_OUTPUTS)
        projection = metadata["projection"]
        self._projection_mean = np.asarray(projection["mean"], np.float32)
        self._projection_components = np.asarray(projection["components"], np.float32)

    @classmethod
    def from_files(cls, onnx_bytes: bytes, metadata: dict, intra_op_threads: int = 1,
                   refine_heatmaps: bool = False) -> Predictor:
        return cls(inference_session(onnx_bytes, intra_op_threads), metadata, refine_heatmaps)

    @classmethod
    def from_dir(cls, model_dir: str | Path, intra_op_threads: int = 1, refine_heatmaps: bool = False) -> Predictor:
        model_dir = Path(model_dir)
        metadata = json.loads((model_dir / "metadata.json").read_text())
        return cls.from_files((model_dir / "model.onnx").read_bytes(), metadata, intra_op_threads, refine_heatmaps)

    def _check(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, dtype=np.float32)
        if images.ndim == 4 and images.shape[-1] == 1:
            images = images[..., 0]
        expected = (self.image_size, self.image_size)
        if images.ndim != 3 or images.shape[1:] != expected:
            raise ValueError(f"expected images of shape N×{self.image_size}×{self.image_size}, got {images.shape}")
        return images

    def forward(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Raw model outputs for N×S×S images: logit (N,), features (N×C), activations (N×h×w×C) and, where the
        network has them, moved_activations (N×h×w×C)."""
        names = ("logit", "features", *self._maps)
        outputs = dict(zip(names, run_in_chunks(self.session, names, self._check(images), self.chunk)))
        outputs["logit"] = outputs["logit"][:, 0]
        return outputs

    def calibrated(self, logits: np.ndarray) -> np.ndarray:
        return apply_temperature(logits, self.temperature, self.calibration_bias)

    def project(self, features: np.ndarray) -> np.ndarray:
        """2-D position of pooled features in the PCA plane fitted on training and validation data."""
        return (features - self._projection_mean) @ self._projection_components.T

    def cam(self, activations: np.ndarray, moved_activations: np.ndarray | None) -> np.ndarray:
        """One scan's upsampled class activation map (`upsampled_cam`), not yet scaled: where the network's turned
        view saw the scan moved half a cell, the mean of the two views' maps, the second moved back."""
        upright = upsampled_cam(activations, self._cam_weights, self.image_size)
        if moved_activations is None:
            return upright
        back = -half_cell(self.image_size, activations.shape[0])
        return (upright + moved(upsampled_cam(moved_activations, self._cam_weights, self.image_size), back)) / 2

    def heatmaps(self, images: np.ndarray, outputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The heatmap of each of N×S×S `images` from its `forward` outputs; refined by a second pass where
        `refine_heatmaps` is set and a heatmap cell is wider than 1 px."""
        passes = [self._cams(outputs)]
        shift = half_cell(self.image_size, outputs["activations"].shape[1]) if self.refine_heatmaps else 0
        if shift:
            second = dict(zip(self._maps, run_in_chunks(self.session, self._maps, moved(images, shift), self.chunk)))
            passes.append([moved(cam, -shift) for cam in self._cams(second)])
        return [unit_range(sum(cams) / len(cams)) for cams in zip(*passes)]

    def _cams(self, outputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        moved_maps = outputs.get("moved_activations", [None] * len(outputs["activations"]))
        return [self.cam(a, b) for a, b in zip(outputs["activations"], moved_maps)]

    def prepare_file(self, data: bytes, name: str) -> tuple[np.ndarray, DecodedImage]:
        """One file decoded and brought to this model's input as its training scans were (raises
        ml.errors.RejectedFile for a file that cannot be used)."""
        # Imported here, so that importing the predictor loads no decoder (Pillow, pydicom): screening
        # predicts from stored 8-bit PNGs, and only file-reading callers need them.
        from ml.normalise import prepare_for_model

        return prepare_for_model(data, name, self.image_size, self.prepared_size, self.window)

    def predict(self, images: np.ndarray) -> list[Prediction]:
        images = self._check(images)
        predictions: list[Prediction] = []
        for start in range(0, len(images), self.chunk):
            chunk = images[start:start + self.chunk]
            began = time.perf_counter()
            outputs = self.forward(chunk)
            probabilities = self.calibrated(outputs["logit"])
            positions = self.project(outputs["features"])
            heatmaps = self.heatmaps(chunk, outputs)
            latency_ms = (time.perf_counter() - began) * 1000.0 / len(chunk)
            for probability, heatmap, xy in zip(probabilities, heatmaps, positions):
                probability = float(probability)
                predictions.append(Prediction(
                    probability=probability,
                    label=self.class_names[int(probability >= self.threshold)],
                    needs_review=abs(probability - self.threshold) <= self.review_band,
                    heatmap=heatmap,
                    feature_xy=(float(xy[0]), float(xy[1])),
                    latency_ms=latency_ms,
                ))
        return predictions
