"""A binary classifier with one output unit, seen by the compiler as a two-class one, and published as it came.

Keras' own image-classification examples end a two-class model in one unit:
``Dense(1, activation="sigmoid")`` (a probability, class 1 above 0.5) or
``Dense(1)`` trained with ``from_logits=True`` (a logit, class 1 above 0).
Every stage that scores a model (the sanity gate, the budget's top-1, the
search's KL divergence, distillation) reads one score per class, so the load
stage gives such a model a head that turns the unit's logit ``z`` into the
two logits ``(-z/2, z/2)``: their softmax is ``(1 - sigmoid(z), sigmoid(z))``,
exactly the unit's probabilities, and their argmax is the unit's threshold.
A sigmoid applied by the output layer itself is taken off first (the layer's
linear twin, same weights; a separate sigmoid layer is skipped), so the head
sees the logit, not a probability rounded to 0 or 1.

What is published has the user's shape again (``user_form``): the model up to
the head, then the sigmoid where the original had one. Its files are verified
with the unit's own threshold (``predicted``); an argmax over one column
would agree with anything.
"""

from __future__ import annotations

import numpy as np


SIGMOID, LOGIT = "sigmoid", "logit"
THRESHOLDS = {SIGMOID: 0.5, LOGIT: 0.0}  # class 1 where the unit's output is above this
HEAD_NAME = "lrfc_binary_head"


def _linear_after_logit() -> tuple:
    import keras

    L = keras.layers
    return (L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.Flatten, L.Reshape, L.Dropout)


def predicted(outputs: np.ndarray, binary: str | None = None) -> np.ndarray:
    """Each sample's class from a classifier's outputs: the argmax of its scores, or, for one unit
    (``binary``: ``"sigmoid"`` or ``"logit"``), 1 where the unit is above its threshold."""
    flat = np.asarray(outputs).reshape(len(outputs), -1)
    if binary is not None and flat.shape[1] == 1:
        return (flat[:, 0] > THRESHOLDS[binary]).astype(np.int64)
    return flat.argmax(axis=1)


def describe(binary: str) -> str:
    """How the log names the reading of one output unit."""
    if binary == SIGMOID:
        return "a binary classifier with one sigmoid unit (class 1 where it is above 0.5)"
    return ("a binary classifier with one unit and no activation, read as a logit (class 1 where it is above 0, as "
            "Keras' from_logits=True examples train it)")


def _output_layer(model):
    history = getattr(model.outputs[0], "_keras_history", None)
    return history.operation if history is not None else model.layers[-1]


def _is_sigmoid(activation) -> bool:
    return activation == "sigmoid" or getattr(activation, "__name__", None) == "sigmoid"


def binary_kind(model) -> str | None:
    """``"sigmoid"`` or ``"logit"`` for a single-output model whose output is one unit per sample (shape (batch, 1))
    ending in a sigmoid or in a layer without activation (pooling, flattening or dropout after it included); None
    for anything else."""
    import keras

    from lrfc.frontend.graph import layer_nodes

    shape = tuple(model.outputs[0].shape)
    if len(model.outputs) != 1 or len(shape) != 2 or shape[-1] != 1:
        return None
    layer = last = _output_layer(model)
    if isinstance(layer, keras.layers.Activation):
        return SIGMOID if _is_sigmoid(layer.get_config().get("activation")) else None
    nodes = layer_nodes(model)  # this model's calls (a flattened model shares its layers with the file's)
    while isinstance(layer, _linear_after_logit()):  # a Conv2D(1) without activation, then pooling: still a logit
        inputs = nodes[layer.name].input_tensors if layer.name in nodes else ()
        history = getattr(inputs[0], "_keras_history", None) if len(inputs) == 1 else None
        if history is None:
            return None
        layer = history.operation
    if not hasattr(layer, "activation") or isinstance(layer, keras.layers.Activation):
        return None
    act = layer.get_config().get("activation")
    if _is_sigmoid(act):  # after pooling: an average of probabilities is no logit, and its sigmoid cannot come off
        return SIGMOID if layer is last else None
    return LOGIT if act in (None, "linear") or getattr(act, "__name__", None) == "linear" else None


def refusal(name: str, model) -> str:
    """The one line for a one-unit output that is neither a sigmoid nor a logit (a softmax over one unit, a classic
    slip for a binary classifier, is 1 for every input: said so)."""
    import keras

    shape = tuple(model.outputs[0].shape)
    layer = _output_layer(model)
    act = layer.get_config().get("activation") if hasattr(layer, "get_config") else None
    if isinstance(layer, keras.layers.Softmax) or act == "softmax" or getattr(act, "__name__", None) == "softmax":
        return (f"{name}: its output is one unit after a softmax (shape {shape}), which is 1.0 for every input, so "
                "the model tells its classes apart by nothing; a binary classifier ends in Dense(1, "
                "activation='sigmoid') or in two softmax units")
    source = type(layer).__name__ + (f" with activation '{act}'" if isinstance(act, str) else "")
    return (f"{name}: its output is one unit (shape {shape}) from a {source}; lrfc build takes a classifier: one "
            "score per class, or for two classes one unit from a sigmoid or from a layer without activation (a "
            "logit); a regression has no top-1 accuracy for --max-acc-drop to keep")


def _head_layer():
    import keras

    class BinaryHead(keras.layers.Layer):
        """``z`` (batch, 1) -> ``(-z/2, z/2)`` (batch, 2): two-class logits whose softmax is the unit's sigmoid."""

        def call(self, z):
            half = keras.ops.multiply(z, 0.5)
            return keras.ops.concatenate([keras.ops.negative(half), half], axis=-1)

        def compute_output_shape(self, input_shape):
            return (*input_shape[:-1], 2)

    return BinaryHead(name=HEAD_NAME)


def _inputs(model):
    """The model's inputs as its graph was built with them: one tensor for one input (a list would make Keras warn
    at every call with one tensor)."""
    return model.inputs[0] if len(model.inputs) == 1 else model.inputs


def as_two_class(model, binary: str):
    """``model`` (a flattened one-unit classifier, ``binary`` its kind) as a two-class logits model that shares its
    layers, except the output layer's sigmoid, which a linear twin (the same weights) or nothing replaces."""
    import keras

    from lrfc.frontend.graph import clone_call, rebuild

    out_layer = _output_layer(model)

    def replace(layer):
        if layer is not out_layer or binary != SIGMOID:
            return None
        if isinstance(layer, keras.layers.Activation):
            return lambda x, **_: x
        return clone_call(layer, layer.get_config() | {"activation": "linear"})

    logit_model = rebuild(model, replace=replace)
    return keras.Model(_inputs(logit_model), _head_layer()(logit_model.outputs[0]), name=model.name)


def user_form(model, binary: str | None):
    """``model`` as it is published: for a binary classifier (``binary``), the two-class head taken off and the
    sigmoid put back where the original had one; ``model`` itself otherwise."""
    if binary is None:
        return model
    import keras

    history = getattr(model.outputs[0], "_keras_history", None)
    if history is None or getattr(history.operation, "name", None) != HEAD_NAME:
        raise ValueError(f"model {model.name!r}: its output is not lrfc's binary head {HEAD_NAME!r}")
    logit = history.operation._inbound_nodes[history.node_index].input_tensors[0]  # this model's call, not another's
    out = keras.layers.Activation("sigmoid")(logit) if binary == SIGMOID else logit
    return keras.Model(_inputs(model), out, name=model.name)
