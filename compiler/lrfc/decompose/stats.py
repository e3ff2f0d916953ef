"""Second moments of a layer's captured inputs, for data-aware factorization.

Calibration runs a few hundred samples through the model and keeps each
layer's inputs. A convolution's output at one position is ``W_mat^T p`` (plus
bias), with ``p`` the im2col patch under the kernel and ``W_mat`` the kernel
reshaped to ``(kh*kw*cin, cout)``. The error of an approximate kernel ``W'``
on that data is therefore ``E||(W - W')^T p||^2 = tr(E^T Sigma E)`` with
``Sigma = E[p p^T]``: the second moment of the patches is all a method needs
to fit its factors to the layer's output instead of to its weights.

Memory stays bounded: each batch contributes at most ``max_positions``
patches, drawn with a fixed seed, and batches are merged with ``accumulate``. Moments are uncentred (the layer is linear in its
input, the bias does not depend on it) and kept in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lrfc.decompose.base import LayerStats
from lrfc.geometry import ConvGeometry, conv_out_len

DEFAULT_MAX_POSITIONS = 4096
EXPLICIT_MAX = 2048  # a moment up to this size is whitened with explicit (n, n) matrices (whitener), and kept whole


def _same_pad(n: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding of one axis: (before, after); the extra pixel goes after."""
    out = conv_out_len(n, k, stride, dilation, "same")
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - n, 0)
    return total // 2, total - total // 2


def _as_nhwc(x: np.ndarray, geom: ConvGeometry) -> np.ndarray:
    x = np.asarray(x)
    if geom.spatial_rank == 1 and x.ndim == 3:
        x = x[:, None, :, :]  # (N, L, C) -> (N, 1, L, C)
    if x.ndim != 4 or x.shape[1:] != (*geom.in_hw, geom.cin):
        raise ValueError(f"expected inputs of shape (N, {geom.in_hw[0]}, {geom.in_hw[1]}, {geom.cin}) "
                         f"for this layer, received {x.shape}")
    return x


def _pick(total: int, limit: int, seed: int) -> np.ndarray:
    """Sorted indices of at most ``limit`` of ``total`` items; all of them when they fit."""
    if total <= limit:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, size=limit, replace=False))


def patches(x: np.ndarray, geom: ConvGeometry, max_positions: int = DEFAULT_MAX_POSITIONS,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """im2col of captured inputs at a deterministic subset of output positions.

    Args:
        x: the layer's inputs, NHWC (or (N, L, C) for a Conv1D).
        geom: the layer; its stride, dilation and padding (TensorFlow rules) place the patches.
        max_positions: at most this many (sample, row, column) output positions are used.
        seed: fixes which positions are drawn when there are more.

    Returns:
        ``(rows, where)``: rows (S, kh*kw*cin) ordered like a flattened HWI kernel, and
        where (S, 3) the (sample, out_row, out_col) of each row.
    """
    x = _as_nhwc(x, geom)
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), (dh, dw) = geom.kernel, geom.strides, geom.dilation
    oh = conv_out_len(h, kh, sh, dh, geom.padding)
    ow = conv_out_len(w, kw, sw, dw, geom.padding)
    if geom.padding == "same":
        pads = (_same_pad(h, kh, sh, dh), _same_pad(w, kw, sw, dw))
        x = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    flat = _pick(n * oh * ow, max_positions, seed)
    s, p, q = np.unravel_index(flat, (n, oh, ow))
    rows = p[:, None] * sh + np.arange(kh)[None, :] * dh  # (S, kh)
    cols = q[:, None] * sw + np.arange(kw)[None, :] * dw  # (S, kw)
    got = x[s[:, None, None], rows[:, :, None], cols[:, None, :], :]  # (S, kh, kw, C)
    return got.reshape(len(flat), kh * kw * c), np.stack([s, p, q], axis=1)


def _moment(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64)
    moment = rows.T @ rows
    moment /= max(len(rows), 1)
    return moment


