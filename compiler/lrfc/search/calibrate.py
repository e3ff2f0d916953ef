"""Capture the inputs and outputs of chosen layers on calibration samples.

Memory is bounded per layer: a layer keeps at most ``budget_bytes`` of
captured input + output feature maps (default 64 MiB), i.e. the first
``budget_bytes // bytes_per_sample`` samples when its maps are large, and
its input statistics are (kh*kw*cin)^2 float64 moments accumulated from at
most ``stats_positions`` (default 16,384) im2col patches spread over all
samples. The model is run once over all samples in batches; nothing else
grows with the number of calibration samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

DEFAULT_BUDGET_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Capture:
    """Per layer name: its captured input and output feature maps (same samples).

    ``stats`` holds input statistics accumulated over *all* calibration
    samples (streamed batch by batch), for the layers they were asked for.
    """

    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    stats: dict = field(default_factory=dict)


def _per_sample_bytes(tensor) -> int:
    return 4 * math.prod(int(d) for d in tensor.shape[1:])


def capture(flat_model, layer_names: list[str], x: np.ndarray, batch_size: int = 64,
            budget_bytes: int = DEFAULT_BUDGET_BYTES, stats_geometry: dict | None = None,
            stats_positions: int = 16384, progress=None) -> Capture:
    """Run ``x`` through ``flat_model`` once and keep each named layer's input and output.

    Args:
        flat_model: a flattened Functional model.
        layer_names: the layers to capture.
        x: calibration samples, already mapped to the model input.
        batch_size: inference batch size.
        budget_bytes: cap on one layer's captured input + output.
        stats_geometry: ``{layer: geometry}`` of layers whose input
            statistics (``LayerStats``) are accumulated over every sample.
        stats_positions: patches/vectors per layer for those statistics,
            spread evenly over the batches.
        progress: called with the number of samples done after each batch.

    Returns:
        A ``Capture``; a layer may hold fewer samples than ``x`` (the bound).
    """
    from lrfc.decompose import stats as stats_mod
    import keras

    from lrfc.frontend.graph import layer_nodes

    nodes = layer_nodes(flat_model)
    taps, limits = [], {}
    for name in layer_names:
        node = nodes[name]
        t_in, t_out = node.input_tensors[0], node.outputs[0]
        taps += [t_in, t_out]
        limits[name] = max(1, min(len(x), budget_bytes // (_per_sample_bytes(t_in) + _per_sample_bytes(t_out))))
    tap_model = keras.Model(flat_model.input, taps)
    stats_geometry = stats_geometry or {}
    need = len(x) if stats_geometry else (max(limits.values()) if limits else 0)
    per_batch = max(64, stats_positions // max(1, -(-need // batch_size)))
    ins: dict[str, list] = {n: [] for n in layer_names}
    outs: dict[str, list] = {n: [] for n in layer_names}
    stats: dict = {}
    for b, start in enumerate(range(0, need, batch_size)):
        batch = x[start: min(need, start + batch_size)]
        results = tap_model(batch, training=False)
        results = results if isinstance(results, (list, tuple)) else [results]
        for i, name in enumerate(layer_names):
            keep = limits[name] - start
            if keep > 0:
                ins[name].append(np.asarray(results[2 * i])[:keep])
                outs[name].append(np.asarray(results[2 * i + 1])[:keep])
            geom = stats_geometry.get(name)
            if geom is not None:
                batch_stats = input_stats(np.asarray(results[2 * i]), geom, per_batch, seed=b)
                stats[name] = stats_mod.accumulate(stats.get(name), batch_stats)
        if progress is not None:
            progress(len(batch))
    return Capture(
        {n: np.concatenate(v).astype(np.float32, copy=False) for n, v in ins.items()},
        {n: np.concatenate(v).astype(np.float32, copy=False) for n, v in outs.items()},
        stats,
    )


def feature_similarity(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Mean over samples of the cosine similarity of the flattened feature maps.

    This is the paper's acceptance measure: it scores what the layer *does*
    on real data. A sample whose maps are both all-zero counts as 1.
    """
    a = reference.reshape(len(reference), -1).astype(np.float64)
    b = candidate.reshape(len(candidate), -1).astype(np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dot = np.einsum("ij,ij->i", a, b)
    both_zero = (na == 0) & (nb == 0)
    cos = np.where(both_zero, 1.0, dot / np.maximum(na * nb, 1e-30))
    return float(cos.mean())


def input_stats(x: np.ndarray, geom, max_positions: int = 4096, seed: int = 0):
    """``LayerStats`` of one layer's captured inputs (im2col patches for a convolution)."""
    from lrfc.decompose import stats
    from lrfc.geometry import ConvGeometry

    if isinstance(geom, ConvGeometry):
        return stats.conv_stats(x, geom, max_positions, seed)
    return stats.dense_stats(x, max_positions, seed)
