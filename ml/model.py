"""The CNN, built from scratch, and the view of it that is exported for inference (`inference_model`).

Layer names are part of the contract: "activations" (last convolution block), "features" (global
average pooling), "logit" (the one dense unit) and "probability" (its sigmoid). The class activation
map Σ wₖ·Aₖ is exact for this head because a single linear layer follows the pooling.
"""
from __future__ import annotations

import math

import keras
from keras import layers

from ml.batch_norm import FusedBatchNormalization
from ml.train import top_down_error

ARCHITECTURES = ("tumorscreen", "baseline")
# Blocks that run at full or half resolution get one convolution; later blocks, where the maps are
# small and a convolution is cheap, get two. Two in the first blocks as well (0 here) ranked worse on synthetic
# CT, the smallest lesions included (docs/SYNTHETIC_CT.md).
SINGLE_CONV_BLOCKS = 2
# The exported network's turned view is moved half a heatmap cell only where that is at most this many pixels. One
# brain-mri model (8×8 map at 128 px, cells of 16 px; python -m bench.bench_views, 2026-12-07): moved 8 px its test
# ROC-AUC fell from 0.9982 to 0.9976 and validation's specificity at recall 0.99 from 0.976 to 0.952; moved 4 px
# (a throwaway variant) it kept 0.9982, with one more false positive and one fewer missed tumor on test.
MAX_TURNED_VIEW_SHIFT = 4


def conv_bn_relu(x, filters: int, name: str, relu_name: str | None = None):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = FusedBatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=relu_name or f"{name}_relu")(x)


def build_tumorscreen(image_size: int = 128, width: int = 16, depth: int = 5, dropout: float = 0.3,
                      top_down: int = 0) -> keras.Model:
    """Conv blocks of width, 2·width, 4·width, … (capped at 8·width) with max-pooling between them, then
    `top_down` steps back up, global average pooling, dropout and one sigmoid unit. (Average pooling between
    the blocks ranked worse on 10,000 synthetic slices: ROC-AUC 0.900 against 0.912.)

    The last block sees most of the brain but its grid is coarse: 8×8 cells of 16 px at 128 px, and a tumor
    smaller than a cell is pointed at only roughly. Each top-down step (as in a feature pyramid network)
    doubles the grid: the maps so far, upsampled bilinearly, are added to a 1×1 projection of the block of
    that side, and one more convolution mixes the two, so that the finer cells keep the deep block's view.
    Pooling and the dense unit stay linear, so the class activation map of the last step is exact. The
    alternatives measured on synthetic CT (docs/MODEL.md): a 16×16 grid by dropping the last pooling pointed
    as well but ranked worse and was worse on brain-mri; block 3's 32×32 maps pooled beside the last block's
    (the "fine map" until 2026-12-06) ranked worse still. Training takes one step where tumor masks teach the
    map where tumors are and none where they do not (TrainSettings.top_down).
    """
    inputs = keras.Input((image_size, image_size, 1), name="image")
    x = inputs
    skips = []
    for block in range(1, depth + 1):
        filters = width * min(2 ** (block - 1), 8)
        last = block == depth
        if block > SINGLE_CONV_BLOCKS:
            x = conv_bn_relu(x, filters, name=f"block{block}a")
        x = conv_bn_relu(x, filters, name=f"block{block}", relu_name="activations" if last and not top_down else None)
        if not last:
            skips.append((block, x, filters))
            x = layers.MaxPooling2D(name=f"block{block}_pool")(x)
    for step, (block, skip, filters) in enumerate(reversed(skips[len(skips) - top_down:]), start=1):
        up = layers.UpSampling2D(2, interpolation="bilinear", name=f"up{block}")(x)
        if up.shape[-1] != filters:
            up = layers.Conv2D(filters, 1, use_bias=False, name=f"up{block}_narrow")(up)
        lateral = layers.Conv2D(filters, 1, use_bias=False, name=f"up{block}_lateral")(skip)
        x = layers.Add(name=f"up{block}_add")([up, lateral])
        x = conv_bn_relu(x, filters, name=f"up{block}_mix", relu_name="activations" if step == top_down else None)
    # The head is float32 whatever the convolutions compute in (ml.precision): the average of 64 or more cells, the
    # logit and the probability keep their digits.
    x = layers.GlobalAveragePooling2D(name="features", dtype="float32")(x)
    x = layers.Dropout(dropout, name="dropout", dtype="float32")(x)
    x = layers.Dense(1, name="logit", dtype="float32")(x)
    outputs = layers.Activation("sigmoid", name="probability", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="tumorscreen")


