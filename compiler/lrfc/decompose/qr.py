"""Truncated QR with column pivoting of a dense layer (or a pointwise convolution).

Rank ``(R,)``, ``1 <= R <= min(in, out)``, the same two-layer chain as svd:
Dense in->R (no bias) from ``A = Q[:, :R]``, then Dense R->out from
``B = (R_ P^T)[:R, :]`` with the original bias and activation (two 1x1
convolutions for a pointwise convolution). ``Factors.arrays = (A, B)``.

Which matrix is pivoted: ``W`` itself (in, out), as ``W P = Q R_`` with
``scipy.linalg.qr(W, pivoting=True)``. The pivots then pick output neurons
(columns of ``W``) greedily by how much of their weight vector is not yet
spanned, ``Q`` (in, K) is an orthonormal input-side basis, and the rank-R
chain is ``Q_R Q_R^T W``: the projection of every output's weight vector on
the span of the first R pivoted ones. This keeps METHOD.md's literal form
(first layer ``Q[:, :R]``, second ``(R_ P^T)[:R, :]``), makes the first layer
the orthonormal one, and lets the data-aware whitening (which acts on the
input side) compose with ``Q``. Pivoting ``W^T`` instead would select input
features, which the whitening would mix again.

Data-aware (``stats`` given): with ``S`` the regularised symmetric square root
of ``C = E[x x^T]`` (see svd's docstring, the same maths), the output error
is ``||S (W - W')||_F``, so the pivoted QR is taken of ``M = S W`` and
``A = S^-1 Q_R`` un-whitens the first layer; pivoting then ranks outputs by
their energy on the data. At full rank ``A B = S^-1 M = W``.

Rank reuse: Businger-Golub pivoting is greedy, so the rank-R truncation of
the full pivoted QR equals the QR stopped after R pivots; ``prepare`` factors
once and ``truncate`` slices. The error never grows with R (nested projections).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from lrfc.decompose.base import LayerStats, LayerWeights
from lrfc.decompose.dense_chain import (PairPrepared, dense_kernel, dense_view, input_whitener, pair_cost,
                                        matrix_baseline, pair_max_ranks, pair_stages, truncate_pair)

NAME = "qr"
KIND = "dense"
NUM_RANKS = 1


def prepare(weights: LayerWeights, geom, stats: LayerStats | None = None) -> PairPrepared:
    """One pivoted QR of the (whitened) kernel, kept at full rank."""
    view = dense_view(geom)
    w = dense_kernel(weights, view)
    white = input_whitener(stats, view.in_features)
    m = w if white is None else white.times(w)
    q, r, perm = scipy.linalg.qr(m, mode="economic", pivoting=True)
    right = np.empty_like(r)
    right[:, perm] = r  # R_ P^T: undo the column permutation
    left = q if white is None else white.inverse_times(q)
    bias = None if weights.bias is None else np.asarray(weights.bias, np.float64)
    return PairPrepared(NAME, left, right, bias, white is not None, r.shape[0])


# The rest of the method surface is the two-matrix chain both dense pair methods share (dense_chain).
max_ranks = pair_max_ranks
cost = pair_cost
truncate = truncate_pair
stages = pair_stages
baseline = matrix_baseline
