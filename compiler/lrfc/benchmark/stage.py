"""The ``benchmark`` stage: original against compressed, side by side, on every runtime of the target.

One runtime_bench run per runtime, the artifacts alternating in rounds,
each in its own process so its peak memory is its own, repeated with fresh
workers (``cost.measure.LIFETIMES``; each file keeps its lowest median).
Ratios are original / compressed (above 1: the compressed model is
faster, smaller, lighter). When the target cannot be reached the benchmark
is not run and the record says so.

With the int8 baseline (``lower.stage``) the same run times four files: the
original and the compressed model at the target's precision and both at
int8, so the report sets lrfc against what a user would do instead
(``int8``: the pair and ``ratios.vs_original_int8``, the original at int8
over lrfc at the target's precision), and ``fastest`` names the file to
deploy on that runtime: int8 does not pay everywhere (ONNX Runtime's CPU
provider ran the ResNet-style model's lrfc int8 file slower than its fp32
one, docs/BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

WARMUP, ROUNDS = 10, 5
RUNTIME_KEYS = ("runtime", "runtime_version", "id", "workdir")  # per run; the rest describes the machine


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
    int8: dict | None = None          # {"original", "compressed", "ratios"} at int8, timed in the same run

    def to_json(self) -> dict:
        return {"runtime": self.runtime, "runtime_version": self.runtime_version, "device_id": self.device_id,
                "format": self.format, "precision": self.precision, "original": self.original,
                "compressed": self.compressed, "ratios": self.ratios, "int8": self.int8,
                "fastest": fastest({"precision": self.precision, "original": self.original,
                                    "compressed": self.compressed, "int8": self.int8})}


def fastest(run: dict) -> dict:
    """The file with the lowest p50 of one run's (as ``report.json`` has it): model, precision, name, p50, top-1."""
    timed = [("original", run["precision"], run["original"]), ("compressed", run["precision"], run["compressed"])]
    if run.get("int8"):
        timed += [("original", "int8", run["int8"]["original"]), ("compressed", "int8", run["int8"]["compressed"])]
    model, precision, row = min(timed, key=lambda t: t[2]["p50_ms"])
    return {"model": model, "precision": precision, "name": row.get("name"), "p50_ms": row["p50_ms"],
            "accuracy": row.get("accuracy")}


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
    return next((a for a in state.artifacts
                 if a.model == role and a.format == fmt and a.passed and a.variant == variant), None)


def _ratio(before, after) -> float | None:
    if before is None or after is None or after == 0:
        return None
    return round(float(before) / float(after), 4)


def _ratios(before: dict, after: dict, macs: tuple[int, int]) -> dict:
    return {"latency_p50": _ratio(before["p50_ms"], after["p50_ms"]),
            "peak_rss": _ratio(before.get("peak_rss_mb"), after.get("peak_rss_mb")),
            "file_bytes": _ratio(before["file_bytes"], after["file_bytes"]),
            "macs": _ratio(macs[0], max(1, macs[1]))}


def _run(state, runtime: str, fmt: str, records: list) -> tuple[BenchmarkRun, dict]:
    """Time the staged files on ``runtime`` side by side (published after the report); the run and the fingerprint.

    ``records``: original and compressed, then (the int8 baseline) both at int8.
    """
    from lrfc.cost.measure import LIFETIMES

    result = state.link.bench([state.output.staging / r.name for r in records], runtime=runtime,
                              threads=state.profile.threads, runs=state.options.bench_runs, warmup=WARMUP,
                              rounds=ROUNDS, batch=1, memory=True, lifetimes=LIFETIMES)
    rows = result["results"]
    for row, record in zip(rows, records):
        row["path"], row["accuracy"] = record.path, record.accuracy
    macs = state.mac_totals()
    before, after = rows[:2]
    ratios = _ratios(before, after, macs)
    int8 = None
    if len(rows) == 4:
        ratios["vs_original_int8"] = _ratio(rows[2]["p50_ms"], after["p50_ms"])
        int8 = {"original": rows[2], "compressed": rows[3], "ratios": _ratios(rows[2], rows[3], macs)}
    return BenchmarkRun(runtime, result["device"].get("runtime_version"), result["device"].get("id"), fmt,
                        records[0].precision, before, after, ratios, int8), result["device"]


def benchmark(state) -> None:
    """Original vs compressed latency, memory and size on the target's runtimes (skipped when out of reach)."""
    from lrfc.cost.devices import measured_runtimes
    from lrfc.lower.artifacts import format_of
    from lrfc.lower.stage import INT8_BASELINE

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
        baseline = [_artifact(state, role, fmt, INT8_BASELINE) for role in ("original", "compressed")]
        if None not in baseline:
            records += baseline
        try:
            run, fingerprint = _run(state, runtime, fmt, records)
        except RuntimeError as exc:  # e.g. the remote device lacks this runtime
            skipped[runtime] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            continue
        runs.append(run)
        device = {k: v for k, v in fingerprint.items() if k not in RUNTIME_KEYS}
        state.log(f"{runtime}: p50 {run.original['p50_ms']:.3f} -> {run.compressed['p50_ms']:.3f} ms "
                  f"(speed-up {run.ratios['latency_p50']:.2f}x)" + (
                      f"; int8 {run.int8['original']['p50_ms']:.3f} -> {run.int8['compressed']['p50_ms']:.3f} ms"
                      if run.int8 else ""))
    state.benchmarks = Benchmarks("measured" if runs else "not measured: no runtime of the target could run",
                                  tuple(runs), device, skipped)
