"""Roofline latency estimates, for a target lrfc cannot reach.

When the target device is not at hand (``--target jetson-orin-nano`` on a
laptop, no ``--device``), a layer's or chain's latency is estimated from the
profile's published peak compute and memory bandwidth: per stage,

    time = max(2 * MACs / peak_ops, bytes moved / bandwidth)

where bytes moved = (input + output activations + weights) x bytes per
element of the profile's precision (4 fp32, 2 fp16, 1 int8), and a chain's
time is the sum of its stages'. This is the classic roofline bound: it
ignores cache reuse and kernel quality, so it is an optimistic *estimate*,
and reports and the terminal call it that, never "measured". A profile that
carries a per-operator overhead (``op_overhead_us``: written by ``lrfc
profiles probe``, or a GPU profile's nominal floor) adds it once per operator a stage lowers to
(``stage_operators``: a TT-matrix layer is 4 per core): on a GPU at batch 1
a kernel launch can cost more than a small layer's arithmetic, which is
what makes a three-stage chain slower than the layer it replaces.
A chain is estimated as its files run it (``as_lowered``): CP's depthwise
kh x 1 and 1 x kw stages as one kh x kw operator (``lower.separable_depthwise``).
"""

from __future__ import annotations

import math
from dataclasses import replace

from lrfc.geometry import conv_out_len

BYTES_PER_ELEMENT = {"fp32": 4, "fp16": 2, "int8": 1}


def stage_work(input_shape, stages) -> list[tuple[int, int]]:
    """Per stage ``(macs, elements moved)`` for one sample, propagating the shape through the chain.

    Args:
        input_shape: the chain's input without the batch axis: ``(H, W, C)``
            for a 2-D convolution, ``(1, L, C)`` or ``(L, C)`` for 1-D, ``(..., F)`` for dense.
        stages: ``decompose.base.Stage`` records.
    """
    shape = [int(d) for d in input_shape]
    work = []
    for s in stages:
        size_in = math.prod(shape)
        weights = sum(int(w.size) for w in s.weights)
        if s.kind in ("conv", "depthwise"):
            spatial = shape[:-1]
            if len(spatial) == 1:  # a 1-D convolution described over a 1 x L image
                spatial = [1, *spatial]
            out_sp = [conv_out_len(n, k, st, d, s.padding)
                      for n, k, st, d in zip(spatial, s.kernel, s.strides, s.dilation)]
            kh, kw = s.kernel
            cin = shape[-1]
            cout = int(s.weights[0].shape[3]) if s.kind == "conv" else cin
            per_pixel = kh * kw * (cin * cout if s.kind == "conv" else cin)
            macs = math.prod(out_sp) * per_pixel
            shape = [*out_sp[-len(shape[:-1]):], cout] if len(shape) > 2 else [out_sp[-1], cout]
        elif s.kind == "dense":
            n_in, n_out = (int(d) for d in s.weights[0].shape)
            tokens = math.prod(shape[:-1])
            macs = tokens * n_in * n_out
            shape = [*shape[:-1], n_out]
        elif s.kind == "ttm":
            from lrfc.decompose.ttm import contraction_steps

            in_modes, out_modes = tuple(s.meta["in_modes"]), tuple(s.meta["out_modes"])
            ranks = tuple(int(c.shape[-1]) for c in s.weights[: len(in_modes)][:-1])
            tokens = math.prod(shape[:-1])
            macs = tokens * sum(m * rest * rp * n * r for m, rest, rp, n, r in contraction_steps(in_modes, out_modes, ranks))
            shape = [*shape[:-1], math.prod(out_modes)]
        else:
            raise ValueError(f"no roofline for stage kind {s.kind!r}")
        work.append((int(macs), int(size_in + math.prod(shape) + weights)))
    return work


def as_lowered(stages) -> list:
    """The chain as the converter twin lowers it: a depthwise kh x 1 stage, then a 1 x kw one with nothing between,
    as one kh x kw depthwise stage (``lower.separable_depthwise``)."""
    from lrfc.lower.separable_depthwise import merge, mergeable, of_stage

    out = []
    for s in stages:
        if out and mergeable(of_stage(out[-1]), of_stage(s)):
            kernel, spec = merge(of_stage(out[-1]), out[-1].weights[0], of_stage(s), s.weights[0])
            out[-1] = replace(s, weights=(kernel, *s.weights[1:]), kernel=spec.kernel, strides=spec.strides,
                              dilation=spec.dilation)
        else:
            out.append(s)
    return out


def estimate_ms(input_shape, stages, peak_gops: float, bandwidth_gbps: float, precision: str,
                op_overhead_us: float = 0.0) -> float:
    """The roofline time of a chain for one sample, in milliseconds.

    Args:
        peak_gops: the profile's peak for ``precision`` in GFLOP/s (GOP/s for int8).
        bandwidth_gbps: memory bandwidth in GB/s.
        precision: ``fp32``, ``fp16`` or ``int8`` (sets bytes per element).
        op_overhead_us: what each operator a stage lowers to costs on top, however small (a profile's measured
            ``op_overhead_us``: on a GPU a kernel launch, which a chain of three small stages pays three times).
    """
    if peak_gops <= 0 or bandwidth_gbps <= 0:
        raise ValueError(f"peak and bandwidth must be positive, received {peak_gops} GOP/s, {bandwidth_gbps} GB/s")
    nbytes = BYTES_PER_ELEMENT[precision]
    stages = as_lowered(stages)
    seconds = sum(max(2.0 * macs / (peak_gops * 1e9), elements * nbytes / (bandwidth_gbps * 1e9))
                  for macs, elements in stage_work(input_shape, stages))
    return 1e3 * seconds + sum(map(stage_operators, stages)) * op_overhead_us / 1e3


def stage_operators(stage) -> int:
    """The operators a stage lowers to, each a kernel launch on a GPU: one for a convolution or a matrix product;
    a TT-matrix layer is a reshape, transpose, reshape and matrix product per core and a reshape at the end
    (``decompose.ttm_layer``; its ONNX file on the VGG-style head: 12 more operators per layer than the Dense)."""
    if stage.kind == "ttm":
        return 4 * len(stage.meta["in_modes"]) + 1
    return 1