def conv_stats(x: np.ndarray, geom: ConvGeometry, max_positions: int = DEFAULT_MAX_POSITIONS,
               seed: int = 0) -> LayerStats:
    """Patch and pixel second moments of one batch of a convolution's inputs.

    ``input_cov`` averages ``p p^T`` over the sampled im2col patches (zero
    padding included, as the layer sees it). ``channel_cov`` averages ``x x^T``
    over the input pixels those patches read, each tap once: the mean of the
    kh*kw diagonal blocks of ``input_cov``. That is the pixel moment the layer
    actually sees (stride, padding and borders included), it is exactly the
    per-tap block the whitening of the cin mode assumes, and it merges across
    batches with the same weights as ``input_cov``.
    """
    x = _as_nhwc(x, geom)
    rows, _ = patches(x, geom, max_positions, seed)
    cov = _moment(rows)
    taps, c = geom.kernel[0] * geom.kernel[1], geom.cin
    blocks = cov.reshape(taps, c, taps, c)
    channel = blocks[np.arange(taps), :, np.arange(taps), :].mean(axis=0)
    return LayerStats(input_cov=cov, channel_cov=channel, samples=len(rows))


def dense_stats(x: np.ndarray, max_positions: int = DEFAULT_MAX_POSITIONS, seed: int = 0) -> LayerStats:
    """Second moment of a dense layer's inputs; leading dimensions are flattened (tokens).

    Fewer vectors than inputs, above ``EXPLICIT_MAX`` inputs, are kept as
    rows (``LayerStats.rows``): k x n numbers instead of n x n.
    """
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"dense inputs need a batch axis and a feature axis, received shape {x.shape}")
    vectors = x.reshape(-1, x.shape[-1])
    picked = vectors[_pick(len(vectors), max_positions, seed)]
    if keeps_rows(len(picked), picked.shape[1]):
        rows = np.asarray(picked, dtype=np.float64)
        rows /= np.sqrt(max(len(rows), 1))
        return LayerStats(input_cov=None, channel_cov=None, samples=len(rows), rows=rows)
    cov = _moment(picked)
    return LayerStats(input_cov=cov, channel_cov=cov, samples=len(picked))


def keeps_rows(vectors: int, n: int) -> bool:
    """Whether a dense moment of ``vectors`` vectors of length ``n`` is kept as its rows."""
    return n > EXPLICIT_MAX and vectors < n


def moment(stats: LayerStats) -> np.ndarray:
    """The input moment as an (n, n) matrix: ``input_cov``, or formed from ``rows``."""
    if stats.rows is None:
        return stats.input_cov
    rows = np.asarray(stats.rows, dtype=np.float64)
    return rows.T @ rows


def accumulate(total: LayerStats | None, batch: LayerStats) -> LayerStats:
    """Merge the statistics of one more batch into a running total (None to start).

    Each side is weighted by its ``samples``, so the result is the moment
    over every vector both have seen. Rows are stacked (each side scaled by
    the square root of its weight) while they stay fewer than the inputs;
    past that the moment is formed. A moment is merged in place:
    ``total``'s arrays become the result and ``batch``'s are scaled on the
    way (a batch is read once), so a moment of (n, n) costs no third and
    fourth copy. A dense layer's two moments are one array, merged once.
    """
    if total is None:
        return batch
    if total.size != batch.size or (total.channel_cov is not None and batch.channel_cov is not None
                                    and total.channel_cov.shape != batch.channel_cov.shape):
        raise ValueError(f"cannot merge statistics of different layers: inputs of {total.size} and {batch.size}")
    n = total.samples + batch.samples
    a, b = total.samples / n, batch.samples / n
    if total.rows is not None and batch.rows is not None and keeps_rows(n, total.size):
        rows = np.concatenate([np.sqrt(a) * total.rows, np.sqrt(b) * batch.rows])
        return LayerStats(input_cov=None, channel_cov=None, samples=n, rows=rows)
    if total.rows is not None or batch.rows is not None:  # a dense layer's rows reach its inputs: one moment
        mine, theirs = moment(total), moment(batch)
        total, batch = LayerStats(mine, mine, total.samples), LayerStats(theirs, theirs, batch.samples)
    pairs = [(total.input_cov, batch.input_cov)]
    if total.channel_cov is not total.input_cov:
        pairs.append((total.channel_cov, batch.channel_cov))
    for mine, theirs in pairs:  # a * mine + b * theirs, rounded as written so
        mine *= a
        theirs *= b
        mine += theirs
    return LayerStats(input_cov=total.input_cov, channel_cov=total.channel_cov, samples=n)


