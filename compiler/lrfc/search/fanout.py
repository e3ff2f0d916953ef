"""Scoring fanned out: one task per layer and method; the driver alone reads and writes the cache.

The score stage hands every layer's walks (``scoring.score_method``, one per
method) to the build's executor (``common.executor``): in this process, or
as Ray tasks. Either way the same three steps run:

1. the driver ships each layer's ``LayerTask`` (captured inputs, reference,
   weights, statistics) **once** (``executor.put``), and for each method
   builds a ``ScoreJob``: the rank grid, the threshold, the fit, and what its
   cache already holds for that layer and method (the score of every grid
   point and fit it has; its prepared factorizations, when some score is
   missing);
2. ``score_task`` walks the grid against an in-memory ``Cache`` filled with
   those, and returns the candidates and what it computed (new scores, new
   prepared factorizations, its hit and miss counts);
3. the driver merges each result as its walk finishes (``ordered=False``: a
   long walk does not hold up the ones behind it): it writes the new entries
   into its cache, keyed by content, and adds the counts, so a later build
   reuses them as if it had scored in process; the candidates are put back
   in layer order, then method order, whatever order the walks finished in.

A walk that raises (a factorization's linear algebra failing on one layer, a
runtime refusing one chain) is one candidate family lost, not the build: the
task returns the error instead of candidates (``ScoreResult.error``), the
driver drops that walk and lists it (``Failure``: the stage logs one line per
walk and report.json keeps them under ``search.failed_walks``), and the layer
keeps its other methods' candidates (or stays unfactorized). Only when every
walk failed is it the build's error: nothing was scored. ``MemoryError`` and
``UserError`` (the data overflowing a layer) are never caught: the memory
plan decides what runs at once, and bad input ends the build with its line.

The walk only ever sees the same scores, so one worker or many give the same
candidates and the same plan. In process, ``threads`` walks run at once
(``frontend.memory_plan``'s ``score_threads``: the cores, as many as the
memory budget has room for), each a thread of this process: their numpy
and TensorFlow work releases the GIL. A task runs its linear algebra on one BLAS
thread wherever it runs (a Ray worker's BLAS has one thread anyway: Ray sets
OMP_NUM_THREADS to the task's CPUs), so the sums, and an iterative fit like
CP's ALS that could amplify a difference in them, are the same in process
and in any worker. It is also faster here: the VGG baseline's score phase
took 69 s in process with one BLAS thread and 648 s with two, CP's fits
spinning against the other load of this 2-core machine (same candidates).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScoreJob:
    """One layer and method's walk up its rank grid, with what the driver's cache knows about it."""

    layer: str
    method: str
    grid: tuple                  # rank tuples, most compressed first (``search.grid.rank_grid``)
    threshold: float
    fit: str                     # auto | on | off (``--data-aware``)
    scores: dict                 # score key -> similarity the driver already has
    prepared: dict               # prepared key -> factorization the driver already has


@dataclass(frozen=True)
class ScoreResult:
    """What one walk found: its candidates, and the cache entries and counts the driver merges."""

    candidates: list
    scores: dict                 # score key -> similarity, computed by the task
    prepared: dict               # prepared key -> factorization, computed by the task
    hits: int
    misses: int
    error: str | None = None     # the walk raised: "Type: message" (its candidates are dropped)
    trace: str | None = None     # the traceback, for --verbose and for the build's error when every walk failed


@dataclass(frozen=True)
class Failure:
    """A walk that raised: which layer and method, and the error's one line."""

    layer: str
    method: str
    error: str
    trace: str

    def to_json(self) -> dict:
        return {"layer": self.layer, "method": self.method, "error": self.error}


class ScoringFailed(RuntimeError):
    """Every walk of the score stage raised: nothing was scored (a bug in lrfc, or a broken runtime)."""


def score_task(task, job: ScoreJob) -> ScoreResult:
    """Run one walk (``scoring.score_method``) on a worker, against the scores the job brought along."""
    from threadpoolctl import threadpool_limits

    from lrfc.common.quiet import import_keras
    from lrfc.errors import UserError, first_line
    from lrfc.search.cache import Cache
    from lrfc.search.scoring import score_method

    import_keras()  # quiet, and once per worker process
    cache = Cache(enabled=False)
    for key, value in job.scores.items():
        cache.put_score(key, value)
    for key, value in job.prepared.items():
        cache.prepared(key, lambda value=value: value)
    error = trace = None
    try:
        with threadpool_limits(limits=1, user_api="blas"):  # the same sums in process and in any worker (module doc)
            candidates = score_method(task, job.method, list(job.grid), job.threshold, cache, job.fit)
    except (MemoryError, UserError):  # the memory plan's business; bad input (a layer's output overflowing) ends the build
        raise
    except Exception as exc:  # one walk lost, not the build (module doc); what it scored before stays cached
        import traceback

        candidates, trace = [], traceback.format_exc()
        error = first_line(exc, typed=True, limit=300)
    scores, prepared = cache.entries()
    return ScoreResult(candidates, {k: v for k, v in scores.items() if k not in job.scores},
                       {k: v for k, v in prepared.items() if k not in job.prepared}, cache.hits, cache.misses,
                       error, trace)


