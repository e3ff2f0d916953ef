"""Tensor-train factorization of a convolution over (cin, kh, kw, cout).

Ranks ``(r1, r2, r3)``: the kernel, read as ``W[c, i, j, o]``, becomes

    W[c, i, j, o] ~= sum G1[c, a] G2[a, i, b] G3[b, j, e] G4[e, o]

and the layer becomes four convolutions: 1x1 cin->r1 (G1), kh x 1 r1->r2
(G2; stride and dilation of H, original padding), 1 x kw r2->r3 (G3; stride
and dilation of W, original padding), 1x1 r3->cout (G4, with the bias and
activation). TensorFlow pads each axis independently, so splitting the
spatial parameters per axis is exact. ``Factors.arrays = (G1, G2, G3, G4)``
with G1 (cin, r1), G2 (r1, kh, r2), G3 (r2, kw, r3), G4 (r3, cout).

Maximum (exact) ranks are the TT ranks of the kernel's unfoldings:
r1 = min(cin, kh kw cout), r2 = min(cin kh, kw cout), r3 = min(cin kh kw, cout).
When kh == 1 the kh x 1 stage would be a plain 1x1 matrix and is folded into
G1, so r1 and r2 collapse to min(r1, r2); likewise r2, r3 when kw == 1
(``effective_ranks``; Factors.ranks holds the collapsed tuple).

Scheme (rank reuse): G1 and G4 are the Tucker-2 channel bases
(``conv_chain.channel_bases``: eigendecompositions of the cin- and cout-mode
Grams, done once in ``prepare``), and the middle of the TT is the core in
those bases. Per rank, ``truncate`` takes its leading (r1, :, :, r3) block,
reshapes it to (r1 kh, kw r3) and splits it with one small SVD for r2.

Data-aware (``stats`` given): G1 and G4 are the data-aware bases of the
Tucker module (cin mode whitened by ``channel_cov``, cout mode from
``W_mat^T Sigma W_mat``). The split is whitened too: the kh x 1 stage sees
vertical patches ``v`` of z = G1^T x (length r1 kh); with their second moment
``Cz = Lz Lz^T`` (from ``input_cov``, averaged over the kw columns) the error is
``||Lz^T (M - M')||``, so the SVD is taken of ``Lz^T M`` and G2 un-whitened
with ``Lz^-T``. The Cholesky factor of the leading block of Cz is the leading
block of the Cholesky factor, so ``Lz`` is also computed once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from lrfc.decompose.base import Cost, Factors, LayerStats, LayerWeights, Stage
from lrfc.decompose.common import check_ranks
from lrfc.decompose.conv_chain import (ChannelBases, Step, chain_cost, channel_bases, check_conv, conv_kernel_cijo,
                                       separable_steps, to_stages)
from lrfc.geometry import ConvGeometry

NAME = "tt"
KIND = "conv"
NUM_RANKS = 3

_EPS = 1e-6  # regularisation of Cz, relative to its mean eigenvalue


def max_ranks(geom: ConvGeometry) -> tuple[int, int, int]:
    """The TT ranks of the unfoldings of (cin, kh, kw, cout): exact there."""
    check_conv(geom)
    (kh, kw), cin, cout = geom.kernel, geom.cin, geom.cout
    return min(cin, kh * kw * cout), min(cin * kh, kw * cout), min(cin * kh * kw, cout)


def effective_ranks(geom: ConvGeometry, ranks) -> tuple[int, int, int]:
    """Validated ranks, with r1 = r2 when kh == 1 and r2 = r3 when kw == 1 (the folded stages)."""
    r1, r2, r3 = check_ranks(ranks, max_ranks(geom), NAME)
    if geom.kernel[0] == 1:
        r1 = r2 = min(r1, r2)
    if geom.kernel[1] == 1:
        r2 = r3 = min(r2, r3)
    if geom.kernel[0] == 1:  # both size 1: one shared rank
        r1 = r2
    return r1, r2, r3


def _layers(geom: ConvGeometry, ranks: tuple[int, int, int]) -> list[tuple[str, Step, int, int]]:
    r1, r2, r3 = ranks
    (kh, kw), steps = geom.kernel, separable_steps(geom)
    chans = [geom.cin] + ([r1] if kh > 1 else []) + [r2] + ([r3] if kw > 1 else []) + [geom.cout]
    return [("conv", st, chans[n], chans[n + 1]) for n, st in enumerate(steps)]


def cost(geom: ConvGeometry, ranks) -> Cost:
    """Params and MACs: cin r1 + kh r1 r2 + kw r2 r3 + r3 cout (+ bias), each stage at its own size."""
    ranks = effective_ranks(geom, ranks)
    return chain_cost(_layers(geom, ranks), geom.cout if geom.use_bias else 0)


@dataclass(frozen=True)
class Prepared:
    """Channel bases, the core in them, and (data-aware) the Cholesky factor of Cz."""

    bases: ChannelBases
    middle: np.ndarray          # (cin, kh, kw, cout): the core as W[c, i, j, o]
    chol: np.ndarray | None     # (cin kh, cin kh) lower, rows (a, i) a-major
    bias: np.ndarray | None
    geom: ConvGeometry


def _vertical_moment(stats: LayerStats, first: np.ndarray, kernel_hw: tuple[int, int]) -> np.ndarray:
    """Second moment of z-space vertical patches, (cin kh)^2 ordered (a, i), a-major."""
    kh, kw = kernel_hw
    cin = first.shape[0]
    sigma = np.asarray(stats.input_cov, np.float64).reshape(kh, kw, cin, kh, kw, cin)
    cols = np.arange(kw)
    vert = sigma[:, cols, :, :, cols, :].mean(axis=0)  # (kh, cin, kh, cin), columns averaged
    cz = np.einsum("icID,ca,DA->aiAI", vert, first, first, optimize=True)
    return cz.reshape(cin * kh, cin * kh)


def prepare(weights: LayerWeights, geom: ConvGeometry, stats: LayerStats | None = None) -> Prepared:
    """The expensive, rank-independent part: channel bases (and Cz's Cholesky factor)."""
    check_conv(geom, weights)
    bases = channel_bases(weights.kernel, stats)
    middle = np.ascontiguousarray(bases.core.transpose(2, 0, 1, 3))
    chol = None
    if stats is not None and geom.kernel[0] > 1:
        cz = _vertical_moment(stats, bases.first, geom.kernel)
        cz = 0.5 * (cz + cz.T)
        cz[np.diag_indices_from(cz)] += _EPS * max(np.trace(cz) / len(cz), np.finfo(np.float64).tiny)
        chol = np.linalg.cholesky(cz)
    return Prepared(bases, middle, chol, weights.bias, geom)


def truncate(prepared: Prepared, ranks) -> Factors:
    """Factors at ``ranks``: slices of the bases and one (r1 kh, kw r3) SVD for r2."""
    geom = prepared.geom
    r1, r2, r3 = effective_ranks(geom, ranks)
    (kh, kw), b = geom.kernel, prepared.bases
    mat = prepared.middle[:r1, :, :, :r3].reshape(r1 * kh, kw * r3)
    lz = None if prepared.chol is None else prepared.chol[: r1 * kh, : r1 * kh]
    left, sv, right = scipy.linalg.svd(mat if lz is None else lz.T @ mat, full_matrices=False,
                                       lapack_driver="gesdd")
    k = min(r2, len(sv))
    g2 = left[:, :k]
    if lz is not None:
        g2 = scipy.linalg.solve_triangular(lz.T, g2, lower=False)
    g3 = sv[:k, None] * right[:k]
    if k < r2:  # more r2 than the block has singular values: zero channels keep the asked shape
        g2 = np.pad(g2, ((0, 0), (0, r2 - k)))
        g3 = np.pad(g3, ((0, r2 - k), (0, 0)))
    arrays = (b.first[:, :r1].copy(), g2.reshape(r1, kh, r2), g3.reshape(r2, kw, r3), b.last[:, :r3].T.copy())
    return Factors(NAME, (r1, r2, r3), arrays, prepared.bias, b.data_aware)


def decompose(weights: LayerWeights, geom: ConvGeometry, ranks, stats: LayerStats | None = None) -> Factors:
    """``prepare`` + ``truncate`` for one rank."""
    return truncate(prepare(weights, geom, stats), ranks)


def stages(factors: Factors, geom: ConvGeometry, activation: str | None = None) -> list[Stage]:
    """1x1, kh x 1, 1 x kw, 1x1 (+bias, activation) convolutions; size-1 stages folded."""
    g1, g2, g3, g4 = factors.arrays
    (kh, kw) = geom.kernel
    kernels = []
    if kh > 1:
        kernels += [g1, g2.transpose(1, 0, 2)[:, None]]        # (kh, 1, r1, r2)
    else:
        kernels += [g1 @ g2[:, 0, :]]                            # fold: (cin, r2)
    if kw > 1:
        kernels += [g3.transpose(1, 0, 2)[None], g4]             # (1, kw, r2, r3)
    else:
        kernels += [g3[:, 0, :] @ g4]                            # fold: (r2, cout)
    kernels = [k[None, None] if k.ndim == 2 else k for k in kernels]
    return to_stages(_layers(geom, factors.ranks), kernels, factors.bias, activation)


def baseline(kernel, geom: ConvGeometry, rank_of) -> tuple[int, int, int]:
    """Ranks from the weights alone: ``rank_of`` the TT unfoldings (cin | kh kw cout), (cin kh | kw cout), (cin kh kw | cout)."""
    t = conv_kernel_cijo(kernel, geom, NAME)
    cin, kh, kw, cout = t.shape
    return rank_of(t.reshape(cin, -1)), rank_of(t.reshape(cin * kh, -1)), rank_of(t.reshape(cin * kh * kw, cout))
