"""bench.render_speed: the objective comparison reads the side-by-side run when there is one, and says which it is."""

from bench.render_speed import objective_lines


def _row(model: str, kind: str, p50: float, drop: float, macs: float) -> dict:
    return {"model": model, "kind": kind, "drop_points": drop, "macs_removed_pct": macs,
            "latency": {"litert": {"lrfc fp32": {"p50_ms": p50}}}}


RUNS = {"vgg/latency": _row("vgg", "latency", 0.20, 0.9, 80.0), "vgg/flops": _row("vgg", "flops", 0.22, 1.0, 75.0)}


def test_without_a_side_by_side_run_the_builds_own_benchmarks_are_compared_and_labelled_apart():
    line, end = objective_lines(RUNS)
    assert end == ""
    assert "0.200 ms" in line and "0.220 ms" in line and "1.10x, misses the 1.3x target" in line
    assert "measured minutes apart, not side by side" in line


def test_the_side_by_side_run_decides_when_present():
    timed = {"vgg": {"date": "2026-11-30 15:00 UTC", "runtimes": {"onnxruntime-cpu": {
        "command": "python -m runtime_bench a.onnx b.onnx c.onnx", "latency_vs_flops": 1.8,
        "p50_ms": {"original": 0.45, "latency": 0.20, "flops": 0.36}}}}}
    line, end = objective_lines(RUNS, timed)
    assert end == ""
    assert line.startswith("- vgg, ONNX Runtime CPU, side by side in one run (2026-11-30 15:00 UTC):")
    assert "0.200 ms" in line and "0.360 ms" in line and "original 0.450 ms: 1.80x, meets the 1.3x target" in line
    assert "minutes apart" not in line
