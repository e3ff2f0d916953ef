"""Chain equalization: each factorized chain's inner channels rescaled so that int8 treats them alike.

A chain's stages are linear maps with no nonlinearity between them (a ReLU
at most, which commutes with a positive scale), so the ``c``-th channel of
the tensor between stage ``i`` and stage ``i+1`` can be multiplied by any
``s_c > 0`` (stage ``i``'s output channel ``c``: kernel and bias) and divided
out again where stage ``i+1`` reads it (its kernel's input channel ``c``)
with the model computing the same function. Float arithmetic does not care;
int8 does. TFLite and ONNX Runtime quantize an activation tensor with one
scale for all its channels, and a factorization's inner channels differ
widely in range (an HOSVD or SVD basis orders them by energy): the weak
channels get a few of the 256 levels and their rounding noise is amplified
by the next stage. Equalization gives every inner channel the range of the
widest one (``s_c = max_k m_k / m_c``, ``m_c`` the channel's largest
magnitude on the calibration samples, capped at ``MAX_SCALE``), as
cross-layer equalization does between whole layers (Nagel et al., "Data-Free
Quantization Through Weight Equalization and Bias Correction", 2019; here
from measured activation ranges, inside the chains only, where it is exact).

Measured (``python -m bench.equalize``, docs/BENCHMARKS.md; the Xeon, 2026-12-05 09:05 UTC; CP's depthwise
pairs as two operators in both files), int8 files against their float Keras model on 10,000 test images, each
plan chosen without fine-tuning: bench.foreign's ResNet50 trained on Caffe preprocessing (whose lrfc int8 files
had failed the verification gate), at 77 % fewer MACs (47 chains: CP, Tucker, SVD), int8 top-1 71.9 -> 77.0 % on
LiteRT and 71.4 -> 75.4 % on ONNX Runtime (81.3 % in float), the mean largest output difference 0.151 -> 0.093
and 0.166 -> 0.102; the VGG-style baseline at 84 % fewer MACs, 0.61 -> 0.50 on both runtimes, int8 top-1 up
0.1 point (its 06:24 run, another plan: 0.730 -> 0.535, up 0.2). Tried on the way (one-off,
docs/LOG.md): the square root of these scales (the weight-range compromise) cut less (0.668 -> 0.560
against 0.495 on an earlier plan); a keras.applications ResNet50V2 plan of Tucker and SVD chains, whose int8
was already as close as the original's, 0.0332 -> 0.0309.

Applied by the lower stage to the compressed model before any file is
written (the fp32 files compute the same function up to float rounding), and
with ``--qat`` before the quantization-aware round, whose fake quantization
then trains at the equalized ranges.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

MAX_SCALE = 256.0   # a channel this many times narrower than the widest carries next to nothing: not blown up further
BATCH = 64          # calibration samples per forward pass (the memory plan's inference cap applies too)
_HOMOGENEOUS = ("linear", "relu")  # f(s x) = s f(x) for s > 0: a stage with one of these may be rescaled
_LINEAR_KINDS = ("Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D", "Dense")


@dataclass(frozen=True)
class Equalization:
    """What ``equalize_chains`` did: links rescaled, chains they belong to, the largest scale and the median
    spread of the links' channel ranges before (widest / narrowest channel)."""

    links: int
    chains: int
    max_scale: float
    median_spread: float

    def to_json(self) -> dict:
        return asdict(self)


def chain_links(model, names=None) -> list[tuple[object, object, object]]:
    """``(stage i, stage i+1, the tensor between them)`` of every factorized chain (layers ``NAME__0``,
    ``NAME__1``...; only those of ``names`` when given: a plan's layers) that may be rescaled there: both plain
    linear layers (no groups), the first with no activation or a ReLU, its output read by the second alone and
    each of its channels by one input channel of the second, each called once (a chain shared by two calls is
    left as it is)."""
    from lrfc.decompose.chain import stage_of
    from lrfc.frontend.graph import layer_calls, layer_nodes, tensor_readers

    nodes, calls, readers = layer_nodes(model), layer_calls(model), tensor_readers(model)
    stages: dict[str, list[tuple[int, object]]] = {}
    for layer in model.layers:
        stage = stage_of(layer.name)
        if (stage and type(layer).__name__ in _LINEAR_KINDS and calls.get(layer.name) == 1
                and getattr(layer, "groups", 1) == 1 and (names is None or stage[0] in names)):
            stages.setdefault(stage[0], []).append((stage[1], layer))
    links = []
    for parts in stages.values():
        parts.sort(key=lambda p: p[0])
        for (i, a), (j, b) in zip(parts, parts[1:]):
            activation = getattr(getattr(a, "activation", None), "__name__", "linear")
            tensor = nodes[a.name].output_tensors[0]
            if (j == i + 1 and activation in _HOMOGENEOUS and readers.get(id(tensor)) == [b.name]
                    and b.kernel.shape[-2] == tensor.shape[-1]):
                links.append((a, b, tensor))
    return links


