"""The fused batch normalisation trains exactly as Keras's own: outputs, gradients, moving statistics."""
from __future__ import annotations

import numpy as np
import pytest

SHAPES = [(8, 32, 32, 6), (4, 3, 3, 5)]


def _train_step(layer, images, upstream):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(images)
        outputs = layer(images, training=True)
        loss = tf.reduce_sum(tf.cast(outputs, tf.float32) * upstream)
    gradients = tape.gradient(loss, [images, layer.gamma, layer.beta])
    return [np.asarray(value) for value in (outputs, *gradients, layer.moving_mean, layer.moving_variance)]


def _pair(shape, rng):
    import keras

    from ml.batch_norm import FusedBatchNormalization

    keras_layer, fused_layer = keras.layers.BatchNormalization(momentum=0.5), FusedBatchNormalization(momentum=0.5)
    gamma, beta = rng.normal(size=shape[-1]).astype(np.float32), rng.normal(size=shape[-1]).astype(np.float32)
    for layer in (keras_layer, fused_layer):
        layer.build(shape)
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
    return keras_layer, fused_layer


@pytest.mark.parametrize("shape", SHAPES)
def test_a_training_step_matches_keras_batch_normalization(shape):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    images = tf.constant(rng.normal(2.0, 3.0, shape).astype(np.float32))
    upstream = tf.constant(rng.normal(size=shape).astype(np.float32))
    keras_layer, fused_layer = _pair(shape, rng)
    expected, got = _train_step(keras_layer, images, upstream), _train_step(fused_layer, images, upstream)
    for name, want, have in zip(["outputs", "d images", "d gamma", "d beta", "moving mean", "moving variance"],
                                expected, got):
        assert np.allclose(have, want, rtol=1e-4, atol=1e-4 * np.abs(want).max()), name
    # The moving variance moved towards the batch's plain (not Bessel-corrected) variance.
    batch_variance = np.asarray(images).var(axis=(0, 1, 2))
    assert np.allclose(got[-1], 0.5 + 0.5 * batch_variance, rtol=1e-5)


def test_inference_and_other_inputs_take_keras_path_unchanged():
    import keras

    rng = np.random.default_rng(1)
    keras_layer, fused_layer = _pair((4, 3, 3, 5), rng)
    images = rng.normal(size=(4, 3, 3, 5)).astype(np.float32)
    assert np.array_equal(keras.ops.convert_to_numpy(fused_layer(images, training=False)),
                          keras.ops.convert_to_numpy(keras_layer(images, training=False)))
    vectors_keras, vectors_fused = _pair((6, 5), rng)  # not N×H×W×C maps: Keras's own path
    vectors = rng.normal(size=(6, 5)).astype(np.float32)
    assert np.array_equal(keras.ops.convert_to_numpy(vectors_fused(vectors, training=True)),
                          keras.ops.convert_to_numpy(vectors_keras(vectors, training=True)))


def test_a_model_with_it_saves_and_loads(tmp_path):
    import keras

    from ml.batch_norm import FusedBatchNormalization
    from ml.model import build_model

    model = build_model(image_size=32, width=4, depth=3)
    assert any(isinstance(layer, FusedBatchNormalization) for layer in model.layers)
    images = np.random.default_rng(2).random((3, 32, 32, 1)).astype(np.float32)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded.get_layer("block1_bn")) is FusedBatchNormalization
    assert np.allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)


def test_training_runs_the_fused_kernel_and_inference_does_not():
    import tensorflow as tf

    layer = _pair((4, 8, 8, 3), np.random.default_rng(3))[1]

    def op_types(training: bool) -> set[str]:
        traced = tf.function(lambda images: layer(images, training=training))
        graph = traced.get_concrete_function(tf.TensorSpec((4, 8, 8, 3), tf.float32)).graph
        return {op.type for op in graph.get_operations()}

    assert "FusedBatchNormV3" in op_types(True)
    assert "FusedBatchNormV3" not in op_types(False)


def test_a_mixed_bfloat16_training_step_runs_fused_and_matches_keras():
    """Training in mixed bfloat16 (ml.precision) keeps the fused kernel: bfloat16 maps, float32 statistics."""
    import tensorflow as tf

    from ml.precision import dtype_policy

    shape = (8, 16, 16, 4)
    rng = np.random.default_rng(4)
    images = tf.constant(rng.normal(2.0, 3.0, shape).astype(np.float32))
    upstream = tf.constant(rng.normal(size=shape).astype(np.float32))
    with dtype_policy("bfloat16"):
        keras_layer, fused_layer = _pair(shape, rng)
    traced = tf.function(lambda batch: fused_layer(batch, training=True))
    graph = traced.get_concrete_function(tf.TensorSpec(shape, tf.float32)).graph
    assert "FusedBatchNormV3" in {op.type for op in graph.get_operations()}
    expected, got = _train_step(keras_layer, images, upstream), _train_step(fused_layer, images, upstream)
    assert got[0].dtype == tf.bfloat16.as_numpy_dtype and got[-1].dtype == np.float32
    for name, want, have in zip(["outputs", "d images", "d gamma", "d beta", "moving mean", "moving variance"],
                                expected, got):
        want, have = np.asarray(want, np.float32), np.asarray(have, np.float32)
        assert np.allclose(have, want, rtol=2e-2, atol=2e-2 * np.abs(want).max()), name
