"""TT-matrix (the T3F format) factorization of a dense layer (or a pointwise convolution).

The kernel ``W`` (in, out) is read as a d-way matrix, ``in = m1 m2 m3`` and
``out = n1 n2 n3`` (``NUM_MODES = 3``), row index ``(i1, i2, i3)`` and column
index ``(j1, j2, j3)`` in row-major order, and stored as cores

    W[(i1 i2 i3), (j1 j2 j3)] ~= sum_{a, b} G1[0, i1, j1, a] G2[a, i2, j2, b] G3[b, i3, j3, 0]

with ``G_k`` of shape ``(r_{k-1}, m_k, n_k, r_k)``, ``r0 = r3 = 1``. Ranks are
``(r1, r2)``; ``max_ranks = (min(m1 n1, m2 n2 m3 n3), min(m1 n1 m2 n2, m3 n3))``
makes the cores exact. The layer is one ``TTMatrixDense`` stage (+bias,
activation) acting on the last axis (``lrfc.decompose.ttm_layer``; its
contraction sequence is ``contraction_steps``, which ``cost`` counts).
``Factors.arrays = (G1, G2, G3)``.

Mode factorization (``tt_modes``): each of ``in`` and ``out`` is split into
``NUM_MODES`` factors by ``factor_modes``, the most balanced ones (smallest
largest factor, then largest smallest factor). Sizes with too few prime
factors get modes of size 1 (as in-modes, 13 -> (13, 1, 1) and 10 -> (5, 2, 1)),
which is exact and costs nothing; nothing is padded (padding would add a Pad op and
MACs on zeros). ``d`` is fixed so that every layer has the same number of
ranks (``NUM_RANKS``), which the rank search relies on; ``factor_modes``
itself takes any ``d``. In-modes are ordered largest first and out-modes
smallest first: each ``m_k n_k`` stays balanced (so both ranks have room)
and the contraction, which eats the in-modes first, sheds the largest input
modes early and costs fewer MACs.

Decomposition (weight-only): with ``T`` the kernel permuted to the 3-way
tensor ``(m1 n1, m2 n2, m3 n3)``, a 3-core TT is exactly a Tucker-2 of ``T``
over its first and last mode. ``G1`` = the top-r1 left singular vectors of the
first unfolding ``T_(1)`` (m1 n1, rest), ``G3`` = the top-r2 right singular
vectors of the last unfolding ``T_(3)`` (rest, m3 n3) (both as eigenvectors
of the small Gram matrix), and ``G2 = G1^T T G3``.
This is the TT-SVD with both outer SVDs taken of ``T`` itself (not of the
already-truncated remainder, as the sequential TT-SVD does); it has the same
quasi-optimality bound, ``||T - T'||^2 <= sum_k sigma_tail(T_(k))^2``, and
its truncations are nested: ``prepare`` computes both SVDs and the full
``G2`` once, ``truncate`` only slices, and the error never grows with either
rank.

Data-aware (``stats`` given): the output error is ``||S (W - W')||_F`` with
``S S = C = E[x x^T]`` (see svd's docstring). A full ``S^-1`` cannot be folded
back into the cores, so the whitening is restricted to a Kronecker product
``S = S1 (x) S2 (x) S3`` over the input modes: ``S_k`` is the regularised
square root (``stats.whitener``) of the partial trace of ``C`` over the other
modes (exact when ``C`` is itself a Kronecker product). The cores are
computed for ``(S1 (x) S2 (x) S3) W`` as above and un-whitened mode by mode,
``G_k[a, i, j, b] <- sum_i' S_k^-1[i, i'] G_k[a, i', j, b]``, which keeps the
TT format and exactness at full rank.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lrfc.decompose.base import Cost, Factors, LayerStats, LayerWeights, Stage
from lrfc.decompose.stats import whitener
from lrfc.decompose.common import check_ranks, top_eigvecs
from lrfc.decompose.dense_chain import dense_kernel, dense_matrix, dense_view

NAME = "ttm"
KIND = "dense"
NUM_MODES = 3
NUM_RANKS = NUM_MODES - 1


# --- mode factorization and the contraction the layer performs --------------------------------

def _factorizations(n: int, d: int, low: int):
    """Non-decreasing d-tuples of integers >= ``low`` whose product is ``n``."""
    if d == 1:
        if n >= low:
            yield (n,)
        return
    f = low
    while f ** d <= n:
        if n % f == 0:
            for rest in _factorizations(n // f, d - 1, f):
                yield (f, *rest)
        f += 1


def factor_modes(n: int, d: int = NUM_MODES) -> tuple[int, ...]:
    """The most balanced split of ``n`` into ``d`` factors, ascending.

    Balanced = the smallest largest factor, then the largest smallest one,
    then the lexicographically first; factors of 1 fill in when ``n`` has too
    few prime factors (a prime ``p`` gives ``(1, ..., 1, p)``).
    """
    if n < 1 or d < 1:
        raise ValueError(f"factor_modes needs n >= 1 and d >= 1, received n={n}, d={d}")
    return min(_factorizations(n, d, 1), key=lambda t: (t[-1], -t[0], t))


def tt_modes(in_features: int, out_features: int, d: int = NUM_MODES) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(in_modes, out_modes)``: in-modes largest first, out-modes smallest first."""
    return tuple(reversed(factor_modes(in_features, d))), factor_modes(out_features, d)


