"""Grouped convolutions in operators both converters lower: depthwise, or one convolution per group.

Keras 3 on TensorFlow runs a convolution with ``groups > 1`` as an XLA
function (``jit_compile=True``: TensorFlow's CPU kernels do not take
groups), and that function reaches the converters as one opaque call.
TFLite's converter opens it into a grouped CONV_2D; tf2onnx cannot
(keras.applications ConvNeXtTiny, whose 7x7 convolutions have ``groups``
equal to their channels: "No Op registered for StatefulPartitionedCall",
no ONNX file). The converter twin (``lower.twin``) replaces such a layer by
what it computes:

* ``groups`` equal to the input channels: a depthwise convolution
  (``DepthwiseConv2D`` / ``DepthwiseConv1D``, depth multiplier
  ``filters / groups``), its kernel the same numbers reordered;
* other groups (ResNeXt-style): the input split into ``groups`` slices, one
  plain convolution each, concatenated (at most five at a time, which
  LiteRT's XNNPACK takes: ``xnnpack_forms.concat_in_fives``).

Channels-last only (a channels-first grouped layer is kept as it is).
"""

from __future__ import annotations

import numpy as np

from lrfc.common.quiet import import_keras
from lrfc.lower.xnnpack_forms import concat_in_fives


def _grouped(layer) -> bool:
    keras = import_keras()
    return (type(layer) in (keras.layers.Conv1D, keras.layers.Conv2D) and int(layer.groups) > 1
            and layer.data_format == "channels_last")


def grouped_twin(layer, node=None):
    """A layer computing what a grouped Conv1D/Conv2D computes, without a grouped convolution; None for others.

    ``node`` (the twin's signature) is not needed: the kernel says the channels.
    """
    if not _grouped(layer):
        return None
    keras = import_keras()
    groups, filters = int(layer.groups), int(layer.filters)
    kernel = np.asarray(layer.kernel)              # (*window, channels per group, filters)
    channels = kernel.shape[-2] * groups
    bias = [np.asarray(layer.bias)] if layer.use_bias else []
    common = dict(strides=layer.strides, padding=layer.padding, dilation_rate=layer.dilation_rate,
                  activation=layer.activation, use_bias=layer.use_bias, dtype=layer.dtype_policy)
    rank = kernel.ndim - 2
    if kernel.shape[-2] == 1:  # one input channel per group: depthwise, output c * multiplier + m from input c
        depthwise = (keras.layers.DepthwiseConv1D if rank == 1 else keras.layers.DepthwiseConv2D)(
            layer.kernel_size, depth_multiplier=filters // groups, name=layer.name, **common)
        depthwise.build((None,) * (rank + 1) + (channels,))
        depthwise.set_weights([kernel.reshape(*kernel.shape[:-2], channels, filters // groups), *bias])
        return depthwise
    return _split_layer(keras)(layer, kernel, bias, common)


def _split_layer(keras):
    """The class of a layer that runs a grouped convolution as one plain convolution per group."""

    class GroupedConvAsSplit(keras.layers.Layer):
        def __init__(self, layer, kernel, bias, common):
            super().__init__(name=layer.name, dtype=layer.dtype_policy)
            self.groups, per_out = int(layer.groups), int(layer.filters) // int(layer.groups)
            conv_class = type(layer)
            self.convs = []
            for g in range(self.groups):
                conv = conv_class(per_out, layer.kernel_size, name=f"{layer.name}_group{g}", **common)
                conv.build((None,) * (kernel.ndim - 1) + (kernel.shape[-2],))
                conv.set_weights([kernel[..., g * per_out:(g + 1) * per_out], *(b[g * per_out:(g + 1) * per_out]
                                                                                  for b in bias)])
                self.convs.append(conv)

        def call(self, x):
            parts = keras.ops.split(x, self.groups, axis=-1)
            return concat_in_fives([conv(p) for conv, p in zip(self.convs, parts)], axis=-1)

        def compute_output_shape(self, input_shape):
            shape = self.convs[0].compute_output_shape((*input_shape[:-1], input_shape[-1] // self.groups))
            return (*shape[:-1], shape[-1] * self.groups)

    return GroupedConvAsSplit
