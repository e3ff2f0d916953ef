"""The benchmark stage's thread sweep: every file timed at 1, 2, ... threads up to the profile's, in one run."""

from __future__ import annotations

import pytest

from lrfc.benchmark.stage import _run, by_file, thread_counts
from lrfc.report.fmt import threads_line
from test_benchmark_agreement import _state


def test_thread_counts_run_in_powers_of_two_up_to_the_profiles():
    assert thread_counts(1) == [1] and thread_counts(2) == [1, 2] and thread_counts(4) == [1, 2, 4]
    assert thread_counts(6) == [1, 2, 4, 6] and thread_counts(8) == [1, 2, 4, 8]


def test_a_files_rows_of_a_sweep_become_one_row_with_its_fastest_count():
    rows = [{"name": "a", "p50_ms": 1.1}, {"name": "a", "p50_ms": 0.6}, {"name": "b", "p50_ms": 0.11},
            {"name": "b", "p50_ms": 0.16}, {"name": "c", "p50_ms": 0.2}, {"name": "c", "p50_ms": 0.2}]
    a, b, c = by_file(rows, [1, 2])
    assert a["p50_ms"] == 0.6 and a["p50_ms_by_threads"] == {"1": 1.1, "2": 0.6} and a["best_threads"] == 2
    assert b["p50_ms"] == 0.16 and (b["best_threads"], b["best_p50_ms"]) == (1, 0.11)
    assert c["best_threads"] == 1  # a tie: fewer threads leave the device's other cores free
    assert by_file(rows[:1], [2]) == rows[:1]  # one count: the rows as they are


def test_the_benchmark_times_each_file_at_every_thread_count_up_to_the_profiles(two_models, tmp_path):
    """Real LiteRT runs on a 2-thread profile: every file at 1 and 2 threads in one alternating run; the headline
    stays at the profile's count, each file's fastest count beside it, and the ratio of each at its fastest."""
    state, records = _state(tmp_path, two_models, None, [])
    state.profile.threads = 2
    run, _ = _run(state, "litert", "tflite", records)
    for row in (run.original, run.compressed):
        by = row["p50_ms_by_threads"]
        assert set(by) == {"1", "2"} and row["threads"] == 2 and row["p50_ms"] == by["2"]
        assert row["best_p50_ms"] == min(by.values()) == by[str(row["best_threads"])]
    r = run.ratios
    assert r["latency_p50"] == pytest.approx(run.original["p50_ms"] / run.compressed["p50_ms"], rel=1e-3)
    assert r["latency_p50_best_threads"] == pytest.approx(
        run.original["best_p50_ms"] / run.compressed["best_p50_ms"], rel=1e-3)
    best = run.to_json()["fastest"]
    faster = min((run.original, run.compressed), key=lambda row: row["best_p50_ms"])
    assert (best["name"], best["p50_ms"], best["threads"]) == (faster["name"], faster["best_p50_ms"],
                                                               faster["best_threads"])
    line = threads_line(run.to_json())
    assert line.startswith("litert: each file's fastest of 1, 2 threads: original fp32 on ")
    assert f"lrfc fp32 is {r['latency_p50_best_threads']:.2f}x as fast as the original fp32 ({r['latency_p50']:.2f}x " \
           "both on 2, the profile's)" in line

