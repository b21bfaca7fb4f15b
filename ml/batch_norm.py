"""Batch normalisation that trains through TensorFlow's fused kernel.

Keras 3's BatchNormalization computes a training batch's moments and the normalisation as separate
element-wise ops, and their gradients likewise; on a CPU, over the full-resolution maps of the first
block, that is most of the block's time. TensorFlow's FusedBatchNormV3 does the same arithmetic in one
pass each way (`python -m bench.bench_batch_norm` times a training step of the default network with each).

Everything but the training-mode forward pass is Keras's own: the variables, their names, inference,
serialisation and ONNX export (which traces inference only) are unchanged.
"""
from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="tumorscreen")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization over the last axis of N×H×W×C maps, fused while training."""

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or mask is not None or self.renorm or not self._fusable(inputs):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        gamma = self.gamma if self.scale else tf.ones_like(self.moving_mean)
        beta = self.beta if self.center else tf.zeros_like(self.moving_mean)
        outputs, mean, unbiased_variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True)
        # The kernel returns the variance with Bessel's correction; Keras's moving average takes the plain one.
        count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), unbiased_variance.dtype)
        variance = unbiased_variance * (count - 1.0) / tf.maximum(count, 1.0)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return outputs

    def _fusable(self, inputs) -> bool:
        return (keras.backend.backend() == "tensorflow" and len(inputs.shape) == 4
                and self.axis in (-1, 3) and inputs.dtype in ("float32", "bfloat16"))
