"""Tumor masks as a second training target, for datasets that have them (synthetic CT).

A label says only "somewhere in this slice there is a tumor"; for a lesion a few pixels across that
is a weak signal. Where the tumor's mask is known, each cell of the class activation map's grid is
also told whether it holds tumor: the class activation map itself (the classifier's dense weights
applied to every cell of the "activations" layer, then one scale and offset) is trained against the
mask max-pooled to that grid. The scale and offset exist only while training; the exported model is
the classifier alone, so a model trained this way is used exactly like any other, and its heatmap is
the map that was taught.

Why the classifier's own weights and not a separate 1×1 convolution: with a separate one the
features learn where tumors are but the heatmap need not read them so. Tiny 64-px set, 5–8 px
lesions, 6 epochs: pointing game 0.58 without masks, 0.33 with a separate convolution, 0.65 with the
map itself as the target (fine map: 0.98, 0.56, 1.00); bilinear heatmaps, as the predictor drew them then.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers

OUTPUT = "lesion_map"
# Tumor cells are few (one or two of 64 for a small lesion): each counts this much more than a
# tumor-free cell, so predicting "no tumor anywhere" is not the cheap answer.
TUMOR_CELL_WEIGHT = 10.0


class CamCells(layers.Layer):
    """sigmoid(a·CAM + b) per cell, where CAM = Σ wₖ·Aₖ uses the classifier's own dense weights wₖ."""

    def __init__(self, logit: layers.Dense, **kwargs):
        super().__init__(**kwargs)
        self.logit = logit

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(), initializer="ones", name="scale")
        self.offset = self.add_weight(shape=(), initializer="zeros", name="offset")

    def call(self, activations):
        cam = keras.ops.matmul(activations, self.logit.kernel)
        return keras.ops.sigmoid(self.scale * cam + self.offset)


def training_model(classifier: keras.Model) -> keras.Model:
    """The classifier with a second output, OUTPUT: per-cell tumor probability on the activations' grid."""
    # float32 like the classifier's head, whatever the convolutions compute in (ml.precision).
    cells = CamCells(classifier.get_layer("logit"), name=OUTPUT, dtype="float32")(
        classifier.get_layer("activations").output)
    return keras.Model(classifier.inputs, {"probability": classifier.output, OUTPUT: cells},
                       name=f"{classifier.name}_with_{OUTPUT}")


def lesion_map_loss(cell_truth, cell_probability, small_tumor_cells: int = 0):
    """Binary cross-entropy per cell, tumor cells weighted TUMOR_CELL_WEIGHT; mean over cells.

    With small_tumor_cells = K > 0, a tumor covering n < K cells has each cell weighted K/n times more, so
    that it weighs in the loss as a tumor of K cells: a large tumor's many cells would otherwise outweigh
    the small ones, which are the ones the network misses (TrainSettings.small_tumor_cells)."""
    cell_probability = keras.ops.clip(cell_probability, 1e-7, 1.0 - 1e-7)
    entropy = -(cell_truth * keras.ops.log(cell_probability)
                + (1.0 - cell_truth) * keras.ops.log(1.0 - cell_probability))
    tumor_weight = TUMOR_CELL_WEIGHT
    if small_tumor_cells > 0:
        cells = keras.ops.sum(cell_truth, axis=(1, 2, 3), keepdims=True)
        tumor_weight = TUMOR_CELL_WEIGHT * keras.ops.maximum(1.0, small_tumor_cells / keras.ops.maximum(cells, 1.0))
    weight = 1.0 + (tumor_weight - 1.0) * cell_truth
    return keras.ops.mean(weight * entropy, axis=(1, 2, 3))


def weighted_lesion_map_loss(small_tumor_cells: int):
    """lesion_map_loss with small_tumor_cells fixed, as Keras takes a loss: (truth, prediction) → loss."""
    def loss(cell_truth, cell_probability):
        return lesion_map_loss(cell_truth, cell_probability, small_tumor_cells)

    return loss


def cell_targets(masks, grid: int):
    """N×S×S×1 masks in [0, 1] → N×grid×grid×1: a cell is tumor when any of its pixels is (max-pooling),
    after rounding what interpolation left fractional."""
    side = keras.ops.shape(masks)[1]
    pooled = keras.ops.max_pool(keras.ops.round(masks), side // grid, strides=side // grid, padding="valid")
    return keras.ops.cast(pooled, "float32")


def mask_stack(masks: list[np.ndarray | None], count: int, size: int) -> np.ndarray:
    """count×size×size float32 masks, zeros where a scan has none (a tumor-free scan)."""
    stacked = np.zeros((count, size, size), np.float32)
    for index, mask in enumerate(masks):
        if mask is not None:
            stacked[index] = np.asarray(mask, np.float32)
    return stacked
