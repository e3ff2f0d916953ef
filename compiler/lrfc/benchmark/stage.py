"""The ``benchmark`` stage: original against compressed, side by side, on every runtime of the target.

One runtime_bench run per runtime, the artifacts alternating in rounds,
each in its own process so its peak memory is its own, repeated with fresh
workers (``cost.measure.LIFETIMES``; each file keeps its lowest median).
Ratios are original / compressed (above 1: the compressed model is
faster, smaller, lighter). When the target cannot be reached the benchmark
is not run and the record says so.

With the baseline at the other precision (``lower.stage``) the same run
times four files: the original and the compressed model at the target's
precision and both at the other one, under that precision's key: ``int8``
for a float target (what a user would do instead of lrfc), ``fp32`` for an
int8 one, with ``ratios.vs_original_<precision>`` (the original at the other
precision over lrfc at the target's). ``fastest`` names the file to deploy on
that runtime, the fastest that passed the verification gate: int8 does not pay everywhere (ONNX Runtime's CPU provider ran
the ResNet-style model's lrfc int8 file slower than its fp32 one,
docs/BENCHMARKS.md).

Each file is timed at 1, 2, 4, ... threads up to the profile's ``threads``
in the same alternating run (``thread_counts``; runtime_bench's thread
sweep): a device's cores are what a model may use, not what it must, and a
small model can lose more to its runtime's thread handoffs than it gains
(the Fashion-MNIST ResNet-style model factorized, on the 2-core Xeon:
0.113 ms on one LiteRT thread, 0.162 on two; its original 1.119 and 0.612).
The rows and ratios at the profile's count stay the headline, as before;
each row adds its median per count and its fastest count
(``best_threads``), the ratios the same at each file's fastest count
(``..._best_threads``), and ``fastest`` names the file and the count to
deploy with.

Under ``--objective latency`` the ``measure`` stage already timed the
published rung (or its neighbours on the ladder) beside the original on the
same runtime; when this run's speed-up lies outside that timing's by more
than ``AGREEMENT``, its files are timed once more with fresh workers and
each keeps the lower median of both runs (the estimator of every run, with
twice the lifetimes). On this 2-core host one run (2026-12-04 13:50 UTC,
``bench.speed``) read the ResNet-style build's published model at 0.442 ms
(2.92x) where the search had timed that plan at 0.19-0.26 ms beside an
original of 0.90 (3.5-4.7x): the host runs at half speed for minutes at a
time (runtime_bench.cores found why: the VM's two vCPUs on distant host
cores, where a runtime's threads hand work over slower). ``agreement`` in the
run's record keeps both readings; the summary prints a ``check`` line when the
files were timed again. The files are timed once more on any runtime, too, when
a file on several threads ran with the cores far apart in every round
(``timed_again`` says which).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

WARMUP, ROUNDS = 10, 5
AGREEMENT = 1.15   # the final speed-up may stray this factor outside the search's whole-model timing before a re-time
RUNTIME_KEYS = ("runtime", "runtime_version", "id", "workdir")  # per run; the rest describes the machine
TIMED_AGAIN = {"strayed": "the speed-up strayed from the search's whole-model timing",
               "cores_far": "a file on several threads met this machine's cores far apart in every round "
                            "(runtime_bench.cores)"}


@dataclass(frozen=True)
class BenchmarkRun:
    """One runtime's side-by-side measurement: runtime_bench's result rows and their ratios."""

    runtime: str
    runtime_version: str | None
    device_id: str | None
    format: str
    precision: str
    original: dict
    compressed: dict
    ratios: dict
    baseline: dict | None = None      # {"precision", "original", "compressed", "ratios"}: the other precision
    agreement: dict | None = None     # against the search's whole-model timing (``_run``, ``search_expectation``)
    timed_again: str | None = None    # why the files were timed once more (``TIMED_AGAIN``); None: once

    def to_json(self) -> dict:
        out = {"runtime": self.runtime, "runtime_version": self.runtime_version, "device_id": self.device_id,
               "format": self.format, "precision": self.precision, "original": self.original,
               "compressed": self.compressed, "ratios": self.ratios}
        if self.agreement is not None:
            out["agreement"] = self.agreement
        if self.timed_again is not None:
            out["timed_again"] = self.timed_again
        from lrfc.lower.stage import other_precision

        out[other_precision(self.precision)] = None if self.baseline is None else {k: v for k, v in self.baseline.items() if k != "precision"}
        return {**out, "fastest": fastest(out)}


BASELINE_PRECISIONS = ("int8", "fp32")


def baseline_of(run: dict) -> tuple[str, dict] | None:
    """A run's (as ``report.json`` has it) baseline pair at the other precision: ``(precision, pair)``, or None."""
    return next(((p, run[p]) for p in BASELINE_PRECISIONS if p != run["precision"] and run.get(p)), None)


