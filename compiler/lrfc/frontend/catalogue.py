"""The layer catalogue: what lrfc does with each Keras layer type, and what it costs.

Per layer: its type, output shape, parameters, MACs (multiply-accumulates for
one sample; only the linear layers — convolutions and dense — are counted,
the rest cost 0), the factorization methods that apply, and its geometry
(the numbers a method needs). A layer no method applies to is *passed
through* with a note saying why.

| layer type | handling |
|---|---|
| Conv2D, Conv1D (groups 1, channels_last, same/valid) | tucker, cp, tt; a 1x1 stride-1 one is dense over channels: svd, qr, ttm |
| Dense (any input rank; applied to the last axis) | svd, qr, ttm |
| SeparableConv2D | its pointwise part is a 1x1 convolution: svd, qr, ttm; the depthwise part is kept |
| DepthwiseConv2D/1D, grouped Conv, causal Conv1D, Conv transpose, Conv3D | passed through (MACs counted) |
| everything else (BatchNorm, pooling, activations, Add, ...) | passed through, 0 MACs |
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from lrfc.decompose import applicable, of_kind
from lrfc.decompose.base import Cost, LayerWeights
from lrfc.errors import UserError
from lrfc.geometry import ConvGeometry, DenseGeometry, Geometry


CUSTOM_NOTE = "a layer of the model's own class: passed through, not looked inside (its MACs are not counted)"


@dataclass(frozen=True)
class LayerInfo:
    """One row of `lrfc inspect`."""

    name: str
    type: str
    output_shape: tuple
    params: int
    macs: int
    methods: tuple[str, ...]
    geometry: Geometry | None = None
    note: str = ""
    calls: int = 1  # how often the model calls the layer (shared weights): its MACs count every call

    def factorized_cost(self, method: str, ranks) -> Cost:
        """Params and MACs of the whole layer with its factorizable part replaced by ``method`` at ``ranks``.

        The one place this is computed: the chain's closed-form cost plus what
        the layer keeps (a separable layer's depthwise part); a layer called
        more than once runs its chain at every call, on the same weights.
        """
        from lrfc.decompose import get

        chain = get(method).cost(self.geometry, tuple(ranks))
        return Cost(chain.params + self.params - self.geometry.params,
                    self.macs + self.calls * (chain.macs - self.geometry.macs))

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "type": self.type,
            "output_shape": [d for d in self.output_shape],
            "params": self.params,
            "macs": self.macs,
            "methods": list(self.methods),
        }


def _shape(tensor) -> tuple:
    return tuple(None if d is None else int(d) for d in tensor.shape)


def _node_shapes(layer, node=None) -> tuple[tuple, tuple]:
    """Input and output shape of the layer at ``node`` (default: its first call)."""
    node = node if node is not None else layer._inbound_nodes[0]
    ins = node.input_tensors
    outs = node.outputs
    return (_shape(ins[0]) if ins else ()), (_shape(outs[0]) if outs else ())


def _spatial(shape: tuple, channels_last: bool) -> tuple:
    return shape[1:-1] if channels_last else shape[2:]


def _known(dims) -> bool:
    return all(d is not None for d in dims)


def _conv_info(layer, kind: str, in_shape: tuple, out_shape: tuple) -> tuple[int, tuple[str, ...], Geometry | None, str]:
    """MACs, methods, geometry and note for a convolution-family layer."""
    cfg = layer.get_config()
    channels_last = cfg.get("data_format", "channels_last") == "channels_last"
    kernel_spatial = tuple(int(k) for k in layer.kernel.shape[:-2]) if hasattr(layer, "kernel") else ()
    out_sp, in_sp = _spatial(out_shape, channels_last), _spatial(in_shape, channels_last)
    if not (_known(out_sp) and _known(in_sp)):
        return 0, (), None, "spatial size unknown (give --input-shape): MACs not counted"
    cin = in_shape[-1] if channels_last else in_shape[1]
    cout = out_shape[-1] if channels_last else out_shape[1]
    groups = int(cfg.get("groups", 1) or 1)

    if kind == "depthwise":
        k = kernel_spatial
        return math.prod(out_sp) * math.prod(k) * cout, (), None, "depthwise convolution: passed through"
    if kind == "separable":
        return _separable_info(layer, cfg, out_sp, channels_last, cout)
    if kind == "transpose":
        return math.prod(in_sp) * math.prod(kernel_spatial) * cin * cout // groups, (), None, "transposed convolution: passed through"

    macs = math.prod(out_sp) * math.prod(kernel_spatial) * (cin // groups) * cout
    padding = cfg.get("padding", "valid")
    reason = None
    if len(out_sp) not in (1, 2):
        reason = f"{len(out_sp)}-D convolution: passed through"
    elif groups != 1:
        reason = f"grouped convolution (groups={groups}): passed through"
    elif not channels_last:
        reason = "channels_first convolution: passed through"
    elif padding not in ("same", "valid"):
        reason = f"padding '{padding}': passed through"
    if reason:
        return macs, (), None, reason
    rank = len(out_sp)
    as2d = (lambda t: (1, int(t[0]))) if rank == 1 else (lambda t: (int(t[0]), int(t[1])))
    geom = ConvGeometry(
        kernel=as2d(kernel_spatial),
        cin=int(cin),
        cout=int(cout),
        in_hw=as2d(in_sp),
        out_hw=as2d(out_sp),
        strides=as2d(cfg["strides"]),
        dilation=as2d(cfg["dilation_rate"]),
        padding=padding,
        use_bias=bool(cfg.get("use_bias", True)),
        spatial_rank=rank,
    )
    methods = applicable("dense" if geom.is_pointwise else "conv", geom)
    return macs, methods, geom, ""


def _separable_info(layer, cfg: dict, out_sp: tuple, channels_last: bool, cout: int):
    """A SeparableConv: the depthwise part is kept; the pointwise part is a 1x1 convolution the dense methods take."""
    k = tuple(int(d) for d in layer.depthwise_kernel.shape[:-2])
    mid = int(layer.pointwise_kernel.shape[-2])
    macs = math.prod(out_sp) * math.prod(k) * mid + math.prod(out_sp) * mid * cout
    if not (channels_last and len(out_sp) == 2):
        return macs, (), None, "separable convolution outside 2-D channels_last: passed through"
    geom = ConvGeometry((1, 1), mid, cout, tuple(out_sp), tuple(out_sp), use_bias=bool(cfg.get("use_bias")))
    return macs, of_kind("dense"), geom, "depthwise part kept; pointwise part factorizable"


def _attention_macs(layer, node) -> int:
    """A MultiHeadAttention call's MACs per sample: its query, key, value and output projections and the two
    products of attention (scores, weighted sum). 0 where a sequence length is unknown."""
    node = node if node is not None else layer._inbound_nodes[0]
    args, kwargs = list(node.arguments.args), node.arguments.kwargs
    query = _shape(args[0])
    value = _shape(args[1]) if len(args) > 1 else _shape(kwargs.get("value", args[0]))
    key = _shape(args[2]) if len(args) > 2 else (_shape(kwargs["key"]) if kwargs.get("key") is not None else value)
    if not (_known(query[1:]) and _known(value[1:]) and _known(key[1:])):
        return 0
    cfg = layer.get_config()
    heads, kd = int(cfg["num_heads"]), int(cfg["key_dim"])
    vd = int(cfg.get("value_dim") or kd)
    out = cfg.get("output_shape") or query[-1]
    d_out = math.prod(out) if isinstance(out, (list, tuple)) else int(out)
    tq, tv = math.prod(query[1:-1]), math.prod(value[1:-1])
    return (tq * query[-1] * heads * kd + tv * key[-1] * heads * kd + tv * value[-1] * heads * vd
            + heads * tq * tv * (kd + vd) + tq * heads * vd * d_out)


def _einsum_macs(layer, in_shape: tuple, out_shape: tuple) -> int:
    """An EinsumDense's MACs per sample: the product of the sizes of every index of its input and kernel but the
    batch's (``abc,cd->abd`` on (None, 10, 8) with an (8, 12) kernel: 10 x 8 x 12); with an ellipsis, each output
    element times the kernel dimensions it sums over. 0 where a size is unknown."""
    spec = layer.get_config()["equation"].replace(" ", "")
    in_spec, rest = spec.split(",", 1)
    kernel_spec, out_spec = rest.split("->")
    kernel = {letter: int(d) for letter, d in zip(kernel_spec, layer.kernel.shape)}
    if "..." not in in_spec and len(in_spec) == len(in_shape):
        sizes = {**dict(zip(in_spec[1:], in_shape[1:])), **kernel}  # the first index is the batch's
        return math.prod(sizes.values()) if _known(sizes.values()) else 0
    contracted = [d for letter, d in kernel.items() if letter not in out_spec]
    return math.prod(out_shape[1:]) * math.prod(contracted) if _known(out_shape[1:]) else 0


def _kind(layer) -> str | None:
    import keras

    L = keras.layers
    if isinstance(layer, L.MultiHeadAttention):
        return "attention"
    if isinstance(layer, L.EinsumDense):
        return "einsum"
    if isinstance(layer, (L.SeparableConv1D, L.SeparableConv2D)):
        return "separable"
    if isinstance(layer, (L.DepthwiseConv1D, L.DepthwiseConv2D)):
        return "depthwise"
    if isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)):
        return "transpose"
    if isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D)):
        return "conv"
    if isinstance(layer, L.Dense):
        return "dense"
    return None


def describe_layer(layer, node=None, calls: int = 1) -> LayerInfo:
    """Catalogue one leaf layer of a built graph (see module docstring).

    ``node`` is the layer's call in the model being described
    (``graph.layer_nodes``); by default its first call anywhere. ``calls``:
    how often that model calls it (shapes are read at ``node``; MACs count
    every call, as for a layer applied twice with shared weights).
    """
    info = _describe_call(layer, node)
    if calls == 1:
        return info
    return dataclasses.replace(info, macs=info.macs * calls, calls=calls,
                               note="; ".join(x for x in (info.note, f"called {calls} times (shared weights)") if x))


def _describe_call(layer, node) -> LayerInfo:
    in_shape, out_shape = _node_shapes(layer, node)
    params = int(layer.count_params())
    kind = _kind(layer)
    if kind == "dense":
        fin, fout = (int(d) for d in layer.kernel.shape)
        lead = in_shape[1:-1]
        if _known(lead):
            geom = DenseGeometry(fin, fout, tokens=math.prod(lead), use_bias=layer.bias is not None)
            return LayerInfo(layer.name, type(layer).__name__, out_shape, params, geom.macs, of_kind("dense"), geom)
        return LayerInfo(layer.name, type(layer).__name__, out_shape, params, 0, of_kind("dense"),
                         DenseGeometry(fin, fout, 1, layer.bias is not None), "sequence length unknown: MACs not counted")
    if kind == "attention":
        return LayerInfo(layer.name, type(layer).__name__, out_shape, params, _attention_macs(layer, node), (), None,
                         "attention: passed through (its projections and products counted)")
    if kind == "einsum":
        return LayerInfo(layer.name, type(layer).__name__, out_shape, params,
                         _einsum_macs(layer, in_shape, out_shape), (), None, "EinsumDense: passed through")
    if kind is not None:
        macs, methods, geom, note = _conv_info(layer, kind, in_shape, out_shape)
        return LayerInfo(layer.name, type(layer).__name__, out_shape, params, macs, methods, geom, note)
    own = not type(layer).__module__.startswith(("keras.", "lrfc."))  # the user's class (--custom-objects)
    return LayerInfo(layer.name, type(layer).__name__, out_shape, params, 0, (), None, CUSTOM_NOTE if own else "")


def describe_model(flat_model) -> list[LayerInfo]:
    """One ``LayerInfo`` per leaf layer of a flattened model (see graph.rebuild), input layers excluded."""
    import keras

    from lrfc.frontend.graph import layer_calls, layer_nodes

    nodes, calls = layer_nodes(flat_model), layer_calls(flat_model)
    return [describe_layer(layer, nodes.get(layer.name), calls.get(layer.name, 1)) for layer in flat_model.layers
            if not isinstance(layer, keras.layers.InputLayer)]


def layer_weights(layer) -> LayerWeights:
    """The weights a method factorizes, in the layouts ``LayerWeights`` documents.

    A Conv1D kernel (k, cin, cout) becomes (1, k, cin, cout); for a
    SeparableConv2D it is the pointwise kernel (1, 1, mid, cout).
    """
    kernel = getattr(layer, "pointwise_kernel", None)
    if kernel is None:
        kernel = layer.kernel
    kernel = np.asarray(kernel.numpy() if hasattr(kernel, "numpy") else kernel, dtype=np.float64)
    if kernel.ndim == 3:
        kernel = kernel[None]
    bias = getattr(layer, "bias", None)
    bias = None if bias is None else np.asarray(bias.numpy() if hasattr(bias, "numpy") else bias, dtype=np.float64)
    return LayerWeights(kernel, bias)


def activation_of(layer) -> str | None:
    """The layer's fused activation as a built-in name (None for linear); a chain's last stage carries it."""
    act = layer.get_config().get("activation")
    if act in (None, "linear"):
        return None
    if not isinstance(act, str):
        raise UserError(f"layer '{layer.name}': activation {act!r} is not a built-in Keras activation name; it cannot be carried into a factorized chain")
    return act