def contraction_steps(in_modes, out_modes, ranks) -> list[tuple[int, int, int, int, int]]:
    """The matmuls ``TTMatrixDense`` performs, one per core: ``(m_k, rest_k, r_{k-1}, n_k, r_k)``.

    Before step k the state holds, per input vector, the indices
    ``(i_k, [i_{k+1}..i_d, j_1..j_{k-1}], a_{k-1})`` with ``rest_k`` the size of
    the bracket; step k multiplies ``rest_k`` rows of length ``m_k r_{k-1}`` by
    the core reshaped to ``(m_k r_{k-1}, n_k r_k)``: ``rest_k m_k r_{k-1} n_k r_k``
    MACs per input vector.
    """
    full = (1, *ranks, 1)
    d = len(in_modes)
    return [(in_modes[k], math.prod(in_modes[k + 1:]) * math.prod(out_modes[:k]), full[k], out_modes[k], full[k + 1])
            for k in range(d)]


# --- the ttm method ---------------------------------------------------------------------------

def _unfolding_sizes(geom) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    view = dense_view(geom)
    mi, mo = tt_modes(view.in_features, view.out_features)
    return mi, mo, tuple(m * n for m, n in zip(mi, mo))


def max_ranks(geom) -> tuple[int, int]:
    """``(min(m1 n1, m2 n2 m3 n3), min(m1 n1 m2 n2, m3 n3))``: the ranks of the two unfoldings."""
    _, _, (p1, p2, p3) = _unfolding_sizes(geom)
    return min(p1, p2 * p3), min(p1 * p2, p3)


def cost(geom, ranks: tuple[int, ...]) -> Cost:
    """Params ``sum r_{k-1} m_k n_k r_k (+ out)``; MACs of ``contraction_steps`` per token."""
    view = dense_view(geom)
    mi, mo, _ = _unfolding_sizes(geom)
    ranks = tuple(int(r) for r in ranks)
    if len(ranks) != NUM_RANKS:
        raise ValueError(f"{NAME} ranks must be {NUM_RANKS} integers, received {ranks}")
    full = (1, *ranks, 1)
    params = sum(full[k] * mi[k] * mo[k] * full[k + 1] for k in range(NUM_MODES))
    per_token = sum(m * rest * rp * n * r for m, rest, rp, n, r in contraction_steps(mi, mo, ranks))
    return Cost(params + (view.out_features if view.use_bias else 0), view.tokens * per_token)


