"""Tucker-2 factorization of a convolution over its channel modes.

Ranks ``(R1, R2)``: the kernel ``W`` (kh, kw, cin, cout) becomes

    W[i, j] ~= A @ G[i, j] @ L        A (cin, R1), G (kh, kw, R1, R2), L (R2, cout)

and the layer becomes three convolutions: 1x1 cin->R1 (A), kh x kw R1->R2
(G, with the original stride, dilation and padding) and 1x1 R2->cout (L,
with the original bias and activation). The first stage has no bias, so zero
padding commutes with it and the chain is exact at ``max_ranks = (cin, cout)``.
``Factors.arrays = (A, G, L)``.

Weight-only (HOSVD): A = the top-R1 eigenvectors of the cin-mode Gram
``W_(cin) W_(cin)^T``, L^T = the top-R2 eigenvectors of the cout-mode Gram, and
G = W projected on both.

Data-aware (``stats`` given): the error that matters is on the layer's
output, ``E||(W - W')^T p||^2`` over input patches ``p``.
  * Input side: with ``C = channel_cov = S S`` and the patch moment taken as
    block-diagonal over pixels, the error per tap is ``||S (W[i,j] - W'[i,j])||``,
    so the HOSVD is done on the whitened kernel ``S W``: ``U`` = top
    eigenvectors of ``(S W_(cin))(S W_(cin))^T``, then un-whitened:
    ``A = S^-1 U`` (the first 1x1 conv) and the core is projected with
    ``B = S U``. ``A B^T = I`` at full rank, so exactness is kept.
  * Output side: for any output projection ``V V^T`` the error is
    ``tr((I - V V^T) W_mat^T Sigma W_mat)``, minimised by the top eigenvectors
    of ``W_mat^T Sigma W_mat`` (``Sigma = input_cov``, ``W_mat`` = W reshaped
    (kh*kw*cin, cout)).

Rank reuse: both projections are orthonormal-column bases computed once in
``prepare`` for every rank, together with the core in the full bases; the
core at ranks (R1, R2) is then exactly the leading (R1, R2) block, so
``truncate`` only slices.

What the three convolution methods share (the geometry check, the chain's
spatial steps and their cost, the channel bases) is in ``conv_chain``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrfc.decompose.base import Cost, Factors, LayerStats, LayerWeights, Stage
from lrfc.decompose.common import check_ranks
from lrfc.decompose.conv_chain import (ChannelBases, Step, chain_cost, channel_bases, channel_unfoldings, check_conv,
                                       pointwise_step, remaining, step, to_stages)
from lrfc.geometry import ConvGeometry

NAME = "tucker"
KIND = "conv"
NUM_RANKS = 2


# --- shared by tucker, cp and tt --------------------------------------------------------------


# --- the tucker method -------------------------------------------------------------------------

@dataclass(frozen=True)
class Prepared:
    """What ``prepare`` computes once per layer: bases and core at full rank."""

    bases: ChannelBases
    bias: np.ndarray | None
    geom: ConvGeometry


def max_ranks(geom: ConvGeometry) -> tuple[int, int]:
    """(cin, cout): Tucker-2 is exact there."""
    check_conv(geom)
    return geom.cin, geom.cout


def _layers(geom: ConvGeometry, ranks: tuple[int, int]) -> list[tuple[str, Step, int, int]]:
    r1, r2 = ranks
    first = pointwise_step(geom)
    (sh, dh), (sw, dw) = remaining(geom, 0), remaining(geom, 1)
    core = step(first.out_hw, geom.kernel, (sh, sw), (dh, dw), geom.padding)
    last = step(core.out_hw, (1, 1))
    return [("conv", first, geom.cin, r1), ("conv", core, r1, r2), ("conv", last, r2, geom.cout)]


def cost(geom: ConvGeometry, ranks) -> Cost:
    """Params and MACs of the chain: cin R1 + kh kw R1 R2 + R2 cout (+ cout bias)."""
    ranks = check_ranks(ranks, max_ranks(geom), NAME)
    return chain_cost(_layers(geom, ranks), geom.cout if geom.use_bias else 0)


def prepare(weights: LayerWeights, geom: ConvGeometry, stats: LayerStats | None = None) -> Prepared:
    """Channel bases and full core: two (cin x cin, cout x cout) eigendecompositions."""
    check_conv(geom, weights)
    return Prepared(channel_bases(weights.kernel, stats), weights.bias, geom)


def truncate(prepared: Prepared, ranks) -> Factors:
    """Factors at ``ranks`` = (R1, R2): slices of the prepared bases and core."""
    r1, r2 = check_ranks(ranks, max_ranks(prepared.geom), NAME)
    b = prepared.bases
    arrays = (b.first[:, :r1].copy(), b.core[:, :, :r1, :r2].copy(), b.last[:, :r2].T.copy())
    return Factors(NAME, (r1, r2), arrays, prepared.bias, b.data_aware)


def decompose(weights: LayerWeights, geom: ConvGeometry, ranks, stats: LayerStats | None = None) -> Factors:
    """``prepare`` + ``truncate`` for one rank."""
    return truncate(prepare(weights, geom, stats), ranks)


def stages(factors: Factors, geom: ConvGeometry, activation: str | None = None) -> list[Stage]:
    """1x1 conv, kh x kw conv, 1x1 conv (+bias, activation)."""
    a, g, last = factors.arrays
    layers = _layers(geom, factors.ranks)
    return to_stages(layers, [a[None, None], g, last[None, None]], factors.bias, activation)


def baseline(kernel, geom: ConvGeometry, rank_of) -> tuple[int, int]:
    """Ranks from the weights alone: ``rank_of`` each channel unfolding (Kim et al. 2016 use VBMF on these)."""
    return tuple(rank_of(m) for m in channel_unfoldings(kernel, geom, NAME))
