"""bench.render_speed: the objective comparison reads the side-by-side run when there is one, and says which it is."""
import pytest

from bench.render_speed import objective_lines


def _row(model: str, kind: str, p50: float, drop: float, macs: float, date: str = "2026-11-30 14:00 UTC",
         machine: str = "EPYC (AVX2)") -> dict:
    return {"model": model, "kind": kind, "drop_points": drop, "macs_removed_pct": macs, "date": date,
            "machine": machine, "latency": {"litert": {"lrfc fp32": {"p50_ms": p50}}}}


RUNS = {"vgg/latency": _row("vgg", "latency", 0.20, 0.9, 80.0), "vgg/flops": _row("vgg", "flops", 0.22, 1.0, 75.0)}


def test_without_a_side_by_side_run_the_builds_own_benchmarks_are_compared_and_labelled_apart():
    line, end = objective_lines(RUNS)
    assert end == ""
    assert "0.200 ms" in line and "0.220 ms" in line and "1.10x, misses the 1.3x target" in line
    assert "measured minutes apart, not side by side" in line


def test_the_side_by_side_run_decides_when_present():
    timed = {"vgg": {"date": "2026-11-30 15:00 UTC", "machine": "EPYC (AVX2)", "runtimes": {"onnxruntime-cpu": {
        "command": "python -m runtime_bench a.onnx b.onnx c.onnx", "latency_vs_flops": 1.8,
        "p50_ms": {"original": 0.45, "latency": 0.20, "flops": 0.36}}}}}
    line, end = objective_lines(RUNS, timed)
    assert end == ""
    assert line.startswith("- vgg (EPYC (AVX2)), ONNX Runtime CPU, side by side in one run (2026-11-30 15:00 UTC):")
    assert "0.200 ms" in line and "0.360 ms" in line and "original 0.450 ms: 1.80x, meets the 1.3x target" in line
    assert "minutes apart" not in line


def test_rows_from_two_machines_are_compared_per_machine():
    """A newer latency row from another machine is not set against this machine's flops row or side-by-side run."""
    timed = {"vgg": {"date": "2026-11-30 15:00 UTC", "machine": "EPYC (AVX2)", "runtimes": {"litert": {
        "command": "python -m runtime_bench a b c", "latency_vs_flops": 1.2,
        "p50_ms": {"original": 0.45, "latency": 0.20, "flops": 0.24}}}}}
    runs = {**RUNS, "vgg/latency": _row("vgg", "latency", 0.10, 0.5, 88.0, "2026-12-04 02:00 UTC", "Xeon (AVX-512, AMX)"),
            "vgg/latency, run of 2026-11-30 14:00": RUNS["vgg/latency"]}
    line, end = objective_lines(runs, timed)
    assert end == "" and line.startswith("- vgg (EPYC (AVX2)), LiteRT (XNNPACK), side by side")
    assert "(drop 0.90, 80.0% MACs removed)" in line  # the EPYC latency row, not the Xeon one
    flops_xeon = _row("vgg", "flops", 0.12, 0.6, 87.0, "2026-12-04 02:30 UTC", "Xeon (AVX-512, AMX)")
    lines = objective_lines({**runs, "vgg/flops": flops_xeon, "vgg/flops, run of 2026-11-30 14:00": RUNS["vgg/flops"]},
                            timed)
    assert len(lines) == 3 and lines[0].startswith("- vgg (EPYC (AVX2)), LiteRT (XNNPACK), side by side")
    assert lines[1].startswith("- vgg (Xeon (AVX-512, AMX)), LiteRT (XNNPACK): `--objective latency` 0.100 ms")
    assert "0.120 ms" in lines[1] and "minutes apart" in lines[1]
    xeon_timed = {"date": "2026-12-04 03:00 UTC", "machine": "Xeon (AVX-512, AMX)", "runtimes": {"litert": {
        "command": "python -m runtime_bench d e f", "latency_vs_flops": 1.1,
        "p50_ms": {"original": 0.30, "latency": 0.10, "flops": 0.11}}}}
    both = {"vgg": xeon_timed, "vgg, run of 2026-11-30 15:00": timed["vgg"]}  # each machine's own side-by-side run
    lines = objective_lines({**runs, "vgg/flops": flops_xeon, "vgg/flops, run of 2026-11-30 14:00": RUNS["vgg/flops"]},
                            both)
    assert lines[0].startswith("- vgg (EPYC (AVX2)), LiteRT (XNNPACK), side by side in one run (2026-11-30 15:00 UTC)")
    assert lines[1].startswith("- vgg (Xeon (AVX-512, AMX)), LiteRT (XNNPACK), side by side in one run (2026-12-04 03:00")


