"""bench.probe: one machine's re-run replaces its own rows and keeps the other machines'."""
import json

import pytest

import bench.probe as probe


def test_a_rerun_replaces_this_machines_rows_and_keeps_the_others(tmp_path, monkeypatch):
    results = tmp_path / "probe.json"
    results.write_text(json.dumps({"command": {"epyc/litert": "old", "xeon/litert": "old"},
                                   "runs": {"epyc/litert": {"peak_gops": {"int8": 886.0}},
                                            "xeon/litert": {"peak_gops": {"int8": 1.0}}}}))
    monkeypatch.setattr(probe, "RESULTS", results)
    monkeypatch.setattr(probe, "machine_key", lambda: "xeon")
    measured = {"peak_gops": {"fp32": 288.7, "int8": 4412.4}, "multiples": {"fp32": 8, "int8": 4},
                "bandwidth_gbps": 56.9, "op_overhead_us": 0.0, "date": "2026-12-03"}
    monkeypatch.setattr(probe, "run_probe", lambda runtime: (dict(measured, runtime=runtime), 42.0))
    probe.main(["--runtimes", "litert"])
    doc = json.loads(results.read_text())
    assert doc["runs"]["epyc/litert"] == {"peak_gops": {"int8": 886.0}} and doc["command"]["epyc/litert"] == "old"
    row = doc["runs"]["xeon/litert"]
    assert row["peak_gops"]["int8"] == 4412.4 and row["runtime"] == "litert" and row["wall_s"] == 42.0
    assert doc["command"]["xeon/litert"] == ("lrfc profiles probe --target host --device local --runtime litert "
                                             "--precisions fp32,int8 --out bench/work/probe/host-litert.toml --json")
    with pytest.raises(SystemExit, match="'tensorrt' is not one of"):
        probe.main(["--runtimes", "tensorrt"])


def test_two_machines_of_one_maker_get_their_own_rows(monkeypatch):
    """The AVX2 EPYC and the AVX-512 EPYC are both "AMD EPYC": the key is the machine's label, ISA included."""
    import bench.machine

    for isa, amx, key in (("AVX2, no AVX-512", False, "epyc-avx2"), ("AVX-512 VNNI", False, "epyc-avx-512")):
        monkeypatch.setattr(bench.machine, "machine", lambda isa=isa, amx=amx: {"cpu": "AMD EPYC", "isa": isa, "amx": amx})
        assert probe.machine_key() == key
    monkeypatch.setattr(bench.machine, "machine", lambda: {"cpu": "Intel(R) Xeon(R) Processor", "isa": "AVX-512",
                                                           "amx": True})
    assert probe.machine_key() == "xeon-avx-512-amx"


def test_the_table_reads_each_sweep_by_todays_rule_and_shows_what_its_run_read():
    from bench.render_speed import probe as render

    # ONNX Runtime int8 on the AVX2 EPYC, 2026-11-30 (rounded): multiples of 4 fast, steps at 48 -> 49
    sweep = {str(c): 0.100 + (0.02 if c > 48 else 0.0) + (0.015 if c % 4 else 0.0) for c in range(33, 65)}
    run = {"device": {"cpu": "AMD EPYC", "runtime_version": "1.32.0"}, "runtime": "onnxruntime-cpu",
           "peak_gops": {"int8": 832.1}, "bandwidth_gbps": 60.8, "op_overhead_us": 0.37, "date": "2026-11-30",
           "multiples": {"fp32": 16, "int8": 32}, "sweep_ms": {"int8": sweep}}
    row = next(line for line in render({"runs": {"epyc/onnxruntime-cpu": run}}) if line.startswith("| AMD EPYC"))
    assert row.split(" | ")[-3:] == ["16", "16 (32)", "2026-11-30 |"]
