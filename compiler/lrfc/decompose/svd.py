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
see ``stats.whitener``). Writing ``W' = S^-1 M'``, the problem is the
best rank-R fit ``M'`` of the whitened kernel ``M = S W``: its truncated SVD
``M ~= U_R S_R V_R^T``. Un-whitening gives ``A = S^-1 U_R S_R^1/2`` and
``B = S_R^1/2 V_R^T``; at full rank ``A B = S^-1 M = W``, so the chain stays
exact. ``Factors.data_aware`` is then True.

Rank reuse: ``prepare`` does the one SVD (and the whitening) and keeps the
full-rank ``A`` and ``B``; the columns are ordered by singular value, so
``truncate`` only slices the leading R.

This module also holds what the three dense methods (svd, qr, ttm) share:
the dense view of a pointwise convolution, the kernel check, the whitener of
the input moment, and the two-layer chain (its cost, truncation and stages;
qr reuses all of them).
"""

from __future__ import annotations

import numpy as np

from lrfc.decompose.base import Cost, Factors, LayerStats, LayerWeights, Stage
from lrfc.decompose.dense_chain import (PairPrepared, dense_kernel, dense_matrix, dense_view, input_whitener, pair_cost,
                                        pair_max_ranks, pair_stages, truncate_pair)

NAME = "svd"
KIND = "dense"
NUM_RANKS = 1


# --- shared by svd, qr and ttm ----------------------------------------------------------------


# --- the svd method ---------------------------------------------------------------------------

def max_ranks(geom) -> tuple[int]:
    """``(min(in, out),)``."""
    return pair_max_ranks(geom)


def cost(geom, ranks: tuple[int, ...]) -> Cost:
    """Closed-form params and MACs at ``ranks = (R,)``."""
    return pair_cost(geom, ranks)


def prepare(weights: LayerWeights, geom, stats: LayerStats | None = None) -> PairPrepared:
    """One (whitened) SVD of the kernel, kept at full rank."""
    view = dense_view(geom)
    w = dense_kernel(weights, view)
    white = input_whitener(stats, view.in_features)
    m = w if white is None else white[0] @ w
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    root = np.sqrt(s)
    left = u * root
    if white is not None:
        left = white[1] @ left
    bias = None if weights.bias is None else np.asarray(weights.bias, np.float64)
    return PairPrepared(NAME, left, root[:, None] * vt, bias, white is not None, len(s))


def truncate(prepared: PairPrepared, ranks) -> Factors:
    """``A = left[:, :R]``, ``B = right[:R]``."""
    return truncate_pair(prepared, ranks)


def stages(factors: Factors, geom, activation: str | None = None) -> list[Stage]:
    """Dense in->R (no bias), Dense R->out (+bias, activation); 1x1 convs for a pointwise conv."""
    return pair_stages(factors, geom, activation)


def baseline(kernel, geom, rank_of) -> tuple[int]:
    """The rank from the weights alone: ``rank_of`` the (in, out) matrix."""
    return (rank_of(dense_matrix(kernel, geom)),)
