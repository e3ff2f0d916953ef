"""What the three convolution methods (tucker, cp, tt) share: the geometry check, the spatial steps of a
factorized chain and their cost, the chain as stages, and the channel bases of a kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrfc.decompose.base import Cost, LayerStats, LayerWeights, Stage
from lrfc.decompose.common import top_eigvecs
from lrfc.decompose.stats import whitener
from lrfc.geometry import ConvGeometry, conv_out_len


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


def separable_steps(geom: ConvGeometry) -> list[Step]:
    """Spatial steps of a separable chain: 1x1, [kh x 1], [1 x kw], 1x1.

    The kh x 1 step is left out when kh == 1 and the 1 x kw step when
    kw == 1 (their stride moves to the first 1x1, see ``pointwise_step``).
    Shared with ``cp``.
    """
    steps = [pointwise_step(geom)]
    (kh, kw), pad = geom.kernel, geom.padding
    if kh > 1:
        s, d = remaining(geom, 0)
        steps.append(step(steps[-1].out_hw, (kh, 1), (s, 1), (d, 1), pad))
    if kw > 1:
        s, d = remaining(geom, 1)
        steps.append(step(steps[-1].out_hw, (1, kw), (1, s), (1, d), pad))
    steps.append(step(steps[-1].out_hw, (1, 1)))
    return steps


def channel_unfoldings(kernel: np.ndarray, geom: ConvGeometry, method: str) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's cin-mode and cout-mode unfoldings: the matrices whose ranks are Tucker-2's (R1, R2)."""
    t = conv_kernel_cijo(kernel, geom, method)
    cin, cout = t.shape[0], t.shape[3]
    return t.reshape(cin, -1), t.transpose(3, 0, 1, 2).reshape(cout, -1)


def conv_kernel_cijo(kernel: np.ndarray, geom: ConvGeometry, method: str) -> np.ndarray:
    """The kernel as ``W[c, i, j, o]`` (cin, kh, kw, cout), checked against the geometry."""
    if not isinstance(geom, ConvGeometry):
        raise ValueError(f"{method} factorizes convolutions; received a {type(geom).__name__}")
    want = (*geom.kernel, geom.cin, geom.cout)
    if tuple(kernel.shape) != want:
        raise ValueError(f"kernel shape {kernel.shape} does not match the geometry, expected {want}")
    return np.asarray(kernel, dtype=np.float64).transpose(2, 0, 1, 3)
