"""The ``benchmark`` stage: original against compressed, side by side, on every runtime of the target.

One runtime_bench run per runtime, the two artifacts alternating in rounds,
each in its own process so its peak memory is its own. Ratios are original /
compressed (above 1: the compressed model is faster, smaller, lighter). When
the target cannot be reached the benchmark is not run and the record says so.
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

    def to_json(self) -> dict:
        return {"runtime": self.runtime, "runtime_version": self.runtime_version, "device_id": self.device_id,
                "format": self.format, "precision": self.precision, "original": self.original,
                "compressed": self.compressed, "ratios": self.ratios}


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


def _artifact(state, role: str, fmt: str):
    return next((a for a in state.artifacts if a.model == role and a.format == fmt and a.passed), None)


def _ratio(before, after) -> float | None:
    if before is None or after is None or after == 0:
        return None
    return round(float(before) / float(after), 4)


def _run(state, runtime: str, fmt: str, original, compressed) -> tuple[BenchmarkRun, dict]:
    """Time the staged pair on ``runtime`` (published after the report); the run and the device's fingerprint."""
    opts = state.options
    result = state.link.bench([state.output.staging / original.name, state.output.staging / compressed.name],
                              runtime=runtime, threads=state.profile.threads, runs=opts.bench_runs, warmup=WARMUP,
                              rounds=ROUNDS, batch=1, memory=True)
    before, after = result["results"]
    before["path"], after["path"] = original.path, compressed.path
    macs_before, macs_after = state.mac_totals()
    return BenchmarkRun(runtime, result["device"].get("runtime_version"), result["device"].get("id"), fmt,
                        original.precision, before, after,
                        {"latency_p50": _ratio(before["p50_ms"], after["p50_ms"]),
                         "peak_rss": _ratio(before.get("peak_rss_mb"), after.get("peak_rss_mb")),
                         "file_bytes": _ratio(before["file_bytes"], after["file_bytes"]),
                         "macs": _ratio(macs_before, max(1, macs_after))}), result["device"]


def benchmark(state) -> None:
    """Original vs compressed latency, memory and size on the target's runtimes (skipped when out of reach)."""
    from lrfc.cost.devices import measured_runtimes
    from lrfc.lower.artifacts import format_of

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
        original, compressed = _artifact(state, "original", fmt), _artifact(state, "compressed", fmt)
        if original is None or compressed is None:
            skipped[runtime] = f"no verified {fmt} artifact of both models"
            continue
        try:
            run, fingerprint = _run(state, runtime, fmt, original, compressed)
        except RuntimeError as exc:  # e.g. the remote device lacks this runtime
            skipped[runtime] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            continue
        runs.append(run)
        device = {k: v for k, v in fingerprint.items() if k not in RUNTIME_KEYS}
        state.log(f"{runtime}: p50 {run.original['p50_ms']:.3f} -> {run.compressed['p50_ms']:.3f} ms "
                  f"(speed-up {run.ratios['latency_p50']:.2f}x)")
    state.benchmarks = Benchmarks("measured" if runs else "not measured: no runtime of the target could run",
                                  tuple(runs), device, skipped)
