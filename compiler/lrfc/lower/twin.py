"""What both converters see: a twin of the model with some layers in forms the converters lower well.

Each rewrite in ``REWRITES`` takes a layer and its call node in the model
and returns the layer to convert in its place, or None to keep it. A layer
called more than once in the model is kept (one replacement would have to
fit every call). The twin shares every layer no rewrite touches (and so
every weight) with the model; it exists only to be converted: the published
``.keras`` file is the model itself, and the verification gate compares the
artifacts with the model, not the twin.

* ``static_shapes.static_reshape``: a fixed-shape ``Flatten``/``Reshape`` as
  a constant reshape (no shape arithmetic in the artifacts);
* ``static_shapes.static_dense``: a ``Dense`` on a map (rank 3 or more)
  between constant reshapes, for the same reason;
* ``grouped_conv.grouped_twin``: a grouped convolution as a depthwise one,
  or one convolution per group (tf2onnx cannot convert Keras' grouped form);
* ``separable_depthwise.merged_pairs`` (a pair of layers, so first): a
  depthwise kh x 1 then 1 x kw (CP's spatial factors) as one kh x kw
  depthwise, the first's place an identity.

The TFLite converter's twin adds ``TFLITE_REWRITES`` (and at int8
``TFLITE_INT8_REWRITES``): forms LiteRT's XNNPACK delegate takes where it
would leave an operator to LiteRT's reference kernels (``xnnpack_forms``:
a concatenation of more than five tensors; average pooling; the batch
shuffles around a dilated convolution).
"""

from __future__ import annotations

from collections import defaultdict

from lrfc.common.quiet import import_keras
from lrfc.lower.grouped_conv import grouped_twin
from lrfc.lower.separable_depthwise import merged_pairs
from lrfc.lower.static_shapes import static_dense, static_reshape
from lrfc.lower.xnnpack_forms import average_pool, dilated_conv, unit_pool, wide_concat

REWRITES = (static_reshape, static_dense, grouped_twin)
TFLITE_REWRITES = REWRITES + (wide_concat, unit_pool, dilated_conv)
TFLITE_INT8_REWRITES = TFLITE_REWRITES + (average_pool,)


def calls(model) -> dict[int, list]:
    """Each operation's call nodes in ``model`` (not in other models sharing it), by ``id`` of the operation."""
    graph = getattr(model, "_functional", None) or model  # a Sequential keeps its graph in a Functional
    nodes = defaultdict(list)
    for depth in graph._nodes_by_depth.values():
        for node in depth:
            if node.operation is not None and not node.is_input:
                nodes[id(node.operation)].append(node)
    return nodes


def converter_twin(model, rewrites=REWRITES):
    """``model``, or a twin in which each layer one of ``rewrites`` applies to is replaced by its layer."""
    keras = import_keras()
    replaced = merged_pairs(model)
    nodes = calls(model)
    for layer in model.layers:
        if len(nodes.get(id(layer), ())) != 1 or id(layer) in replaced:
            continue
        for rewrite in rewrites:
            twin_layer = rewrite(layer, nodes[id(layer)][0])
            if twin_layer is not None:
                replaced[id(layer)] = twin_layer
                break
    if not replaced:
        return model
    return keras.models.clone_model(model, clone_function=lambda layer: replaced.get(id(layer), layer))
