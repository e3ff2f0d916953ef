"""`lrfc build` end to end on the tiny Fashion-MNIST model, and its fail-fast option checks."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import run_cli
from lrfc.errors import UserError
from lrfc.options import BuildOptions

# ONNX lowering and the benchmark are covered by test_build_deploy.py; these builds skip them to keep `make test` short.
FAST = ["--data", "fashion-mnist", "--objective", "flops", "--epochs", "1", "--train-samples", "2000",
        "--calib-samples", "200", "--step", "10", "--max-rounds", "2", "--methods", "tucker,tt,svd,qr",
        "--bench-runs", "0", "--formats", "tflite"]


@pytest.fixture(scope="module")
def first_build(tiny_model_path, tmp_path_factory):
    root = tmp_path_factory.mktemp("build")
    cache = root / "cache"
    res = run_cli("build", str(tiny_model_path), *FAST, "--out", str(root / "a"), "--cache-dir", str(cache), "--json")
    assert res.returncode == 0, res.stderr
    return root, cache, json.loads(res.stdout)


def test_report_has_the_documented_keys_and_consistent_numbers(first_build):
    root, _, report = first_build
    for key in ("original", "compressed", "layers", "finetune", "threshold", "objective", "target", "seed", "timings"):
        assert key in report
    for side in ("original", "compressed"):
        assert set(report[side]) >= {"params", "macs", "accuracy"}
    assert report["objective"] == "flops" and report["target"] == "host" and report["threshold"] == 0.92
    assert report["finetune"]["mode"] == "oneshot" and report["finetune"]["epochs"] == 1
    assert set(report["timings"]) >= {"load", "calibrate", "score", "select", "factorize", "finetune", "report"}
    peaks = report["peak_rss_mb"]  # per phase, the kernel's high-water mark reset at each phase's start
    assert set(peaks) >= {"load", "calibrate", "score", "finetune", "lower"}
    assert all(v == round(v, 1) for v in peaks.values())
    assert all(100 < v < 8000 for v in peaks.values()), peaks  # TensorFlow alone is a few hundred MB
    names = [entry["name"] for entry in report["layers"]]
    assert names == ["conv1", "conv2", "fc1", "logits"]
    factorized = [e for e in report["layers"] if e["method"] is not None]
    assert factorized, "the tiny model should get at least one factorized layer"
    for e in factorized:
        assert e["similarity"] >= report["layer_thresholds"][e["name"]] - 1e-9
        assert e["params_after"] < e["params_before"] or e["macs_after"] < e["macs_before"]
    # The report's compressed params are those of the saved model.
    from lrfc.frontend.load import load_model

    model = load_model(root / "a" / "model.keras")
    assert model.count_params() == report["compressed"]["params"]
    assert report["compressed"]["macs"] < report["original"]["macs"]
    # the tiny model (1 epoch on 6,000 images) scores ~0.7; compressed and fine-tuned 1 epoch on 2,000 it keeps
    # well above chance (0.1), and the budget line says how far it is from --max-acc-drop
    assert report["original"]["accuracy"] > 0.6 and report["compressed"]["accuracy"] > 0.3
    budget = report["accuracy_budget"]
    assert budget["drop"] == pytest.approx(100 * (report["original"]["accuracy"] - report["compressed"]["accuracy"]), abs=1e-3)
    assert budget["met"] == (budget["drop"] <= 1.0) and budget["validation_samples"] == 10000
    assert report["splits"] == {"calibration": 200, "train": 2000, "validation": 10000, "validation_source": "test split"}
    assert (root / "a" / "report.html").read_text().count("<tr") >= 4
    plan = json.loads((root / "a" / "plan.json").read_text())
    assert [c["layer"] for c in plan["layers"]] == [e["name"] for e in factorized]


def test_second_build_is_deterministic_and_served_by_the_cache(first_build, tiny_model_path):
    root, cache, report = first_build
    res = run_cli("build", str(tiny_model_path), *FAST, "--out", str(root / "b"), "--cache-dir", str(cache), "--json")
    assert res.returncode == 0, res.stderr
    again = json.loads(res.stdout)
    assert (root / "b" / "plan.json").read_text() == (root / "a" / "plan.json").read_text()
    # every score came from the cache (counted, not timed: a timing comparison fails on a loaded machine)
    assert again["cache"]["misses"] == 0 and again["cache"]["hits"] == report["cache"]["hits"] + report["cache"]["misses"]


def test_plan_rebuilds_without_searching(first_build, tiny_model_path):
    root, cache, report = first_build
    res = run_cli("build", str(tiny_model_path), "--data", "fashion-mnist", "--plan", str(root / "a" / "plan.json"),
                  "--finetune", "none", "--calib-samples", "200", "--bench-runs", "0", "--formats", "tflite",
                  "--out", str(root / "c"), "--cache-dir", str(cache), "--json")
    assert res.returncode == 0, res.stderr
    rebuilt = json.loads(res.stdout)
    assert json.loads((root / "c" / "plan.json").read_text()) == json.loads((root / "a" / "plan.json").read_text())
    assert rebuilt["compressed"]["params"] == report["compressed"]["params"]
    assert rebuilt["finetune"] == {"mode": "none", "rounds": 0, "epochs": 0, "seconds": 0.0, "distill": False}


@pytest.mark.parametrize("failing", ["lower", "report"])
def test_a_build_that_fails_late_leaves_the_earlier_results(first_build, tiny_model_path, tmp_path, monkeypatch, failing):
    """The failure comes after artifacts (lower) or every file (report) was written to staging: none of it may
    show, and the earlier finished build in the folder stays whole."""
    from lrfc import pipeline

    root, _, _ = first_build
    out = tmp_path / "out"
    shutil.copytree(root / "a", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def after_then_boom(stage):
        def run(state):
            stage(state)
            assert list(state.output.staging.iterdir())  # something really was written
            raise RuntimeError(f"failed after {failing}")
        return run

    monkeypatch.setattr(pipeline, "STAGES", tuple((n, after_then_boom(f) if n == failing else f) for n, f in pipeline.STAGES))
    opts = BuildOptions(model=str(tiny_model_path), data="fashion-mnist", calib_samples=100, train_samples=500, epochs=1,
                        step=25, methods=("svd",), out=str(out), cache=False, bench_runs=0, formats=("tflite",))
    with pytest.raises(RuntimeError, match="failed after"):
        pipeline.run_build(opts, log=lambda m: None)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no staging left, nothing replaced


def test_recovery_rounds_raise_thresholds_until_accuracy_recovers(tiny_model_path, tmp_path):
    """An aggressive threshold misses the budget; each recovery round raises the weaker layers' thresholds."""
    res = run_cli("build", str(tiny_model_path), *FAST, "--threshold", "0.8", "--max-rounds", "3",  # the last one counts
                  "--out", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "cache"), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    rounds = [float(line.split("accuracy ")[1].split("%")[0]) for line in res.stderr.splitlines() if line.startswith("round ")]
    assert report["finetune"]["rounds"] == len(rounds) == 3  # the budget (1 point) is never met at this budget
    assert max(report["layer_thresholds"].values()) > 0.8  # raised
    assert rounds[-1] > rounds[0] + 5, rounds  # higher ranks recover accuracy
    assert report["compressed"]["accuracy"] == pytest.approx(rounds[-1] / 100, abs=1e-4)
    assert not report["accuracy_budget"]["met"]
    assert res.stderr.splitlines()[-1].startswith("budget: MISSED by ")  # the terminal's last line says so
    assert "retracing" not in res.stderr.lower() and "Warning" not in res.stderr  # lrfc's own lines only
    # the report's top solutions are at the final thresholds: the chosen plan is the first of them
    first = report["search"]["solutions"][0]["choices"]
    chosen = {layer["name"]: layer["method"] for layer in report["layers"] if layer["method"]}
    assert {name: c["method"] for name, c in first.items() if c} == chosen