def whitener(cov: np.ndarray, eps: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric square root ``S`` of a second moment and its inverse.

    ``E||E^T x||^2 = ||S E||_F^2`` for ``cov = S S``, so a truncated SVD of
    ``S W`` is the best low-rank fit of ``W`` on the data. The moment is
    regularised with ``eps * trace / n`` on the diagonal first, so dead or
    linearly dependent channels (rank deficiency) keep ``S`` invertible and
    ``S^-1`` bounded.

    Returns:
        ``(S, S_inv)``, both (n, n) float64.
    """
    cov = np.asarray(cov, dtype=np.float64)
    cov = 0.5 * (cov + cov.T)
    n = cov.shape[0]
    floor = eps * max(np.trace(cov) / n, np.finfo(np.float64).tiny)
    vals, vecs = np.linalg.eigh(cov)
    vals = np.maximum(vals, 0.0) + floor
    root = np.sqrt(vals)
    return (vecs * root) @ vecs.T, (vecs / root) @ vecs.T


@dataclass(frozen=True)
class Whitening:
    """``S = C^1/2`` of a regularised moment and ``S^-1``, applied without forming either when ``C`` is large.

    Held as ``S = floor_root I + basis diag(root - floor_root) basis^T``:
    ``basis`` (n, k) holds orthonormal eigenvectors of ``C`` with
    ``root = sqrt(eigenvalue + floor)``, and every direction outside it has
    the eigenvalue 0, so ``sqrt(floor)`` (``whitener``'s regularisation).
    A small moment keeps the explicit matrices instead (``explicit``), so
    its numbers are ``whitener``'s to the bit.
    """

    basis: np.ndarray | None
    root: np.ndarray | None
    floor_root: float
    explicit: tuple[np.ndarray, np.ndarray] | None = None

    def times(self, m: np.ndarray) -> np.ndarray:
        """``S @ m``."""
        if self.explicit is not None:
            return self.explicit[0] @ m
        return self._apply(m, self.root, self.floor_root)

    def inverse_times(self, m: np.ndarray) -> np.ndarray:
        """``S^-1 @ m``."""
        if self.explicit is not None:
            return self.explicit[1] @ m
        return self._apply(m, 1.0 / self.root, 1.0 / self.floor_root)

    def _apply(self, m, scale, rest):
        inner = self.basis.T @ m
        if self.basis.shape[1] == self.basis.shape[0]:  # a complete basis: no direction outside it
            return self.basis @ (scale[:, None] * inner)
        return rest * m + self.basis @ ((scale - rest)[:, None] * inner)


def whitening(cov: np.ndarray, eps: float = 1e-4) -> Whitening:
    """``whitener``'s ``S`` and ``S^-1`` of the moment ``cov`` as a ``Whitening``.

    Up to ``EXPLICIT_MAX`` inputs: ``whitener`` itself. Above, one ``eigh``
    and ``S`` applied through its eigenvectors: no (n, n) product is formed.
    """
    n = cov.shape[0]
    if n <= EXPLICIT_MAX:
        return Whitening(None, None, 0.0, whitener(cov, eps))
    cov = np.asarray(cov, dtype=np.float64)  # no copy of a float64 moment (or of its read-only map)
    floor = eps * max(float(np.trace(cov)) / n, np.finfo(np.float64).tiny)
    vals, basis = np.linalg.eigh(cov)
    return Whitening(basis, np.sqrt(np.maximum(vals, 0.0) + floor), float(np.sqrt(floor)))


def row_whitening(rows: np.ndarray, eps: float = 1e-4) -> Whitening:
    """The same ``S`` and ``S^-1`` of the moment ``rows^T rows`` (``LayerStats.rows``), from the rows' thin SVD.

    ``rows = U s V^T`` gives the moment's eigenvectors ``V`` (n, k) with
    eigenvalues ``s^2``, and every other direction has 0: O(k^2 n) for k
    rows, where the moment's ``eigh`` is O(n^3).
    """
    rows = np.asarray(rows, dtype=np.float64)
    n = rows.shape[1]
    floor = eps * max(float(np.einsum("ij,ij->", rows, rows)) / n, np.finfo(np.float64).tiny)
    _, singular, vt = np.linalg.svd(rows, full_matrices=False)
    return Whitening(vt.T, np.sqrt(singular ** 2 + floor), float(np.sqrt(floor)))


__all__ = ["DEFAULT_MAX_POSITIONS", "Whitening", "accumulate", "conv_stats", "dense_stats", "keeps_rows", "moment",
           "patches", "row_whitening", "whitener", "whitening"]
