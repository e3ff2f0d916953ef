"""Whole-model latency: rungs of the ladder and the original, lowered and timed side by side on the target.

The ``price`` stage times each candidate chain alone and the ladder adds the
prices up; a whole model fuses, overlaps and pays per-operator overheads that
such a sum cannot see (docs/BENCHMARKS.md). So under ``--objective latency``
the ``measure`` stage closes the loop on the whole model:

1. up to ``--max-sol`` rungs spread evenly along the ladder (the most and the
   least compressed included) are built (the plan applied, weights as
   factorized: latency does not depend on their values) and lowered to the
   target's first runtime at the profile's precision, beside the original;
2. all of them are timed in one runtime_bench run (alternating rounds, one
   worker each), twice with fresh workers, and each file keeps the lower of its
   two medians: a VM's two cores can sit far apart on the host for seconds to
   minutes, slowing multi-thread runs up to 2x (ONNX Runtime; runtime_bench
   leaves out the rounds it sees run so, ``runtime_bench.cores``, and a second
   set of workers is a second chance where a whole run was);
3. the measured rungs that are faster, by ``MARGIN``, than the original and
   than every less compressed rung kept make the frontier; the ladder becomes
   the frontier plus the unmeasured rungs lying between two neighbouring
   frontier rungs (``between``: where the measurements say latency falls
   steadily with the ladder, the rungs in between keep its resolution; next
   to a dropped rung they go too). A more compressed rung measured slower
   than a less compressed one it should beat (``inverted``) is what one
   worker's bad placement looks like on a busy machine, and it would cut the
   ladder between them: then every file is timed once more, side by side, and
   keeps the lower of its two measurements; an inversion that survives is
   believed and stored. Numbers read back from the cost database are
   believed only without an inversion: with one, every file is timed afresh
   (and checked as above). The ResNet-style ``--target host-int8`` build run
   beside the test suite (2026-12-07 05:00 UTC) stored five rungs slower than
   the original and one deeper rung faster than all of them, and the same
   build run next, on an idle machine, read them back and published the same
   73 % of MACs removed; with a fresh cost database it published 87 %. The
   budget search (``train.contract``)
   then publishes the fastest plan within the accuracy budget, and none
   slower than the original: when no rung is faster, the original is
   published and the build says so.

An int8 rung is lowered as the lower stage will publish it, its chains
equalized on the calibration samples (``factorize.equalize``): a file as
published is what is timed, and XNNPACK prepares chains it would refuse
unequalized (``cost.latency.lower_chain``).

Where the device cannot be reached the ladder stays as priced and the records
carry the per-layer estimate only (``status`` "estimated"); so too where the
timing itself fails (a worker died: LiteRT's XNNPACK aborted on an int8 file,
``runtime_bench.sandbox``), the status saying which file and why, instead of
ending the build.
"""

from __future__ import annotations

import math
import statistics
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

MARGIN = 0.03          # a rung must be this much faster than the next less compressed kept rung (and the original)
LIFETIMES = 2          # fresh sets of workers; each file keeps its lowest median
WARMUP, ROUNDS = 10, 5
TURN_MS = 25.0         # each turn of a file runs this long at least (10 to 60 inferences); see time_files
INT8_CALIBRATION = 32  # samples that calibrate an int8 rung: its latency does not depend on the ranges


