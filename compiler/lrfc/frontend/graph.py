"""Flatten a Keras model into one Functional graph of leaf layers, optionally replacing some.

Nested Sequential/Functional sub-models are inlined, so every Conv/Dense
layer is visible to the catalogue and the rewriter. The same traversal,
given a ``replace`` callback, is how a factorization plan is applied: one
graph walk, used for both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lrfc.errors import UserError

# replace(layer) -> a callable used instead of the layer, or None to keep it.
Replace = Callable[[object], Callable | None]


def _is_functional(obj) -> bool:
    from keras.src.models.functional import Functional

    return isinstance(obj, Functional)


def _call_flat(obj, args: Sequence, kwargs: dict, replace: Replace | None):
    import keras

    if isinstance(obj, keras.Sequential):
        x = args[0]
        for layer in obj.layers:
            x = _call_flat(layer, (x,), {}, replace)
        return x
    if _is_functional(obj):
        inputs = args[0] if len(args) == 1 else list(args)
        return obj._run_through_graph(
            inputs, operation_fn=lambda op: (lambda *a, **k: _call_flat(op, a, k, replace))
        )
    if isinstance(obj, keras.Model):
        raise UserError(
            f"layer '{obj.name}' is a subclassed model ({type(obj).__name__}); lrfc needs a Sequential or "
            "Functional graph it can rebuild"
        )
    kwargs = {k: v for k, v in kwargs.items() if k != "training"}
    if replace is not None:
        substitute = replace(obj)
        if substitute is not None:
            return substitute(*args, **kwargs)
    return obj(*args, **kwargs)


def model_inputs(model) -> list:
    """The model's symbolic inputs; a clear error if it was never built."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise UserError(f"model '{model.name}' has no defined input shape; build it with keras.Input(shape=...) before saving")
    return inputs


def rebuild(model, replace: Replace | None = None, input_shape: tuple[int, ...] | None = None):
    """A Functional copy of ``model`` with nested models inlined.

    Leaf layers are shared with ``model`` (same objects, same weights) unless
    ``replace`` substitutes them.

    Args:
        model: a Sequential or Functional Keras model.
        replace: called with each leaf layer; return a callable to use in
            its place, or None to keep the layer.
        input_shape: override of the (single) input's shape without the batch
            axis, for models whose spatial size is undefined.

    Returns:
        A new ``keras.Model``.
    """
    import keras

    if not (isinstance(model, keras.Sequential) or _is_functional(model)):
        raise UserError(f"model '{model.name}' is subclassed ({type(model).__name__}); lrfc needs a Sequential or Functional graph")
    originals = model_inputs(model)
    if input_shape is not None and len(originals) != 1:
        raise UserError(f"--input-shape applies to single-input models; this one has {len(originals)} inputs")
    new_inputs = [
        keras.Input(shape=tuple(input_shape) if input_shape is not None else tuple(t.shape[1:]), dtype=t.dtype,
                    name=getattr(t, "name", None) or f"input_{i}")
        for i, t in enumerate(originals)
    ]
    args = new_inputs if len(new_inputs) > 1 else [new_inputs[0]]
    if input_shape is None:
        outputs = _call_flat(model, args, {}, replace)
    else:
        try:
            outputs = _call_flat(model, args, {}, replace)
        except (ValueError, TypeError) as exc:  # Keras' message for a shape the first layer cannot take
            first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            raise UserError(f"--input-shape {','.join(map(str, input_shape))}: the model cannot take it ({first})") from None
    return keras.Model(new_inputs if len(new_inputs) > 1 else new_inputs[0], outputs, name=model.name)


def layer_nodes(model) -> dict[str, object]:
    """Each layer's call node *in this model* (its first call, by graph order).

    A layer shared with another model (flattening shares leaf layers) has
    nodes from both; only this model's node has this model's shapes.
    """
    nodes: dict[str, object] = {}
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            op = node.operation
            if op is not None and not node.is_input and op.name not in nodes:
                nodes[op.name] = node
    return nodes