def fastest_p50(row: dict) -> float:
    """A timed file's p50 at its fastest thread count, where the run timed several; else at the profile's."""
    return row.get("best_p50_ms", row["p50_ms"])


def fastest(run: dict) -> dict:
    """The verified file with the lowest p50 of one run's (as ``report.json`` has it), each at its fastest thread
    count where several were timed: model, precision, name, p50, threads, top-1.

    A file that failed the verification gate is timed but never the one to
    deploy; when such a file ran faster, ``faster_unverified`` names the
    fastest of them (keras.applications MobileNetV3Small in ``bench.foreign``:
    lrfc's int8 ONNX file, 0.28 ms against its fp32 file's 0.56, scored
    80.7 % where fp32 scored 84.6 % on the verification samples).
    """
    timed = [("original", run["precision"], run["original"]), ("compressed", run["precision"], run["compressed"])]
    other = baseline_of(run)
    if other:
        precision, pair = other
        timed += [("original", precision, pair["original"]), ("compressed", precision, pair["compressed"])]

    def entry(model, precision, row):
        return {"model": model, "precision": precision, "name": row.get("name"), "p50_ms": fastest_p50(row),
                "threads": row.get("best_threads", row.get("threads")), "accuracy": row.get("accuracy"),
                "verified": row.get("verified", True)}

    passed = [t for t in timed if t[2].get("verified") is not False] or timed  # lrfc's published file always passed
    best = entry(*min(passed, key=lambda t: fastest_p50(t[2])))
    failed = [t for t in timed if t[2].get("verified") is False and fastest_p50(t[2]) < best["p50_ms"]]
    if failed and best["verified"] is not False:
        best["faster_unverified"] = entry(*min(failed, key=lambda t: fastest_p50(t[2])))
    return best


@dataclass(frozen=True)
class Benchmarks:
    """The stage's result: ``status`` says measured, skipped or why not; ``device`` is the machine."""

    status: str
    runs: tuple[BenchmarkRun, ...] = ()
    device: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {"status": self.status, "runs": [r.to_json() for r in self.runs]}
        if self.status == "measured" or self.skipped:
            out.update(device=self.device, skipped=self.skipped)
        return out


def _artifact(state, role: str, fmt: str, variant: str | None = None):
    """The staged file of ``role`` in ``fmt``: verified, or for a reference (the original's, a baseline), present
    (``lower.stage`` keeps those that failed their gate until the benchmark has timed them)."""
    return next((a for a in state.artifacts if a.model == role and a.format == fmt and a.variant == variant
                 and (a.passed or (not a.deliverable and (state.output.staging / Path(a.path).name).is_file()))),
                None)


def _ratio(before, after) -> float | None:
    if before is None or after is None or after == 0:
        return None
    return round(float(before) / float(after), 4)


def _ratios(before: dict, after: dict, macs: tuple[int, int]) -> dict:
    out = {"latency_p50": _ratio(before["p50_ms"], after["p50_ms"]),
           "peak_rss": _ratio(before.get("peak_rss_mb"), after.get("peak_rss_mb")),
           "file_bytes": _ratio(before["file_bytes"], after["file_bytes"]),
           "macs": _ratio(macs[0], max(1, macs[1]))}
    if "best_p50_ms" in before and "best_p50_ms" in after:
        out["latency_p50_best_threads"] = _ratio(before["best_p50_ms"], after["best_p50_ms"])
    return out


def thread_counts(threads: int) -> list[int]:
    """The thread counts every file is timed at: 1, 2, 4, ... below the profile's ``threads``, then ``threads``."""
    counts, n = [], 1
    while n < threads:
        counts.append(n)
        n *= 2
    return counts + [max(1, int(threads))]


