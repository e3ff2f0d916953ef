"""A golden build: a fixed model and command give the same plan, candidates and report keys as recorded.

The fixture (tests/fixtures/golden/, see its README) guards against changes that alter a plan without meaning
to; one that means to rewrites the fixture and says so. Report keys may grow, never shrink.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli

GOLDEN = Path(__file__).parent / "fixtures" / "golden"


def key_paths(obj, prefix: str = "") -> set[str]:
    """Every key of a JSON document as a dotted path; list items share one ``[]`` path, and so do keys that are
    numbers (``budget_search.proxy_drops.#``: which rungs a search looked at is data, not the report's shape)."""
    out: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            k = "#" if str(k).isdigit() else k
            path = f"{prefix}.{k}" if prefix else k
            out.add(path)
            out |= key_paths(v, path)
    elif isinstance(obj, list):
        for v in obj:
            out |= key_paths(v, prefix + "[]")
    return out


def test_key_paths_sees_nested_keys_and_list_items():
    assert key_paths({"a": [{"b": 1}, {"c": {"d": 2}}]}) == {"a", "a[].b", "a[].c", "a[].c.d"}
    assert key_paths({"p": {"5": 1.0, "13": {"x": 2}}}) == {"p", "p.#", "p.#.x"}


@pytest.fixture(scope="module")
def golden_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("golden")
    res = run_cli("build", str(GOLDEN / "tiny.keras"), "--data", "fashion-mnist", "--objective", "flops",
                  "--finetune", "none", "--calib-samples", "200", "--step", "10", "--bench-runs", "0",
                  "--formats", "tflite", "--out", str(out / "o"), "--cache-dir", str(out / "cache"), "--json")
    assert res.returncode == 0, res.stderr
    return out / "o", json.loads(res.stdout)


def test_same_plan_as_before(golden_build):
    out, _ = golden_build
    assert json.loads((out / "plan.json").read_text()) == json.loads((GOLDEN / "plan.json").read_text())


def test_same_candidates_and_costs_as_before(golden_build):
    _, report = golden_build
    golden = json.loads((GOLDEN / "search.json").read_text())
    got = report["search"]["candidates"]
    assert [(c["layer"], c["method"], c["ranks"], c["params"], c["macs"], c["data_aware"]) for c in got] == \
           [(c["layer"], c["method"], c["ranks"], c["params"], c["macs"], c["data_aware"]) for c in golden["candidates"]]
    for new, old in zip(got, golden["candidates"]):
        assert new["similarity"] == pytest.approx(old["similarity"], abs=1e-4)
    assert {k: report["compressed"][k] for k in ("params", "macs")} == golden["compressed"]
    assert report["original"]["accuracy"] == pytest.approx(golden["original"]["accuracy"], abs=1e-9)
    assert report["original"]["test_accuracy"] == pytest.approx(golden["original"]["test_accuracy"], abs=1e-9)


def test_report_keeps_every_key_it_had(golden_build):
    _, report = golden_build
    before = set(json.loads((GOLDEN / "report_keys.json").read_text()))
    missing = sorted(before - key_paths(report))
    assert not missing, f"report keys lost: {missing}"


def test_report_says_what_made_it(golden_build):
    """report.json's ``provenance``: the command as run, lrfc's and the packages' versions, when, and where."""
    import time
    from importlib import metadata

    from lrfc import __version__

    out, report = golden_build
    made = report["provenance"]
    assert made["lrfc"] == __version__
    assert made["command"].startswith("lrfc build ") and made["command"].endswith(f"--out {out} --cache-dir "
                                                                                    f"{out.parent / 'cache'} --json")
    assert made["packages"]["keras"] == metadata.version("keras")
    assert made["packages"]["tf2onnx"] == metadata.version("tf2onnx") and "onnxruntime" in made["packages"]
    assert made["machine"]["cores"] >= 1 and made["machine"]["cpu"]
    made_at = time.mktime(time.strptime(made["created_at"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert abs(made_at - time.time()) < 3600  # written by this run, in UTC
    page = (out / "report.html").read_text()
    assert f"made by: lrfc {__version__}, {made['created_at']} on " in page
