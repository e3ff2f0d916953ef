"""Data types shared by every decomposition method.

A method turns a layer's weights (and optionally statistics of its inputs)
into ``Factors``, and factors into a chain of ``Stage`` records: plain layer
descriptions (numpy weights, kernel, strides, ...) that one Keras builder
turns into layers. Methods therefore never touch Keras, and every chain is
data that can be printed, costed and compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: importing lrfc.decompose (the registry's names) stays numpy-free
    import numpy as np


@dataclass(frozen=True)
class Cost:
    """Parameters and multiply-accumulates (one sample) of a layer or chain."""

    params: int
    macs: int

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.params + other.params, self.macs + other.macs)


@dataclass(frozen=True)
class LayerWeights:
    """The original layer's weights in Keras layout.

    ``kernel`` is HWIO ``(kh, kw, cin, cout)`` for a convolution (a Conv1D
    kernel ``(k, cin, cout)`` is given as ``(1, k, cin, cout)``) and
    ``(in, out)`` for a dense layer. ``bias`` is None when the layer has none.
    """

    kernel: np.ndarray
    bias: np.ndarray | None = None


@dataclass(frozen=True)
class LayerStats:
    """Second moments of a layer's captured inputs, for data-aware factorization.

    ``input_cov`` is E[p p^T] over im2col patches ``p`` (length kh*kw*cin,
    ordered like a flattened HWI kernel) for a convolution, or over input
    vectors (length ``in``) for a dense layer. ``channel_cov`` is E[x x^T]
    over single input pixels (cin x cin); for a dense layer it is
    ``input_cov``, one array. ``samples`` counts the vectors averaged.

    A dense layer that saw fewer vectors than it has inputs (a Dense after a
    Flatten: 256 calibration vectors of 25,088 inputs in VGG16) holds them
    instead: ``rows`` (samples, in), scaled so that the moment is
    ``rows^T rows``, and both moments are None (``decompose.stats.moment``
    forms it where a caller needs the matrix). Its size is then
    samples x in, not in x in.
    """

    input_cov: np.ndarray | None
    channel_cov: np.ndarray | None
    samples: int
    rows: np.ndarray | None = None

    @property
    def size(self) -> int:
        """The moment's side: the length of one input vector or patch."""
        return int(self.rows.shape[1] if self.rows is not None else self.input_cov.shape[0])


@dataclass(frozen=True)
class Factors:
    """The result of one method at one rank: its arrays and the original bias.

    ``arrays`` are the method's factor matrices/cores, in the order its
    module documents. ``data_aware`` records whether input statistics shaped
    them.
    """

    method: str
    ranks: tuple[int, ...]
    arrays: tuple[np.ndarray, ...]
    bias: np.ndarray | None = None
    data_aware: bool = False


@dataclass(frozen=True)
class Stage:
    """One plain layer of a factorized chain.

    kind:
      ``conv``       kernel weights[0] (kh, kw, cin, cout) [+ bias weights[1]]
      ``depthwise``  kernel weights[0] (kh, kw, c, 1) [+ bias weights[1]]
      ``dense``      kernel weights[0] (in, out) [+ bias weights[1]], on the last axis
      ``ttm``        TT-matrix cores weights[0..d-1] of shape (r_{k-1}, m_k, n_k, r_k)
                     [+ bias weights[d]]; ``meta`` holds ``in_modes``, ``out_modes``
    Only the last stage of a chain carries a bias and the original activation.
    """

    kind: str
    weights: tuple[np.ndarray, ...]
    kernel: tuple[int, int] = (1, 1)
    strides: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    padding: str = "valid"
    use_bias: bool = False
    activation: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
