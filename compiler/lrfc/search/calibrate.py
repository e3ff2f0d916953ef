"""Capture the inputs of chosen layers on calibration samples, in bounded memory.

Per layer, at most ``budget_bytes`` of captured input plus the reference
output scoring derives from it (default 64 MiB): the first
``budget_bytes // bytes_per_sample`` samples when its maps are large. Its
input statistics are (kh*kw*cin)^2 float64 moments accumulated from at most
``stats_positions`` (default 16,384) im2col patches spread over all samples.
The model runs once over the samples, ``batch_size`` at a time (the build's
memory plan sizes it: an eager call holds every layer's output of the
batch, ``frontend.memory_plan``). With a ``MapStore`` the captured maps go to files a batch at a time and no
layer's maps stay in memory; without one they are arrays.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lrfc.common import npyfile

DEFAULT_BUDGET_BYTES = 64 * 2**20
STATS_POSITIONS = 16384  # patches or vectors per layer for its input statistics, over all samples


@dataclass(frozen=True)
class Capture:
    """Per layer name: its captured input feature maps (an array, or the ``.npy`` file holding them).

    ``stats`` holds input statistics accumulated over *all* calibration
    samples (streamed batch by batch), for the layers they were asked for.
    ``batch`` is the batch the model ran at.
    """

    inputs: dict[str, np.ndarray | Path]
    stats: dict = field(default_factory=dict)
    batch: int = 0


class MapStore:
    """A folder of one build's captured maps: one ``.npy`` per layer and kind, written once, mapped on use.

    The folder belongs to the build (``OutputDir.scratch``) and goes with it.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.bytes = 0

    @staticmethod
    def stem(layer: str) -> str:
        """The layer's name made safe for a file name, and a hash of the name so two layers never share one."""
        return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', layer)}-{hashlib.blake2b(layer.encode(), digest_size=4).hexdigest()}"

    def path(self, layer: str, kind: str) -> Path:
        return self.root / f"{self.stem(layer)}.{kind}.npy"

    def create(self, layer: str, kind: str, shape: tuple) -> Path:
        """An empty float32 ``.npy`` of ``shape`` to fill a slice at a time (``fill``)."""
        path = self.path(layer, kind)
        arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=tuple(shape))
        del arr
        self.bytes += 4 * math.prod(shape)
        return path

    @staticmethod
    def fill(path: Path, start: int, values: np.ndarray) -> None:
        """Write ``values`` at rows ``start:``; the mapping is closed again, so the rows leave this process's memory."""
        arr = npyfile.load(path, mmap_mode="r+")
        arr[start:start + len(values)] = values
        arr.flush()
        del arr

    def put(self, layer: str, kind: str, values: np.ndarray) -> Path:
        path = self.path(layer, kind)
        np.save(path, np.asarray(values, dtype=np.float32))
        self.bytes += int(np.asarray(values).nbytes)
        return path

    def put_stats(self, layer: str, stats) -> Path:
        folder = self.root / f"{self.stem(layer)}.stats"
        folder.mkdir(exist_ok=True)
        if stats.rows is not None:  # a dense layer's vectors, fewer than its inputs (LayerStats.rows)
            np.save(folder / "rows.npy", stats.rows)
            self.bytes += int(stats.rows.nbytes)
        else:
            np.save(folder / "input_cov.npy", stats.input_cov)
            self.bytes += int(stats.input_cov.nbytes)
        if stats.channel_cov is not stats.input_cov:  # a dense layer's are one array: one file (scoring.opened_stats)
            np.save(folder / "channel_cov.npy", stats.channel_cov)
            self.bytes += int(stats.channel_cov.nbytes)
        (folder / "samples").write_text(str(int(stats.samples)))
        return folder


def _per_sample_bytes(tensor) -> int:
    return 4 * math.prod(int(d) for d in tensor.shape[1:])


