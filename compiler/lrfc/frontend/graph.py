"""Flatten a Keras model into one Functional graph of leaf layers, optionally replacing some.

Nested Sequential/Functional sub-models are inlined, so every Conv/Dense
layer is visible to the catalogue and the rewriter. The same traversal,
given a ``replace`` callback, is how a factorization plan is applied: one
graph walk, used for both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lrfc.errors import UserError, first_line

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


def clone_call(layer, config: dict | None = None, weights: list | None = None) -> Callable:
    """A callable for ``rebuild``'s ``replace``: a fresh layer from ``config`` (default: the layer's own), its
    ``weights`` (default: the layer's) loaded once its first call has built it. Call it at every call site of the
    layer, so a layer used twice stays one layer."""
    clone = layer.__class__.from_config(layer.get_config() if config is None else config)
    weights = layer.get_weights() if weights is None else weights
    loaded = []

    def call(*args, **kwargs):
        out = clone(*args, **kwargs)
        if weights and not loaded:
            clone.set_weights(weights)
            loaded.append(True)
        return out

    return call


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
            first = first_line(exc)
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


def layer_calls(model) -> dict[str, int]:
    """How many times *this model* calls each layer (more than once: a layer applied twice with shared weights)."""
    calls: dict[str, int] = {}
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            op = node.operation
            if op is not None and not node.is_input:
                calls[op.name] = calls.get(op.name, 0) + 1
    return calls


def tensor_readers(model) -> dict[int, list[str]]:
    """``{id(tensor): names of the layers reading it}`` over every call in *this model* (a shared layer's second
    call too); a model output counts as one reader named ``""``."""
    readers: dict[int, list[str]] = {}
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            if node.operation is not None and not node.is_input:
                for t in node.input_tensors:
                    readers.setdefault(id(t), []).append(node.operation.name)
    for t in model.outputs:
        readers.setdefault(id(t), []).append("")
    return readers


def frontier_walk(model, stops: Sequence[str], samples: int, budget_bytes: int):
    """One forward pass cut before each stop layer: a generator function over samples ``x``, or None.

    ``stops`` are layer names in graph order (``layer_nodes``). At each one,
    the walk yields the *frontier* there, ``[(tensor, values)]``: every
    tensor computed before the stop (or a model input) that the stop or a
    later layer reads (the stop's input, a residual shortcut), in graph
    order. Segment ``k`` is a model from cut ``k-1``'s frontier to cut
    ``k``'s, so each layer runs once over ``x`` in all; a caller may change
    the weights of later layers between two yields (reconstruction refits
    them) and the next segment runs with them.

    None when the model has several inputs, the stops are not in graph
    order, a frontier's values for ``samples`` samples would take more than
    ``budget_bytes``, or Keras cannot build a segment: the caller then runs a
    prefix model per stop.
    """
    import math

    import keras
    import numpy as np

    if len(model.inputs) != 1:
        return None
    nodes = layer_nodes(model)
    where = {name: i for i, name in enumerate(nodes)}
    if any(name not in where for name in stops):
        return None
    cuts = [where[name] for name in stops]
    if cuts != sorted(set(cuts)):
        return None
    produced_at = {id(t): where[name] for name, node in nodes.items() for t in node.outputs}
    read_at: dict[int, list[int]] = {}
    tensors: dict[int, object] = {}
    for name, node in nodes.items():
        for t in node.input_tensors:
            read_at.setdefault(id(t), []).append(where[name])
            tensors[id(t)] = t

    def frontier(cut: int) -> list:
        return [tensors[k] for k, reads in read_at.items() if produced_at.get(k, -1) < cut and max(reads) >= cut]

    fronts = [frontier(c) for c in cuts]
    largest = max(sum(4 * math.prod(int(d) for d in t.shape[1:]) for t in f) for f in fronts)
    if largest * samples > budget_bytes:
        return None
    try:
        plans = []
        previous, start = list(model.inputs), 0
        for cut, front in zip(cuts, fronts):
            made = [t for t in front if all(t is not p for p in previous)]
            needed = [p for p in previous if any(start <= r < cut for r in read_at.get(id(p), []))]
            segment = keras.Model(needed if len(needed) > 1 else needed[0], made) if made else None
            plans.append((needed, made, segment, front))
            previous, start = front, cut
    except Exception:  # a graph Keras will not cut here
        return None

    def walk(x):
        from lrfc.frontend.samples import batch_for

        values = {id(model.inputs[0]): x}
        for needed, made, segment, front in plans:
            if segment is not None:
                batch = batch_for(256)
                outs = [[] for _ in made]
                for i in range(0, len(x), batch):
                    args = [values[id(t)][i:i + batch] for t in needed]
                    result = segment(args if len(args) > 1 else args[0], training=False)
                    result = result if isinstance(result, (list, tuple)) else [result]
                    for part, r in zip(outs, result):
                        part.append(np.asarray(r))
                values.update({id(t): np.concatenate(part) for t, part in zip(made, outs)})
            values = {id(t): values[id(t)] for t in front}  # what no later layer reads goes
            yield [(t, values[id(t)]) for t in front]

    return walk
