"""Whole-model measurement's rules (``cost.measure``): which rungs are timed, which the ladder keeps, the error."""

from __future__ import annotations

import pytest

from lrfc.cost.measure import MARGIN, Timed, WholeModel, frontier, inverted, runs_for, spread


def test_spread_takes_both_ends_and_evenly_between():
    assert spread(4, 10) == [0, 1, 2, 3]
    assert spread(21, 5) == [0, 5, 10, 15, 20]
    assert spread(100, 10)[0] == 0 and spread(100, 10)[-1] == 99 and len(spread(100, 10)) == 10
    assert spread(7, 1) == [0]
    assert spread(0, 10) == []


def test_frontier_keeps_only_rungs_faster_than_the_original_and_every_less_compressed_one():
    # rung 0 is the most compressed; rung 3 is slower than the original (1.0 ms)
    measured = {0: 0.30, 1: 0.45, 2: 0.40, 3: 1.05, 4: 0.90}
    # from the least compressed down: 4 (0.90 < 1.0), 3 no (slower), 2 (0.40), 1 no (0.45 > 0.40), 0 (0.30)
    assert frontier(measured, 1.0) == [0, 2, 4]
    # a rung within the margin of a faster, less compressed one gives up accuracy for nothing
    assert frontier({0: 0.9, 1: 1.0}, 2.0) == [0, 1]
    assert frontier({0: 1.0 - MARGIN / 2, 1: 1.0}, 2.0) == [1]
    # never slower than the original: nothing kept when every rung loses to it
    assert frontier({0: 1.2, 1: 1.1}, 1.0) == []
    assert frontier({0: 0.99}, 1.0) == []          # within the margin of the original


def test_a_rung_slower_than_a_less_compressed_kept_one_is_suspect():
    # kept: 4 (0.90), 2 (0.40), 0; the more compressed rungs 3 (1.05 > 0.90) and 1 (0.45 > 0.40) measured slower
    # than a kept, less compressed one: as on a busy machine; they would cut the ladder, so all are timed again
    measured = {0: 0.30, 1: 0.45, 2: 0.40, 3: 1.05, 4: 0.90}
    assert inverted(measured, 1.0) == [1, 3]
    assert inverted({0: 0.39, 1: 0.40}, 1.0) == []  # faster, by less than the margin: dropped, not inverted
    # the least compressed rung no faster than the original is not an inversion: nothing less compressed beat it
    assert inverted({0: 0.5, 1: 0.99}, 1.0) == []
    assert inverted({0: 0.5, 1: 0.7, 2: 0.9}, 1.0) == []  # latency falls with compression: nothing suspect
    assert inverted({0: 1.1, 1: 0.8}, 1.0) == [0]


def test_runs_per_turn_follow_the_models_time():
    assert runs_for(0.05) == 5 * 60   # tiny: the most per turn
    assert runs_for(1.0) == 5 * 25
    assert runs_for(200.0) == 5 * 10  # big: the fewest


def test_cost_model_error_with_and_without_the_originals_remainder():
    original = Timed(None, "original", predicted_ms=0.8, measured_ms=1.0)
    rungs = (Timed(0, "a", 0.2, 0.5, 0), Timed(3, "b", 0.4, 0.6, 1))
    err = WholeModel("measured", "litert", "fp32", original, rungs).error()
    # per-layer sum: |0.2-0.5|/0.5 = 0.6, |0.4-0.6|/0.6 = 0.333; median 0.4667
    assert err["per_layer_sum"] == pytest.approx(0.4667, abs=1e-4)
    # with the original's unpriced 0.2 ms: |0.4-0.5|/0.5 = 0.2, |0.6-0.6| = 0; median 0.1
    assert err["with_remainder"] == pytest.approx(0.1, abs=1e-4) and err["rungs"] == 2
    # scaled by 1.0/0.8: |0.25-0.5|/0.5 = 0.5, |0.5-0.6|/0.6 = 0.1667; median 0.3333
    assert err["scaled"] == pytest.approx(0.3333, abs=1e-4)
    assert WholeModel("estimated", None, "fp32", original, (Timed(0, "a", 0.2),)).error() == {}


# ------------------------------------------------------------------ lrfc profiles probe

from lrfc.cost.probe import Probe, channel_multiple, profile_toml  # noqa: E402


