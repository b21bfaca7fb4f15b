"""Training: from a prepared dataset (or arrays) to a complete model directory.

Train on the oversampled, augmented training split; early-stop on validation loss and keep the best
weights; export to ONNX; calibrate (temperature and bias) and choose the threshold on validation, from the
exported model's own outputs so that what is measured is what is deployed; score the test split.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ml.pixels import as_floats
from ml.precision import check_precision, dtype_policy, resolve_precision

FORMAT_VERSION = 1
CLASS_NAMES = ("no_tumor", "tumor")
# PCA for the feature-map scatter is fitted on at most this many training + validation scans.
PROJECTION_SAMPLE = 4000
# The cancellation hook may query a database: ask it at most this often between batches.
STOP_POLL_SECONDS = 0.5
# Batch-norm statistics are re-measured on this many training scans before each validation.
BATCH_NORM_SAMPLE = 1024
# Appearance clusters (TrainSettings.appearance_clusters) are used only with this many training scans each.
MIN_SCANS_PER_CLUSTER = 50
# Scans checked and converted to 8-bit codes this many at a time (ml.train.eight_bit_codes).
CODE_CHUNK = 512


EpochHook = Callable[[int, dict], None]
StopHook = Callable[[], bool]


class TrainingCancelled(RuntimeError):
    """Raised out of training when `should_stop()` answered True."""


def top_down_error(image_size: int, depth: int, top_down: int) -> str | None:
    """Why the class activation map cannot be refined `top_down` times for this network, or None when it can."""
    if not 0 <= top_down < depth:
        return f"top_down must be within [0, {depth - 1}] for a depth of {depth}, got {top_down}"
    cell = 2 ** (depth - 1)
    if top_down and image_size % cell:
        return f"a refined heatmap needs an image size divisible by {cell}, got {image_size}"
    return None


def takes_masks(architecture: str) -> bool:
    """Whether training can use tumor masks: they teach the class activation map (ml.lesion_map), which
    only a pooling head has."""
    return architecture != "baseline"


@dataclass(frozen=True)
class TrainSettings:
    # The learning rate's cosine decay spans them. brain-mri (folder-stratified test split), seeds 0 / 1 / 2 / 3,
    # balanced overall (see appearance_clusters): 12 epochs gave specificity 0.981 / 0.976 / 0.966 / 0.961 (every
    # other model target met in all four) in 699-860 s end to end on a 2-core host, with ml.batch_norm; 15 epochs
    # (seeds 0-2, before it) gave 0.976 / 0.966 / 0.976 in 918-1,168 s. 12 keeps a margin under 15 minutes for the
    # host's slow phases; specificity may be what it costs (13 on seed 3: 0.966 in 860 s).
    epochs: int = 12
    batch_size: int = 32
    image_size: int = 128
    learning_rate: float = 2e-3
    seed: int = 0
    recall_target: float = 0.99
    # With a value, the threshold meets recall_target in that share of group-bootstrap draws of validation
    # (ml.calibration.choose_threshold); None: on validation's own patients. brain-mri, test split stratified
    # by class folder, training seeds 0 / 1 / 2, each rule on the same weights: None gives test recall
    # 0.993 / 0.992 / 0.997 at specificity 0.971 / 0.971 / 0.966; 0.95 gives 1.000 / 0.998 / 0.997 at
    # 0.816 / 0.767 / 0.922, because validation's lowest few tumors score far below the rest. (On an earlier
    # split whose validation was easier than its test, 0.95 had lifted recall 0.955 → 0.980: it made up for
    # the unrepresentative split, since fixed in ml.prepare.)
    recall_confidence: float | None = None
    balance: bool = True
    # With balance: k-means clusters of the training scans' thumbnails within which the classes are balanced
    # (ml.balance.oversample_within_clusters); 0: the classes balanced overall only. brain-mri, seeds 0 / 1 /
    # 2 / 3, 12 epochs: 8 clusters gave ROC-AUC 0.9994 / 0.9986 / 0.9995 / 0.9993 and specificity 0.985 /
    # 0.981 / 0.981 / 0.976 at recall 0.995 / 0.995 / 0.988 / 0.997, against 0.9989 / 0.9988 / 0.9983 / 0.9986
    # and 0.981 / 0.976 / 0.966 / 0.961 at 0.990 / 0.995 / 0.993 / 0.995 balanced overall. An epoch holds
    # 15-17 % more scans: training, export and evaluation took 634-792 s on a 2-core host. With too few scans
    # for the clusters (ml.train.MIN_SCANS_PER_CLUSTER) the classes are balanced overall.
    appearance_clusters: int = 8
    augment: bool = True
    # Vary contrast, brightness and gamma too (ml.augment): right for MR and mixed exports, wrong for
    # CT read through a fixed window, where a grey level is a density.
    intensity_augment: bool = True
    width: int = 16
    depth: int = 5
    dropout: float = 0.3
    # Steps of a top-down path after the last block (ml.model.build_tumorscreen), each doubling the side of the
    # class activation map's grid: 0 keeps the last block's 8×8 grid at 128 px, 1 gives 16×16. None: 1 where
    # training learns from tumor masks and the image size allows it, else 0 (the model directory records which).
    # With masks, synthetic CT, 10,000 slices: the heatmap's peak inside the tumor 0.724 against 0.473, ROC-AUC
    # 0.928 against 0.931, for about a fifth more training time (docs/MODEL.md). Without them nothing teaches the
    # finer map where the tumor is: on the tests' tiny scans its peak lay beside every lesion (pointing 0.0), the
    # 8×8 map's on all of them. Two steps (32×32) pointed inside 0.812 against one step's 0.813 after 40 epochs,
    # with under half the predictor's throughput (248 against 541 scans/s). Ignored by the baseline architecture,
    # which has no pooling head.
    top_down: int | None = None
    # Weight of the tumor-mask loss beside the label's, when training is given masks (ml.lesion_map); 0: unused.
    mask_weight: float = 1.0
    # With masks: this share of the tumor-free training scans, each with a lesion moved onto it from a tumor
    # scan, joins training as extra tumor scans (ml.transplant); 0: none. Synthetic CT, 10,000 slices, 16 epochs
    # (one run each): ROC-AUC 0.933 against 0.922, tumors under 8 px 0.80 against 0.76, pointing 0.455 against
    # 0.463, training 2,273 s against 1,038 s (an epoch holds twice the scans). Half the scans gave 0.922 on
    # 10,000 slices, no better than none; on 3,000, at the same number of steps, 0.904 against 0.897. Drawn
    # afresh every epoch, they gave no more than drawn once (3,000 slices: 0.896 against 0.899). Datasets
    # without masks are not affected.
    transplant_fraction: float = 1.0
    # With masks: a tumor covering fewer than this many cells of the map's grid weighs in the mask loss as one
    # of this many (ml.lesion_map.lesion_map_loss); 0: every tumor cell weighs the same. Synthetic CT, 3,000
    # slices, 12 epochs, one top-down step, one run each: 8 gave ROC-AUC 0.908 against 0.899, the heatmap's
    # peak inside 0.716 of the tumors against 0.667, under 8 px ROC-AUC 0.717 against 0.682 (docs/MODEL.md).
    # Off: on the benchmark's 10,000 slices it pointed no better (0.720 against 0.724 after 16 epochs, 0.768
    # against 0.788 after 40).
    small_tumor_cells: int = 0
    patience: int = 4
    architecture: str = "tumorscreen"
    review_band: float = 0.15
    # What the convolutions compute in while training (ml.precision): "bfloat16" is mixed bfloat16, "auto" that
    # where the processor has bfloat16 instructions, else float32. The model directory records what was used.
    # float32 by default: in mixed bfloat16, brain-mri missed a target in three seeds of seven where float32
    # missed one (the same AMD host, docs/MODEL.md), for about half the training time.
    precision: str = "float32"
    # Export the ONNX network with 8-bit convolutions (ml.quantize); False: float32 throughout. brain-mri, seeds
    # 4-6: the same test confusion as float32, 1.3-1.9 times the forward throughput (docs/MODEL.md).
    quantize: bool = True

    def __post_init__(self):
        if not 0.0 < self.recall_target <= 1.0:
            raise ValueError(f"recall_target must be in (0, 1], got {self.recall_target}")
        if self.recall_confidence is not None and not 0.0 < self.recall_confidence < 1.0:
            raise ValueError(f"recall_confidence must be in (0, 1), got {self.recall_confidence}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be at least 1, got {self.epochs} and {self.batch_size}")
        if self.mask_weight < 0.0:
            raise ValueError(f"mask_weight must be non-negative, got {self.mask_weight}")
        if self.small_tumor_cells < 0:
            raise ValueError(f"small_tumor_cells must be non-negative, got {self.small_tumor_cells}")
        if not 0.0 <= self.transplant_fraction <= 1.0:
            raise ValueError(f"transplant_fraction must be within [0, 1], got {self.transplant_fraction}")
        if self.appearance_clusters < 0 or self.appearance_clusters == 1:
            raise ValueError(f"appearance_clusters must be 0 or at least 2, got {self.appearance_clusters}")
        if self.review_band < 0.0:
            raise ValueError(f"review_band must be non-negative, got {self.review_band}")
        if (self.top_down is not None and self.architecture != "baseline"
                and (problem := top_down_error(self.image_size, self.depth, self.top_down))):
            raise ValueError(problem)
        check_precision(self.precision)


def resolve_top_down(settings: TrainSettings, with_masks: bool) -> int:
    """The top-down steps a run uses: settings.top_down, or where that is None, 1 when training learns from
    tumor masks and the network allows a step, else 0."""
    if settings.top_down is not None:
        return settings.top_down
    return int(with_masks and top_down_error(settings.image_size, settings.depth, 1) is None)


def learns_from_masks(settings: TrainSettings) -> bool:
    """Whether tumor masks given to training are used: a pooling head and a mask weight above 0 (0 is the
    labels alone, with no lesion-map output and no mask loss logged)."""
    return takes_masks(settings.architecture) and settings.mask_weight > 0


def fingerprint_file(path: str | Path) -> str:
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


def fingerprint_arrays(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return "sha256:" + digest.hexdigest()


def ema_momentum(total_steps: int) -> float:
    """Momentum of the weights' moving average: about the last tenth of training, at most 100 steps.

    Validation, early stopping and the model kept use the averaged weights, which change less from
    epoch to epoch than the last step's. (Measured on brain-mri before batch-norm statistics were
    re-measured: without the average, test ROC-AUC 0.9954 and recall 0.950; with it 0.9955 and 0.970.)
    A short run must not average in its random start, hence the tenth.
    """
    return float(np.clip(1.0 - 10.0 / total_steps, 0.5, 0.99))


def eight_bit_codes(images: np.ndarray) -> np.ndarray | None:
    """The uint8 codes k of scans whose every value is k/255 in float32, as every scan read from a PNG
    (a prepared dataset, a stored scan) is; None for any others. The codes take a quarter of the memory,
    and `codes / 255` in float32 gives back the same floats, bit for bit. Codes already are codes."""
    if images.dtype == np.uint8:
        return images
    codes = np.empty(images.shape, np.uint8)
    scale = np.float32(255.0)
    for start in range(0, len(images), CODE_CHUNK):
        chunk = np.asarray(images[start:start + CODE_CHUNK], np.float32)
        rounded = np.rint(chunk * scale)
        if rounded.size and (rounded.min() < 0 or rounded.max() > 255
                             or not np.array_equal(rounded / scale, chunk)):
            return None
        codes[start:start + CODE_CHUNK] = rounded
    return codes


def _channel_moments(x):
    """Per-channel mean and variance over an N×H×W×C batch, in float32 without losing digits: the variance
    from deviations, not E[x²] − E[x]² (keras.ops.moments), which cancels when a channel's mean is large
    beside its spread; and each sum over one axis at a time, since one float32 sum over millions of values
    drifts (relative error 5e-4 in the variance against a float64 reference)."""
    import keras

    def channel_mean(values):
        return keras.ops.mean(keras.ops.mean(keras.ops.mean(values, axis=2), axis=1), axis=0)

    x = keras.ops.cast(x, "float32")  # a network training in mixed bfloat16 (ml.precision) has bfloat16 maps
    mean = channel_mean(x)
    return mean, channel_mean(keras.ops.square(x - mean))


def refresh_batch_norm(model, images: np.ndarray, batch_size: int = TrainSettings.batch_size) -> None:
    """Set every batch-norm layer's moving mean and variance to the statistics of its input over `images`,
    for the model's current weights ("precise BN"). Training refreshes before every validation through
    one `batch_norm_refresher`, which traces its graph once."""
    batch_norm_refresher(model, batch_size)(images)


def batch_norm_refresher(model, batch_size: int = TrainSettings.batch_size) -> Callable[[np.ndarray], None]:
    """A function of scans that does what `refresh_batch_norm` does, for the model's weights at each call.

    The moving averages that training keeps describe the last few augmented batches, seen through
    weights that have since moved on (and, with the weights' moving average swapped in, through other
    weights altogether): validation accuracy swung between 0.71 and 0.99 from one epoch to the next
    while its ROC-AUC stayed at 0.995, and early stopping kept whichever epoch the swing favoured.
    Statistics measured on a fixed sample with the weights being judged remove that, and make the
    layers' own momentum irrelevant: what training leaves in them is overwritten. Each layer's
    input is taken in training mode (upstream layers normalised by their batch), as in training; the
    variance is the pooled one (within-batch plus between-batch).

    Training passes its own batch size, so upstream layers see batches of the size they learnt on. Until late
    2026-12-05 the refresh ran in batches of 256 whatever training's, and their activations were the
    trainer's peak: brain-mri (seed 2, 2 epochs, RSS sampled every 0.2 s) peaked at 2,712–2,775 MiB against
    1,850 MiB in batches of 32; a refresh after the first took 1.95 s against 1.98 s.
    """
    import keras
    import tensorflow as tf

    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms:
        return lambda images: None
    # Each batch's per-channel mean and variance are reduced in the graph: copying the activations out
    # (1024 images × 128² × 16 floats for the first layer alone) took most of the time, 15 of an epoch's
    # 79 s on brain-mri's number of images (bench/bench_training_speed.py). The outputs are one flat list,
    # [mean, variance, mean, variance, ...]: a one-element list would come back unwrapped.
    probe = keras.Model(model.inputs[0], [moment for layer in norms for moment in _channel_moments(layer.input)])
    # Run as a graph: called eagerly, refreshing on 1,024 scans at 128 px in batches of 256 raised the
    # process's resident memory from 0.85 to 4.1 GB, as a graph to 1.9 GB, with identical statistics
    # (bench/bench_training_memory.py). Any batch size, one trace.
    moments_of = tf.function(lambda batch: probe(batch, training=True),
                             input_signature=[tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)])

    def refresh(images: np.ndarray) -> None:
        if len(images) == 0:
            return
        batch_means, batch_variances, counts = [], [], []
        for start in range(0, len(images), batch_size):
            batch = np.asarray(images[start:start + batch_size], np.float32)
            moments = [keras.ops.convert_to_numpy(m).astype(np.float64) for m in moments_of(batch)]
            batch_means.append(moments[0::2])
            batch_variances.append(moments[1::2])
            counts.append(len(batch))
        weights = np.asarray(counts, dtype=np.float64) / sum(counts)
        for index, layer in enumerate(norms):
            means = np.stack([batch[index] for batch in batch_means])
            mean = weights @ means
            # Pooled: the mean within-batch variance plus the variance of the batch means.
            variance = (weights @ np.stack([batch[index] for batch in batch_variances])
                        + weights @ (means - mean) ** 2)
            layer.moving_mean.assign(mean.astype(np.float32))
            layer.moving_variance.assign(variance.astype(np.float32))

    return refresh


def _callbacks(settings: TrainSettings, on_epoch: EpochHook | None, should_stop: StopHook | None, history: list,
               norm_sample: np.ndarray, monitor: str):
    import keras

    class RefreshBatchNorm(keras.callbacks.Callback):
        refresh = None

        def on_test_begin(self, logs=None):
            self.refresh = self.refresh or batch_norm_refresher(self.model, settings.batch_size)
            self.refresh(norm_sample)

    class Report(keras.callbacks.Callback):
        """Keeps the per-epoch history and hands each epoch (1-based) to the caller's hook."""

        def on_epoch_end(self, epoch, logs=None):
            entry = epoch_entry(logs or {})
            entry["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            history.append({"epoch": epoch + 1, **entry})
            if on_epoch is not None:
                on_epoch(epoch + 1, entry)

    class Cancel(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.last_poll = float("-inf")

        def _poll(self, where: str):
            self.last_poll = time.monotonic()
            if should_stop():
                raise TrainingCancelled(f"training cancelled {where}")

        def on_train_batch_end(self, batch, logs=None):
            if time.monotonic() - self.last_poll >= STOP_POLL_SECONDS:
                self._poll(f"during epoch {len(history) + 1}")

        def on_epoch_end(self, epoch, logs=None):
            self._poll(f"after epoch {epoch + 1}")

    callbacks = [
        # Validation, early stopping and the weights kept all use the moving average of the weights:
        # SwapEMAWeights must come before EarlyStopping so that the best weights it keeps are the average,
        # and before RefreshBatchNorm so that the statistics are measured with the averaged weights.
        keras.callbacks.SwapEMAWeights(swap_on_epoch=True),
        RefreshBatchNorm(),
        Report(),
        keras.callbacks.EarlyStopping(monitor=monitor, mode="min", patience=settings.patience,
                                      restore_best_weights=True),
    ]
    if should_stop is not None:
        callbacks.append(Cancel())
    return callbacks


def epoch_entry(logs: dict) -> dict[str, float]:
    """One epoch's logs under the names of a one-output model: a model trained with tumor masks logs
    "probability_accuracy", "lesion_map_loss", … and "loss" for the sum; here "accuracy", "mask_loss", …
    and "loss" is the label's loss alone, comparable with a run without masks."""
    from ml.lesion_map import OUTPUT

    entry = {}
    for key, value in logs.items():
        prefix = "val_" if key.startswith("val_") else ""
        name = key.removeprefix(prefix)
        if name == "loss" and f"{prefix}probability_loss" in logs:
            name = "total_loss"
        entry[prefix + name.removeprefix("probability_").replace(f"{OUTPUT}_", "mask_")] = float(value)
    return entry


def _training_dataset(X: np.ndarray, y: np.ndarray, settings: TrainSettings, masks: np.ndarray | None = None,
                      grid: int | None = None):
    """Shuffled, batched, augmented (image, label) pairs; with `masks` (N×S×S), (image, {label, cell targets}).

    X and masks are float32, or both 8-bit codes (`eight_bit_codes`), turned into floats a batch at a time:
    the dataset holds its scans twice (its tensor and the shuffle buffer), each a quarter the size."""
    import tensorflow as tf

    from ml.augment import ImageMaskAugmenter, build_augmenter
    from ml.lesion_map import OUTPUT, cell_targets

    labels = y.astype(np.float32)
    images = X if masks is None else np.concatenate([X, masks[..., None]], axis=-1)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    dataset = dataset.shuffle(len(X), seed=settings.seed, reshuffle_each_iteration=True).batch(settings.batch_size)
    if images.dtype == np.uint8:
        dataset = dataset.map(lambda batch, labels: (tf.cast(batch, tf.float32) / 255.0, labels))
    if settings.augment:
        augmenter = (build_augmenter(settings.seed, intensity=settings.intensity_augment) if masks is None
                     else ImageMaskAugmenter(settings.seed, intensity=settings.intensity_augment))
        dataset = dataset.map(lambda batch, labels: (augmenter(batch, training=True), labels))
    if masks is not None:
        dataset = dataset.map(lambda batch, labels: (
            batch[..., :1], {"probability": labels, OUTPUT: cell_targets(batch[..., 1:], grid)}))
    return dataset.prefetch(2)


def _balanced_order(X_train: np.ndarray, y_train: np.ndarray, settings: TrainSettings) -> tuple[np.ndarray, int]:
    """Training indices with the classes balanced, and the number of appearance clusters they were balanced
    within: the settings' when there are enough scans (MIN_SCANS_PER_CLUSTER a cluster) for clusters to mean
    anything, else 0 (balanced overall)."""
    from ml.balance import appearance_clusters, oversample_indices, oversample_within_clusters

    k = settings.appearance_clusters
    if k < 2 or len(y_train) < k * MIN_SCANS_PER_CLUSTER:
        return oversample_indices(y_train, seed=settings.seed), 0
    clusters = appearance_clusters(as_floats(X_train), k, seed=settings.seed)
    return oversample_within_clusters(y_train, clusters, seed=settings.seed), k


def _compact(X_train: np.ndarray, masks: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The training scans and masks as 8-bit codes when both are 8-bit (`eight_bit_codes`), else both float32."""
    codes = eight_bit_codes(X_train)
    mask_codes = None if masks is None or codes is None else eight_bit_codes(masks)
    if codes is None or (masks is not None and mask_codes is None):
        return as_floats(X_train), masks
    return codes, mask_codes


def _batch_norm_sample(X_train: np.ndarray, settings: TrainSettings) -> np.ndarray:
    """Scans drawn as training draws them (balanced, augmented once), for refresh_batch_norm: the
    network learnt to read statistics of such batches, and a tumor feature's mean depends on the mix.
    On brain-mri, plain scans in their natural mix gave a best validation loss of 0.076, this sample 0.039."""
    rng = np.random.default_rng(settings.seed)
    sample = as_floats(X_train[np.sort(rng.permutation(len(X_train))[:BATCH_NORM_SAMPLE])])
    if not settings.augment:
        return sample
    import keras

    from ml.augment import build_augmenter

    augmenter = build_augmenter(settings.seed + 1, intensity=settings.intensity_augment)
    return keras.ops.convert_to_numpy(augmenter(sample, training=True))


def _fit(X_train, y_train, X_val, y_val, settings: TrainSettings, on_epoch, should_stop,
         train_masks: np.ndarray | None = None, val_masks: np.ndarray | None = None):
    """The trained Keras model (best validation loss; float32, whatever precision it trained in), its
    per-epoch history, and how the classes were balanced ({"appearance_clusters": the clusters used, 0 when
    none, "transplants": tumor scans made by ml.transplant, "epoch_scans": int}).
    With masks (N×S×S, zeros for tumor-free scans) the tumor masks are a second target (ml.lesion_map)."""
    import keras
    import tensorflow as tf

    from ml.lesion_map import OUTPUT, cell_targets, training_model, weighted_lesion_map_loss

    keras.utils.set_random_seed(settings.seed)
    tf.config.experimental.enable_op_determinism()
    balance = {"appearance_clusters": 0, "transplants": 0}
    if train_masks is not None and settings.transplant_fraction > 0:
        from ml.transplant import transplant_lesions

        codes = eight_bit_codes(X_train)
        X_train = as_floats(X_train)
        made = transplant_lesions(X_train, y_train, train_masks, settings.transplant_fraction, settings.seed)
        if codes is not None:
            # A moved lesion blends two 8-bit scans. Rounded to their grid, as a viewer would store such a scan,
            # every training scan stays 8-bit and training holds them all as codes (_compact): synthetic CT at
            # 10,000 slices peaked at 9.4 GB with the transplants as float32, most of it in the input pipeline,
            # and at 3.9 GB so, with scores within one run's noise (docs/MODEL.md).
            X_train, made = codes, (np.rint(made[0] * np.float32(255.0)).astype(np.uint8), *made[1:])
        X_train, y_train, train_masks = (np.concatenate([a, b]) for a, b in zip((X_train, y_train, train_masks), made))
        balance["transplants"] = int(len(made[1]))
    # The epoch's copy and the input pipeline's two hold 8-bit scans as their 8-bit pixels: on brain-mri (3,800
    # training scans, bench_real_data --epochs 2) the trainer's peak fell from 3,236 to 2,610 MiB, and to 2,187
    # with the split loaded as 8-bit too (train), with the same test scores to the last digit.
    order = None
    if settings.balance:
        order, balance["appearance_clusters"] = _balanced_order(X_train, y_train, settings)
    X_train, train_masks = _compact(X_train, train_masks)
    if order is not None:
        X_train, y_train = X_train[order], y_train[order]
        train_masks = None if train_masks is None else train_masks[order]
    balance["epoch_scans"] = int(len(X_train))
    norm_sample = _batch_norm_sample(X_train, settings)
    precision = resolve_precision(settings.precision)
    with dtype_policy(precision):
        model = _build(settings)
    steps = settings.epochs * int(np.ceil(len(X_train) / settings.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(settings.learning_rate, steps, alpha=0.02)
    optimizer = keras.optimizers.Adam(schedule, use_ema=True, ema_momentum=ema_momentum(steps))
    metrics = [keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.Recall(name="recall"),
               keras.metrics.AUC(name="auc")]
    if train_masks is None:
        fitted = model
        fitted.compile(optimizer=optimizer, loss=keras.losses.BinaryCrossentropy(), metrics=metrics)
        val_targets, monitor, grid = y_val.astype(np.float32), "val_loss", None
    else:
        # The second output shares every layer up to the activations: training it trains the classifier.
        fitted = training_model(model)
        grid = int(model.get_layer("activations").output.shape[1])
        fitted.compile(optimizer=optimizer,
                       loss={"probability": keras.losses.BinaryCrossentropy(),
                             OUTPUT: weighted_lesion_map_loss(settings.small_tumor_cells)},
                       loss_weights={"probability": 1.0, OUTPUT: settings.mask_weight},
                       metrics={"probability": metrics})
        val_cells = keras.ops.convert_to_numpy(cell_targets(val_masks[..., None], grid))
        val_targets = {"probability": y_val.astype(np.float32), OUTPUT: val_cells}
        # Early stopping watches the sum: the label's loss alone can rise for epochs while the map is being
        # taught and the ranking improves (synthetic CT, fine map: validation label loss 0.73 → 0.79 over
        # epochs 1–5 while ROC-AUC rose 0.55 → 0.73; stopping on it kept epoch 1's weights, test ROC-AUC 0.57).
        # Calibration on validation puts the probability right afterwards.
        monitor = "val_loss"
    history: list[dict] = []
    fitted.fit(
        _training_dataset(X_train, y_train, settings, train_masks, grid),
        validation_data=(X_val, val_targets),
        epochs=settings.epochs,
        shuffle=False,  # the dataset reshuffles itself, seeded, every epoch
        callbacks=_callbacks(settings, on_epoch, should_stop, history, norm_sample, monitor),
        # A progress bar on a terminal; one line per epoch in a worker's log.
        verbose=1 if sys.stdout.isatty() else 2,
    )
    if precision != "float32":
        # Exported, calibrated and scored in float32, as inference runs it.
        trained, model = model, _build(settings)
        model.set_weights(trained.get_weights())
    return model, history, balance


def _build(settings: TrainSettings):
    """The network for settings whose top_down train_arrays resolved (None, as a benchmark may pass: 0)."""
    from ml.model import build_model

    return build_model(settings.architecture, settings.image_size, settings.width, settings.depth, settings.dropout,
                       settings.top_down or 0)


def _projection(features: np.ndarray) -> dict:
    """2-D PCA of pooled features: the plane the montage's scatter is drawn in."""
    mean = features.mean(axis=0)
    _, _, vt = np.linalg.svd(features - mean, full_matrices=False)
    components = vt[:2]
    if components.shape[0] < 2:
        components = np.vstack([components, np.zeros((2 - components.shape[0], features.shape[1]))])
    return {"mean": mean.astype(float).tolist(), "components": components.astype(float).tolist()}


def _as_images(X: np.ndarray) -> np.ndarray:
    return X[..., 0] if X.ndim == 4 else X


def calibration_sample(X_train: np.ndarray, seed: int) -> np.ndarray:
    """The training scans (N×S×S float32) whose maps set the exported network's 8-bit ranges (ml.quantize)."""
    from ml.quantize import CALIBRATION_SCANS

    pick = np.sort(np.random.default_rng(seed).permutation(len(X_train))[:CALIBRATION_SCANS])
    return as_floats(_as_images(X_train[pick]))


def _raw_outputs(session, X: np.ndarray, largest_map_floats: int) -> tuple[np.ndarray, np.ndarray]:
    from ml.predictor import chunk_size, run_in_chunks

    # In the predictor's chunks: over 1,024 scans at 128 px, batches of 256 took the process's resident memory
    # to a peak of 1,992 MiB, chunks of 64 to 1,318 MiB, in the same time (bench/bench_training_memory.py).
    logit, features = run_in_chunks(session, ("logit", "features"), _as_images(X),
                                    chunk_size(session, largest_map_floats), as_input=as_floats)
    return logit[:, 0], features


def train_arrays(X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
                 X_test: np.ndarray, y_test: np.ndarray, out_dir: str | Path, settings: TrainSettings,
                 on_epoch: EpochHook | None = None, should_stop: StopHook | None = None,
                 fingerprint: str | None = None, preprocessing: dict | None = None,
                 val_groups: np.ndarray | None = None, train_masks: list | None = None,
                 val_masks: list | None = None) -> dict:
    """Train on arrays (N×S×S×1 float32 in [0, 1], labels 1 = tumor) and write the model directory.
    X_train may be 8-bit pixels instead (uint8, the floats × 255), as `train` loads it: a quarter the memory.

    `preprocessing` adds to metadata.json's record of how a file becomes the model's input: `prepared_size`
    and `window`, the normalisation size and CT window the training scans were prepared with
    (`preparation`), which ml.normalise.prepare_for_model then repeats for any file.

    `val_groups` (similarity group per validation scan) is what the threshold's recall confidence
    resamples; without it each scan counts as its own patient. `train_masks` and `val_masks` (one S×S
    tumor mask or None per scan, both or neither) make the masks a second training target (ml.lesion_map).

    Returns the test metrics (evaluate's keys) plus "validation" and "training" summaries.
    """
    from ml.calibration import fit_operating_point
    from ml.evaluate import evaluate_arrays
    from ml.export import to_onnx_bytes
    from ml.metrics import binary_metrics, curves
    from ml.model import cam_weights, largest_map_floats
    from ml.predictor import Predictor, inference_session
    from ml.quantize import quantize

    if (train_masks is None) != (val_masks is None):
        raise ValueError("masks are needed for both training and validation scans, or for neither")
    if train_masks is not None and not takes_masks(settings.architecture):
        raise ValueError(f"tumor masks need a pooling head; the {settings.architecture} architecture has none")
    if not learns_from_masks(settings):
        train_masks = val_masks = None
    settings = dataclasses.replace(settings, precision=resolve_precision(settings.precision),  # recorded as used
                                   top_down=resolve_top_down(settings, with_masks=train_masks is not None))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    side = settings.image_size
    X_train = np.asarray(X_train)
    X_train = X_train if X_train.dtype == np.uint8 else X_train.astype(np.float32, copy=False)
    X_train, X_val, X_test = (X.reshape(len(X), side, side, 1)
                              for X in (X_train, np.asarray(X_val, np.float32), np.asarray(X_test, np.float32)))
    if train_masks is not None:
        from ml.lesion_map import mask_stack

        train_masks = mask_stack(train_masks, len(X_train), settings.image_size)
        val_masks = mask_stack(val_masks, len(X_val), settings.image_size)
    started = time.monotonic()
    model, history, balance = _fit(X_train, y_train, X_val, y_val, settings, on_epoch, should_stop, train_masks,
                                   val_masks)
    fit_seconds = time.monotonic() - started

    onnx_bytes = to_onnx_bytes(model)
    if settings.quantize:
        onnx_bytes = quantize(onnx_bytes, calibration_sample(X_train, settings.seed))
    session = inference_session(onnx_bytes, intra_op_threads=0)
    largest_map = largest_map_floats(model)
    val_logits, val_features = _raw_outputs(session, X_val, largest_map)
    rng = np.random.default_rng(settings.seed)
    sample = rng.permutation(len(X_train))[:PROJECTION_SAMPLE]
    _, train_features = _raw_outputs(session, X_train[sample], largest_map)
    operating = fit_operating_point(val_logits, y_val, settings.recall_target,
                                    confidence=settings.recall_confidence, groups=val_groups, seed=settings.seed)
    weights = cam_weights(model)
    metadata = {
        "format_version": FORMAT_VERSION,
        "image_size": settings.image_size,
        "preprocessing": {"input": "ml.normalise.prepare_for_model", "size": settings.image_size, "channels": 1,
                          "value_range": [0.0, 1.0], **(preprocessing or {})},
        "threshold": operating.threshold,
        "temperature": operating.temperature,
        "calibration_bias": operating.bias,
        "review_band": settings.review_band,
        "recall_target": settings.recall_target,
        "recall_confidence": settings.recall_confidence,
        "class_names": list(CLASS_NAMES),
        "architecture": settings.architecture,
        "cam_weights": weights[0] if weights else None,
        "cam_bias": weights[1] if weights else None,
        "projection": _projection(np.concatenate([train_features, val_features])),
        "training_data": {"fingerprint": fingerprint or fingerprint_arrays(X_train, y_train),
                          "n_train": int(len(X_train)), "n_val": int(len(X_val)), "n_test": int(len(X_test)),
                          "n_train_masks": 0 if train_masks is None else int(train_masks.any(axis=(1, 2)).sum())},
        "settings": dataclasses.asdict(settings),
        "balance": balance,
        "parameters": int(model.count_params()),
        "largest_map_floats": largest_map,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (out_dir / "model.onnx").write_bytes(onnx_bytes)
    model.save(out_dir / "model.keras")
    (out_dir / "metadata.json").write_text(json.dumps(metadata, indent=2))

    del session
    predictor = Predictor.from_files(onnx_bytes, metadata)
    metrics, scores = evaluate_arrays(predictor, X_test[..., 0], y_test)
    validation = binary_metrics(y_val, operating.probability, operating.threshold)
    metrics["validation"] = {key: validation[key] for key in ("n", "accuracy", "recall", "specificity", "roc_auc")}
    # The epoch early stopping kept: with masks it watched the total loss (the label's is "val_loss").
    best = min(history, key=lambda entry: entry.get("val_total_loss", entry.get("val_loss", np.inf)))
    metrics["training"] = {"epochs_run": len(history), "best_epoch": best["epoch"],
                           "fit_seconds": round(fit_seconds, 1), "parameters": metadata["parameters"]}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out_dir / "curves.json").write_text(json.dumps({**curves(y_test, scores), "history": history}))
    (out_dir / "test_scores.json").write_text(json.dumps({"y_true": [int(v) for v in y_test],
                                                          "probability": [float(p) for p in scores]}))
    return metrics


def train(prepared_dir: str | Path, out_dir: str | Path, settings: TrainSettings,
          on_epoch: EpochHook | None = None, should_stop: StopHook | None = None,
          masks_dir: str | Path | None = None) -> dict:
    """Train on a prepared dataset folder (see `ml.dataset`) and write a model directory; returns metrics.

    `masks_dir`: the source dataset's tumor masks (`<stem>.png` per tumor image, as the synthetic
    generator writes them), a second training target; not read when `settings.mask_weight` is 0."""
    from ml.dataset import load_split, preparation, read_metadata
    from ml.evaluate import split_masks

    prepared_dir = Path(prepared_dir)
    # The training scans as 8-bit pixels (see _fit): as float32, brain-mri's 3,800 held some 240 MB more for the
    # whole of training.
    splits = {split: load_split(prepared_dir, split, image_size=settings.image_size, pixels=split == "train")
              for split in ("train", "val", "test")}
    rows = read_metadata(prepared_dir)
    reads_masks = masks_dir is not None and settings.mask_weight > 0
    masks = {split: split_masks(prepared_dir, settings.image_size, masks_dir, split) if reads_masks else None
             for split in ("train", "val")}
    return train_arrays(*splits["train"], *splits["val"], *splits["test"], out_dir, settings, on_epoch, should_stop,
                        fingerprint=fingerprint_file(prepared_dir / "metadata.csv"),
                        preprocessing=preparation(prepared_dir),
                        val_groups=rows.loc[rows["split"] == "val", "group"].to_numpy(),
                        train_masks=masks["train"], val_masks=masks["val"])
