"""Score candidate factorizations by feature-map similarity on calibration data.

For one layer and one method the expensive factorization is prepared once
(weight-only and, with statistics, data-aware) and truncated for each
candidate rank; the factorized chain runs eagerly on the layer's captured
inputs and its output is compared with the original layer's output on the
same inputs.

Similarity is measured on the layer's *linear* response without its bias
(every chain reproduces the bias exactly, and a shared offset would only
inflate the cosine) and before its fused activation. A fused ReLU would make every map non-negative,
and the cosine of two unrelated non-negative maps is already high (about
0.75 for random ones), so post-activation scores rank candidates poorly. For
a SeparableConv2D, whose pointwise part is what gets factorized, the inputs
are the captured inputs passed through its (kept) depthwise part.
Following the paper, ranks are walked from maximum compression upward to the
first rank that reaches the threshold; the front above it is sampled too
(``front_points``), so the accuracy budget can walk each layer up it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lrfc.common import npyfile
from lrfc.search.cache import Cache, content_hash
from lrfc.search.calibrate import feature_similarity
from lrfc.decompose.base import LayerStats, LayerWeights, Stage
from lrfc.errors import UserError
from lrfc.frontend.catalogue import LayerInfo
from lrfc.search.select import Candidate

EVAL_BATCH = 256


@dataclass(frozen=True)
class LayerTask:
    """Everything scoring needs about one layer, captured once per build.

    ``inputs`` are what the factorized part sees; ``reference`` is the
    original's linear response to them; ``stats`` the streamed input
    statistics (None without them). Each is held in memory or, for a build
    in bounded memory, in files (``search.calibrate.MapStore``) that every
    access maps afresh: a layer's maps are resident only while something
    uses them, not for the whole build. A task pickled (a Ray worker's copy)
    carries the arrays themselves.
    """

    info: LayerInfo
    weights: LayerWeights
    captured: np.ndarray | Path
    response: np.ndarray | Path
    captured_stats: LayerStats | Path | None = None

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def inputs(self) -> np.ndarray:
        return opened(self.captured)

    @property
    def reference(self) -> np.ndarray:
        return opened(self.response)

    @property
    def stats(self) -> LayerStats | None:
        return opened_stats(self.captured_stats)

    def key(self) -> str:
        """Content hash of the layer's weights, geometry and captured data (computed once)."""
        if "_key" not in self.__dict__:
            bias = self.weights.bias if self.weights.bias is not None else np.zeros(0)
            self.__dict__["_key"] = content_hash(self.weights.kernel, bias, repr(self.info.geometry), self.inputs)
        return self.__dict__["_key"]

    def __reduce__(self):  # pickled (shipped to a worker) with its arrays' contents, not file names; no copy made here
        stats = self.stats
        if stats is not None:
            if stats.rows is not None:
                stats = LayerStats(None, None, stats.samples, np.asarray(stats.rows))
            else:
                moment = np.asarray(stats.input_cov)  # a dense layer's one array is pickled once (and comes back one)
                channel = moment if stats.channel_cov is stats.input_cov else np.asarray(stats.channel_cov)
                stats = LayerStats(moment, channel, stats.samples)
        return (_rebuilt, (self.info, self.weights, np.asarray(self.inputs), np.asarray(self.reference), stats,
                           self.key()))


def _rebuilt(info, weights, captured, response, stats, key) -> LayerTask:
    task = LayerTask(info, weights, captured, response, stats)
    task.__dict__["_key"] = key
    return task


def opened(held: np.ndarray | Path) -> np.ndarray:
    """An array held in memory as it is; one held in a ``.npy`` file mapped read-only for this use."""
    return npyfile.load(held, mmap_mode="r") if isinstance(held, Path) else held


def opened_stats(held: LayerStats | Path | None) -> LayerStats | None:
    """Statistics held in memory as they are; ones held in a folder (``MapStore.put_stats``) mapped read-only."""
    if not isinstance(held, Path):
        return held
    samples = int((held / "samples").read_text())
    if (held / "rows.npy").exists():
        return LayerStats(None, None, samples, npyfile.load(held / "rows.npy", mmap_mode="r"))
    moment = npyfile.load(held / "input_cov.npy", mmap_mode="r")
    channel = held / "channel_cov.npy"  # absent for a dense layer: its two moments are one (MapStore.put_stats)
    return LayerStats(moment, npyfile.load(channel, mmap_mode="r") if channel.exists() else moment, samples)


def original_stage(weights: LayerWeights, geom) -> Stage:
    """The unfactorized layer's kernel (its factorized part's, for a separable one) as one stage, without bias."""
    from lrfc.geometry import ConvGeometry

    if isinstance(geom, ConvGeometry):
        return Stage("conv", (weights.kernel,), geom.kernel, geom.strides, geom.dilation, geom.padding)
    return Stage("dense", (weights.kernel,))


def make_task(layer, info: LayerInfo, captured_inputs: np.ndarray | Path, stats: LayerStats | None = None,
              data_aware: bool = True, store=None) -> LayerTask:
    """A ``LayerTask`` from a layer, its captured inputs and their streamed statistics.

    For a SeparableConv2D the inputs are first run through its depthwise
    part, and (when ``data_aware``) statistics are taken from those, since
    the streamed ones describe the depthwise part's input. With a ``store``
    (``search.calibrate.MapStore``) the task's maps and statistics go to
    files and the task holds their names.
    """
    from lrfc.search.calibrate import input_stats
    from lrfc.frontend.catalogue import layer_weights
    from lrfc.geometry import chain_rank

    x = opened(captured_inputs)
    if hasattr(layer, "pointwise_kernel"):
        depthwise = Stage("depthwise", (np.asarray(layer.depthwise_kernel.numpy()),), tuple(layer.kernel_size),
                          tuple(layer.strides), tuple(layer.dilation_rate), layer.padding)
        x = run_stages(x, [depthwise], 2)
        stats = input_stats(x, info.geometry) if data_aware else None
    weights = layer_weights(layer)
    reference = run_stages(x, [original_stage(weights, info.geometry)], chain_rank(info.geometry))
    task = LayerTask(info, weights, x, reference, stats)
    key = task.key()
    if store is not None:
        separable = hasattr(layer, "pointwise_kernel")  # its inputs are the depthwise part's outputs, not the captured ones
        held = store.put(info.name, "pointwise-inputs", x) if separable or not isinstance(captured_inputs, Path) \
            else captured_inputs
        task = LayerTask(info, weights, held, store.put(info.name, "reference", reference),
                         None if stats is None else store.put_stats(info.name, stats))
        task.__dict__["_key"] = key
    return task


def run_stages(x: np.ndarray, stages, spatial_rank: int) -> np.ndarray:
    """Run a chain of stages eagerly on ``x`` (no model building, no tracing)."""
    from lrfc.decompose.chain import keras_weights, layer_for

    layers = []
    for i, stage in enumerate(stages):
        layer = layer_for(stage, spatial_rank, f"score__{i}")
        layers.append((layer, keras_weights(stage, spatial_rank)))
    outs = []
    for start in range(0, len(x), EVAL_BATCH):
        y = x[start:start + EVAL_BATCH]
        for layer, weights in layers:
            if not layer.built:
                layer.build(tuple(y.shape))
                layer.set_weights(weights)
            y = layer(y)
        outs.append(np.asarray(y))
    return np.concatenate(outs)


def score_key(task_key: str, method: str, ranks, data_aware: bool) -> str:
    """The cache key of one candidate's similarity (``task_key``: ``LayerTask.key()``)."""
    return content_hash("score", task_key, method, tuple(ranks), data_aware)


def prepared_key(task_key: str, method: str, data_aware: bool) -> str:
    """The cache key of a layer's prepared factorization by one method and fit."""
    return content_hash("prepared", task_key, method, data_aware)


def fit_modes(task: LayerTask, fit: str) -> tuple[bool, ...]:
    """The fits (data-aware or not) ``--data-aware fit`` scores for this layer; weight-only without statistics."""
    if task.stats is None:
        return (False,)
    return {"auto": (False, True), "on": (True,), "off": (False,)}[fit]


def prepared_for(task: LayerTask, method: str, data_aware: bool, cache: Cache):
    """The method's prepared factorization of the layer (cached by content), with what it borrows attached."""
    from lrfc import decompose

    mod = decompose.get(method)
    stats = task.stats if data_aware else None
    key = prepared_key(task.key(), method, data_aware)
    prepared = cache.prepared(key, lambda: mod.prepare(task.weights, task.info.geometry, stats))
    attach = getattr(mod, "attach", None)
    return prepared if attach is None else attach(prepared, stats)


def similarity(task: LayerTask, method: str, ranks: tuple[int, ...], data_aware: bool, cache: Cache) -> float:
    """Output cosine similarity of the factorized layer on the captured data (cached)."""
    from lrfc.decompose import chain_stages
    from lrfc.geometry import chain_rank

    key = score_key(task.key(), method, ranks, data_aware)
    cached = cache.score(key)
    if cached is not None:
        return cached
    prepared = prepared_for(task, method, data_aware, cache)
    stages = chain_stages(method, prepared, ranks, task.info.geometry, activation=None, bias=False)
    value = feature_similarity(task.reference, run_stages(task.inputs, stages, chain_rank(task.info.geometry)))
    if not np.isfinite(value):
        top = float(np.max(np.abs(task.inputs))) if task.inputs.size else 0.0
        raise UserError(f"layer '{task.name}': its output overflows on this data (its inputs reach {top:.3g}), so no "
                        "factorization can be scored; check the data's value range (--input-range, --input-mean/--input-std)")
    cache.put_score(key, value)
    return value


def score_method(task: LayerTask, method: str, grid: list[tuple[int, ...]], threshold: float, cache: Cache,
                 fit: str = "auto") -> list[Candidate]:
    """Candidates of one layer and method along its rank grid.

    The paper walks the grid from maximum compression upward until the
    threshold holds. Similarity grows with rank, so the same first passing
    point is found by scoring the last point (when it fails, nothing passes),
    then a galloping search (grid points 0, 1, 3, 7, ...) followed by
    bisection — about 2 log2(n) scores instead of up to n — and
    then the front above it is sampled at doubling distances (1, 2, 4, ...
    grid points past it, and the last point): the compression levels
    (``search.allocate``) walk up it when a budget asks for more accuracy.

    Args:
        task: the layer and its captured data.
        method: a registry name that applies to the layer.
        grid: candidate ranks from maximum compression upward (``search.grid.rank_grid``).
        threshold: similarity the search looks for.
        cache: score and factorization cache.
        fit: ``auto`` scores both fits (weight-only and data-aware) and
            keeps the better one per rank; ``on``/``off`` force one.

    Returns:
        The scored candidates in grid order.
    """
    modes = fit_modes(task, fit)
    scored: dict[int, Candidate] = {}

    def at(i: int) -> Candidate:
        if i not in scored:
            ranks = tuple(grid[i])
            sim, aware = max(((similarity(task, method, ranks, m, cache), m) for m in modes), key=lambda t: (t[0], not t[1]))
            cost = task.info.factorized_cost(method, ranks)
            scored[i] = Candidate(task.name, method, ranks, cost.params, cost.macs, round(sim, 6), aware)
        return scored[i]

    first = first_passing(lambda i: at(i).similarity >= threshold, len(grid))
    if first is not None:
        for j in front_points(first, len(grid)):
            at(j)
    return [scored[i] for i in sorted(scored)]


def front_points(first: int, n: int) -> list[int]:
    """Grid indices scored above the first passing one: 1, 2, 4, 8, ... points past it, and the last."""
    out, step = [], 1
    while first + step < n:
        out.append(first + step)
        step *= 2
    if first < n - 1 and (not out or out[-1] != n - 1):
        out.append(n - 1)
    return out


def first_passing(passes, n: int) -> int | None:
    """The first index in ``range(n)`` where ``passes`` holds, for a ``passes`` that never turns false again.

    The last index is tried first: when it fails, nothing passes, and a walk
    that cannot reach the threshold costs one score (the walk scores the last
    point in any case: it is the front's end, ``front_points``), where the
    gallop first cost about log2(n) more (0, 1, 3, 7, ... and the last).
    keras.applications ResNet50 at 64x64 (random weights): its TT-matrix
    walks, which never pass, 25 -> 10 walk-seconds; its CP walks pass at
    high ranks and cost what they did. Then a galloping search (0, 1, 3, 7,
    ...) brackets the first passing index and bisection narrows the bracket:
    about 2 log2(n) calls instead of up to n. None when nothing passes.
    """
    if n < 1 or not passes(n - 1):
        return None
    lo, hi, i, step = -1, n - 1, 0, 1  # index lo fails (or lo = -1), index hi passes
    while i < n - 1:
        if passes(i):
            hi = i
            break
        lo, i, step = i, i + step, step * 2
    return narrowed(passes, lo, hi)


def narrowed(passes, lo: int, hi: int) -> int:
    """The first index in ``(lo, hi]`` where ``passes`` holds, by bisection, given that ``lo`` fails (or is below
    the range) and ``hi`` passes, for a ``passes`` that never turns false again."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if passes(mid):
            hi = mid
        else:
            lo = mid
    return hi