def test_channel_multiple_is_where_rounding_up_is_free():
    # latency steps every 8 channels: 33..40 cost what 40 costs, and so on
    steps = {c: 1.0 + 0.1 * (-(-c // 8)) for c in range(33, 65)}
    assert channel_multiple(steps) == 8
    # every channel costs more (smooth): no multiple is free
    assert channel_multiple({c: 0.01 * c for c in range(33, 65)}) == 1
    # steps of 16 are also steps of 8, 4 and 2: the largest free multiple wins
    assert channel_multiple({c: 1.0 + 0.1 * (-(-c // 16)) for c in range(33, 65)}) == 16


def test_channel_multiple_judges_a_coarser_grid_against_the_finer_one():
    # ONNX Runtime's int8 1x1 convs on the AVX-512 EPYC: counts off a multiple of 4 run ~20 % slow, and latency
    # steps every 16. Rounding up to 32 looks free against every count (most are slow ones), but against the
    # grid of 16 it replaces it costs a whole step: 48 -> 64 is +20 %.
    times = {c: 1.0 + 0.2 * (-(-c // 16)) + (0.25 if c % 4 else 0.0) for c in range(33, 65)}
    assert channel_multiple(times) == 16
    # the same sweep read against every count, as before session 57, would pick 32
    ups = [(times[-(-c // 32) * 32] / times[c] - 1.0) for c in times if c % 32]
    assert sorted(ups)[len(ups) // 2] < 0
    # measured (bench/results/probe.json, 2026-11-30, read 32 then): multiples of 4 fast, a step at 48 -> 49
    epyc = {33: 0.106, 34: 0.110, 35: 0.112, 36: 0.096, 37: 0.109, 38: 0.112, 39: 0.115, 40: 0.097, 41: 0.113,
            42: 0.116, 43: 0.119, 44: 0.100, 45: 0.155, 46: 0.118, 47: 0.121, 48: 0.099, 49: 0.132, 50: 0.134,
            51: 0.136, 52: 0.116, 53: 0.134, 54: 0.136, 55: 0.139, 56: 0.118, 57: 0.137, 58: 0.140, 59: 0.143,
            60: 0.119, 61: 0.141, 62: 0.143, 63: 0.146, 64: 0.120}
    # 16's round-up from the grid of 8 (40 -> 48, 56 -> 64) costs about 2 %, at FREE_MAX: either side of it is
    # the noise of these readings; 32 (+21 % for 48 -> 64) is out
    assert channel_multiple(epyc) in (8, 16)


def test_probed_profile_round_trips_with_measured_sources(tmp_path):
    from lrfc.targets import load_profile

    base = load_profile("raspberry-pi-5")
    measured = Probe({"cpu": "Cortex-A76", "transport": "ssh://pi@board", "runtime_version": "1.4.0"}, "litert", 4,
                     "2026-11-30", peak_gops={"fp32": 61.5, "int8": 210.0}, bandwidth_gbps=7.2, op_overhead_us=3.1,
                     multiples={"fp32": 8, "int8": 16})
    path = tmp_path / "pi.toml"
    path.write_text(profile_toml(base, measured))
    p = load_profile(str(path))
    assert p.runtimes == base.runtimes and p.precision == base.precision and p.threads == 4
    assert p.peak_gflops["fp32"].value == 61.5 and p.peak_gflops["int8"].value == 210.0
    assert "Measured on Cortex-A76 via ssh://pi@board" in p.peak_gflops["fp32"].source
    assert p.peak_gflops["fp16"] == base.peak_gflops["fp16"]  # not probed: the published figure stays
    assert p.memory_bandwidth_gbps.value == 7.2 and "2026-11-30" in p.memory_bandwidth_gbps.source
    assert p.multiple_for("litert") == 8 and p.multiple_for("litert", "int8") == 16
    assert p.multiple_for("onnxruntime-cpu") == 1


def test_a_probe_reading_above_a_data_sheet_ceiling_keeps_the_ceiling(tmp_path):
    """The H200's 60 MB L2 holds most of the probe's 64 MiB tensor: 5.9 TB/s read against 4.8 on the data sheet.
    A data-sheet ceiling stays (with the reading in its source); a nominal figure does not (host's 20 GB/s)."""
    from dataclasses import replace

    from lrfc.targets import Figure, load_profile

    measured = Probe({"cpu": "Xeon", "gpu": "NVIDIA H200"}, "onnxruntime-cuda", 8, "2026-12-04",
                     peak_gops={"fp32": 5129.5}, bandwidth_gbps=5933.19, op_overhead_us=6.27, multiples={"fp32": 4})
    path = tmp_path / "h200.toml"
    sheet = Figure(4800.0, "NVIDIA H200 Tensor Core GPU data sheet (SXM): GPU memory bandwidth 4.8 TB/s")
    path.write_text(profile_toml(replace(load_profile("nvidia-h200"), memory_bandwidth_gbps=sheet), measured))
    p = load_profile(str(path))
    assert p.memory_bandwidth_gbps.value == 4800.0 and "read 5933.19 on this device" in p.memory_bandwidth_gbps.source
    assert p.peak_gflops["fp32"].value == 5129.5 and "Measured on NVIDIA H200 (host Xeon)" in p.peak_gflops["fp32"].source
    assert p.op_overhead_us.value == 6.27 and "one more add" in p.op_overhead_us.source
    path.write_text(profile_toml(load_profile("host"), measured))  # a nominal base is no ceiling
    assert load_profile(str(path)).memory_bandwidth_gbps.value == 5933.19


def test_probing_a_gpu_board_s_cpu_runtime_writes_the_cpu_s_figures(tmp_path):
    """``lrfc profiles probe --target jetson-orin-nano --runtime litert`` measures the board's CPU: its figures
    go to [cpu] (what a --formats tflite build estimates with), the GPU's stay as published; probing the GPU
    keeps the published [cpu] table."""
    from lrfc.targets import load_profile, with_formats

    base = load_profile("jetson-orin-nano")
    measured = Probe({"cpu": "Cortex-A78AE", "transport": "ssh://nv@orin"}, "litert", 6, "2026-12-07",
                     peak_gops={"fp32": 61.2, "fp16": 60.8}, bandwidth_gbps=31.5, op_overhead_us=2.4,
                     multiples={"fp32": 4, "fp16": 4})
    path = tmp_path / "orin-cpu.toml"
    path.write_text(profile_toml(base, measured))
    p = load_profile(str(path))
    assert p.peak_gflops == base.peak_gflops and p.memory_bandwidth_gbps == base.memory_bandwidth_gbps
    assert p.op_overhead_us == base.op_overhead_us and p.onnx_opset == base.onnx_opset
    assert p.cpu.peak_gflops["fp16"].value == 60.8 and "Measured on Cortex-A78AE" in p.cpu.peak_gflops["fp16"].source
    assert p.cpu.peak_gflops["int8"] == base.cpu.peak_gflops["int8"]  # not probed: the published figure stays
    assert (p.cpu.memory_bandwidth_gbps.value, p.cpu.op_overhead_us.value) == (31.5, 2.4)
    assert p.multiple_for("litert") == 4 and p.cpu.description == base.cpu.description
    cpu = with_formats(p, ("tflite",))
    assert (cpu.peak.value, cpu.memory_bandwidth_gbps.value, cpu.op_overhead_us.value) == (60.8, 31.5, 2.4)
    gpu_probe = Probe({"gpu": "Orin"}, "onnxruntime-cuda", 6, "2026-12-07", peak_gops={"fp32": 900.0})
    path.write_text(profile_toml(base, gpu_probe))
    p = load_profile(str(path))
    assert p.peak_gflops["fp32"].value == 900.0 and p.cpu == base.cpu


@pytest.mark.parametrize("args, words", [
    (["--out", "{tmp}/board.txt"], "; expected a .toml file"),
    (["--out", "{tmp}/nowhere/board.toml"], "/nowhere' does not exist"),
    (["--out", "{tmp}/board.toml", "--runtime", "onnxruntime-tensorrt"], "--runtime: received 'onnxruntime-tensorrt'"),
    (["--out", "{tmp}/board.toml", "--precisions", "fp16"], "--precisions: received fp16"),
    (["--out", "{tmp}/board.toml", "--target", "no-such-board"], "unknown profile 'no-such-board'"),
])
def test_probe_bad_input_is_one_line_exit_2(args, words, tmp_path):
    from conftest import run_cli

    res = run_cli("profiles", "probe", *[a.format(tmp=tmp_path) for a in args])
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().count("\n") == 0 and words in res.stderr
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_probe_exported_for_an_unreachable_device_comes_back_as_a_profile(tmp_path, monkeypatch):
    """``--export`` lowers the models and names the device's command; the device's runtime_bench JSON (here: this
    machine's, a few runs) comes back as results.json; ``--import`` reads the figures off it and writes a
    profile whose sources say where they were measured, the per-operator overhead included."""
    import json

    import lrfc.cost.probe as probe
    from runtime_bench.measure import bench

    monkeypatch.setattr(probe, "SWEEP", (33, 36))  # 4 sweeps, not 32: the read-off is the same
    folder = tmp_path / "probe"
    manifest, profile = probe.run_probe("host", None, runtime="onnxruntime-cpu", precisions=["fp32"],
                                        export=str(folder), log=lambda m: None)
    assert profile is None and (folder / "probe.json").is_file()
    files = [f for f, _ in manifest["models"]["fp32"].values()]
    assert len(files) == 1 + 4 + 4 and all((folder / f).is_file() for f in files)
    assert manifest["command"].startswith(f"python3 -m runtime_bench {' '.join(files)} --runtime onnxruntime-cpu")
    assert manifest["command"].endswith("--no-memory --lifetimes 3 --json > results.json")
    with pytest.raises(Exception, match="run `python3 -m runtime_bench"):  # nothing came back yet
        probe.run_probe("host", str(tmp_path / "x.toml"), import_from=str(folder))
    report = bench([str(folder / f) for f in files], runtime="onnxruntime-cpu", runs=3, rounds=1, warmup=1,
                   memory=False)
    (folder / "results.json").write_text(json.dumps(report))
    measured, profile = probe.run_probe("host", str(tmp_path / "board.toml"), import_from=str(folder))
    ms = {name: row["min_ms"] for name, row in zip(manifest["models"]["fp32"], report["results"])}
    macs = manifest["models"]["fp32"]["compute"][1]
    assert measured.peak_gops["fp32"] == pytest.approx(round(2 * macs / (ms["compute"] * 1e6), 1))
    assert measured.op_overhead_us == round(max(ms["small5"] - ms["small1"], 0.0) * 1e3 / 4, 2)
    assert set(measured.sweep_ms["fp32"]) == {33, 34, 35, 36} and measured.runtime == "onnxruntime-cpu"
    assert profile.peak_gflops["fp32"].value == measured.peak_gops["fp32"]
    assert "Measured on" in profile.peak_gflops["fp32"].source
    if measured.op_overhead_us > 0:
        assert profile.op_overhead_us.value == measured.op_overhead_us
    else:
        assert profile.op_overhead_us is None
    assert measured.io == "host" and "on the device" not in profile.peak_gflops["fp32"].source

    # A GPU's probe is timed with its inputs and outputs on the device; the profile's sources say so.
    gpu = {"runtime": "onnxruntime-cuda", "threads": 8, "models": manifest["models"]}
    assert probe.device_command(gpu).endswith("--lifetimes 3 --io device --json > results.json")
    for row in report["results"]:
        row["io"] = "device"
    (folder / "results.json").write_text(json.dumps(report))
    measured, profile = probe.run_probe("host", str(tmp_path / "board2.toml"), import_from=str(folder))
    assert measured.io == "device"
    assert profile.peak_gflops["fp32"].source.startswith("Measured on") and \
        "threads, inputs and outputs on the device, " in profile.peak_gflops["fp32"].source


def test_probe_export_and_import_refuse_what_does_not_fit_in_one_line(tmp_path):
    from conftest import run_cli

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    for args, words in ((["--export", "{tmp}/e", "--device", "ssh://a@b"], "--export: lowers the probe"),
                        (["--export", "{tmp}/full"], "exists and is not empty"),
                        (["--import", "{tmp}/none", "--out", "{tmp}/b.toml"], "is not a folder"),
                        (["--import", "{tmp}/full", "--out", "{tmp}/b.toml"], "cannot read the exported probe"),
                        (["--export", "{tmp}/e", "--out", "{tmp}/b.toml"], "give --out with --import"),
                        (["--import", "{tmp}/full", "--out", "{tmp}/b.toml", "--runtime", "litert"],
                         "takes no --runtime or --precisions"),
                        (["--target", "host"], "--out: missing")):
        res = run_cli("profiles", "probe", *[a.format(tmp=tmp_path) for a in args])
        assert res.returncode == 2 and res.stderr.strip().count("\n") == 0 and words in res.stderr, res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]  # nothing written


def test_the_ladder_keeps_the_rungs_between_neighbouring_frontier_rungs():
    from lrfc.cost.measure import between

    picks = [0, 5, 10, 15, 20]
    assert between(picks, [0, 5, 10, 15, 20]) == list(range(21))  # latency falls steadily: full resolution
    # 10 was dropped (slower than a less compressed rung): the levels next to it go too
    assert between(picks, [0, 5, 15, 20]) == [0, 1, 2, 3, 4, 5, 15, 16, 17, 18, 19, 20]
    assert between(picks, []) == [] and between([0, 3], [3]) == [3]


def test_timing_again_keeps_each_files_lower_median_and_stores_it(monkeypatch, tmp_path):
    """``timed_ms(floor=...)``: the cost database is not consulted, every file is timed, each keeps its lower number;
    the files lowered the first time are timed again, not lowered again."""
    import contextlib
    from types import SimpleNamespace

    import numpy as np

    import lrfc.cost.measure as measure
    import lrfc.lower.artifacts as artifacts
    from lrfc.plan import LayerChoice, Plan

    stored, runs = {}, iter([[0.60, 0.30, 0.70], [0.55, 0.40, 0.45]])  # original first; two measurements
    pricer = SimpleNamespace(recall=lambda sigs, precision: dict(stored),
                             remember=lambda rows, precision, replace: stored.update({r[0]: r[1] for r in rows}))
    state = SimpleNamespace(pricer=pricer, binary=None, profile=SimpleNamespace(precision="fp32", threads=2, runtimes=("litert",), onnx_opset=17),
                            link=object(),
                            flat=SimpleNamespace(to_json=lambda: "{}"), splits=SimpleNamespace(x_calib=np.zeros((4, 2))),
                            original_ms={"a": 0.5}, progress=lambda *a: contextlib.nullcontext(SimpleNamespace(update=lambda *a: None)))
    exported = []

    def export_file(model, fmt, path, precision, calib, onnx_int8="u8s8", opset=17):
        exported.append(path.name)
        path.write_bytes(b"lowered")
        return path

    monkeypatch.setattr(artifacts, "export_file", export_file)
    monkeypatch.setattr(measure, "time_files", lambda link, paths, runtime, threads, guess: [
        {"p50_ms": ms, "p90_ms": ms, "runs": 10} for ms in next(runs)])
    models = [(Plan(()), lambda: None)] + [(Plan((LayerChoice("c", "cp", (r,), True),)), lambda: None) for r in (16, 32)]
    first = measure.timed_ms(state, models, "tflite", "litert", tmp_path)
    assert first == ([0.60, 0.30, 0.70], True)
    assert exported == ["model0.tflite", "model1.tflite", "model2.tflite"]
    assert measure.timed_ms(state, models, "tflite", "litert", tmp_path) == (first[0], False)  # read back, not timed
    again, timed = measure.timed_ms(state, models, "tflite", "litert", tmp_path, floor=first[0])
    assert timed and again == [0.55, 0.30, 0.45]            # each file's lower of its two measurements
    assert sorted(stored.values()) == sorted(again)         # and that is what the cost database keeps
    assert len(exported) == 3                               # timed again from the files already lowered


def test_stored_timings_with_an_inversion_are_timed_afresh(monkeypatch):
    """A build on a loaded machine stored rungs slower than the original beside one deeper rung faster than all; the
    next build read them back and published the same shallow plan. Numbers read back are believed only without an
    inversion: with one, every file is timed afresh (``recall=False``), and the frontier is drawn from those."""
    from types import SimpleNamespace

    import lrfc.cost.devices
    import lrfc.cost.measure as measure

    levels = [SimpleNamespace(label=f"rung {i}", cost=1.0 - i / 10, choices={}, to_json=lambda: {"choices": {}})
              for i in range(4)]
    logs = []
    state = SimpleNamespace(levels=levels, options=SimpleNamespace(max_sol=4), original_ms={"a": 0.3}, link=object(),
                            profile=SimpleNamespace(precision="int8", runtimes=("litert",)), log=logs.append)
    monkeypatch.setattr(lrfc.cost.devices, "measured_runtimes", lambda profile, link: (["litert"], {}))
    stored = [0.22, 0.12, 0.25, 0.26, 0.21]   # original first: rungs 0, 2 and 3 slower than the least compressed (3)
    idle = [0.22, 0.10, 0.11, 0.13, 0.16]     # what the files run in fact: faster with every rung down the ladder
    calls = []

    def timed_ms(state_, models, fmt, runtime, work, floor=None, recall=True):
        calls.append((recall, floor))
        if recall and floor is None:
            return list(stored), False
        return list(idle) if floor is None else [min(a, b) for a, b in zip(idle, floor)], True

    monkeypatch.setattr(measure, "timed_ms", timed_ms)
    whole = measure.measure_ladder(state)
    assert calls == [(True, None), (False, None)]  # read back, then timed afresh; no inversion left: done
    assert whole.ladder == (0, 1, 2, 3) and [t.measured_ms for t in whole.rungs] == idle[1:]
    assert logs == ["measure: the cost database's timings of these models have a rung slower than a less compressed "
                    "one; timing them afresh"]
    calls.clear()
    stored = list(idle)  # read back without an inversion: believed, not timed
    assert measure.measure_ladder(state).ladder == (0, 1, 2, 3) and calls == [(True, None)]
