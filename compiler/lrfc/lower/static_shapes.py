"""Reshapes with a constant shape before lowering: no shape arithmetic in the artifacts.

Keras' ``Flatten`` and ``Reshape`` build their target shape from the batch
size at run time (``tf.shape(x)[0]``), and both converters keep that
arithmetic: the VGG-style baseline's TFLite file runs SHAPE, STRIDED_SLICE
and PACK before its one RESHAPE, its ONNX file Shape, Gather, Cast, Slice,
Concat and Cast. Where every dimension but the batch is known, the target
is the constant ``[-1, *dims]``; ``static_reshape`` is the layer that
reshapes to it, which the converter twin (``lower.twin``) puts in such a
layer's place.

Measured once, side by side (runtime_bench, 2 threads, 300 runs x 2
lifetimes, idle, 2026-12-01 22:25 UTC; the VGG-style latency build's files
against the same Keras models lowered with the twin): ONNX Runtime p50
0.168 -> 0.154 ms for the compressed model, 0.500 -> 0.502 ms for the
original; LiteRT 0.099 -> 0.098 and 0.532 -> 0.498 ms (the old original's
p90 was 0.90 ms: a noisy pair). Between 0 and 9 %, the most where the
model is small and ONNX Runtime runs every shape operator as a kernel.
``tests/test_lowering_ops.py`` pins the operators.

Each function takes the layer and its call node in the model being converted
(``lower.twin``): a layer flattening shares with the loaded model has a node
in each, and only this model's node has this model's shapes.
"""

from __future__ import annotations

import math

from lrfc.common.quiet import import_keras


def static_target(layer, node) -> tuple[int, ...] | None:
    """The non-batch output dimensions of a ``Flatten`` or ``Reshape`` whose output shape is fixed; else None."""
    keras = import_keras()
    if not isinstance(layer, (keras.layers.Flatten, keras.layers.Reshape)):
        return None
    if isinstance(layer, keras.layers.Flatten) and layer.get_config().get("data_format") == "channels_first":
        return None  # Keras transposes before flattening there: not a plain reshape
    dims = tuple(node.outputs[0].shape[1:])
    if not dims or any(d is None or d < 0 for d in dims):
        return None
    known = tuple(node.input_tensors[0].shape[1:])
    if any(d is None for d in known) or math.prod(known) != math.prod(dims):
        return None
    return tuple(int(d) for d in dims)


def static_reshape(layer, node):
    """A layer reshaping to the constant ``[-1, *dims]`` in place of a fixed-shape ``Flatten``/``Reshape``; else None."""
    dims = static_target(layer, node)
    if dims is None:
        return None
    keras = import_keras()

    class StaticReshape(keras.layers.Layer):
        def __init__(self, dims, **kwargs):
            super().__init__(**kwargs)
            self.dims = tuple(dims)

        def call(self, x):
            return keras.ops.reshape(x, (-1, *self.dims))

        def compute_output_shape(self, input_shape):
            return (input_shape[0], *self.dims)

    return StaticReshape(dims, name=layer.name)


def static_dense(layer, node):
    """A ``Dense`` on a fixed-shape input of rank 3 or more, between constant reshapes; else None.

    Keras computes such a layer with ``tf.tensordot``, which builds the 2-D
    and the output shapes at run time: the pointwise layers of
    keras.applications ConvNeXtTiny (36, on 4-D maps; 72 after SVD) took
    SHAPE, GATHER, REDUCE_PROD, CONCATENATION, PACK and two RESHAPEs around
    each FULLY_CONNECTED in its TFLite file, and as many shape operators in
    its ONNX file. The replacement reshapes the input to ``[-1, features]``,
    calls the same layer (its weights, not a copy) and reshapes to the
    constant ``[-1, *dims, units]``.
    """
    keras = import_keras()
    if type(layer) is not keras.layers.Dense:
        return None
    dims = tuple(node.input_tensors[0].shape[1:])
    if len(dims) < 2 or any(d is None for d in dims):
        return None

    class StaticDense(keras.layers.Layer):
        def __init__(self, dense, **kwargs):
            super().__init__(**kwargs)
            self.dense = dense

        def call(self, x):
            y = self.dense(keras.ops.reshape(x, (-1, dims[-1])))
            return keras.ops.reshape(y, (-1, *dims[:-1], self.dense.units))

        def compute_output_shape(self, input_shape):
            return (input_shape[0], *dims[:-1], self.dense.units)

    return StaticDense(layer, name=layer.name)
