"""Samples in the model's units, mapped from the data's own values a chunk at a time.

A data set is held as it came (Fashion-MNIST: 28x28 uint8, 784 bytes a
sample); a ``Samples`` is a selection of it plus the mapping onto the model
input (``frontend.data``: unit values, shape, input contract). Mapping it all
at once would hold every sample at the model's size in float32 (Fashion-MNIST
for a 224x224x3 model: 70,000 x 588 KiB = 40 GiB), so nothing does: indexing
maps just the samples asked for, ``chunks`` walks them ``CHUNK`` at a time,
and ``predict`` runs a model over them chunk by chunk. What a build holds of
its data is then the source itself, the calibration samples (mapped once,
``--calib-samples`` of them) and one chunk in flight.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

CHUNK = 256  # samples mapped at a time: 147 MiB at 224x224x3 float32
_BATCH_CAP: list[int | None] = [None]


def cap_batches(n: int | None) -> None:
    """Cap every inference batch of this process at ``n`` samples (the build's memory plan); None lifts the cap."""
    _BATCH_CAP[0] = n


def batch_for(batch_size: int) -> int:
    """``batch_size`` under the process's cap."""
    cap = _BATCH_CAP[0]
    return batch_size if cap is None else max(1, min(batch_size, cap))


class Samples:
    """``source[index]`` mapped by ``mapping`` on access; reads like a read-only float32 array.

    ``x[i]``, ``x[a:b]`` and ``x[array]`` return mapped numpy arrays;
    ``subset``/``head`` select lazily; ``np.asarray(x)`` maps everything
    (for selections known to be small).
    """

    def __init__(self, source: np.ndarray, mapping: Callable[[np.ndarray], np.ndarray] | None = None,
                 index: np.ndarray | None = None, sample_shape: tuple | None = None):
        self.source = source
        self.mapping = mapping
        self.index = np.arange(len(source)) if index is None else np.asarray(index, dtype=np.int64)
        if sample_shape is None:
            sample_shape = tuple(self._map(source[:1]).shape[1:]) if len(source) else tuple(source.shape[1:])
        self.sample_shape = tuple(sample_shape)

    def _map(self, raw: np.ndarray) -> np.ndarray:
        out = raw if self.mapping is None else self.mapping(raw)
        return np.asarray(out, dtype=np.float32)

    # -- array-like surface
    def __len__(self) -> int:
        return len(self.index)

    @property
    def shape(self) -> tuple:
        return (len(self), *self.sample_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.sample_shape)

    @property
    def dtype(self):
        return np.dtype(np.float32)

    @property
    def nbytes(self) -> int:
        """Bytes the selection takes once mapped."""
        return 4 * len(self) * int(np.prod(self.sample_shape, dtype=np.int64))

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, tuple):  # x[rows, ...]: the rows mapped, then the rest of the key on each sample
            rows, rest = key[0], key[1:]
            mapped = self[rows]
            return mapped[rest] if np.ndim(self.index[rows]) == 0 else mapped[(slice(None), *rest)]
        picked = self.index[key]
        if np.ndim(picked) == 0:
            return self._map(self.source[[int(picked)]])[0]
        return self._gather(picked)

    def __array__(self, dtype=None, copy=None):
        out = self._gather(self.index)
        return out if dtype is None else out.astype(dtype, copy=False)

    def _gather(self, picked: np.ndarray) -> np.ndarray:
        out = np.empty((len(picked), *self.sample_shape), np.float32)
        for start in range(0, len(picked), CHUNK):
            out[start:start + CHUNK] = self._map(self.source[picked[start:start + CHUNK]])
        return out

    def min(self) -> float:
        return value_span(self)[0]

    def max(self) -> float:
        return value_span(self)[1]

    # -- lazy selections and chunked walks
    def subset(self, rows) -> "Samples":
        """The samples at ``rows`` of this selection, still unmapped."""
        return Samples(self.source, self.mapping, self.index[np.asarray(rows, dtype=np.int64)], self.sample_shape)

    def head(self, n: int) -> "Samples":
        return Samples(self.source, self.mapping, self.index[:n], self.sample_shape)

    def chunks(self, size: int = CHUNK):
        """Mapped arrays of at most ``size`` samples, in order."""
        for start in range(0, len(self), size):
            yield self._map(self.source[self.index[start:start + size]])