def by_file(rows: list[dict], counts: list[int]) -> list[dict]:
    """One row per file from a sweep's rows (each file's counts together, in ``counts`` order): the row at the
    last count (the profile's), with ``p50_ms_by_threads``, ``best_threads`` and ``best_p50_ms`` added when
    there were several counts (a tie goes to fewer threads: the cores left are the device's)."""
    k = len(counts)
    out = []
    for i in range(0, len(rows), k):
        group = rows[i:i + k]
        row = dict(group[-1])
        if k > 1:
            row["p50_ms_by_threads"] = {str(n): r["p50_ms"] for n, r in zip(counts, group)}
            best = min(zip(counts, group), key=lambda t: (t[1]["p50_ms"], t[0]))
            row["best_threads"], row["best_p50_ms"] = best[0], best[1]["p50_ms"]
        out.append(row)
    return out


def search_expectation(whole, rung: int | None) -> tuple[float, float] | None:
    """The speed-up over the original that the ``measure`` stage's timing gives the published rung: (low, high).

    Exact when that rung was timed; between its nearest timed neighbours on
    the ladder when it lies between two (a more compressed rung is faster);
    None when nothing was measured, the original was published, or the rung
    has no timed rung on one side.
    """
    if whole is None or whole.status != "measured" or rung is None or whole.original is None \
            or not whole.original.measured_ms:
        return None
    timed = {t.rung: t.measured_ms for t in whole.rungs if t.rung is not None and t.measured_ms}
    if rung in timed:
        fast = slow = timed[rung]
    else:
        below, above = [r for r in timed if r < rung], [r for r in timed if r > rung]
        if not below or not above:
            return None
        fast, slow = timed[max(below)], timed[min(above)]
    return whole.original.measured_ms / slow, whole.original.measured_ms / fast


def disagrees(ratio: float | None, expected: tuple[float, float], factor: float = AGREEMENT) -> bool:
    """Whether a measured speed-up lies more than ``factor`` outside the expected range."""
    return ratio is not None and not expected[0] / factor <= ratio <= expected[1] * factor


def merge_rows(first: list[dict], again: list[dict]) -> list[dict]:
    """Each file's row from the run where its median was lower (what ``bench`` does across lifetimes), with the
    lifetimes of both runs counted."""
    rows = [a if a["p50_ms"] <= b["p50_ms"] else b for a, b in zip(first, again)]
    return [{**row, "lifetimes": a["lifetimes"] + b["lifetimes"]} for row, a, b in zip(rows, first, again)]


def _run(state, runtime: str, fmt: str, records: list) -> tuple[BenchmarkRun, dict]:
    """Time the staged files on ``runtime`` side by side (published after the report); the run and the fingerprint.

    ``records``: original and compressed, then (the baseline) both at the other precision. On the runtime and
    precision the search timed whole models on, a speed-up that strays from that timing is timed once more
    (``AGREEMENT``), and so are files timed on several threads with the cores far apart throughout
    (``runtime_bench.measure.far_throughout``: a ratio with such a file may mislead).
    """
    from runtime_bench.measure import far_throughout
    from runtime_bench.runners import get_runner

    # a GPU's work is not its CPU threads': timed at the profile's count alone there
    counts = [state.profile.threads] if get_runner(runtime).gpu else thread_counts(state.profile.threads)
    result = _time(state, runtime, records, counts)
    rows = result["results"]
    run = _assemble(state, runtime, fmt, records, by_file(rows, counts), result["device"])
    whole = state.whole
    expected = (search_expectation(whole, state.level)
                if whole is not None and (whole.runtime, whole.precision) == (runtime, records[0].precision) else None)
    first = run.ratios["latency_p50"]
    strayed = expected is not None and disagrees(first, expected)
    if strayed or far_throughout(rows):
        state.log(f"{runtime}: speed-up {first:.2f}x, " + (
            f"where the search timed the published plan at {expected[0]:.2f}-{expected[1]:.2f}x" if strayed else
            "timed with this machine's cores far apart throughout (runtime_bench.cores)") +
            ": timing the files once more")
        result = _time(state, runtime, records, counts)
        rows = merge_rows(rows, result["results"])
        run = replace(_assemble(state, runtime, fmt, records, by_file(rows, counts), result["device"]),
                      timed_again="strayed" if strayed else "cores_far")
    if expected is None:
        return run, result["device"]
    agreement = {"search": [round(expected[0], 4), round(expected[1], 4)], "first": first,
                 "retimed": run.timed_again is not None,
                 "final": run.ratios["latency_p50"], "agrees": not disagrees(run.ratios["latency_p50"], expected)}
    return replace(run, agreement=agreement), result["device"]


