"""`lrfc build` end to end with the latency objective: measured costs, verified artifacts, benchmark."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import run_cli

LATENCY = ["--data", "fashion-mnist", "--objective", "latency", "--epochs", "1", "--train-samples", "2000",
           "--calib-samples", "200", "--step", "10", "--max-rounds", "1", "--methods", "tucker,tt,svd,qr",
           "--bench-runs", "20"]


@pytest.fixture(scope="module")
def latency_builds(tiny_model_path, tmp_path_factory):
    """The same latency build twice against one cost database."""
    root = tmp_path_factory.mktemp("latency")
    common = [*LATENCY, "--cache-dir", str(root / "cache"), "--cost-db", str(root / "costs.sqlite"), "--json"]
    reports = []
    for name in ("a", "b"):
        res = run_cli("build", str(tiny_model_path), *common, "--out", str(root / name), timeout=600)
        assert res.returncode == 0, res.stderr
        reports.append(json.loads(res.stdout))
    return root, reports


def test_latency_costs_are_measured_then_reused(latency_builds):
    root, (first, second) = latency_builds
    assert first["cost_source"] == "measured"
    costs = first["costs"]
    assert costs["runtime"] == "litert" and costs["threads"] == 2 and costs["precision"] == "fp32"
    assert costs["measured"] > 0 and len(costs["device"]["id"]) == 16
    assert Path(costs["db"]) == root / "costs.sqlite"
    # a second build on the same device measures nothing new and chooses the same plan
    assert second["costs"]["measured"] == 0 and second["costs"]["reused"] >= costs["measured"]
    assert (root / "a" / "plan.json").read_text() == (root / "b" / "plan.json").read_text()
    # every candidate the selector could pick carries its latency; the chosen ones beat the original layer
    passing = [c for c in first["search"]["candidates"] if c["similarity"] >= first["threshold"]]
    assert passing and all(c["measured_ms"] is not None and c["measured_ms"] > 0 for c in passing)
    for layer in first["layers"]:
        if layer["method"] is not None:
            assert layer["latency_ms_after"] < layer["latency_ms_before"]


def test_artifacts_are_written_verified_and_reported(latency_builds):
    root, (report, _) = latency_builds
    arts = {(a["model"], a["format"]): a for a in report["artifacts"]}
    assert set(arts) == {("compressed", "tflite"), ("compressed", "onnx"), ("original", "tflite"), ("original", "onnx")}
    for (role, fmt), a in arts.items():
        path = Path(a["path"])
        assert path.name == f"{'model' if role == 'compressed' else 'original'}.{fmt}"
        assert path.stat().st_size == a["bytes"] > 1000
        assert a["passed"] and a["precision"] == "fp32"
        assert a["max_abs_diff"] < 1e-4 and a["top1_agreement"] >= 0.99 and a["samples"] > 0
    assert not list((root / "a").glob("*.partial*"))


def test_benchmark_compares_original_and_compressed_side_by_side(latency_builds):
    _, (report, _) = latency_builds
    bench = report["benchmarks"]
    assert bench["status"] == "measured"
    assert [r["runtime"] for r in bench["runs"]] == ["litert", "onnxruntime-cpu"]
    # the device is the machine; each run names its own runtime and version
    assert "runtime" not in bench["device"] and bench["device"]["cores"] == os.cpu_count()
    assert all(r["runtime_version"] and len(r["device_id"]) == 16 for r in bench["runs"])
    for run in bench["runs"]:
        o, c = run["original"], run["compressed"]
        assert o["name"] == f"original.{run['format']}" and c["name"] == f"model.{run['format']}"
        assert o["runs"] == c["runs"] >= 20
        assert run["ratios"]["latency_p50"] == pytest.approx(o["p50_ms"] / c["p50_ms"], rel=1e-3)
        assert run["ratios"]["file_bytes"] == pytest.approx(o["file_bytes"] / c["file_bytes"], rel=1e-3)
        assert run["ratios"]["macs"] == pytest.approx(report["original"]["macs"] / report["compressed"]["macs"], rel=1e-3)
        assert o["peak_rss_mb"] > 20 and c["peak_rss_mb"] > 20


def test_unreachable_target_is_estimated_and_says_so(tiny_model_path, tmp_path):
    res = run_cli("build", str(tiny_model_path), *LATENCY, "--target", "jetson-orin-nano", "--finetune", "none",
                  "--formats", "tflite", "--out", str(tmp_path / "j"), "--cache-dir", str(tmp_path / "cache"),
                  "--cost-db", str(tmp_path / "costs.sqlite"), timeout=600)
    assert res.returncode == 0, res.stderr
    report = json.loads((tmp_path / "j" / "report.json").read_text())
    assert report["cost_source"] == "estimated" and report["costs"]["measured"] == 0 and report["costs"]["estimated"] > 0
    assert "roofline" in report["costs"]["basis"]
    assert report["benchmarks"]["status"].startswith("not measured: target jetson-orin-nano is not reachable")
    assert [a["precision"] for a in report["artifacts"]] == ["fp16", "fp16"]  # the profile's precision
    cost_line = next(l for l in res.stdout.splitlines() if l.startswith("cost "))
    assert "estimated" in cost_line and "measured" not in cost_line.replace("not measured", "")
    assert "latency costs: estimated, not measured" in res.stderr
    assert not (tmp_path / "costs.sqlite").exists()  # nothing measured, nothing stored


def test_bad_device_url_is_one_line_exit_2(tiny_model_path, tmp_path):
    res = run_cli("build", str(tiny_model_path), *LATENCY, "--device", "ssh://-oProxyCommand=x", "--out", str(tmp_path / "x"))
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "--device" in res.stderr