def as_samples(x) -> Samples:
    """``x`` as a ``Samples`` (an array is taken as already in the model's units)."""
    return x if isinstance(x, Samples) else Samples(np.asarray(x))


def source_bytes(x) -> int:
    """Bytes the samples' source holds (what a build keeps of its data)."""
    if x is None:
        return 0
    return int(x.source.nbytes) if isinstance(x, Samples) else int(np.asarray(x).nbytes)


def head(x, n: int):
    """The first ``n`` samples: a lazy selection of a ``Samples``, a view of an array."""
    return x.head(n) if isinstance(x, Samples) else x[:n]


def predict(model, x, batch_size: int = 256, progress=None) -> np.ndarray:
    """The model's outputs over an array or a ``Samples``, a batch at a time; float32.

    ``progress`` (e.g. ``common.progress.Progress.update``) is called with
    each batch's sample count.

    Each batch goes through ``model.predict_on_batch`` (the model's compiled
    predict step, traced once per model), not ``model.predict``: that builds
    a ``tf.data`` pipeline per call, about 40 ms each, which dominated a small
    model's evaluation when called per chunk (the tiny baseline on 5,000
    samples: 0.85 s through ``predict`` per chunk, 0.05 s batch by batch).
    The batches are even (``even_batch``), the last one padded: one input
    shape, one trace.
    """
    batch_size = batch_for(batch_size)
    if not isinstance(x, (Samples, np.ndarray)):
        return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)
    size = even_batch(len(x), batch_size)
    batches = x.chunks(size) if isinstance(x, Samples) else (x[i:i + size] for i in range(0, len(x), size))
    parts = []
    for batch in batches:
        parts.append(_predict_batch(model, batch, size))
        if progress is not None:
            progress(len(batch))
    return np.concatenate(parts) if parts else np.zeros((0,), np.float32)


def even_batch(n: int, batch_size: int) -> int:
    """The batch that splits ``n`` samples into as few batches of at most ``batch_size`` as evenly as it can.

    Every batch but the last is full and the last is short by fewer rows than
    there are batches, so ``predict`` pads it (``_predict_batch``) instead of
    tracing the predict step a second time for its shape: that second trace
    cost about 0.5 s for each new model (a budget-search look scores 1,000
    samples: 4 x 250, where 3 x 256 + 232 traced twice; 1.08-1.37 against
    1.56-1.83 s for a factorized ResNet-style model, one-off, 2026-12-04).
    """
    if n == 0:
        return batch_size
    batches = -(-n // batch_size)
    return -(-n // batches)


def _predict_batch(model, batch: np.ndarray, size: int) -> np.ndarray:
    """``batch`` through the compiled predict step; a short one padded to ``size`` rows with its own rows
    (inference treats each sample alone) and its outputs cut back, so the step keeps one input shape."""
    n = len(batch)
    if 0 < n < size:
        batch = np.concatenate([batch, np.resize(batch, (size - n, *batch.shape[1:]))])
    return np.asarray(model.predict_on_batch(batch), dtype=np.float32)[:n]


def value_span(x) -> tuple[float, float]:
    """Smallest and largest value, chunk by chunk."""
    chunks = x.chunks() if isinstance(x, Samples) else [np.asarray(x)]
    lo, hi = np.inf, -np.inf
    for c in chunks:
        if c.size:
            lo, hi = min(lo, float(c.min())), max(hi, float(c.max()))
    return lo, hi