def _time(state, runtime: str, records: list, counts: list[int]) -> dict:
    """One runtime_bench run of the staged files, each at every thread count (``LIFETIMES`` sets of fresh workers)."""
    from lrfc.cost.measure import LIFETIMES

    return state.link.bench([state.output.staging / r.name for r in records], runtime=runtime,
                            threads=counts if len(counts) > 1 else counts[0], runs=state.options.bench_runs,
                            warmup=WARMUP, rounds=ROUNDS, batch=1, memory=True, lifetimes=LIFETIMES)


def _assemble(state, runtime: str, fmt: str, records: list, rows: list[dict], device: dict) -> BenchmarkRun:
    """The run's record from its rows: accuracies and gate results beside the timings, and the ratios."""
    for row, record in zip(rows, records):
        row["path"], row["accuracy"] = record.path, record.accuracy
        if not record.passed:  # a reference timed though it failed its gate (lower.stage): said beside its numbers
            row["verified"], row["error"] = False, record.error
    macs = state.mac_totals()
    before, after = rows[:2]
    ratios = _ratios(before, after, macs)
    baseline = None
    if len(rows) == 4:
        other = records[2].precision
        ratios[f"vs_original_{other}"] = _ratio(rows[2]["p50_ms"], after["p50_ms"])
        if "best_p50_ms" in after:
            ratios[f"vs_original_{other}_best_threads"] = _ratio(rows[2]["best_p50_ms"], after["best_p50_ms"])
        baseline = {"precision": other, "original": rows[2], "compressed": rows[3],
                    "ratios": _ratios(rows[2], rows[3], macs)}
    return BenchmarkRun(runtime, device.get("runtime_version"), device.get("id"), fmt, records[0].precision, before,
                        after, ratios, baseline)


def benchmark(state) -> None:
    """Original vs compressed latency, memory and size on the target's runtimes (skipped when out of reach); then
    the reference files that failed their gate leave the staging folder, timed but never published."""
    from lrfc.lower.stage import discard_failed_references

    try:
        _benchmark(state)
    finally:
        discard_failed_references(state)


def _benchmark(state) -> None:
    from runtime_bench.measure import cores_note
    from runtime_bench.runners import FileRefused

    from lrfc.cost.devices import measured_runtimes
    from lrfc.lower.artifacts import format_of
    from lrfc.lower.stage import baseline_precision, baseline_variant

    if state.options.bench_runs == 0:
        state.benchmarks = Benchmarks("skipped (--bench-runs 0)")
        return
    if state.link is None:
        state.benchmarks = Benchmarks(f"not measured: target {state.profile.name} is not reachable from this machine "
                                      "(pass --device ssh://user@host[:port], or --device local on the device itself)")
        state.log(state.benchmarks.status)
        return
    usable, skipped = measured_runtimes(state.profile, state.link)
    runs, device = [], {}
    for runtime in usable:
        fmt = format_of(runtime)
        records = [_artifact(state, "original", fmt), _artifact(state, "compressed", fmt)]
        if None in records:
            skipped[runtime] = f"no verified {fmt} artifact of both models"
            continue
        other = baseline_precision(state)
        baseline = [_artifact(state, role, fmt, baseline_variant(other)) for role in ("original", "compressed")]
        if other is not None and None not in baseline:
            records += baseline
        try:
            run, fingerprint = _run(state, runtime, fmt, records)
        except (RuntimeError, FileRefused) as exc:  # e.g. the remote device lacks this runtime
            skipped[runtime] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            continue
        runs.append(run)
        device = {k: v for k, v in fingerprint.items() if k not in RUNTIME_KEYS}
        state.log(f"{runtime}: p50 {run.original['p50_ms']:.3f} -> {run.compressed['p50_ms']:.3f} ms "
                  f"(speed-up {run.ratios['latency_p50']:.2f}x)" + (
                      f"; {run.baseline['precision']} {run.baseline['original']['p50_ms']:.3f} -> "
                      f"{run.baseline['compressed']['p50_ms']:.3f} ms" if run.baseline else ""))
        far = cores_note([run.original, run.compressed] + ([run.baseline["original"], run.baseline["compressed"]]
                                                            if run.baseline else []))
        if far:
            state.log(f"{runtime}: {far}")
    state.benchmarks = Benchmarks("measured" if runs else "not measured: no runtime of the target could run",
                                  tuple(runs), device, skipped)