@dataclass(frozen=True)
class Timed:
    """One whole model: a rung of the priced ladder (``level``; None for the original) and its latency.

    ``predicted_ms`` is the per-layer sum the ladder was priced with (priced
    layers only); ``measured_ms`` the whole model's median on the target
    (None where not measured); ``rung`` its index in the ladder the budget
    search walks (None: not kept).
    """

    level: int | None
    label: str
    predicted_ms: float
    measured_ms: float | None = None
    rung: int | None = None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class WholeModel:
    """The stage's result: how the rungs were timed and what each cost."""

    status: str                      # measured | estimated | why not
    runtime: str | None = None
    precision: str | None = None
    original: Timed | None = None
    rungs: tuple[Timed, ...] = ()
    choices: dict = field(default_factory=dict)   # level -> {layer: [method, ranks] or None}, the rungs listed
    ladder: tuple[int, ...] = ()                  # the priced ladder's levels the budget search walks, in order
    retimed: tuple[int, ...] = ()                 # levels first measured slower than a less compressed rung

    def error(self) -> dict:
        """The per-layer cost model against the whole-model measurements (``cost_model_error``)."""
        if self.original is None:
            return {}
        return cost_model_error(self.original.predicted_ms, self.original.measured_ms,
                                [(t.predicted_ms, t.measured_ms) for t in self.rungs])

    def to_json(self) -> dict:
        return {"status": self.status, "runtime": self.runtime, "precision": self.precision,
                "original": None if self.original is None else self.original.to_json(),
                "rungs": [t.to_json() for t in self.rungs], "cost_model_error": self.error(),
                "ladder_rungs": len(self.ladder), "measured_rungs": sum(t.measured_ms is not None for t in self.rungs),
                "retimed": list(self.retimed)}


def cost_model_error(original_predicted: float, original_measured: float | None,
                     rungs: list[tuple[float, float | None]]) -> dict:
    """The per-layer cost model against whole-model measurements, as median relative errors ({} if none measured).

    ``rungs`` holds each timed rung's ``(per-layer sum, measured ms)``.
    ``per_layer_sum``: the sum as it stands (priced layers only);
    ``with_remainder``: that sum plus what the original spends outside its
    priced layers (its measured time minus its own sum);
    ``scaled``: that sum times the original's measured / summed ratio.
    The last two are the same one-point calibration on the original, one
    additive and one proportional: layers timed one by one can cost more
    than they do inside the whole model (VGG-style, fresh cost DB: the
    original's layers sum to 0.59 ms, the whole runs 0.43), and then only
    the proportional one follows the rungs (docs/BENCHMARKS.md).
    """
    timed = [(p, m) for p, m in rungs if m]
    if not timed or not original_measured:
        return {}
    rest = original_measured - original_predicted
    scale = original_measured / original_predicted if original_predicted > 0 else 1.0

    def median_error(predict) -> float:
        return round(statistics.median(abs(predict(p) - m) / m for p, m in timed), 4)

    return {"per_layer_sum": median_error(lambda ms: ms), "with_remainder": median_error(lambda ms: ms + rest),
            "scaled": median_error(lambda ms: ms * scale), "rungs": len(timed)}


def spread(n: int, count: int) -> list[int]:
    """At most ``count`` indices of ``range(n)`` spread evenly, first and last included."""
    if n <= count:
        return list(range(n))
    if count == 1:
        return [0]
    return sorted({round(k * (n - 1) / (count - 1)) for k in range(count)})


def frontier(measured: dict[int, float], original_ms: float, margin: float = MARGIN) -> list[int]:
    """The rungs worth keeping, most compressed first: each faster than the original and every less compressed one.

    ``measured`` maps a rung's ladder index (lower: more compressed) to its
    whole-model latency. Walking from the least compressed rung down, a rung is
    kept only if it beats the fastest model kept so far (the original first)
    by ``margin``: a more compressed rung that is not measurably faster would
    give up accuracy for nothing.
    """
    kept, best = [], original_ms
    for i in sorted(measured, reverse=True):
        if measured[i] < best * (1.0 - margin):
            kept.append(i)
            best = measured[i]
    return sorted(kept)


def inverted(measured: dict[int, float], original_ms: float, margin: float = MARGIN) -> list[int]:
    """Rungs the frontier drops that measured slower than a less compressed rung it kept.

    (Dropped for being faster by less than the margin is not an inversion.)
    """
    kept = frontier(measured, original_ms, margin)
    return [i for i in sorted(measured) if i not in kept and any(k > i and measured[k] < measured[i] for k in kept)]


