"""Layers in forms LiteRT's XNNPACK delegate takes, for the TFLite converter's twin (``lower.twin``).

XNNPACK runs every operator of a file it supports as one delegated part;
one it leaves out runs on LiteRT's reference kernel and splits the graph
(``runtime_bench.delegation``). Measured in this LiteRT (2026-12-05,
docs/LOG.md), it leaves out:

* a ``CONCATENATION`` of more than five tensors, at any precision (NASNet's
  cells join six; a grouped convolution split per group joins ``groups``):
  ``concat_in_fives`` joins at most five at a time, in the same order, which
  it takes, so ``wide_concat`` puts such a ``Concatenate`` in that form;
* an ``AVERAGE_POOL_2D`` of a 1x1 window with a stride (NASNet's shortcut
  halving), at any precision, and every ``AVERAGE_POOL_2D`` at int8
  (DenseNet's transitions, NASNet's 3x3 pools): ``unit_pool`` and
  ``average_pool`` compute it as a depthwise convolution whose weights are
  1 / (window area) (exact in int8: per-channel symmetric weights put each
  at 127 times its scale), times a constant map that divides by the cells
  each output really averaged where ``same`` padding cuts the window at the
  border (Keras leaves padding out of the average). Channels-last 2-D
  pools over a fixed map size only;
* the ``SPACE_TO_BATCH_ND`` and ``BATCH_TO_SPACE_ND`` around a dilated
  convolution, at any precision: Keras computes a ``Conv2D``,
  ``DepthwiseConv2D`` or ``SeparableConv2D`` with ``dilation_rate`` > 1
  through ``tf.nn.convolution``, which wraps an undilated convolution in
  those two, and the converter leaves them when the batch is open (its
  bias a separate ``ADD``, its activation unfused); ``dilated_conv``
  computes such a layer with TensorFlow's own dilated kernels, which the
  converter writes as one ``CONV_2D`` / ``DEPTHWISE_CONV_2D`` with its
  dilation factors, bias and activation fused, and XNNPACK takes.

The functions are the twin's rewrites: each takes a layer and its call node
and returns the layer to convert in its place, or None to keep it.
"""

from __future__ import annotations

import numpy as np

from lrfc.common.quiet import import_keras

MAX_CONCAT_INPUTS = 5  # XNNPACK's concatenate takes 2 to 5 inputs
DILATED = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D")  # the layers dilated_conv computes


def concat_in_fives(tensors: list, axis: int = -1):
    """``keras.ops.concatenate(tensors, axis)`` as a tree of concatenations of at most five, in order."""
    ops = import_keras().ops
    tensors = list(tensors)
    while len(tensors) > MAX_CONCAT_INPUTS:
        groups = [tensors[i:i + MAX_CONCAT_INPUTS] for i in range(0, len(tensors), MAX_CONCAT_INPUTS)]
        tensors = [ops.concatenate(g, axis=axis) if len(g) > 1 else g[0] for g in groups]
    return ops.concatenate(tensors, axis=axis)


def wide_concat(layer, node=None):
    """A ``Concatenate`` of more than five tensors as ``concat_in_fives``; None for others."""
    keras = import_keras()
    if type(layer) is not keras.layers.Concatenate or node is None:
        return None
    inputs = node.input_tensors
    if len(inputs) <= MAX_CONCAT_INPUTS:
        return None
    return _concat_layer(keras)(layer)


def _concat_layer(keras):
    class ConcatenateInFives(keras.layers.Layer):
        def __init__(self, layer):
            super().__init__(name=layer.name, dtype=layer.dtype_policy)
            self.axis = int(layer.axis)
            self.reference = layer

        def call(self, inputs):
            return concat_in_fives(inputs, self.axis)

        def compute_output_shape(self, input_shape):
            return self.reference.compute_output_shape(input_shape)

    return ConcatenateInFives


def unit_pool(layer, node=None):
    """An ``AveragePooling2D`` of a 1x1 window as a depthwise convolution (any precision); None for others."""
    keras = import_keras()
    if type(layer) is not keras.layers.AveragePooling2D or tuple(layer.pool_size) != (1, 1):
        return None
    return average_pool(layer, node)


