"""Shapes of the layers lrfc factorizes, and their exact parameter and MAC counts.

Pure Python: the selector, the cost model and the decomposition modules use
these without TensorFlow. MACs are multiply-accumulates for one sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def conv_out_len(n: int, k: int, stride: int, dilation: int, padding: str) -> int:
    """Output length of one spatial axis, with TensorFlow's padding rules."""
    if padding == "same":
        return math.ceil(n / stride)
    if padding == "valid":
        span = dilation * (k - 1) + 1
        return max(0, (n - span) // stride + 1)
    raise ValueError(f"padding must be 'same' or 'valid', received {padding!r}")


@dataclass(frozen=True)
class ConvGeometry:
    """A (grouped) 2-D or 1-D convolution, kernel in Keras HWIO layout.

    A Conv1D is described as a 2-D convolution over a 1 x L image:
    ``spatial_rank=1``, ``kernel=(1, k)``, ``in_hw=(1, L)``.
    """

    kernel: tuple[int, int]
    cin: int
    cout: int
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    padding: str = "valid"
    use_bias: bool = True
    groups: int = 1
    spatial_rank: int = 2

    @property
    def is_pointwise(self) -> bool:
        """A 1x1, stride-1 convolution: a dense layer over channels."""
        return self.kernel == (1, 1) and self.strides == (1, 1) and self.groups == 1

    @property
    def params(self) -> int:
        kh, kw = self.kernel
        return kh * kw * (self.cin // self.groups) * self.cout + (self.cout if self.use_bias else 0)

    @property
    def macs(self) -> int:
        kh, kw = self.kernel
        oh, ow = self.out_hw
        return oh * ow * kh * kw * (self.cin // self.groups) * self.cout

    def as_dense(self) -> "DenseGeometry":
        """The dense layer a pointwise convolution is (one token per pixel)."""
        if not self.is_pointwise:
            raise ValueError(f"only a 1x1 stride-1 convolution is dense over channels; received kernel {self.kernel}, strides {self.strides}")
        oh, ow = self.out_hw
        return DenseGeometry(self.cin, self.cout, tokens=oh * ow, use_bias=self.use_bias)


@dataclass(frozen=True)
class DenseGeometry:
    """A dense layer y = x W (+ b) applied to ``tokens`` vectors per sample.

    ``tokens`` is the product of the non-batch leading dimensions: 1 for a
    rank-2 input, T for a (batch, T, in) input.
    """

    in_features: int
    out_features: int
    tokens: int = 1
    use_bias: bool = True

    @property
    def params(self) -> int:
        return self.in_features * self.out_features + (self.out_features if self.use_bias else 0)

    @property
    def macs(self) -> int:
        return self.tokens * self.in_features * self.out_features


Geometry = ConvGeometry | DenseGeometry


def chain_rank(geom) -> int:
    """The spatial rank ``apply_chain`` builds for (1 for Conv1D; dense chains ignore it)."""
    return geom.spatial_rank if isinstance(geom, ConvGeometry) else 2