def build_baseline(image_size: int = 128) -> keras.Model:
    """The earlier product's network: three conv/ReLU/max-pool blocks, Flatten, Dense 128, sigmoid."""
    inputs = keras.Input((image_size, image_size, 1), name="image")
    x = layers.Conv2D(32, 3, activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(name="pool1")(x)
    x = layers.Conv2D(64, 3, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(name="pool2")(x)
    x = layers.Conv2D(128, 3, activation="relu", name="activations")(x)
    x = layers.MaxPooling2D(name="pool3")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", name="features")(x)
    x = layers.Dense(1, name="logit", dtype="float32")(x)
    outputs = layers.Activation("sigmoid", name="probability", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="baseline")


def build_model(architecture: str = "tumorscreen", image_size: int = 128, width: int = 16, depth: int = 5,
                dropout: float = 0.3, top_down: int = 0) -> keras.Model:
    """The training model (one output, "probability") for `architecture`; the baseline ignores `top_down`."""
    if architecture == "tumorscreen":
        if problem := top_down_error(image_size, depth, top_down):
            raise ValueError(problem)
        return build_tumorscreen(image_size, width, depth, dropout, top_down)
    if architecture == "baseline":
        return build_baseline(image_size)
    raise ValueError(f"unknown architecture {architecture!r}; expected one of {', '.join(ARCHITECTURES)}")


class Rotate180(layers.Layer):
    """Turns N×H×W×C maps by 180° (both spatial axes reversed); its own inverse.

    A slice with negative steps, which tf2onnx writes as one Slice. `keras.ops.flip` became two ReverseSequence
    nodes between Transposes, one of which (batch axis last) was the slowest op of the moved export outside its
    convolutions. Batches of 64, 2 threads, the 8-bit export of a 10,000-slice synthetic model (python -m
    bench.bench_inference, two runs each by turns, an AMD EPYC host with VNNI, 2026-12-07): moved, 602-611
    scans/s against 472-538 with flips; in place, 592-605 against 585-589."""

    def call(self, x):
        return x[:, ::-1, ::-1, :]


class MoveDownRight(layers.Layer):
    """Moves N×H×W×C images `by` pixels down and right, the strip left behind filled with the image's own edge
    (as `ml.predictor.moved` does in NumPy)."""

    def __init__(self, by: int, **kwargs):
        super().__init__(**kwargs)
        self.by = by

    def call(self, x):
        by = self.by
        x = keras.ops.concatenate([keras.ops.repeat(x[:, :1], by, axis=1), x[:, :-by]], axis=1)
        return keras.ops.concatenate([keras.ops.repeat(x[:, :, :1], by, axis=2), x[:, :, :-by]], axis=2)

    def get_config(self):
        return {**super().get_config(), "by": self.by}


def inference_model(model: keras.Model, turned_view: bool = True, move_turned_view: bool = True) -> keras.Model:
    """The same weights with the outputs the ONNX file carries: probability, logit, features, activations and,
    where the turned view is moved, moved_activations.

    With a pooling head (and `turned_view`), the convolutions also see the scan turned by 180°, and both views'
    maps are pooled together: pooling and the dense unit are linear, so the logit is the mean of the two views'
    logits and the class activation map stays exact. The second view doubles the forward pass and is worth it
    (`python -m bench.bench_views`, each export calibrated and thresholded on validation; brain-mri, Intel host,
    2026-12-06): upright only, seed 5 missed the recall and ROC-AUC targets (0.9884, 0.9979 against 0.9917,
    0.9986) and web-collected slices lost recall (0.960 against 0.977) or specificity (seed 6: 0.927 against 0.952).

    A 180° turn lays the same grid of cells over the scan, so the turned view alone refines no heatmap. With
    `move_turned_view` the scan is also moved half a heatmap cell down and right (`ml.predictor.half_cell`) before
    it is turned, where that is at most MAX_TURNED_VIEW_SHIFT pixels (not brain-mri's 8×8 map at 128 px), so that
    the second view's cells fall between the first's: "activations" is then the upright view's maps and
    "moved_activations" the turned view's, turned back, on the moved scan's grid; the predictor averages the two
    maps' heatmaps (`ml.predictor.Predictor.cam`), the refinement of a second pass at no cost beyond the turned
    view's. Otherwise "activations" is the mean of the two views' maps.
    """
    if cam_weights(model) is None or not turned_view:
        names = ("probability", "logit", "features", "activations")
        return keras.Model(model.inputs, [model.get_layer(n).output for n in names], name=f"{model.name}_inference")
    from ml.predictor import half_cell

    trunk = keras.Model(model.inputs, model.get_layer("activations").output, name=f"{model.name}_trunk")
    image = keras.Input(model.input_shape[1:], name="image")
    shift = half_cell(model.input_shape[1], trunk.output.shape[1]) if move_turned_view else 0
    shift = shift if shift <= MAX_TURNED_VIEW_SHIFT else 0
    upright = trunk(image)
    seen = MoveDownRight(shift, name="move")(image) if shift else image
    turned = Rotate180(name="turn_back")(trunk(Rotate180(name="turn")(seen)))
    both = layers.Average(name="both_views" if shift else "activations")([upright, turned])
    features = model.get_layer("features")(both)
    logit = model.get_layer("logit")(features)
    probability = model.get_layer("probability")(logit)
    maps = [layers.Identity(name="activations")(upright), layers.Identity(name="moved_activations")(turned)]
    return keras.Model(image, [probability, logit, features, *(maps if shift else [both])],
                       name=f"{model.name}_inference")


def largest_map_floats(model: keras.Model) -> int:
    """Floats in one scan's largest layer output (for the default network, its first block's maps)."""
    return max(math.prod(layer.output.shape[1:]) for layer in model.layers)


def cam_weights(model: keras.Model) -> tuple[list[float], float] | None:
    """Weights and bias of the final dense unit when it reads the pooled activations directly.

    Only then is Σ wₖ·Aₖ the class activation map; the baseline's Flatten/Dense head has none.
    """
    if not isinstance(model.get_layer("features"), layers.GlobalAveragePooling2D):
        return None
    kernel, bias = model.get_layer("logit").get_weights()
    return [float(w) for w in kernel[:, 0]], float(bias[0])
