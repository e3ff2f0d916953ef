"""A kh x 1 depthwise convolution followed by a 1 x kw one, converted as one kh x kw depthwise convolution.

CP's chain on an unstrided 2-D layer (``decompose.cp``) is a 1x1, a
depthwise kh x 1, a depthwise 1 x kw and a 1x1 convolution: its two spatial
factors as two layers, so that the Keras model has CP's parameters and MACs
(R (kh + kw) a position, not R kh kw) and fine-tuning keeps each term rank
one. Nothing stands between the two depthwise layers (the first has no bias
and no activation, its output is read by the second alone), so together they
are one depthwise convolution whose kernel is the outer product of theirs,
``K[i, j, c] = H[i, c] V[j, c]``; TensorFlow pads each axis on its own, so
it is exact at 'same' and 'valid' padding alike. The converter twin
(``lower.twin``) gives the converters that one layer in the second layer's
place and an identity in the first's, which neither converter writes.

Why: int8 rounds one tensor fewer per chain, and the files hold one operator
fewer. Measured (``python -m bench.equalize``, docs/BENCHMARKS.md; the Xeon,
2026-12-05), equalized int8 files on the 10,000 test images against their
float model: the VGG-style baseline at 84.1 % fewer MACs (CP x3, Tucker x4,
SVD x1), mean largest output difference 0.495 -> 0.423 and 99th percentile
1.39 -> 1.11 on both LiteRT and ONNX Runtime, int8 top-1 90.95 -> 91.20 %
(LiteRT) and 90.92 -> 91.19 % (ONNX Runtime; 91.07 % in float); bench.foreign's
Caffe-trained ResNet50 at 76.6 % (CP x12 among 47 chains), no gain: 0.093 ->
0.091 (LiteRT) and 0.102 -> 0.103 (ONNX Runtime), top-1 0.26 and 0.11 points
lower. Latency moves within this machine's noise: over four side-by-side runs
of the VGG-style files, one operator against two ran 0.96-1.09x as long at
fp32 and 0.94-1.01x at int8 on LiteRT, 0.95-1.06x and 0.88-1.09x on ONNX
Runtime; the ResNet50's, one run, 0.99x and 1.01x on LiteRT, 0.96x and 0.98x
on ONNX Runtime (docs/LOG.md).

The cost: the files hold kh kw R depthwise weights where the Keras model
holds (kh + kw) R, and do kh kw instead of kh + kw multiplies a channel and
position: R (kh kw - kh - kw) more of each per chain, 3R at 3x3, against
R (cin + cout) in its 1x1 stages. The report's parameters and MACs are the
Keras model's, the plan's.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lrfc.common.quiet import import_keras


class Spatial(NamedTuple):
    """What decides whether two depthwise convolutions merge, read off a Keras layer or a ``decompose.base.Stage``."""

    kernel: tuple
    strides: tuple
    dilation: tuple
    padding: str
    bias: bool
    linear: bool


def of_layer(layer) -> Spatial | None:
    """A channels-last ``DepthwiseConv2D`` of depth multiplier 1 as a ``Spatial``; None for any other layer."""
    keras = import_keras()
    if (type(layer) is not keras.layers.DepthwiseConv2D or layer.data_format != "channels_last"
            or int(layer.depth_multiplier) != 1):
        return None
    return Spatial(tuple(layer.kernel_size), tuple(layer.strides), tuple(layer.dilation_rate), layer.padding,
                   bool(layer.use_bias), getattr(layer.activation, "__name__", "linear") == "linear")


def of_stage(stage) -> Spatial | None:
    """A 2-D depthwise stage as a ``Spatial``; None for any other stage."""
    if stage.kind != "depthwise" or len(stage.kernel) != 2:
        return None
    return Spatial(tuple(stage.kernel), tuple(stage.strides), tuple(stage.dilation), stage.padding,
                   bool(stage.use_bias), stage.activation in (None, "linear"))


def _axis(spec: Spatial) -> int | None:
    """0 for a kh x 1 kernel, 1 for a 1 x kw one (k > 1), else None."""
    kh, kw = spec.kernel
    return 0 if kh > 1 and kw == 1 else 1 if kh == 1 and kw > 1 else None


def mergeable(a: Spatial | None, b: Spatial | None) -> bool:
    """Whether depthwise ``a`` then ``b`` are one spatial factor each, on different axes, with nothing between:
    ``a`` without bias or activation, one padding, each striding and dilating along its own axis only, and the
    merged strides equal (TensorFlow's CPU depthwise kernel takes no other)."""
    if a is None or b is None:
        return False
    axes = _axis(a), _axis(b)
    if None in axes or axes[0] == axes[1] or a.bias or not a.linear or a.padding != b.padding:
        return False
    rows, cols = (a, b) if axes[0] == 0 else (b, a)
    return (rows.strides[1] == 1 and cols.strides[0] == 1 and rows.strides[0] == cols.strides[1]
            and rows.dilation[1] == 1 and cols.dilation[0] == 1)


def merge(a: Spatial, a_kernel, b: Spatial, b_kernel) -> tuple[np.ndarray, Spatial]:
    """The one layer of a mergeable pair: its kernel (kh, kw, channels, 1), the outer product of the pair's
    ((kh, 1, channels, 1) and (1, kw, channels, 1), in the pair's order), and its ``Spatial`` (``b``'s padding,
    bias and activation)."""
    (rows, h), (cols, v) = ((a, a_kernel), (b, b_kernel)) if _axis(a) == 0 else ((b, b_kernel), (a, a_kernel))
    kernel = np.einsum("ic,jc->ijc", np.asarray(h)[:, 0, :, 0], np.asarray(v)[0, :, :, 0])[..., None]
    spec = b._replace(kernel=(rows.kernel[0], cols.kernel[1]), strides=(rows.strides[0], cols.strides[1]),
                      dilation=(rows.dilation[0], cols.dilation[1]))
    return kernel.astype(np.float32), spec


def merged(a, b):
    """The one ``DepthwiseConv2D`` computing ``b(a(x))`` for a mergeable pair of layers, named and activated as ``b``."""
    keras = import_keras()
    kernel, spec = merge(of_layer(a), a.kernel, of_layer(b), b.kernel)
    layer = keras.layers.DepthwiseConv2D(spec.kernel, strides=spec.strides, padding=spec.padding,
                                         dilation_rate=spec.dilation, use_bias=b.use_bias, activation=b.activation,
                                         dtype=b.dtype_policy, name=b.name)
    layer.build((None, None, None, kernel.shape[2]))
    layer.set_weights([kernel, *([np.asarray(b.bias)] if b.use_bias else [])])
    return layer


def merged_pairs(model) -> dict[int, object]:
    """``{id(layer): what the converters get instead}`` for every mergeable pair of ``model``: the first layer's
    place takes an identity, the second's the merged layer. Each layer of a pair is called once, and the first's
    output is read by the second alone (not a model output either)."""
    from lrfc.frontend.graph import layer_calls, layer_nodes, tensor_readers

    keras = import_keras()
    graph = getattr(model, "_functional", None) or model  # a Sequential keeps its graph in a Functional
    nodes, calls = layer_nodes(graph), layer_calls(graph)
    readers = tensor_readers(graph)
    layers = {layer.name: layer for layer in model.layers}
    out: dict[int, object] = {}
    for a in model.layers:
        if of_layer(a) is None or calls.get(a.name) != 1 or id(a) in out:
            continue
        reader = readers.get(id(nodes[a.name].output_tensors[0]), [])
        b = layers.get(reader[0]) if len(reader) == 1 else None
        if b is None or calls.get(b.name) != 1 or id(b) in out or not mergeable(of_layer(a), of_layer(b)):
            continue
        out[id(a)] = keras.layers.Identity(name=a.name)
        out[id(b)] = merged(a, b)
    return out