def channel_ranges(model, tensors, x: np.ndarray, batch: int = BATCH) -> list[np.ndarray]:
    """Each of ``tensors``' largest magnitude per channel over ``x``, in one pass of the model (float64).

    The reduction is part of the tap model, so a batch's inner maps are let go
    as the pass moves on instead of all being returned at once (ResNet50 at
    224x224: about a hundred of them).
    """
    import keras

    from lrfc.frontend.samples import batch_for

    ops = keras.ops
    peaks = [ops.max(ops.abs(t), axis=tuple(range(len(t.shape) - 1))) for t in tensors]
    tap = keras.Model(model.input, peaks)
    batch = batch_for(batch)
    ranges = [np.zeros(int(t.shape[-1])) for t in tensors]
    for start in range(0, len(x), batch):
        outs = tap(np.asarray(x[start:start + batch], dtype=np.float32), training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for k, out in enumerate(outs):
            ranges[k] = np.maximum(ranges[k], np.asarray(out, dtype=np.float64))
    return ranges


def _scale_outputs(layer, s: np.ndarray) -> None:
    """Multiply ``layer``'s output channel ``c`` by ``s[c]`` (kernel and bias)."""
    weights = layer.get_weights()
    kernel = weights[0]
    if type(layer).__name__.startswith("Depthwise"):  # (..., channels, multiplier): output channel c * multiplier + m
        kernel = kernel * s.reshape(kernel.shape[-2], kernel.shape[-1])
    else:
        kernel = kernel * s
    weights[0] = kernel.astype(np.float32)
    if len(weights) > 1:
        weights[1] = (weights[1] * s).astype(np.float32)
    layer.set_weights(weights)


def _divide_inputs(layer, s: np.ndarray) -> None:
    """Divide ``layer``'s input channel ``c`` by ``s[c]`` (the kernel's second-to-last axis, in every kind)."""
    weights = layer.get_weights()
    weights[0] = (weights[0] / s.reshape((-1, 1))).astype(np.float32)
    layer.set_weights(weights)


def equalize_chains(model, x: np.ndarray, names=None) -> Equalization:
    """Rescale the inner channels of ``model``'s factorized chains in place to the widest one's range on ``x``.

    The model computes the same function (up to float rounding); its int8
    lowering rounds every inner channel at the same relative precision.
    ``names``: the factorized layers (a plan's); None: every ``NAME__i``
    chain the model has (a ``model.keras`` lrfc wrote, plan unknown).
    Returns what was done (no links: a model with no multi-stage chains).
    """
    from lrfc.decompose.chain import stage_of

    links = chain_links(model, names)
    if not links or not len(x):
        return Equalization(0, 0, 1.0, 1.0)
    ranges = channel_ranges(model, [t for _, _, t in links], x)
    spreads, largest = [], 1.0
    for (a, b, _), m in zip(links, ranges):
        widest = float(m.max())
        if widest <= 0:
            continue
        live = m > widest / MAX_SCALE
        s = np.where(live, widest / np.where(live, m, 1.0), MAX_SCALE)
        spreads.append(widest / max(float(m[live].min()), 1e-30))
        largest = max(largest, float(s.max()))
        _scale_outputs(a, s)
        _divide_inputs(b, s)
    chains = len({stage_of(a.name)[0] for a, _, _ in links})
    return Equalization(len(spreads), chains, round(largest, 3), round(float(np.median(spreads)), 3) if spreads else 1.0)
