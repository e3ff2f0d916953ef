"""What the dense methods share: a layer seen as a matrix (a Dense layer or a 1x1 convolution), its input
whitener, and the two-matrix chain (in -> R -> out) that svd and qr both produce.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrfc.decompose.base import Cost, Factors, LayerStats, LayerWeights, Stage
from lrfc.decompose.common import check_ranks
from lrfc.decompose.stats import Whitening, row_whitening, whitening
from lrfc.geometry import ConvGeometry, DenseGeometry


def dense_view(geom: DenseGeometry | ConvGeometry) -> DenseGeometry:
    """The dense layer ``geom`` is: itself, or a pointwise convolution's view over channels."""
    if isinstance(geom, DenseGeometry):
        return geom
    if isinstance(geom, ConvGeometry):
        if not geom.is_pointwise:
            raise ValueError(f"a dense method takes a Dense layer or a 1x1 stride-1 convolution; received a "
                             f"convolution with kernel {geom.kernel}, strides {geom.strides}, groups {geom.groups}")
        return geom.as_dense()
    raise ValueError(f"a dense method needs a DenseGeometry or a pointwise ConvGeometry, received {type(geom).__name__}")


def dense_kernel(weights: LayerWeights, view: DenseGeometry) -> np.ndarray:
    """The kernel as a float64 (in, out) matrix; a 1x1 kernel (1, 1, in, out) is flattened."""
    kernel = np.asarray(weights.kernel, dtype=np.float64)
    shape = (view.in_features, view.out_features)
    if kernel.shape not in (shape, (1, 1, *shape)):
        raise ValueError(f"kernel shape {kernel.shape} does not match the geometry, expected {shape} or {(1, 1, *shape)}")
    if view.use_bias != (weights.bias is not None):
        raise ValueError(f"geometry says use_bias={view.use_bias} but the weights "
                         f"{'have' if weights.bias is not None else 'lack'} a bias")
    return kernel.reshape(shape)


def input_whitener(stats: LayerStats | None, n: int) -> Whitening | None:
    """``S`` and ``S^-1`` of the input moment (``stats.whitening``), or None without statistics.

    Also None when the moment is zero (the layer never saw a non-zero input):
    there is nothing to weight by, and the factorization stays weight-only
    (``Factors.data_aware`` False records it).
    """
    if stats is None:
        return None
    if stats.size != n:
        raise ValueError(f"input statistics of {stats.size} inputs do not fit a dense layer with {n} inputs")
    if stats.rows is not None:  # fewer vectors than inputs, held as they are
        return row_whitening(stats.rows) if np.any(stats.rows) else None
    cov = np.asarray(stats.input_cov, dtype=np.float64)
    if not np.trace(cov) > 0:
        return None
    return whitening(cov)


def pair_max_ranks(geom) -> tuple[int]:
    """``(min(in, out),)``: the rank at which a two-layer chain is exact."""
    view = dense_view(geom)
    return (min(view.in_features, view.out_features),)


def pair_cost(geom, ranks: tuple[int, ...]) -> Cost:
    """Params ``R (in + out) (+ out)`` and MACs ``tokens R (in + out)`` of in->R->out."""
    view = dense_view(geom)
    if len(ranks) != 1:
        raise ValueError(f"a two-layer dense chain has one rank, received {tuple(ranks)}")
    r = int(ranks[0])
    per_token = r * (view.in_features + view.out_features)
    return Cost(per_token + (view.out_features if view.use_bias else 0), view.tokens * per_token)


@dataclass(frozen=True)
class PairPrepared:
    """Full-rank ``W = left @ right`` with the columns of ``left`` in truncation order."""

    method: str
    left: np.ndarray   # (in, K)
    right: np.ndarray  # (K, out)
    bias: np.ndarray | None
    data_aware: bool
    max_rank: int


def truncate_pair(prepared: PairPrepared, ranks) -> Factors:
    """The leading R columns of ``left`` and rows of ``right``."""
    (r,) = check_ranks(ranks, (prepared.max_rank,), prepared.method)
    return Factors(prepared.method, (r,), (prepared.left[:, :r].copy(), prepared.right[:r].copy()),
                   prepared.bias, prepared.data_aware)


def pair_stages(factors: Factors, geom, activation: str | None = None) -> list[Stage]:
    """Two dense stages, or two 1x1 conv stages for a pointwise convolution."""
    view = dense_view(geom)
    a, b = (np.asarray(x, np.float32) for x in factors.arrays)
    r = a.shape[1]
    if a.shape != (view.in_features, r) or b.shape != (r, view.out_features):
        raise ValueError(f"{factors.method} factors {a.shape} and {b.shape} do not fit a {view.in_features}x{view.out_features} layer")
    bias = () if factors.bias is None else (np.asarray(factors.bias, np.float32),)
    if isinstance(geom, ConvGeometry):
        return [Stage("conv", (a.reshape(1, 1, *a.shape),)),
                Stage("conv", (b.reshape(1, 1, *b.shape), *bias), use_bias=bool(bias), activation=activation)]
    return [Stage("dense", (a,)), Stage("dense", (b, *bias), use_bias=bool(bias), activation=activation)]


def dense_matrix(kernel: np.ndarray, geom) -> np.ndarray:
    """The kernel as an (in, out) matrix; a (1, 1, in, out) pointwise kernel is accepted too."""
    view = dense_view(geom)
    shape = (view.in_features, view.out_features)
    if tuple(kernel.shape) not in (shape, (1, 1, *shape)):
        raise ValueError(f"kernel shape {kernel.shape} does not match the geometry, expected {shape} or {(1, 1, *shape)}")
    return np.asarray(kernel, dtype=np.float64).reshape(shape)


def matrix_baseline(kernel, geom, rank_of) -> tuple[int]:
    """The pair methods' rank from the weights alone: ``rank_of`` the (in, out) matrix."""
    return (rank_of(dense_matrix(kernel, geom)),)