def runs_for(guess_ms: float) -> int:
    """Timed inferences per file so that each of its ``ROUNDS`` turns lasts about ``TURN_MS``.

    Short turns mislead when many workers take turns: measured here with 11
    LiteRT workers at 2 threads, turns of 10 inferences of a 0.56 ms model
    read 1.10-1.26 ms (the single-thread time), turns of 40 read 0.56 ms, as
    if a woken worker's second thread needs a few milliseconds to get its own
    core back.
    """
    per_turn = min(60, max(10, math.ceil(TURN_MS / max(guess_ms, 1e-3))))
    return ROUNDS * per_turn


def between(picks: list[int], kept: list[int]) -> list[int]:
    """The ladder after measuring: the kept picks, and every level between two picks that are neighbours and both kept."""
    chosen = set(kept)
    for lo, hi in zip(picks, picks[1:]):
        if lo in chosen and hi in chosen:
            chosen.update(range(lo + 1, hi))
    return sorted(chosen)


def time_files(link, paths, runtime: str, threads: int, guess_ms: float) -> list[dict]:
    """Each file's whole-model latency on ``link``: its row from the lifetime where its median was lowest (timed as
    the prices are, ``devices.timing_io``: on a GPU every plan's copies are the same, so they are left out)."""
    from lrfc.cost.devices import timing_io

    return link.bench(paths, runtime=runtime, threads=threads, runs=runs_for(guess_ms), warmup=WARMUP, rounds=ROUNDS,
                      batch=1, memory=True, max_workers=len(paths), lifetimes=LIFETIMES,
                      io=timing_io(runtime))["results"]


def signature(architecture: str, plan, fmt: str) -> str:
    """What a whole model's latency depends on: the original's architecture (its JSON), the plan and the format."""
    import json

    from lrfc.search.cache import content_hash

    return "whole-model " + content_hash(architecture, json.dumps(plan.to_json(), sort_keys=True), fmt)


def model_file(work, k: int, fmt: str) -> Path:
    """Where ``timed_ms`` lowers the ``k``-th model (0: the original)."""
    return Path(work) / f"model{k}.{fmt}"


def timed_ms(state, models, fmt: str, runtime: str, work: Path, floor: list[float] | None = None,
             recall: bool = True) -> tuple[list[float], bool]:
    """Whole-model latency of ``models`` (``[(plan, build)]``, the original first), side by side, and whether timed now.

    The cost database keeps them (by ``signature``): when every one is
    there, nothing is lowered or timed (False); otherwise all are, together,
    and replace what was stored, so the numbers compared come from one run.
    ``floor`` (an earlier measurement of the same models) times them again
    regardless, and each keeps the lower of the two; ``recall=False`` times
    them regardless and keeps the new numbers. The files are lowered
    into ``work`` once: timing them again reads them back instead of lowering
    every model a second time (``tests/test_measure.py`` counts the exports).
    """
    from lrfc.factorize.equalize import equalize_chains
    from lrfc.frontend.binary import user_form
    from lrfc.lower.artifacts import export_file, onnx_int8_scheme

    pricer, profile = state.pricer, state.profile
    architecture = state.flat.to_json()
    sigs = [signature(architecture, plan, fmt) for plan, _ in models]
    known = pricer.recall(sigs, profile.precision) if floor is None and recall else {}
    if all(s in known for s in sigs):
        return [known[s] for s in sigs], False
    calibration = state.splits.x_calib[:INT8_CALIBRATION]
    paths = [model_file(work, k, fmt) for k in range(len(models))]
    todo = [(path, plan, build) for path, (plan, build) in zip(paths, models) if not path.is_file()]
    if todo:
        with state.progress("measure", len(todo)) as bar:
            for path, plan, build in todo:
                model = build()
                if profile.precision == "int8" and plan.choices:  # as the lower stage will publish it
                    equalize_chains(model, calibration, {c.layer for c in plan.choices})
                export_file(user_form(model, state.binary), fmt, path, profile.precision, calibration,
                            onnx_int8_scheme(profile.runtimes), profile.onnx_opset)
                del model
                bar.update(1, f"{len(plan.choices)} layers factorized")
    rows = time_files(state.link, paths, runtime, profile.threads, sum(state.original_ms.values()))
    ms = [r["p50_ms"] if floor is None else min(r["p50_ms"], f) for r, f in zip(rows, floor or rows)]
    pricer.remember([(s, m, m, r["p90_ms"], r["runs"], f"whole model, {len(p.choices)} layers factorized")
                     for s, m, r, (p, _) in zip(sigs, ms, rows, models)], profile.precision, replace=True)
    return ms, True