def _mode_whiteners(cov: np.ndarray, modes: tuple[int, ...], rows: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(S_k, S_k^-1)`` per input mode from the partial traces of ``cov``.

    With ``rows``, ``cov`` is the moment's rows ``R`` (``LayerStats.rows``,
    moment ``R^T R``): each partial trace is taken from them, not from the
    (n, n) moment.
    """
    d = len(modes)
    out = []
    if rows:
        r = np.asarray(cov, dtype=np.float64).reshape(-1, *modes)
        for k in range(d):  # sum over rows s and the other modes of R[s, ..a..] R[s, ..b..]
            out.append(whitener(np.einsum(r, [d] + list(range(d)), r, [d] + [d + 1 if l == k else l for l in range(d)],
                                          [k, d + 1])))
        return out
    c = np.asarray(cov, dtype=np.float64).reshape(*modes, *modes)
    for k in range(d):
        labels = list(range(d)) + [d + k if l == k else l for l in range(d)]
        out.append(whitener(np.einsum(c, labels, [k, d + k])))
    return out


def _left_basis(a: np.ndarray) -> np.ndarray:
    """Left singular vectors of ``a``, largest first, ``min(a.shape)`` of them.

    The unfoldings are very wide (m1 n1 rows, in*out / (m1 n1) columns): the
    eigenvectors of the small Gram ``a a^T`` are the same basis at a tenth of
    the time of an SVD, and at full rank they are a complete orthonormal
    basis, so exactness does not depend on their accuracy.
    """
    if a.shape[0] <= a.shape[1]:
        return top_eigvecs(a @ a.T)
    return np.linalg.svd(a, full_matrices=False)[0]


@dataclass(frozen=True)
class Prepared:
    """Full-rank cores; the leading ``r1`` / ``r2`` slices are the truncation."""

    first: np.ndarray   # (m1, n1, K1)
    middle: np.ndarray  # (K1, m2, n2, K3)
    last: np.ndarray    # (K3, m3, n3)
    bias: np.ndarray | None
    data_aware: bool
    max_ranks: tuple[int, int]


def prepare(weights: LayerWeights, geom, stats: LayerStats | None = None) -> Prepared:
    """Both outer SVDs and the full middle core of the (Kronecker-whitened) kernel."""
    view = dense_view(geom)
    w = dense_kernel(weights, view)
    (m1, m2, m3), (n1, n2, n3), (p1, p2, p3) = _unfolding_sizes(geom)
    white = None
    if stats is not None:
        if stats.size != view.in_features:
            raise ValueError(f"input statistics of {stats.size} inputs do not fit a dense layer with "
                             f"{view.in_features} inputs")
        if stats.rows is not None:
            if np.any(stats.rows):
                white = _mode_whiteners(stats.rows, (m1, m2, m3), rows=True)
        elif np.trace(stats.input_cov) > 0:
            white = _mode_whiteners(stats.input_cov, (m1, m2, m3))
    w4 = w.reshape(m1, m2, m3, view.out_features)
    if white is not None:
        w4 = np.einsum("ai,bj,ck,ijko->abco", white[0][0], white[1][0], white[2][0], w4, optimize=True)
    t = w4.reshape(m1, m2, m3, n1, n2, n3).transpose(0, 3, 1, 4, 2, 5).reshape(p1, p2, p3)
    u1 = _left_basis(t.reshape(p1, p2 * p3))    # (p1, K1)
    v3 = _left_basis(t.reshape(p1 * p2, p3).T)  # (p3, K3)
    middle = np.einsum("ap,abc,cq->pbq", u1, t, v3, optimize=True)
    first = u1.reshape(m1, n1, -1)
    middle = middle.reshape(u1.shape[1], m2, n2, v3.shape[1])
    last = v3.T.reshape(-1, m3, n3)
    if white is not None:
        first = np.einsum("ij,jnr->inr", white[0][1], first)
        middle = np.einsum("ij,ajnb->ainb", white[1][1], middle)
        last = np.einsum("ij,rjn->rin", white[2][1], last)
    bias = None if weights.bias is None else np.asarray(weights.bias, np.float64)
    return Prepared(first, middle, last, bias, white is not None, (u1.shape[1], v3.shape[1]))


def truncate(prepared: Prepared, ranks) -> Factors:
    """Cores ``(1, m1, n1, r1)``, ``(r1, m2, n2, r2)``, ``(r2, m3, n3, 1)``: leading slices."""
    r1, r2 = check_ranks(ranks, prepared.max_ranks, NAME)
    cores = (prepared.first[None, :, :, :r1].copy(), prepared.middle[:r1, :, :, :r2].copy(),
             prepared.last[:r2, :, :, None].copy())
    return Factors(NAME, (r1, r2), cores, prepared.bias, prepared.data_aware)


def stages(factors: Factors, geom, activation: str | None = None) -> list[Stage]:
    """One ``ttm`` stage (a ``TTMatrixDense`` on the last axis, also for a pointwise conv)."""
    view = dense_view(geom)
    cores = tuple(np.asarray(c, np.float32) for c in factors.arrays)
    in_modes = tuple(int(c.shape[1]) for c in cores)
    out_modes = tuple(int(c.shape[2]) for c in cores)
    if math.prod(in_modes) != view.in_features or math.prod(out_modes) != view.out_features:
        raise ValueError(f"cores with modes {in_modes} x {out_modes} do not fit a {view.in_features}x{view.out_features} layer")
    bias = () if factors.bias is None else (np.asarray(factors.bias, np.float32),)
    return [Stage("ttm", (*cores, *bias), use_bias=bool(bias), activation=activation,
                  meta={"in_modes": in_modes, "out_modes": out_modes})]


def baseline(kernel, geom, rank_of) -> tuple[int, int]:
    """Ranks from the weights alone: ``rank_of`` the two unfoldings of ``prepare``'s 3-way tensor (m1 n1, m2 n2, m3 n3)."""
    w = dense_matrix(kernel, geom)
    (m1, m2, m3), (n1, n2, n3) = tt_modes(*w.shape)
    t = w.reshape(m1, m2, m3, n1, n2, n3).transpose(0, 3, 1, 4, 2, 5)
    return rank_of(t.reshape(m1 * n1, -1)), rank_of(t.reshape(m1 * n1 * m2 * n2, -1))
