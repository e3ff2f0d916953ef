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

This module also holds what the three convolution methods share: the
geometry check, the chain's spatial steps and their cost, and the channel
bases (``tt`` reuses them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrfc.decompose.base import Cost, Factors, LayerStats, LayerWeights, Stage
from lrfc.decompose.stats import whitener
from lrfc.geometry import ConvGeometry, conv_out_len

NAME = "tucker"
KIND = "conv"
NUM_RANKS = 2


# --- shared by tucker, cp and tt --------------------------------------------------------------

def check_conv(geom: ConvGeometry, weights: LayerWeights | None = None) -> None:
    """Raise ValueError unless ``geom`` (and ``weights``) describe a factorizable convolution."""
    if not isinstance(geom, ConvGeometry):
        raise ValueError(f"a convolution method needs a ConvGeometry, received {type(geom).__name__}")
    if geom.groups != 1:
        raise ValueError(f"only groups=1 convolutions are factorized, received groups={geom.groups}")
    (kh, kw), (h, w) = geom.kernel, geom.in_hw
    out = (conv_out_len(h, kh, geom.strides[0], geom.dilation[0], geom.padding),
           conv_out_len(w, kw, geom.strides[1], geom.dilation[1], geom.padding))
    if out != tuple(geom.out_hw):
        raise ValueError(f"out_hw {geom.out_hw} does not follow from in_hw {geom.in_hw}, kernel {geom.kernel}, "
                         f"strides {geom.strides}, dilation {geom.dilation}, padding {geom.padding!r}: expected {out}")
    if weights is not None:
        want = (kh, kw, geom.cin, geom.cout)
        if tuple(weights.kernel.shape) != want:
            raise ValueError(f"kernel shape {weights.kernel.shape} does not match the geometry, expected {want}")
        if geom.use_bias != (weights.bias is not None):
            raise ValueError(f"geometry says use_bias={geom.use_bias} but the weights "
                             f"{'have' if weights.bias is not None else 'lack'} a bias")


def check_ranks(ranks, top: tuple[int, ...], method: str) -> tuple[int, ...]:
    """Ranks as a tuple of ints in [1, top]; the error names what was received."""
    ranks = tuple(int(r) for r in ranks)
    if len(ranks) != len(top) or any(r < 1 or r > t for r, t in zip(ranks, top)):
        raise ValueError(f"{method} ranks must be {len(top)} integers in [1, {top}], received {ranks}")
    return ranks


@dataclass(frozen=True)
class Step:
    """Spatial parameters of one stage of a chain, and the size it outputs."""

    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilation: tuple[int, int]
    padding: str
    out_hw: tuple[int, int]


def step(in_hw, kernel, strides=(1, 1), dilation=(1, 1), padding="valid") -> Step:
    """A Step whose output size follows TensorFlow's rules, axis by axis."""
    out = tuple(conv_out_len(n, k, s, d, padding) for n, k, s, d in zip(in_hw, kernel, strides, dilation))
    return Step(tuple(kernel), tuple(strides), tuple(dilation), padding, out)


def pointwise_step(geom: ConvGeometry) -> Step:
    """The first 1x1 stage. It takes over the stride of every axis whose kernel is 1.

    A size-1 kernel with stride s only subsamples (no padding under either
    rule), so moving that subsampling first is exact and saves MACs.
    """
    strides = tuple(s if k == 1 else 1 for k, s in zip(geom.kernel, geom.strides))
    return step(geom.in_hw, (1, 1), strides)


def remaining(geom: ConvGeometry, axis: int) -> tuple[int, int]:
    """(stride, dilation) left for ``axis`` after ``pointwise_step`` (1, 1 on a size-1 axis)."""
    if geom.kernel[axis] == 1:
        return 1, 1
    return geom.strides[axis], geom.dilation[axis]


def chain_cost(layers: list[tuple[str, Step, int, int]], bias: int) -> Cost:
    """Params and MACs of ``(kind, step, c_in, c_out)`` stages; ``bias`` params on the last."""
    params = macs = 0
    for kind, st, c_in, c_out in layers:
        taps = st.kernel[0] * st.kernel[1]
        per_pos = taps * c_in if kind == "depthwise" else taps * c_in * c_out
        params += per_pos
        macs += per_pos * st.out_hw[0] * st.out_hw[1]
    return Cost(params + bias, macs)


def to_stages(layers: list[tuple[str, Step, int, int]], kernels: list[np.ndarray], bias, activation) -> list[Stage]:
    """Stage records (float32) for ``chain_cost``'s layer list and one kernel per layer."""
    out = []
    for n, ((kind, st, c_in, c_out), k) in enumerate(zip(layers, kernels)):
        last = n == len(layers) - 1
        want = (*st.kernel, c_in, 1 if kind == "depthwise" else c_out)
        if k.shape != want:
            raise AssertionError(f"stage {n} kernel {k.shape}, expected {want}")  # a bug here, not user input
        weights = (np.asarray(k, np.float32),)
        if last and bias is not None:
            weights += (np.asarray(bias, np.float32),)
        out.append(Stage(kind, weights, kernel=st.kernel, strides=st.strides, dilation=st.dilation,
                         padding=st.padding, use_bias=last and bias is not None,
                         activation=activation if last else None))
    return out


def top_eigvecs(gram: np.ndarray) -> np.ndarray:
    """All eigenvectors of a symmetric matrix, largest eigenvalue first, signs fixed."""
    vals, vecs = np.linalg.eigh(0.5 * (gram + gram.T))
    vecs = vecs[:, ::-1]
    pivot = np.argmax(np.abs(vecs), axis=0)
    return vecs * np.sign(vecs[pivot, np.arange(vecs.shape[1])])


@dataclass(frozen=True)
class ChannelBases:
    """Full-rank channel bases of a kernel and the kernel expressed in them.

    ``W[i, j] = first @ core[i, j] @ last.T`` holds exactly; keeping the
    leading R1 columns of ``first``, R2 of ``last`` and the leading block of
    ``core`` is the (data-aware) Tucker-2 truncation.
    """

    first: np.ndarray  # (cin, cin)  A = S^-1 U  (U when weight-only)
    core: np.ndarray   # (kh, kw, cin, cout)
    last: np.ndarray   # (cout, cout) orthonormal V
    data_aware: bool


def channel_bases(kernel: np.ndarray, stats: LayerStats | None = None) -> ChannelBases:
    """The input (whitened by ``channel_cov``) and output (``W^T Sigma W``) bases; see the module doc."""
    kh, kw, cin, cout = kernel.shape
    w = np.asarray(kernel, dtype=np.float64)
    taps = w.reshape(kh * kw, cin, cout)
    wmat = w.reshape(kh * kw * cin, cout)
    if stats is None:
        u = top_eigvecs(np.einsum("tco,tdo->cd", taps, taps))
        first = project = u
        out_gram = wmat.T @ wmat
    else:
        if stats.channel_cov.shape != (cin, cin) or stats.input_cov.shape != (kh * kw * cin,) * 2:
            raise ValueError(f"statistics do not fit a {kernel.shape} kernel: channel_cov {stats.channel_cov.shape}, "
                             f"input_cov {stats.input_cov.shape}, expected ({cin}, {cin}) and ({kh * kw * cin}, {kh * kw * cin})")
        s, s_inv = whitener(stats.channel_cov)
        white = s @ taps  # (taps, cin, cout): S W[i, j]
        u = top_eigvecs(np.einsum("tco,tdo->cd", white, white))
        first, project = s_inv @ u, s @ u
        out_gram = wmat.T @ (np.asarray(stats.input_cov, np.float64) @ wmat)
    last = top_eigvecs(out_gram)
    core = (project.T @ taps @ last).reshape(kh, kw, cin, cout)
    return ChannelBases(first, core, last, stats is not None)


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
