"""A tiny trained model directory in seconds, for tests of everything that consumes one.

The images are 64 px: a noisy grey disc (the "head") and, for tumors, a bright blob at a random
place inside it, with its mask. Easy enough that a few epochs learn it and the heatmap finds it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

TINY_SIZE = 64


def tiny_images(count: int, seed: int, size: int = TINY_SIZE, tumor_fraction: float = 0.5,
                lesion_radius: tuple[float, float] = (0.07, 0.11)):
    """(X N×S×S×1 float32 in [0, 1], y int8, masks list of bool S×S or None): half tumors by default;
    lesion radii drawn from `lesion_radius`, as fractions of the side."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    centre = (size - 1) / 2
    head = (yy - centre) ** 2 + (xx - centre) ** 2 <= (0.42 * size) ** 2
    X = np.empty((count, size, size, 1), np.float32)
    y = (rng.random(count) < tumor_fraction).astype(np.int8)
    masks: list[np.ndarray | None] = []
    for i in range(count):
        image = np.where(head, 0.35, 0.0) + rng.normal(0.0, 0.05, (size, size))
        mask = None
        if y[i]:
            radius = rng.uniform(*lesion_radius) * size
            angle, distance = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.42 * size - radius - 2)
            cy, cx = centre + distance * np.sin(angle), centre + distance * np.cos(angle)
            distance_sq = (yy - cy) ** 2 + (xx - cx) ** 2
            mask = distance_sq <= radius**2
            # Brightest at the centre and fading to the rim, as a lesion seen through a slice is: a flat
            # disc would have its strongest features at its edge, not inside it.
            image = image + 0.7 * np.clip(1.0 - distance_sq / radius**2, 0.0, 1.0)
        X[i, ..., 0] = np.clip(image, 0.0, 1.0)
        masks.append(mask)
    return X, y, masks


def tiny_settings(**overrides):
    from ml.train import TrainSettings

    values = dict(epochs=6, batch_size=16, image_size=TINY_SIZE, learning_rate=1e-2, seed=0, width=8, depth=4,
                  patience=6, dropout=0.1)
    return TrainSettings(**{**values, **overrides})


def build_tiny_model_dir(path: str | Path, seed: int = 0, on_epoch=None,
                         lesion_radius: tuple[float, float] = (0.07, 0.11), masks: bool = False, **settings) -> dict:
    """Train a tiny model on `tiny_images` and write a complete model directory at `path`; returns its metrics.
    With `masks`, the tumor masks are a second training target. `settings` override `tiny_settings`."""
    from ml.train import train_arrays

    X_train, y_train, train_masks = tiny_images(160, seed=seed + 1, tumor_fraction=0.4, lesion_radius=lesion_radius)
    X_val, y_val, val_masks = tiny_images(64, seed=seed + 2, lesion_radius=lesion_radius)
    X_test, y_test, _ = tiny_images(64, seed=seed + 3, lesion_radius=lesion_radius)
    return train_arrays(X_train, y_train, X_val, y_val, X_test, y_test, path, tiny_settings(seed=seed, **settings),
                        on_epoch=on_epoch, train_masks=train_masks if masks else None,
                        val_masks=val_masks if masks else None)