def measure_ladder(state) -> WholeModel:
    """Lower ``--max-sol`` rungs and the original, time them side by side, keep the measured frontier (module doc)."""
    from runtime_bench.runners import FileRefused

    from lrfc.cost.devices import measured_runtimes
    from lrfc.factorize.stage import plan_model
    from lrfc.lower.artifacts import format_of
    from lrfc.plan import Plan
    from lrfc.search.stage import plan_from

    levels, profile = state.levels, state.profile
    picks = spread(len(levels), state.options.max_sol)
    choices = {i: levels[i].to_json()["choices"] for i in picks}
    original = Timed(None, "original", round(sum(state.original_ms.values()), 5))
    usable = measured_runtimes(profile, state.link)[0] if state.link is not None else []

    def as_priced(why: str) -> WholeModel:  # the ladder stays as priced: every rung keeps its index
        estimated = tuple(Timed(i, levels[i].label, round(levels[i].cost, 5), rung=i) for i in picks)
        return WholeModel(why, None, profile.precision, original, estimated, choices, tuple(range(len(levels))))

    if not usable:
        return as_priced("estimated" if state.link is None else
                         "estimated: no runtime of the target can run on the device")
    runtime = usable[0]
    plans = [plan_from(levels[i].choices) for i in picks]
    models = [(Plan(()), lambda: state.flat)] + [(p, (lambda p=p: plan_model(state, p))) for p in plans]
    with tempfile.TemporaryDirectory(prefix="lrfc-measure-") as work:
        try:
            ms, fresh = timed_ms(state, models, format_of(runtime), runtime, Path(work))
            if not fresh and inverted(dict(zip(picks, ms[1:])), ms[0]):  # stored, with an inversion: not believed
                state.log("measure: the cost database's timings of these models have a rung slower than a less "
                          "compressed one; timing them afresh")
                ms, fresh = timed_ms(state, models, format_of(runtime), runtime, Path(work), recall=False)
            suspect = inverted(dict(zip(picks, ms[1:])), ms[0]) if fresh else []  # stored numbers were re-timed
            if suspect:  # likely noise, and it would cut the ladder: once more, side by side (module doc)
                state.log(f"measure: {len(suspect)} rung(s) measured slower than a less compressed one; "
                          "timing all again")
                ms, _ = timed_ms(state, models, format_of(runtime), runtime, Path(work), floor=ms)
        except (RuntimeError, FileRefused) as exc:  # a worker died, hung or would not load a file: the error names it
            text = str(exc)
            for k, level in enumerate([None, *picks]):  # the files by what they are, not their temporary names
                text = text.replace(str(model_file(work, k, format_of(runtime))),
                                    "the original" if level is None else f"rung {level}")
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            why = lines[0] if len(lines) == 1 else f"{lines[0]}: {lines[-1]}"  # a refusal is one line, a death two
            return as_priced(f"estimated: timing the whole models on {runtime} failed ({why})")
    measured = dict(zip(picks, ms[1:]))
    ladder = between(picks, frontier(measured, ms[0]))
    rungs = tuple(Timed(i, levels[i].label, round(levels[i].cost, 5), round(measured[i], 5),
                        ladder.index(i) if i in ladder else None) for i in picks)
    return WholeModel("measured", runtime, profile.precision, replace(original, measured_ms=round(ms[0], 5)), rungs,
                      choices, tuple(ladder), tuple(suspect))