def make_job(task, method: str, grid, threshold: float, fit: str, cache) -> ScoreJob:
    """The job for one walk, carrying every score (and, when some is missing, each factorization) ``cache`` has."""
    from lrfc.search.scoring import fit_modes, prepared_key, score_key

    key, modes = task.key(), fit_modes(task, fit)
    grid = tuple(tuple(int(r) for r in ranks) for ranks in grid)
    scores = {}
    for ranks in grid:
        for aware in modes:
            k = score_key(key, method, ranks, aware)
            value = cache.peek_score(k)
            if value is not None:
                scores[k] = value
    prepared = {}
    if len(scores) < len(grid) * len(modes):  # the walk may need a factorization
        for aware in modes:
            k = prepared_key(key, method, aware)
            value = cache.peek_prepared(k)
            if value is not None:
                prepared[k] = value
    return ScoreJob(task.name, method, grid, float(threshold), fit, scores, prepared)


def merge(cache, result: ScoreResult) -> None:
    """Write a walk's new scores and factorizations into the driver's cache and count its hits and misses."""
    for key, value in result.scores.items():
        cache.put_score(key, value)
    for key, value in result.prepared.items():
        cache.prepared(key, lambda value=value: value)
    cache.hits += result.hits
    cache.misses += result.misses


def walk_weight(task, method: str) -> float:
    """A walk's expected cost, only to hand out the longest walks first: the kernel's size, CP on a spatial kernel 4x.

    Walks finish in any order without changing a result, so the order only
    decides how well the threads fill: a long walk handed out last leaves
    the other threads idle while it runs (ResNet50 at 64x64, where CP's walks
    on the 3x3 layers of the last stage take 12-19 s and come last in layer
    order). Two threads handed that build's measured walk times (2026-12-02
    05:05 UTC) in this order finish within 0.2 % of a perfect split, in layer
    order 2.8 % over (a list-scheduling simulation, /tmp script).
    """
    geom = task.info.geometry
    kernel = getattr(geom, "kernel", (1, 1))
    return float(geom.params) * (4.0 if method == "cp" and kernel[0] * kernel[1] > 1 else 1.0)


def score_all(tasks: dict, walks: list, fit: str, cache, executor, progress=None, threads: int = 1) -> tuple:
    """``({layer: [Candidate]}, [Failure])`` for ``walks`` of ``(layer, method, grid, threshold)``, in the order given.

    A walk that raised contributes no candidates and one ``Failure`` (module
    doc); ``ScoringFailed`` when every walk did.

    Args:
        tasks: ``{layer: LayerTask}``.
        walks: the walks to run, in layer order and, within a layer, method order.
        fit: ``--data-aware``.
        cache: the driver's ``search.cache.Cache`` (read before, written after).
        executor: ``common.executor.InProcess`` or ``RayExecutor``.
        progress: called with ``"layer method"`` as each walk's result is merged.
        threads: walks run at once in this process (``InProcess.map``); each on one BLAS thread, as always.
    """
    from threadpoolctl import threadpool_limits

    layers = list(dict.fromkeys(layer for layer, *_ in walks))
    shipped = {name: executor.put(tasks[name], "score", name) for name in layers}
    jobs = [make_job(tasks[layer], method, grid, threshold, fit, cache) for layer, method, grid, threshold in walks]
    order = sorted(range(len(jobs)), key=lambda i: -walk_weight(tasks[jobs[i].layer], jobs[i].method))
    results = executor.map(score_task, [(shipped[jobs[i].layer], jobs[i]) for i in order], "score",
                           [f"{jobs[i].layer} {jobs[i].method}" for i in order], threads=threads, ordered=False)
    found, failed = {}, {}
    # BLAS's thread count is one setting for the whole process: held at one around every walk at once, so a walk
    # that ends (and restores what it found) cannot hand a running one more threads mid-sum
    with threadpool_limits(limits=1, user_api="blas"):
        for k, result in results:  # as the walks finish: the cache is keyed by content, so order does not matter
            i = order[k]
            merge(cache, result)
            found[i] = result.candidates
            if result.error is not None:
                failed[i] = Failure(jobs[i].layer, jobs[i].method, result.error, result.trace or "")
            if progress is not None:
                progress(f"{jobs[i].layer} {jobs[i].method}")
    if jobs and len(failed) == len(jobs):
        first = failed[min(failed)]
        raise ScoringFailed(f"score: all {len(jobs)} walks failed; the first, {first.layer} {first.method}: "
                            f"{first.error}\n{first.trace}")
    out = {name: [] for name in layers}
    for i, job in enumerate(jobs):  # the candidates in layer, then method order, however the walks finished
        out[job.layer] += found[i]
    return out, [failed[i] for i in sorted(failed)]