def average_pool(layer, node=None):
    """An ``AveragePooling2D`` as a depthwise convolution and a border correction (int8); None for others."""
    keras = import_keras()
    if type(layer) is not keras.layers.AveragePooling2D or layer.data_format != "channels_last" or node is None:
        return None
    shape = tuple(node.input_tensors[0].shape)
    if len(shape) != 4 or any(d is None for d in shape[1:]):
        return None
    height, width, channels = (int(d) for d in shape[1:])
    pool, strides, padding = tuple(layer.pool_size), tuple(layer.strides), layer.padding.lower()
    counts = _window_counts(height, width, pool, strides, padding)
    scale = None if np.all(counts == pool[0] * pool[1]) else (pool[0] * pool[1] / counts).astype(np.float32)
    return _pool_layer(keras)(layer, channels, scale)


def _window_counts(height: int, width: int, pool, strides, padding: str) -> np.ndarray:
    """How many input cells each output's window covers (Keras' ``same`` padding: the extra cell at the end)."""
    def axis(size, k, s):
        if padding == "valid":
            n = (size - k) // s + 1
            return np.full(n, k)
        n = -(-size // s)
        before = max((n - 1) * s + k - size, 0) // 2
        starts = np.arange(n) * s - before
        return np.minimum(starts + k, size) - np.maximum(starts, 0)

    return np.outer(axis(height, pool[0], strides[0]), axis(width, pool[1], strides[1])).astype(np.float64)


def _pool_layer(keras):
    class AveragePoolAsDepthwise(keras.layers.Layer):
        def __init__(self, layer, channels, scale):
            super().__init__(name=layer.name, dtype=layer.dtype_policy)
            pool = tuple(layer.pool_size)
            self.depthwise = keras.layers.DepthwiseConv2D(pool, strides=layer.strides, padding=layer.padding,
                                                          use_bias=False, name=f"{layer.name}_depthwise",
                                                          dtype=layer.dtype_policy)
            self.depthwise.build((None, None, None, channels))
            self.depthwise.set_weights([np.full((*pool, channels, 1), 1.0 / (pool[0] * pool[1]), np.float32)])
            self.scale = None if scale is None else scale[None, :, :, None]
            self.reference = layer

        def call(self, x):
            y = self.depthwise(x)
            return y if self.scale is None else y * keras.ops.convert_to_tensor(self.scale, dtype=y.dtype)

        def compute_output_shape(self, input_shape):
            return self.reference.compute_output_shape(input_shape)

    return AveragePoolAsDepthwise


def dilated_conv(layer, node=None):
    """A channels-last 2-D convolution with ``dilation_rate`` > 1 on TensorFlow's dilated kernels; None for others.

    Only ungrouped ``Conv2D`` (a grouped one is ``grouped_conv``'s) and
    ``DepthwiseConv2D`` / ``SeparableConv2D`` of exactly those classes:
    a subclass may compute something else.
    """
    keras = import_keras()
    if type(layer).__name__ not in DILATED or type(layer) is not getattr(keras.layers, type(layer).__name__):
        return None
    if tuple(layer.dilation_rate) == (1, 1) or layer.data_format != "channels_last":
        return None
    if getattr(layer, "groups", 1) != 1 or layer.padding.lower() not in ("same", "valid"):
        return None
    return _dilated_layer(keras)(layer)


def _dilated_layer(keras):
    class DilatedConvolution(keras.layers.Layer):
        """``reference``'s function with its own weights, as one dilated TensorFlow convolution (and pointwise)."""

        def __init__(self, layer):
            super().__init__(name=layer.name, dtype=layer.dtype_policy)
            self.reference = layer

        def call(self, x):
            import tensorflow as tf

            ref = self.reference
            dilations = [1, *(int(d) for d in ref.dilation_rate), 1]
            strides = [1, *(int(s) for s in ref.strides), 1]
            padding = ref.padding.upper()

            def weight(v):
                return tf.cast(v, x.dtype)

            if isinstance(ref, keras.layers.SeparableConv2D):
                y = tf.raw_ops.DepthwiseConv2dNative(input=x, filter=weight(ref.depthwise_kernel), strides=strides,
                                                     padding=padding, dilations=dilations)
                y = tf.nn.conv2d(y, weight(ref.pointwise_kernel), strides=1, padding="VALID")
            elif isinstance(ref, keras.layers.DepthwiseConv2D):
                y = tf.raw_ops.DepthwiseConv2dNative(input=x, filter=weight(ref.kernel), strides=strides,
                                                     padding=padding, dilations=dilations)
            else:
                y = tf.nn.conv2d(x, weight(ref.kernel), strides=strides, padding=padding, dilations=dilations)
            if ref.use_bias:
                y = tf.nn.bias_add(y, weight(ref.bias))
            return ref.activation(y) if ref.activation is not None else y

        def compute_output_shape(self, input_shape):
            return self.reference.compute_output_shape(input_shape)

    return DilatedConvolution
