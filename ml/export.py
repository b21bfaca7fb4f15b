"""Export a trained Keras model to ONNX with the named outputs the predictor reads."""
from __future__ import annotations

from pathlib import Path

import keras

# The fifth output exists where the turned view is moved (ml.model.inference_model).
OUTPUT_NAMES = ("probability", "logit", "features", "activations", "moved_activations")
OPSET = 17


def to_onnx_bytes(model: keras.Model, turned_view: bool = True, move_turned_view: bool = True) -> bytes:
    """The serialised ONNX model: input "image" (N×S×S×1 float32), outputs `OUTPUT_NAMES` in that order (the
    first four, or all five). `turned_view`, `move_turned_view`: see ml.model.inference_model."""
    import tensorflow as tf
    import tf2onnx

    from ml.model import inference_model

    exported = inference_model(model, turned_view, move_turned_view)
    size = model.input_shape[1]
    # Keras 3 functional models must have been called once before tf2onnx can trace them.
    exported(tf.zeros((1, size, size, 1)))
    spec = (tf.TensorSpec((None, size, size, 1), tf.float32, name="image"),)
    proto, _ = tf2onnx.convert.from_keras(exported, input_signature=spec, opset=OPSET)
    # tf2onnx names outputs after internal tensors; rename them to the contract's names.
    renames = {output.name: name for output, name in zip(proto.graph.output, OUTPUT_NAMES)}
    for node in proto.graph.node:
        node.output[:] = [renames.get(n, n) for n in node.output]
        node.input[:] = [renames.get(n, n) for n in node.input]
    for output in proto.graph.output:
        output.name = renames[output.name]
    return proto.SerializeToString()


def export_onnx(model: keras.Model, path: str | Path) -> Path:
    """Write `model` as ONNX to `path` and return the path."""
    path = Path(path)
    path.write_bytes(to_onnx_bytes(model))
    return path