def test_threshold_for_a_mac_budget_is_the_least_compressed_rung_within_it():
    """bench.latency's searched ResNet50 row: the highest threshold whose plan keeps at most 1/reduction of the MACs."""
    from bench.latency import _threshold_for

    def cand(layer, rank, macs, sim):
        return {"layer": layer, "method": "svd", "ranks": [rank], "params": macs, "macs": macs, "similarity": sim}

    report = {"original": {"macs": 1000},  # two layers of 400 MACs and 200 outside them
              "layers": [{"name": n, "params_before": 400, "macs_before": 400} for n in ("a", "b")],
              "search": {"candidates": [cand("a", 1, 50, 0.90), cand("a", 2, 100, 0.97), cand("a", 3, 200, 0.995),
                                        cand("b", 1, 40, 0.93), cand("b", 2, 80, 0.99)]}}
    # thresholds 0.90 ... : a=50,b=40 -> 290 MACs (3.4x); at 0.97: a=100,b=80 -> 380 (2.6x); at 0.99 a=200 -> 480
    assert _threshold_for(report, 3.0) == (0.9, 1000 / 290)
    assert _threshold_for(report, 2.5) == (0.97, 1000 / 380)
    with pytest.raises(SystemExit, match="no threshold reaches a 5.0x"):
        _threshold_for(report, 5.0)


def test_threshold_for_a_mac_budget_under_latency_takes_the_fastest_priced_candidate():
    """Under --objective latency each layer takes its fastest priced candidate; unpriced ones are not offered."""
    from bench.latency import _threshold_for

    def cand(layer, rank, macs, sim, ms):
        return {"layer": layer, "method": "svd", "ranks": [rank], "params": macs, "macs": macs, "similarity": sim,
                "measured_ms": ms}

    report = {"original": {"macs": 1000},
              "layers": [{"name": n, "params_before": 400, "macs_before": 400, "latency_ms_before": 1.0} for n in "ab"],
              "search": {"candidates": [cand("a", 1, 50, 0.80, None),  # below the priced walk: never offered
                                        cand("a", 2, 100, 0.90, 0.50), cand("a", 3, 150, 0.95, 0.30),
                                        cand("b", 1, 40, 0.93, 0.20), cand("b", 2, 80, 0.99, 0.40)]}}
    # at 0.90 and 0.93: a takes rank 3 (0.30 ms, 150 MACs, not the fewer-MAC rank 2), b rank 1: 150 + 40 + 200 = 390
    # (2.56x); at 0.95 b needs rank 2: 430 (2.33x); at 0.99 a is kept: 680
    assert _threshold_for(report, 2.5, "latency") == (0.93, 1000 / 390)
    assert _threshold_for(report, 2.3, "latency") == (0.95, 1000 / 430)
    # by MACs, a's rank 2 at 0.90 makes 340 (2.94x); by measured latency nothing reaches 2.9x (rank 1 is unpriced)
    assert _threshold_for(report, 2.9, "flops") == (0.9, 1000 / 340)
    with pytest.raises(SystemExit, match="no threshold reaches a 2.9x"):
        _threshold_for(report, 2.9, "latency")


