"""The ``benchmark`` stage: original against compressed, side by side, on every runtime of the target.

One runtime_bench run per runtime, the two artifacts alternating in rounds,
each in its own process so its peak memory is its own. Ratios are original /
compressed (above 1: the compressed model is faster, smaller, lighter). When
the target cannot be reached the benchmark is not run and the report says so.
"""

from __future__ import annotations

WARMUP, ROUNDS = 10, 5


RUNTIME_KEYS = ("runtime", "runtime_version", "id", "workdir")  # per run; the rest describes the machine


def _artifact(state, role: str, fmt: str):
    return next((a for a in state.artifacts if a.model == role and a.format == fmt and a.passed), None)


def _ratio(before, after) -> float | None:
    if before is None or after is None or after == 0:
        return None
    return round(float(before) / float(after), 4)


def benchmark(state) -> None:
    """Original vs compressed latency, memory and size on the target's runtimes (skipped when out of reach).

    The files are timed where the build staged them (they are published after
    the report), and each result names its published path. ``device``
    describes the machine; each run names its runtime and version.
    """
    from lrfc.cost.devices import measured_runtimes
    from lrfc.lower.artifacts import format_of

    opts = state.options
    if opts.bench_runs == 0:
        state.benchmarks = {"status": "skipped (--bench-runs 0)", "runs": []}
        return
    if state.link is None:
        state.benchmarks = {"status": f"not measured: target {state.profile.name} is not reachable from this machine "
                                      "(pass --device ssh://user@host[:port], or --device local on the device itself)",
                            "runs": []}
        state.log(state.benchmarks["status"])
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
            result = state.link.bench([state.output.staging / original.name, state.output.staging / compressed.name],
                                      runtime=runtime, threads=state.profile.threads, runs=opts.bench_runs,
                                      warmup=WARMUP, rounds=ROUNDS, batch=1, memory=True)
        except RuntimeError as exc:  # e.g. the remote device lacks this runtime
            skipped[runtime] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            continue
        device = {k: v for k, v in result["device"].items() if k not in RUNTIME_KEYS}
        before, after = result["results"]
        before["path"], after["path"] = original.path, compressed.path
        runs.append({
            "runtime": runtime, "runtime_version": result["device"].get("runtime_version"),
            "device_id": result["device"].get("id"), "format": fmt, "precision": original.precision,
            "original": before, "compressed": after,
            "ratios": {"latency_p50": _ratio(before["p50_ms"], after["p50_ms"]),
                       "peak_rss": _ratio(before.get("peak_rss_mb"), after.get("peak_rss_mb")),
                       "file_bytes": _ratio(before["file_bytes"], after["file_bytes"])},
        })
        state.log(f"{runtime}: p50 {before['p50_ms']:.3f} -> {after['p50_ms']:.3f} ms "
                  f"(speed-up {runs[-1]['ratios']['latency_p50']:.2f}x)")
    state.benchmarks = {"status": "measured" if runs else "not measured: no runtime of the target could run",
                        "device": device, "runs": runs, "skipped": skipped}