@pytest.mark.parametrize("overrides, message", [
    ({"threshold": 1.5}, "--threshold: received 1.5; expected a number in (0, 1]"),
    ({"threshold": 0.0}, "--threshold: received 0.0"),
    ({"step": 60.0}, "--step: received 60.0; expected a percentage in (0, 50]"),
    ({"methods": ("tucker", "svdd")}, "--methods: received 'tucker,svdd'"),
    ({"objective": "speed"}, "--objective: received 'speed'"),
    ({"finetune": "twice"}, "--finetune: received 'twice'"),
    ({"calib_samples": 0}, "--calib-samples: received 0"),
    ({"model": "missing.keras"}, "model not found: missing.keras"),
])
def test_options_fail_fast(tiny_model_path, overrides, message):
    opts = dict(model=str(tiny_model_path), data="fashion-mnist")
    opts.update(overrides)
    with pytest.raises(UserError) as err:
        BuildOptions(**opts).validate()
    assert message in str(err.value)


@pytest.mark.parametrize("rule", ["vbmf", "energy"])
def test_weight_based_rank_selection_baselines(tiny_model_path, tmp_path, rule):
    res = run_cli("build", str(tiny_model_path), "--data", "fashion-mnist", "--rank-selection", rule, "--finetune", "none",
                  "--calib-samples", "200", "--methods", "tucker,svd", "--no-cache", "--bench-runs", "0", "--formats", "tflite",
                  "--out", str(tmp_path / rule), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["rank_selection"] == rule
    # One candidate per layer and method: the rank the rule picks from the weights alone.
    per = {}
    for c in report["search"]["candidates"]:
        per.setdefault((c["layer"], c["method"]), []).append(c)
    assert per and all(len(v) == 1 for v in per.values())
    assert {m for _, m in per} == {"tucker", "svd"}
    for e in report["layers"]:
        if e["method"] is not None:
            assert e["params_after"] < e["params_before"] or e["macs_after"] < e["macs_before"]


def test_iterative_finetuning_baseline_runs(first_build, tiny_model_path):
    root, cache, _ = first_build
    res = run_cli("build", str(tiny_model_path), *FAST, "--finetune", "iterative", "--out", str(root / "it"),
                  "--cache-dir", str(cache), "--json")
    assert res.returncode == 0, res.stderr
    it = json.loads(res.stdout)
    assert it["finetune"]["mode"] == "iterative" and it["finetune"]["rounds"] == 1 and it["finetune"]["seconds"] > 0
    from lrfc.frontend.load import load_model

    assert load_model(root / "it" / "model.keras").count_params() == it["compressed"]["params"]
    # The iterative baseline fine-tunes the plan the search selected, with no recovery rounds: the same plan
    # a build without fine-tuning writes.
    res = run_cli("build", str(tiny_model_path), *FAST, "--finetune", "none", "--out", str(root / "sel"),
                  "--cache-dir", str(cache))
    assert res.returncode == 0, res.stderr
    assert json.loads((root / "it" / "plan.json").read_text()) == json.loads((root / "sel" / "plan.json").read_text())
