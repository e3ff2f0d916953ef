"""The final benchmark against the search's whole-model timing of the same plan: re-timed when they disagree."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest

from lrfc.benchmark.stage import _run, disagrees, merge_rows, search_expectation
from lrfc.cost.devices import DeviceLink
from lrfc.cost.measure import Timed, WholeModel
from lrfc.report.fmt import agreement_line, timed_again_line


def _whole(status="measured", runtime="litert", rungs=((0, 0.2), (8, 0.25), (15, 0.3))):
    timed = tuple(Timed(level, f"l{level}", 1.0, measured_ms=ms, rung=rung) for level, (rung, ms) in
                  enumerate(rungs))
    return WholeModel(status, runtime, "fp32", original=Timed(None, "original", 1.0, measured_ms=0.9), rungs=timed)


def test_the_expected_speed_up_is_the_rungs_own_or_lies_between_its_timed_neighbours():
    whole = _whole()
    assert search_expectation(whole, 8) == pytest.approx((0.9 / 0.25, 0.9 / 0.25))
    assert search_expectation(whole, 10) == pytest.approx((0.9 / 0.3, 0.9 / 0.25))  # between rungs 8 and 15
    assert search_expectation(whole, 3) == pytest.approx((0.9 / 0.25, 0.9 / 0.2))
    # nothing to compare with: past the last timed rung, the original published, no measurement, no timing
    assert search_expectation(whole, 20) is None and search_expectation(whole, None) is None
    assert search_expectation(_whole(status="estimated"), 8) is None and search_expectation(None, 8) is None
    # a rung the frontier dropped (rung None) is not a neighbour
    dropped = WholeModel("measured", "litert", "fp32", Timed(None, "original", 1.0, measured_ms=0.9),
                         (Timed(0, "a", 1.0, 0.2, 0), Timed(1, "b", 1.0, 0.1, None), Timed(2, "c", 1.0, 0.3, 4)))
    assert search_expectation(dropped, 2) == pytest.approx((3.0, 4.5))


def test_a_speed_up_disagrees_beyond_the_factor_on_either_side():
    assert not disagrees(3.05, (3.46, 4.66)) and disagrees(3.0, (3.46, 4.66))  # 3.46 / 1.15 = 3.009
    assert disagrees(2.92, (3.46, 4.66))                   # the ResNet-style run of 2026-12-04 13:50
    assert not disagrees(5.35, (3.46, 4.66)) and disagrees(5.40, (3.46, 4.66))  # 4.66 x 1.15 = 5.359
    assert not disagrees(None, (1.0, 1.0))


def test_merged_rows_keep_each_files_lower_median_and_count_both_runs():
    first = [{"name": "o", "p50_ms": 1.2, "lifetimes": 2}, {"name": "c", "p50_ms": 0.44, "lifetimes": 2}]
    again = [{"name": "o", "p50_ms": 1.3, "lifetimes": 2}, {"name": "c", "p50_ms": 0.25, "lifetimes": 2}]
    merged = merge_rows(first, again)
    assert [(r["p50_ms"], r["lifetimes"]) for r in merged] == [(1.2, 4), (0.25, 4)]
    assert first[1]["lifetimes"] == 2  # the inputs are left as they were


def _state(tmp_path, files, whole, logged):
    staging = tmp_path / "staging"
    staging.mkdir()
    records = []
    for role, path in zip(("original", "compressed"), files):
        name = "original.tflite" if role == "original" else "model.tflite"
        shutil.copy(path, staging / name)
        records.append(SimpleNamespace(name=name, path=str(staging / name), accuracy=0.9, passed=True,
                                       precision="fp32"))
    state = SimpleNamespace(link=DeviceLink(), output=SimpleNamespace(staging=staging),
                            profile=SimpleNamespace(threads=1), options=SimpleNamespace(bench_runs=20), whole=whole,
                            level=0, log=logged.append, mac_totals=lambda: (1000, 500))
    return state, records


def _claiming_100x(runtime: str) -> WholeModel:
    """The search's timing on ``runtime``: the published rung (0) at 0.01 ms, the original at 1 ms."""
    return WholeModel("measured", runtime, "fp32", Timed(None, "original", 1.0, measured_ms=1.0),
                      (Timed(0, "a", 1.0, measured_ms=0.01, rung=0),))