def handmade_onnx(size: int, pool: int = 1, moved_view: bool = False) -> bytes:
    """An ONNX model with the contract's input and outputs whose answers are known by hand:
    features = mean pixel, logit = 10·(mean − 0.5), probability = sigmoid(logit), activations = the image,
    max-pooled in `pool`×`pool` cells. So a scan of mean 0.6 scores sigmoid(1), and without pooling its heatmap
    is the image itself, min-max scaled. `moved_view` adds the output of a network whose second view sees the
    scan moved half a cell (ml.model.inference_model): moved_activations, the image moved `pool` // 2 pixels down
    and right (edge-filled) and max-pooled alike."""
    import onnx
    from onnx import TensorProto, helper

    side = size // pool

    def pooled_map(image: str, out: str) -> list:
        return [helper.make_node("Transpose", [image], [f"{out}_channels_first"], perm=[0, 3, 1, 2]),
                helper.make_node("MaxPool", [f"{out}_channels_first"], [f"{out}_cells"], kernel_shape=[pool, pool],
                                 strides=[pool, pool]),
                helper.make_node("Transpose", [f"{out}_cells"], [out], perm=[0, 2, 3, 1])]

    unpooled = [helper.make_node("Identity", ["image"], ["activations"])]
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["pooled"], axes=[1, 2], keepdims=0),
        helper.make_node("Identity", ["pooled"], ["features"]),
        helper.make_node("Sub", ["pooled", "half"], ["centred"]),
        helper.make_node("Mul", ["centred", "ten"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["probability"]),
        *(pooled_map("image", "activations") if pool > 1 else unpooled),
    ]
    shift = pool // 2
    scalars = [helper.make_tensor("half", TensorProto.FLOAT, [], [0.5]),
               helper.make_tensor("ten", TensorProto.FLOAT, [], [10.0]),
               helper.make_tensor("pads", TensorProto.INT64, [8], [0, shift, shift, 0, 0, 0, 0, 0]),
               helper.make_tensor("starts", TensorProto.INT64, [2], [0, 0]),
               helper.make_tensor("ends", TensorProto.INT64, [2], [size, size]),
               helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2])]
    outputs = [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["N", 1]),
               helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["N", 1]),
               helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 1]),
               helper.make_tensor_value_info("activations", TensorProto.FLOAT, ["N", side, side, 1])]
    if moved_view:
        nodes += [helper.make_node("Pad", ["image", "pads"], ["padded"], mode="edge"),
                  helper.make_node("Slice", ["padded", "starts", "ends", "axes"], ["moved"]),
                  *pooled_map("moved", "moved_activations")]
        outputs.append(helper.make_tensor_value_info("moved_activations", TensorProto.FLOAT, ["N", side, side, 1]))
    graph = helper.make_graph(
        nodes, "handmade", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", size, size, 1])],
        outputs, scalars)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def handmade_metadata(size: int, threshold: float = 0.5, temperature: float = 1.0, review_band: float = 0.1,
                      calibration_bias: float = 0.0, prepared_size: int | None = None) -> dict:
    """Without `prepared_size`, the preprocessing of a model written before 2026-12-07."""
    preparation = {} if prepared_size is None else {"prepared_size": prepared_size, "window": [40.0, 80.0]}
    return {
        "format_version": 1,
        "image_size": size,
        "preprocessing": {"input": "ml.normalise.prepare_image", "size": size, **preparation},
        "threshold": threshold,
        "temperature": temperature,
        "calibration_bias": calibration_bias,
        "review_band": review_band,
        "class_names": ["no_tumor", "tumor"],
        "cam_weights": [1.0],
        "cam_bias": 0.0,
        "projection": {"mean": [0.5], "components": [[1.0], [0.0]]},
        "training_data": {"fingerprint": "handmade"},
        "settings": {},
        "created_at": "2026-01-01T00:00:00+00:00",
    }


def build_handmade_model_dir(path: str | Path, size: int = 32, pool: int = 1, moved_view: bool = False,
                             **metadata) -> Path:
    """A model directory (model.onnx + metadata.json) around `handmade_onnx`, in milliseconds."""
    import json

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.onnx").write_bytes(handmade_onnx(size, pool, moved_view))
    (path / "metadata.json").write_text(json.dumps(handmade_metadata(size, **metadata)))
    return path


def quantized_nodes(onnx_path: str | Path) -> int:
    """How many QuantizeLinear nodes an ONNX network holds: 0 for one in float32 throughout."""
    import onnx

    return sum(node.op_type == "QuantizeLinear" for node in onnx.load(str(onnx_path)).graph.node)


def largest_int8_weight(onnx_path: str | Path) -> int:
    """The largest magnitude among an ONNX network's int8 weights (its quantized convolution kernels)."""
    import onnx
    from onnx import numpy_helper

    weights = [numpy_helper.to_array(tensor) for tensor in onnx.load(str(onnx_path)).graph.initializer
               if tensor.data_type == onnx.TensorProto.INT8]
    return max(int(np.abs(w.astype(np.int16)).max()) for w in weights)
