"""Quantization-aware fine-tuning (``--qat``): the one-shot round trains through int8 rounding.

Post-training quantization (the int8 artifacts, ``lower``) rounds weights
and activations that fine-tuning never saw rounded. With ``--qat`` (a target
whose precision is int8) the round trains a *twin* of the model whose
Conv2D, DepthwiseConv2D and Dense layers compute with their kernels
fake-quantized the way the TFLite converter quantizes them (8 bits,
symmetric; per output channel for convolutions, per tensor for Dense), and
whose outputs pass through 8-bit fake quantization at the ranges the
calibration samples give (their min and max, as the converter's
representative dataset does). Gradients pass straight through the rounding
(``tf.quantization.fake_quant_*``, through ``keras.quantizers``).

The twin shares the model's variables, so the model itself is what trains;
it stays a float model, and the lower stage quantizes it as before, to
weights that were trained to survive it. Approximations, said plainly: a
BatchNorm after a convolution is not folded into the kernel that is
fake-quantized (the converter folds it first), and activation ranges are
fixed at the start of the round rather than tracked.
"""

from __future__ import annotations

import numpy as np

QUANTIZED = ("Conv2D", "DepthwiseConv2D", "Dense")


def _fake_quant_layer_class(keras):
    ops = keras.ops
    fq = keras.quantizers.fake_quant_with_min_max_vars

    class FakeQuantized(keras.layers.Layer):
        """``inner`` computed with an 8-bit fake-quantized kernel, its output fake-quantized to ``[low, high]``."""

        def __init__(self, inner, low: float, high: float, **kwargs):
            super().__init__(name=f"{inner.name}__qat", **kwargs)
            self.inner, self.low, self.high = inner, float(low), float(high)

        def _kernel(self):
            kernel = self.inner.kernel
            kind = type(self.inner).__name__
            if kind == "Dense":  # per tensor, as TFLite's FULLY_CONNECTED
                bound = ops.maximum(ops.max(ops.abs(kernel)), 1e-8)
                return fq(kernel, -bound, bound, num_bits=8, narrow_range=True)
            axis = 2 if kind == "DepthwiseConv2D" else -1
            reduce = tuple(i for i in range(len(kernel.shape)) if i != (axis % len(kernel.shape)))
            bound = ops.maximum(ops.max(ops.abs(kernel), axis=reduce), 1e-8)
            return fq(kernel, -bound, bound, num_bits=8, narrow_range=True, axis=axis)

        def call(self, x):
            layer, kernel = self.inner, self._kernel()
            kind = type(layer).__name__
            if kind == "Dense":
                y = ops.matmul(x, kernel)
            elif kind == "DepthwiseConv2D":
                y = ops.depthwise_conv(x, kernel, strides=layer.strides, padding=layer.padding,
                                       dilation_rate=layer.dilation_rate, data_format=layer.data_format)
            else:
                y = layer.convolution_op(x, kernel)
            if layer.use_bias:
                y = y + layer.bias
            if layer.activation is not None:
                y = layer.activation(y)
            return fq(y, self.low, self.high, num_bits=8)

    return FakeQuantized


def eligible(layer) -> bool:
    """A layer the twin fake-quantizes: a channels-last Conv2D/DepthwiseConv2D, or a Dense."""
    kind = type(layer).__name__
    if kind not in QUANTIZED:
        return False
    if kind == "DepthwiseConv2D" and int(layer.depth_multiplier) != 1:
        return False
    return getattr(layer, "data_format", "channels_last") == "channels_last" and int(getattr(layer, "groups", 1)) == 1


def output_ranges(model, names: list[str], x: np.ndarray, batch_size: int = 256) -> dict[str, tuple[float, float]]:
    """Per layer, the min and max of its output on ``x`` (zero always inside, as the converter's ranges)."""
    import keras

    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    from lrfc.frontend.samples import batch_for

    batch_size = batch_for(batch_size)
    probe = keras.Model(inputs, [model.get_layer(n).output for n in names])
    lows = {n: 0.0 for n in names}
    highs = {n: 0.0 for n in names}
    for start in range(0, len(x), batch_size):
        outs = probe(x[start:start + batch_size], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for n, out in zip(names, outs):
            out = np.asarray(out)
            lows[n], highs[n] = min(lows[n], float(out.min())), max(highs[n], float(out.max()))
    return {n: (lows[n], max(highs[n], lows[n] + 1e-6)) for n in names}


def qat_twin(model, calibration: np.ndarray):
    """A training twin of ``model``: same variables, eligible layers fake-quantized (see the module doc).

    Returns ``(twin, names)``: the twin and the layers it fake-quantizes.
    """
    import keras

    from lrfc.frontend.graph import rebuild

    names = [layer.name for layer in model.layers if eligible(layer)]
    ranges = output_ranges(model, names, np.asarray(calibration, dtype=np.float32)) if names else {}
    wrap = _fake_quant_layer_class(keras)

    def replace(layer):
        return wrap(layer, *ranges[layer.name]) if layer.name in ranges else None

    return rebuild(model, replace=replace), names