def test_a_benchmark_far_from_the_searchs_timing_is_timed_again(two_models, tmp_path):
    """Real LiteRT runs; the search's timing claims 100x, which no run of these files reads: timed twice, said so."""
    logged = []
    state, records = _state(tmp_path, two_models, _claiming_100x("litert"), logged)
    run, device = _run(state, "litert", "tflite", records)
    a = run.agreement
    assert a["search"] == [100.0, 100.0] and a["retimed"] and not a["agrees"]
    assert a["final"] == run.ratios["latency_p50"] == pytest.approx(
        run.original["p50_ms"] / run.compressed["p50_ms"], rel=1e-3)
    assert run.original["lifetimes"] == run.compressed["lifetimes"] == 4  # both runs' workers
    assert run.timed_again == "strayed" and run.to_json()["timed_again"] == "strayed"
    assert run.original["runs"] >= 20 and run.original["accuracy"] == 0.9 and device["cores"] >= 1
    assert any("timing the files once more" in line for line in logged)
    line = agreement_line(run.to_json())
    assert line.startswith("litert: the search timed the published plan at 100.00x the original; this benchmark "
                           f"read {a['first']:.2f}x, timed again {a['final']:.2f}x (still outside")


def test_a_runtime_the_search_did_not_time_on_is_benchmarked_once(two_models, tmp_path):
    logged = []
    state, records = _state(tmp_path, two_models, _claiming_100x("onnxruntime-cpu"), logged)
    run, _ = _run(state, "litert", "tflite", records)
    assert run.agreement is None and "agreement" not in run.to_json() and "timed_again" not in run.to_json()
    assert run.original["lifetimes"] == 2 and not logged


def test_files_timed_with_the_cores_far_apart_throughout_are_timed_again(two_models, tmp_path):
    """Real LiteRT runs at 1 and 2 threads; the first run's rows say every round met the cores far apart (as a
    VM's two vCPUs on distant host cores do for seconds to minutes: runtime_bench.cores). No search timing on
    this runtime: the files are timed once more all the same, each keeping its lower median."""
    logged = []
    state, records = _state(tmp_path, two_models, None, logged)
    state.profile.threads = 2
    calls = []
    real = state.link.bench

    def flagged(*args, **kwargs):  # the first run's rows on several threads say far; real runs all the same
        report = real(*args, **kwargs)
        calls.append(kwargs["threads"])
        if len(calls) == 1:
            report["results"] = [dict(r, cores_far=r["threads"] != 1) for r in report["results"]]
        else:
            report["results"] = [dict(r, cores_far=True) for r in report["results"]] if kwargs["threads"] == 1 \
                else report["results"]
        return report

    state.link = SimpleNamespace(bench=flagged)
    run, _ = _run(state, "litert", "tflite", records)
    assert calls == [[1, 2], [1, 2]] and run.agreement is None
    assert run.original["lifetimes"] == run.compressed["lifetimes"] == 4
    # report.json says why (no search timing on this runtime to hold an ``agreement``), and so does the summary
    assert run.to_json()["timed_again"] == "cores_far"
    assert timed_again_line(run.to_json()) == (
        "litert: timed once more, as a file on several threads met this machine's cores far apart in every round "
        "(runtime_bench.cores); each file keeps the lower median of its two timings")
    assert any("cores far apart throughout" in line and "timing the files once more" in line for line in logged)
    # one thread hands no work over: a far flag on one-thread rows times nothing again
    calls.clear()
    logged.clear()
    state.profile.threads = 1
    run, _ = _run(state, "litert", "tflite", records)
    assert calls == [1] and run.original["lifetimes"] == 2 and not logged
