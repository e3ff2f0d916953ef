"""BatchNormalization trained through TensorFlow's fused kernel while lrfc fine-tunes.

Keras 3 trains a BatchNormalization layer with separate operations (the
batch moments, then ``tf.nn.batch_normalization``), and their gradients are
as many again: on the ResNet-style baseline factorized at 85 % of its MACs
(batch 128, the AVX2-only EPYC, TensorFlow's profiler over 12 steps) the BN
layers took 31 % of the operators' time, more than every convolution's
forward pass. TensorFlow's fused kernel (``FusedBatchNormV3`` and its
gradient, oneDNN on the CPU) computes the same function in one operator each
way: the same steps took 29 % less operator time, and Keras ``fit`` ran
455-487 samples/s unfused against 593-603 fused, alternating in one process
(a one-off script, 2026-12-04 15:05-15:15 UTC: ``finetune._trainer`` twins
with and without ``fused_batchnorm``, 3,072 random samples per timed epoch,
three rounds each; no repo command reruns it, docs/LOG.md has the details).

It is the same function: the batch mean and (biased) variance normalise, and
the moving averages move by ``1 - momentum`` towards the batch's statistics
(the fused kernel updates the variance with the unbiased batch variance, a
factor ``n / (n - 1)`` with ``n`` the batch's pixels: 1.00016 at 7x7 maps
and batch 128). Measured on one batch of that model, outputs agree to 5e-5
and every weight's gradient to 0.6 % of its norm (float sums in another order).

``fused_batchnorm(model)`` swaps the ``call`` of every layer it can (a plain
BatchNormalization over the last axis of a 4-D float32 input, no renorm, no
synchronisation, no mask, in training mode) for the fused one, and restores
it on the way out, so the model saves, converts and infers exactly as
before; anything else keeps Keras' own call. Only the TensorFlow backend has
the kernel: under another backend nothing is swapped.
"""

from __future__ import annotations

from contextlib import contextmanager

MIN_EPSILON = 1.001e-5  # the fused kernel's smallest epsilon on a GPU; a smaller one keeps Keras' call


def _eligible(keras, layer) -> bool:
    return (type(layer) is keras.layers.BatchNormalization and not layer.renorm and not layer.synchronized
            and layer.epsilon >= MIN_EPSILON and layer.compute_dtype == "float32"
            and layer.built and getattr(layer.input_spec, "ndim", None) == 4 and layer.axis in (-1, 3))


def _fused_call(layer):
    """A ``call`` for ``layer`` that runs training steps through ``tf.compat.v1.nn.fused_batch_norm``."""
    import tensorflow as tf

    keras_call = type(layer).call

    def call(inputs, training=None, mask=None):
        if not (training and layer.trainable) or mask is not None or inputs.dtype != tf.float32:
            return keras_call(layer, inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        scale = layer.gamma if layer.scale else tf.ones([channels], tf.float32)
        offset = layer.beta if layer.center else tf.zeros([channels], tf.float32)
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, scale, offset, mean=layer.moving_mean, variance=layer.moving_variance, epsilon=layer.epsilon,
            is_training=True, exponential_avg_factor=1.0 - layer.momentum)
        layer.moving_mean.assign(mean)
        layer.moving_variance.assign(variance)
        return outputs

    return call


def _layers(model):
    flatten = getattr(model, "_flatten_layers", None)
    return list(flatten(include_self=False, recursive=True)) if flatten is not None else list(model.layers)


@contextmanager
def fused_batchnorm(model):
    """Inside the block, ``model``'s eligible BatchNormalization layers train through the fused kernel; yields how many."""
    from lrfc.common.quiet import import_keras

    keras = import_keras()
    swapped = []
    if keras.backend.backend() == "tensorflow":
        swapped = [layer for layer in _layers(model) if _eligible(keras, layer)]
    try:
        for layer in swapped:
            layer.call = _fused_call(layer)
        yield len(swapped)
    finally:
        for layer in swapped:
            layer.__dict__.pop("call", None)
