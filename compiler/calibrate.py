"""Capture the inputs and outputs of chosen layers on calibration samples.

Memory is bounded per layer: a layer keeps at most ``budget_bytes`` of
captured input + output (default 64 MiB), i.e. the first
``budget_bytes // bytes_per_sample`` samples when its maps are large. The
model is run once over all samples in batches; each layer's arrays are
filled from those batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_BUDGET_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Capture:
    """Per layer name: its captured input and output feature maps (same samples)."""

    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]

    def samples(self, layer: str) -> int:
        return len(self.inputs[layer])


def _per_sample_bytes(tensor) -> int:
    return 4 * math.prod(int(d) for d in tensor.shape[1:])


def capture(flat_model, layer_names: list[str], x: np.ndarray, batch_size: int = 64,
            budget_bytes: int = DEFAULT_BUDGET_BYTES) -> Capture:
    """Run ``x`` through ``flat_model`` once and keep each named layer's input and output.

    Args:
        flat_model: a flattened Functional model.
        layer_names: the layers to capture.
        x: calibration samples, already mapped to the model input.
        batch_size: inference batch size.
        budget_bytes: cap on one layer's captured input + output.

    Returns:
        A ``Capture``; a layer may hold fewer samples than ``x`` (the bound).
    """
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
    need = max(limits.values()) if limits else 0
    ins: dict[str, list] = {n: [] for n in layer_names}
    outs: dict[str, list] = {n: [] for n in layer_names}
    for start in range(0, need, batch_size):
        batch = x[start: min(need, start + batch_size)]
        results = tap_model(batch, training=False)
        results = results if isinstance(results, (list, tuple)) else [results]
        for i, name in enumerate(layer_names):
            keep = limits[name] - start
            if keep > 0:
                ins[name].append(np.asarray(results[2 * i])[:keep])
                outs[name].append(np.asarray(results[2 * i + 1])[:keep])
    return Capture(
        {n: np.concatenate(v).astype(np.float32, copy=False) for n, v in ins.items()},
        {n: np.concatenate(v).astype(np.float32, copy=False) for n, v in outs.items()},
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


def input_stats(x: np.ndarray, geom):
    """``LayerStats`` of one layer's captured inputs (im2col patches for a convolution)."""
    from lrfc.decompose import stats
    from lrfc.geometry import ConvGeometry

    return stats.conv_stats(x, geom) if isinstance(geom, ConvGeometry) else stats.dense_stats(x)
