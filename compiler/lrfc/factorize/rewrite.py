"""Apply a plan to a model: each chosen layer becomes its factorized chain.

The result is a new Functional model (nested models inlined). Every other
layer — BatchNorm, pooling, residual adds, depthwise layers, activations —
is re-created from its config with its weights copied, so the new model
shares no state with the original.
"""

from __future__ import annotations


from lrfc.decompose.base import LayerStats
from lrfc.errors import UserError
from lrfc.frontend.catalogue import LayerInfo, activation_of, describe_layer, layer_weights
from lrfc.geometry import chain_rank
from lrfc.plan import LayerChoice, Plan


def check_choice(info: LayerInfo, choice: LayerChoice) -> None:
    """A clear error when the plan asks for something the layer cannot take."""
    from lrfc import decompose

    if choice.method not in decompose.METHODS:
        raise UserError(f"layer '{info.name}': unknown method {choice.method!r}; known: {', '.join(decompose.METHODS)}")
    if choice.method not in info.methods:
        why = info.note or f"a {info.type} takes {', '.join(info.methods) or 'no method'}"
        raise UserError(f"layer '{info.name}' ({info.type}): method {choice.method!r} does not apply ({why})")
    mod = decompose.get(choice.method)
    geom = info.geometry
    limits = mod.max_ranks(geom)
    if len(choice.ranks) != len(limits) or any(r < 1 or r > m for r, m in zip(choice.ranks, limits)):
        raise UserError(f"layer '{info.name}': {choice.method} ranks {list(choice.ranks)} out of range; expected {len(limits)} ranks within 1..{list(limits)}")


def factorized_stages(layer, info: LayerInfo, choice: LayerChoice, stats: LayerStats | None = None, prepared=None):
    """The chain of stages for one layer under ``choice`` (``prepared`` reuses a factorization)."""
    from lrfc import decompose

    if prepared is None:
        prepared = decompose.get(choice.method).prepare(layer_weights(layer), info.geometry,
                                                        stats if choice.data_aware else None)
    return decompose.chain_stages(choice.method, prepared, choice.ranks, info.geometry, activation_of(layer))


def _depthwise_part(layer):
    """The depthwise half of a SeparableConv2D as its own layer (weights set after the call)."""
    import keras

    cfg = layer.get_config()
    return keras.layers.DepthwiseConv2D(
        cfg["kernel_size"], strides=cfg["strides"], padding=cfg["padding"], depth_multiplier=cfg["depth_multiplier"],
        dilation_rate=cfg["dilation_rate"], use_bias=False, name=f"{layer.name}__dw",
    )


def plan_stages(flat_model, plan: Plan, stats: dict[str, LayerStats] | None = None, prepared: dict | None = None) -> dict:
    """Factorize every layer the plan names: ``{layer name: (LayerInfo, [Stage, ...])}``.

    Args:
        flat_model: a flattened model (``frontend.graph.rebuild``).
        plan: the choices.
        stats: captured input statistics per layer name, used by choices
            marked ``data_aware``.
        prepared: optional cache ``{(layer, method, data_aware): prepared}``
            of factorizations to truncate instead of recomputing.
    """
    from lrfc.frontend.graph import layer_nodes

    stats = stats or {}
    prepared = prepared or {}
    nodes = layer_nodes(flat_model)
    result = {}
    for choice in plan.choices:
        if choice.layer not in nodes:
            raise UserError(f"plan names layer {choice.layer!r}, which the model does not have")
        layer = flat_model.get_layer(choice.layer)
        info = describe_layer(layer, nodes[choice.layer])
        check_choice(info, choice)
        if choice.data_aware and choice.layer not in stats:
            raise UserError(f"layer '{choice.layer}': data-aware factorization needs captured inputs (pass --data)")
        key = (choice.layer, choice.method, choice.data_aware)
        result[choice.layer] = (info, factorized_stages(layer, info, choice, stats.get(choice.layer), prepared.get(key)))
    return result


def _shared(layer) -> bool:
    """A graph node with no state to copy: it is shared, not copied.

    Two kinds: a layer that runs stored Python and holds no weights (Lambda):
    copying goes through ``from_config``, which Keras' safe mode refuses for
    Lambda layers (the model could only have been loaded with
    ``--trust-model``); and a Keras operation that is not a layer at all, what
    a Functional graph records for ``x + y`` or ``x * 0.5`` between layers
    (keras.applications MobileNetV3's hard-swish, ConvNeXt's residual adds).
    """
    import keras

    if not isinstance(layer, keras.layers.Layer):
        return True
    return isinstance(layer, keras.layers.Lambda) and not layer.weights


def apply_stages(flat_model, stages_by_layer: dict):
    """A new Functional model in which each named layer is replaced by its chain.

    Args:
        flat_model: a flattened model.
        stages_by_layer: ``plan_stages`` output.

    Returns:
        The rewritten ``keras.Model``; all other layers are fresh copies.
    """
    from lrfc.decompose.chain import apply_chain
    from lrfc.frontend.graph import clone_call, rebuild

    copies: dict[int, object] = {}

    def copy_of(layer):
        if id(layer) not in copies:
            # no state: re-creating a Lambda would deserialize its code again
            copies[id(layer)] = layer if _shared(layer) else clone_call(layer)
        return copies[id(layer)]

    # a layer the model calls more than once (shared weights) keeps one chain, called at each call
    chains: dict[str, list] = {}
    depthwise: dict[str, object] = {}

    def replace(layer):
        if layer.name not in stages_by_layer:
            return copy_of(layer)
        info, stages = stages_by_layer[layer.name]

        def call(x, **kwargs):
            if hasattr(layer, "pointwise_kernel"):
                if layer.name in depthwise:
                    x = depthwise[layer.name](x)
                else:
                    dw = depthwise[layer.name] = _depthwise_part(layer)
                    x = dw(x)
                    dw.set_weights([layer.depthwise_kernel.numpy()])
            return apply_chain(x, stages, chain_rank(info.geometry), layer.name, chains.setdefault(layer.name, []))

        return call

    return rebuild(flat_model, replace=replace)


def apply_plan(flat_model, plan: Plan, stats: dict[str, LayerStats] | None = None, prepared: dict | None = None):
    """``apply_stages(flat_model, plan_stages(...))``: the plan's model in one call."""
    return apply_stages(flat_model, plan_stages(flat_model, plan, stats, prepared))
