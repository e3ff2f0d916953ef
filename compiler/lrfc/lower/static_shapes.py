"""Reshapes with a constant shape before lowering: no shape arithmetic in the artifacts.

Keras' ``Flatten`` and ``Reshape`` build their target shape from the batch
size at run time (``tf.shape(x)[0]``), and both converters keep that
arithmetic: the VGG-style baseline's TFLite file runs SHAPE, STRIDED_SLICE
and PACK before its one RESHAPE, its ONNX file Shape, Gather, Cast, Slice,
Concat and Cast. Where every dimension but the batch is known, the target
is the constant ``[-1, *dims]``; ``with_static_shapes`` returns a twin of
the model whose such layers reshape to it, sharing every other layer (and
so every weight) with the model. The twin exists only to be converted: the
published ``.keras`` file is the model itself.

Measured once, side by side (runtime_bench, 2 threads, 300 runs x 2
lifetimes, idle, 2026-12-01 22:25 UTC; the VGG-style latency build's files
against the same Keras models lowered with the twin): ONNX Runtime p50
0.168 -> 0.154 ms for the compressed model, 0.500 -> 0.502 ms for the
original; LiteRT 0.099 -> 0.098 and 0.532 -> 0.498 ms (the old original's
p90 was 0.90 ms: a noisy pair). Between 0 and 9 %, the most where the
model is small and ONNX Runtime runs every shape operator as a kernel.
``tests/test_lowering_ops.py`` pins the operators.
"""

from __future__ import annotations

import math

from lrfc.common.quiet import import_keras


def static_target(layer) -> tuple[int, ...] | None:
    """The non-batch output dimensions of a ``Flatten`` or ``Reshape`` whose output shape is fixed; else None."""
    keras = import_keras()
    if not isinstance(layer, (keras.layers.Flatten, keras.layers.Reshape)) or len(layer._inbound_nodes) != 1:
        return None  # a shared layer has no single output shape
    if isinstance(layer, keras.layers.Flatten) and layer.get_config().get("data_format") == "channels_first":
        return None  # Keras transposes before flattening there: not a plain reshape
    dims = tuple(layer.output.shape[1:])
    if not dims or any(d is None or d < 0 for d in dims):
        return None
    known = tuple(layer.input.shape[1:])
    if any(d is None for d in known) or math.prod(known) != math.prod(dims):
        return None
    return tuple(int(d) for d in dims)


def with_static_shapes(model):
    """``model``, or a twin whose fixed-shape ``Flatten``/``Reshape`` layers reshape to a constant ``[-1, *dims]``."""
    keras = import_keras()
    if not any(static_target(layer) is not None for layer in model.layers):
        return model

    class StaticReshape(keras.layers.Layer):
        def __init__(self, dims, **kwargs):
            super().__init__(**kwargs)
            self.dims = tuple(dims)

        def call(self, x):
            return keras.ops.reshape(x, (-1, *self.dims))

        def compute_output_shape(self, input_shape):
            return (input_shape[0], *self.dims)

    def clone(layer):
        dims = static_target(layer)
        return layer if dims is None else StaticReshape(dims, name=layer.name)

    return keras.models.clone_model(model, clone_function=clone)