def sample_limit(input_tensor, output_tensor, samples: int, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> int:
    """How many samples of one layer are kept: its input plus its reference output within ``budget_bytes``."""
    return max(1, min(samples, budget_bytes // (_per_sample_bytes(input_tensor) + _per_sample_bytes(output_tensor))))


def capture(flat_model, layer_names: list[str], x: np.ndarray, batch_size: int = 64,
            budget_bytes: int = DEFAULT_BUDGET_BYTES, stats_geometry: dict | None = None,
            stats_positions: int = STATS_POSITIONS, progress=None, store: MapStore | None = None) -> Capture:
    """Run ``x`` through ``flat_model`` once and keep each named layer's input.

    Args:
        flat_model: a flattened Functional model.
        layer_names: the layers to capture.
        x: calibration samples, already mapped to the model input.
        batch_size: inference batch size (at most).
        budget_bytes: cap on one layer's captured input + reference output.
        stats_geometry: ``{layer: geometry}`` of layers whose input
            statistics (``LayerStats``) are accumulated over every sample.
        stats_positions: patches/vectors per layer for those statistics,
            spread evenly over the batches.
        progress: called with the number of samples done after each batch.
        store: where the maps go (files); None: arrays in memory.

    Returns:
        A ``Capture``; a layer may hold fewer samples than ``x`` (the bound).
    """
    from lrfc.decompose import stats as stats_mod
    import keras

    from lrfc.frontend.graph import layer_nodes

    nodes = layer_nodes(flat_model)
    taps, limits = [], {}
    for name in layer_names:
        node = nodes[name]
        taps.append(node.input_tensors[0])
        limits[name] = sample_limit(node.input_tensors[0], node.outputs[0], len(x), budget_bytes)
    tap_model = keras.Model(flat_model.input, taps)
    stats_geometry = stats_geometry or {}
    need = len(x) if stats_geometry else (max(limits.values()) if limits else 0)
    per_batch = max(64, stats_positions // max(1, -(-need // batch_size)))
    kept: dict[str, np.ndarray | Path] = {}
    for name, tap in zip(layer_names, taps):
        shape = (limits[name], *(int(d) for d in tap.shape[1:]))
        kept[name] = store.create(name, "inputs", shape) if store is not None else np.empty(shape, np.float32)
    stats: dict = {}
    for b, start in enumerate(range(0, need, batch_size)):
        batch = x[start: min(need, start + batch_size)]
        results = tap_model(batch, training=False)
        results = results if isinstance(results, (list, tuple)) else [results]
        for i, name in enumerate(layer_names):
            keep = min(limits[name] - start, len(batch))
            if keep > 0 or name in stats_geometry:
                values = np.asarray(results[i])
            if keep > 0:
                if store is not None:
                    MapStore.fill(kept[name], start, values[:keep])
                else:
                    kept[name][start:start + keep] = values[:keep]
            geom = stats_geometry.get(name)
            if geom is not None:
                batch_stats = input_stats(values, geom, per_batch, seed=b)
                stats[name] = stats_mod.accumulate(stats.get(name), batch_stats)
        del results
        if progress is not None:
            progress(len(batch))
    return Capture(kept, stats, batch_size)


SIMILARITY_ROWS = 16


def feature_similarity(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Mean over samples of the cosine similarity of the flattened feature maps.

    This is the paper's acceptance measure: it scores what the layer *does*
    on real data. A sample whose maps are both all-zero counts as 1.
    """
    a, b = reference.reshape(len(reference), -1), candidate.reshape(len(candidate), -1)
    cos = np.empty(len(a))
    for s in range(0, len(a), SIMILARITY_ROWS):  # float64 a few samples at a time: no whole-map float64 copies
        x, y = a[s:s + SIMILARITY_ROWS].astype(np.float64), b[s:s + SIMILARITY_ROWS].astype(np.float64)
        nx, ny = np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1)
        both_zero = (nx == 0) & (ny == 0)
        cos[s:s + SIMILARITY_ROWS] = np.where(both_zero, 1.0, np.einsum("ij,ij->i", x, y) / np.maximum(nx * ny, 1e-30))
    return float(cos.mean())


def input_stats(x: np.ndarray, geom, max_positions: int = 4096, seed: int = 0):
    """``LayerStats`` of one layer's captured inputs (im2col patches for a convolution)."""
    from lrfc.decompose import stats
    from lrfc.geometry import ConvGeometry

    if isinstance(geom, ConvGeometry):
        return stats.conv_stats(x, geom, max_positions, seed)
    return stats.dense_stats(x, max_positions, seed)
