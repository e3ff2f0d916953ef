"""runtime_bench.cores: the probe of how far apart two cores are, and the rounds ``measure.bench`` keeps by it.

On a cloud VM two virtual CPUs sit on distant host cores for seconds to minutes at a time, and a runtime's
threads hand work over slower then (docs/LOG.md, session 56: ONNX Runtime at 2 threads 0.207 ms with the
probe at 0.43 us, 0.41 ms at 0.75 us). The probe is real (a partner process, shared memory, pinned CPUs);
the round selection is checked with a scripted probe, since no test can order the hypervisor around.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from test_runtime_bench import write_onnx

from runtime_bench import cores, measure

TWO_CORES = pytest.mark.skipif(cores.usable_cores() < 2, reason="the probe needs two cores")


def test_a_round_is_far_when_a_probe_around_it_reads_well_above_the_lowest():
    # probes[r] before round r, probes[r + 1] after it
    assert cores.far_rounds([0.4, 0.42, 0.75, 0.44, 0.41]) == [False, True, True, False]
    # the bound is FAR times the lowest: 0.55 is near against 0.4 (1.375x), 0.57 is not (1.425x)
    assert cores.far_rounds([0.4, 0.55, 0.57]) == [False, True]
    # a probe that did not answer judges nothing; the lowest seen before this run counts as well
    assert cores.far_rounds([None, 0.43, None]) == [False, False]
    assert cores.far_rounds([0.75, 0.76, 0.74]) == [False, False]
    assert cores.far_rounds([0.75, 0.76, 0.74], lowest=0.43) == [True, True]
    assert cores.far_rounds([None, None]) == [False]


@TWO_CORES
def test_a_probe_reads_a_round_trip_and_leaves_nothing_behind(monkeypatch, tmp_path):
    memory = str(tmp_path / "cores.json")
    monkeypatch.setattr(cores, "_lowest_seen", [])
    monkeypatch.setattr(cores, "memory_path", lambda: memory)
    probe = cores.Probe()
    partner, path = probe._partner, probe._path
    mask = os.sched_getaffinity(0)
    try:
        reads = [probe.round_trip_us(settle=0) for _ in range(5)]
    finally:
        probe.close()
    got = [r for r in reads if r is not None]
    # a Python loop's round trip through one cache line: about 0.4-1 us on the machines seen; never a scheduler tick
    assert got and all(0.01 < r < 100 for r in got), reads
    assert probe.lowest == min(got) and cores._lowest_seen == [min(got)]
    assert os.sched_getaffinity(0) == mask  # this thread's CPUs given back after each probe
    assert partner.poll() is not None and not os.path.exists(path)
    probe.close()  # twice is fine
    # a later probe in this process starts from the lowest round trip read so far
    later = cores.Probe()
    try:
        assert later.lowest == min(got)
    finally:
        later.close()
    if cores._boot_id() is None:
        return
    # so does one in another process, since this boot: a run that meets the cores far apart throughout can tell
    code = ("import sys; from runtime_bench import cores; cores.memory_path = lambda: sys.argv[1]; "
            "p = cores.Probe(); print(p.lowest); p.close()")
    out = subprocess.run([sys.executable, "-c", code, memory], capture_output=True, text=True, check=True)
    assert float(out.stdout) == min(got)
    # another boot's lowest, or another pair of CPUs', is not this one's
    with open(memory, "w") as f:
        json.dump({"boot": "another", "pair": list(probe._pair), "lowest_us": 0.1}, f)
    assert cores.remembered(probe._pair) is None
    cores.remember((5, 7), 0.2)
    assert cores.remembered((5, 7)) == 0.2 and cores.remembered(probe._pair) is None


class _Scripted:
    """A probe that reads what it is told to (the hypervisor's moves cannot be ordered in a test)."""

    def __init__(self, reads, lowest=None):
        self.reads, self.lowest = iter(reads), lowest

    def round_trip_us(self):
        value = next(self.reads)
        if value is not None:
            self.lowest = value if self.lowest is None else min(self.lowest, value)
        return value


class _Rounds:
    """A worker whose every turn returns its round number, so the rounds kept can be read off the times."""

    def __init__(self, files):
        self.turns, self.files = 0, files

    def run(self, index, count):
        self.turns += 1
        return [float((self.turns - 1) // self.files)] * count


def _slots(files=2):
    worker = _Rounds(files)
    return [(worker, i) for i in range(files)]


def test_rounds_with_the_cores_far_apart_are_run_again_and_left_out():
    # round 0 near; 1, 2, 3 far (a probe around each read 0.8); 4 and 5 near: three near rounds, so it stops there
    times, far, far_kept, spread = measure._timed_rounds(
        _slots(), rounds=3, per_round=2, probe=_Scripted([0.4, 0.4, 0.8, 0.8, 0.4, 0.41, 0.42]))
    assert times == [[0.0, 0.0, 4.0, 4.0, 5.0, 5.0]] * 2
    assert (far, far_kept, spread) == (3, False, [0.4, 0.42])


def test_where_too_few_rounds_were_near_only_those_are_kept():
    # 3 rounds asked, at most 9 run; only rounds 0 and 8 near: times of both states together would skew ratios
    reads = [0.4, 0.4] + [0.8] * 6 + [0.4, 0.4]
    times, far, far_kept, _ = measure._timed_rounds(_slots(), rounds=3, per_round=1, probe=_Scripted(reads))
    assert times == [[0.0, 8.0]] * 2 and far == 7 and far_kept is False


def test_where_no_round_was_near_the_rounds_read_lowest_are_kept_and_said_far():
    # a run that started with the cores far apart, judged against the lowest this process read before (0.43)
    reads = [0.80, 0.78, 0.95, 0.95, 0.76, 0.74, 0.95, 0.95, 0.95, 0.95]
    times, far, far_kept, spread = measure._timed_rounds(_slots(), rounds=3, per_round=1,
                                                         probe=_Scripted(reads, lowest=0.43))
    assert far == 9 and far_kept is True  # all nine rounds run (MAX_ROUNDS_FACTOR 3), every one far
    # the three whose higher probe read lowest: round 4 (0.76), round 0 (0.80), then round 1 of the 0.95s
    assert times == [[4.0, 0.0, 1.0]] * 2 and spread == [0.74, 0.95]


def test_without_a_probe_every_round_is_kept():
    times, far, far_kept, spread = measure._timed_rounds(_slots(), rounds=2, per_round=3, probe=None)
    assert times == [[0.0] * 3 + [1.0] * 3] * 2 and (far, far_kept, spread) == (0, False, None)


def test_the_table_and_the_build_say_when_rounds_ran_with_the_cores_far_apart():
    near = {"name": "a.onnx", "threads": 2, "rounds_far": 0, "cores_far": False, "core_round_trip_us": [0.42, 0.45]}
    assert measure.cores_note([near]) is None
    dropped = dict(near, rounds_far=3)
    assert measure.cores_note([near, dropped]) == ("3 rounds with the cores far apart left out (runtime_bench.cores): "
                                                   "the times come from rounds with the cores near")
    stuck = dict(near, name="b.onnx", rounds_far=15, cores_far=True, core_round_trip_us=[0.74, 0.98])
    one = dict(stuck, name="b1.onnx", threads=1)  # one thread hands nothing over: not named
    assert measure.cores_note([near, stuck, one]) == (
        "no round ran with the cores near (runtime_bench.cores; core round trip 0.74-0.98 us): the times of b.onnx "
        "on several threads may read slower than this machine runs them with its cores near")


@TWO_CORES
def test_bench_probes_where_a_file_runs_on_several_threads(tmp_path):
    path = str(tmp_path / "m.onnx")
    write_onnx(path)
    two, one = measure.bench([path], threads=[2, 1], runs=4, warmup=1, rounds=2)["results"]
    assert isinstance(two["rounds_far"], int) and isinstance(two["cores_far"], bool)
    if two["core_round_trip_us"] is None:
        # no probe around the rounds kept answered: the partner found no free core (a busy machine: the suite beside
        # a busy loop, where 10 ms of ping-pong got under 10 round trips); such probes judge nothing, so the rounds
        # kept are near ones, and where no other probe read far either, every round is kept
        assert two["cores_far"] is False and (two["rounds_far"] > 0 or two["runs"] == 4)
    else:
        lo, hi = two["core_round_trip_us"]
        assert 0 < lo <= hi < 100
    assert two["runs"] in (2, 4) and two["rounds"] == 2
    # the one-thread worker ran in the same group (the same rounds kept): it carries the group's probes too
    assert one["core_round_trip_us"] == two["core_round_trip_us"] and one["runs"] == two["runs"]
    alone = measure.bench([path], threads=1, runs=4, warmup=1, rounds=2)["results"][0]
    assert (alone["core_round_trip_us"], alone["rounds_far"], alone["cores_far"], alone["runs"]) == (None, 0, False, 4)
    shared = measure.bench([path], threads=2, runs=4, warmup=0, rounds=2, memory=False)["results"][0]
    assert shared["core_round_trip_us"] is None and shared["runs"] == 4  # chain prices: estimates, not held up