def test_searched_reading_judges_each_objective_and_quotes_the_side_by_side_run_of_the_same_builds():
    """Each machine's searched rows are read with that machine's side-by-side run: the newest under the plain
    names, another machine's kept as ``"<name>, run of <date>"`` (``put_row``), each line naming its machine."""
    from bench.render_latency import _searched_reading

    def row(objective, mac_ratio, litert, machine="EPYC (AVX-512)", date="2026-11-30 21:00 UTC"):
        run = {"runtime": "litert", "precision": "fp32", "ratios": {"latency_p50": litert, "macs": mac_ratio}}
        return {"objective": objective, "mac_ratio": mac_ratio, "mac_budget": 4.0, "threshold": 0.998, "runs": [run],
                "machine": machine, "date": date}

    models = {"resnet50-searched": row("flops", 5.0, 3.1), "resnet50-searched-latency": row("latency", 4.7, 4.1)}
    timed = [{"date": "2026-11-30 22:00 UTC", "machine": "EPYC (AVX-512)", "runtimes": {"litert": {
        "p50_ms": {"original": 40.0, "flops": 13.0, "latency": 9.5}, "latency_vs_flops": 1.3684, "command": "python -m x"}}}]
    flops, latency, side = _searched_reading(models, timed)
    assert "`--objective flops`** (EPYC (AVX-512), 2026-11-30 21:00 UTC)" in flops
    assert "latency cut / MAC cut 0.62, which misses the 0.85 target" in flops
    assert "`--objective latency`" in latency and "latency cut / MAC cut 0.87, which meets the 0.85 target" in latency
    assert "litert: 40.00 / 13.00 / 9.50 ms, flops plan 3.08x for 5.00x fewer MACs (latency cut / MAC cut 0.615), " \
           "latency plan 4.21x for 4.70x fewer MACs (latency cut / MAC cut 0.896), latency plan 1.37x the flops plan" in side
    assert side.startswith("- Side by side in one run (EPYC (AVX-512), 2026-11-30 22:00 UTC)")
    assert _searched_reading({}, timed) == []  # no rows, nothing to compare
    xeon = {f"{k}, run of 2026-11-29 10:00": row(m["objective"], m["mac_ratio"], 2.0, "Xeon (AVX-512, AMX)")
            for k, m in models.items()}
    both = _searched_reading({**models, **xeon}, timed)
    assert len(both) == 5 and both[:3] == [flops, latency, side]  # the Xeon's rows: no side-by-side run of its own
    assert "(Xeon (AVX-512, AMX), 2026-11-30 21:00 UTC)" in both[3] and "LiteRT 2.00x faster" in both[3]
    models["resnet50-searched-latency"]["date"] = "2026-12-03 04:45 UTC"  # re-built after the side-by-side run
    stale = _searched_reading(models, timed)[2]
    assert "predates a row above (2026-12-03 04:45 UTC)" in stale and "MAC cut" not in stale


def test_the_latency_table_keeps_both_precisions_of_an_int8_build():
    from bench.speed import latency_table

    def row(ms):
        return {"p50_ms": ms, "p90_ms": ms, "file_bytes": 10, "accuracy": 0.9}

    int8_build = {"runtime": "litert", "precision": "int8", "original": row(0.085), "compressed": row(0.072),
                  "fp32": {"original": row(0.073), "compressed": row(0.057)}}
    float_build = {"runtime": "onnxruntime-cpu", "precision": "fp32", "original": row(0.4), "compressed": row(0.2),
                   "int8": None}  # --no-int8-baseline: no pair
    table = latency_table({"benchmarks": {"runs": [int8_build, float_build]}})
    assert {k: v["p50_ms"] for k, v in table["litert"].items()} == {
        "original int8": 0.085, "lrfc int8": 0.072, "original fp32": 0.073, "lrfc fp32": 0.057}
    assert sorted(table["onnxruntime-cpu"]) == ["lrfc fp32", "original fp32"]


def test_the_threads_table_shows_each_file_at_its_fastest_count_and_the_ratios_there():
    from bench.render_speed import threads_table
    from bench.speed import latency_table
    from lrfc.benchmark.stage import by_file

    timed = {"original": (1.119, 0.612), "model": (0.113, 0.162), "original.int8": (0.199, 0.166),
             "model.int8": (0.215, 0.205)}  # the ResNet-style latency build's files on the Xeon, 2026-12-06
    o, c, o8, c8 = by_file([{"p50_ms": ms, "p90_ms": ms, "file_bytes": 10} for pair in timed.values() for ms in pair],
                           [1, 2])
    swept = {"runtime": "litert", "precision": "fp32", "original": o, "compressed": c,
             "int8": {"original": o8, "compressed": c8}}
    once = {"runtime": "onnxruntime-cpu", "precision": "fp32", "original": {"p50_ms": 0.4, "p90_ms": 0.4, "file_bytes": 1},
            "compressed": {"p50_ms": 0.2, "p90_ms": 0.2, "file_bytes": 1}, "int8": None}
    table = latency_table({"benchmarks": {"runs": [swept, once]}})
    assert table["litert"]["lrfc fp32"]["best_threads"] == 1 and "best_threads" not in table["onnxruntime-cpu"]["lrfc fp32"]
    lines = threads_table({"resnet/latency": {"latency": table, "machine": "Xeon (AVX-512, AMX)"}})
    rows = [line for line in lines if line.startswith("| resnet/latency")]
    assert rows == ["| resnet/latency | Xeon (AVX-512, AMX) | LiteRT (XNNPACK) | 0.612 (2) | 0.113 (1) | 0.166 (2) | "
                    "0.205 (2) | 5.42x | 4x | 0.81x | 1.5x | 1.47x |"]  # ONNX Runtime's row was timed at 2 alone
    assert threads_table({"x": {"latency": {"onnxruntime-cpu": table["onnxruntime-cpu"]}}}) == []


