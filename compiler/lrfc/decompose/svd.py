"""Truncated SVD of a dense layer (or a pointwise convolution).

Rank ``(R,)``, ``1 <= R <= min(in, out)``: the kernel ``W`` (in, out) of
``y = x W + b`` becomes ``W ~= A B`` with ``A`` (in, R) and ``B`` (R, out),
i.e. Dense in->R (no bias) then Dense R->out (with the original bias and
activation). A 1x1 stride-1 convolution is the same thing over channels and
becomes two 1x1 convolutions. ``Factors.arrays = (A, B)``.

Weight-only: ``W = U S V^T``; ``A = U_R S_R^1/2``, ``B = S_R^1/2 V_R^T``
(the singular values are split evenly so neither layer is badly scaled for
fine-tuning). This is the best rank-R fit of the weights (Eckart-Young).

Data-aware (``stats`` given, ``C = stats.input_cov = E[x x^T]``): the error
that matters is on the layer's output,

    E||x^T (W - W')||^2 = tr((W - W')^T C (W - W')) = ||S (W - W')||_F^2

with ``S`` the symmetric square root of ``C`` (regularised by
``eps * trace(C) / in`` on the diagonal and computed with ``eigh``, so a
rank-deficient ``C`` -- dead or duplicated inputs -- keeps ``S`` invertible;
see ``stats.whitener``; above 2,048 inputs ``S`` and ``S^-1`` are applied
through ``C``'s eigenvectors, taken from the calibration vectors themselves
when they are fewer than the inputs: ``stats.Whitening``). Writing ``W' = S^-1 M'``, the problem is the
best rank-R fit ``M'`` of the whitened kernel ``M = S W``: its truncated SVD
``M ~= U_R S_R V_R^T``. Un-whitening gives ``A = S^-1 U_R S_R^1/2`` and
``B = S_R^1/2 V_R^T``; at full rank ``A B = S^-1 M = W``, so the chain stays
exact. ``Factors.data_aware`` is then True.

Rank reuse: ``prepare`` does the one SVD (and the whitening) and keeps the
full-rank ``A`` and ``B``; the columns are ordered by singular value, so
``truncate`` only slices the leading R.

What the dense methods share (the dense view of a pointwise convolution,
the kernel check, the input whitener, and the two-layer chain's cost,
truncation and stages, which qr uses too) is in ``dense_chain``.
"""

from __future__ import annotations

import numpy as np

from lrfc.decompose.base import LayerStats, LayerWeights
from lrfc.decompose.dense_chain import (PairPrepared, dense_kernel, dense_view, input_whitener, pair_cost,
                                        matrix_baseline, pair_max_ranks, pair_stages, truncate_pair)

NAME = "svd"
KIND = "dense"
NUM_RANKS = 1


def prepare(weights: LayerWeights, geom, stats: LayerStats | None = None) -> PairPrepared:
    """One (whitened) SVD of the kernel, kept at full rank."""
    view = dense_view(geom)
    w = dense_kernel(weights, view)
    white = input_whitener(stats, view.in_features)
    m = w if white is None else white.times(w)
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    root = np.sqrt(s)
    left = u * root
    if white is not None:
        left = white.inverse_times(left)
    bias = None if weights.bias is None else np.asarray(weights.bias, np.float64)
    return PairPrepared(NAME, left, root[:, None] * vt, bias, white is not None, len(s))


# The rest of the method surface is the two-matrix chain both dense pair methods share (dense_chain).
max_ranks = pair_max_ranks
cost = pair_cost
truncate = truncate_pair
stages = pair_stages
baseline = matrix_baseline
