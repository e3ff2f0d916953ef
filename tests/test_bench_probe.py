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