def test_the_equalization_table_shows_each_file_and_the_cut_per_runtime():
    from bench.render_speed import equalize

    def scores(mean: float) -> dict:
        s = {"accuracy": 0.91, "agreement": 0.99, "mean_diff": mean, "p99_diff": 2 * mean}
        return {"float_accuracy": 0.915, "int8": {"litert": dict(s), "onnxruntime-cpu": dict(s)}}

    row = {"model": "vgg", "command": "lrfc build models/vgg.keras ...", "date": "2026-12-05 06:30 UTC",
           "macs_removed_pct": 83.0, "drop_points": 2.16, "methods": {"cp": 7, "svd": 1},
           "equalization": {"links": 22, "chains": 8, "max_scale": 8.7, "median_spread": 3.5},
           "factorized": scores(0.668), "equalized": scores(0.495), "original": scores(0.205)}
    lines = equalize({"runs": {"vgg": row}, "machine": {}})
    table = [l for l in lines if l.startswith("| vgg |")]
    assert len(table) == 6  # three files on each of two runtimes
    assert [l.split(" | ")[3] for l in table[:3]] == ["original int8", "lrfc int8, as factorized",
                                                     "lrfc int8, equalized (a build's)"]
    assert "83.0% of MACs removed at 2.16 points; cp x7, svd x1" in table[0]
    assert table[1].split(" | ")[4:6] == ["91.50%", "91.00%"]  # the float model's top-1 beside its int8 file's
    summary = next(l for l in lines if l.startswith("- vgg: 22 inner tensors"))
    assert "LiteRT (XNNPACK) 0.6680 -> 0.4950" in summary and "ONNX Runtime CPU 0.6680 -> 0.4950" in summary
    assert not [l for l in lines if "as one operator, equalized" in l or l.startswith("| vgg | LiteRT")]
    assert equalize({"runs": {}}) == []

    # a run since CP's depthwise pair became one operator: that variant's rows, its cut, the side-by-side times
    names = ("original fp32", "original int8", "lrfc, pairs as two operators fp32", "lrfc fp32",
             "lrfc, pairs as two operators int8", "lrfc int8")
    row = {**row, "equalized_pairs_kept": scores(0.538), "equalized": scores(0.459),
           "timed": {rt: {"command": f"python -m runtime_bench ... --runtime {rt}",
                          "p50_ms": dict(zip(names, (0.5, 0.14, 0.165, 0.15, 0.168, 0.152)))}
                     for rt in ("litert", "onnxruntime-cpu")}}
    lines = equalize({"runs": {"vgg": row}, "machine": {}})
    table = [l for l in lines if l.startswith("| vgg |") and "int8 file" not in l]
    assert [l.split(" | ")[3] for l in table[:4]] == ["original int8", "lrfc int8, as factorized",
                                                     "lrfc int8, equalized, CP's pair as two operators",
                                                     "lrfc int8, equalized (a build's)"]
    pair = next(l for l in lines if "CP's depthwise pair as one operator, equalized" in l)
    assert "LiteRT (XNNPACK) 0.5380 -> 0.4590 (agreement 99.00% -> 99.00%)" in pair
    timing = next(l for l in lines if l.startswith("| vgg | LiteRT (XNNPACK) | 0.500 |"))
    assert timing.endswith("| 0.500 | 0.140 | 0.165 | 0.150 | 0.168 | 0.152 | 1.10x / 1.11x |")
