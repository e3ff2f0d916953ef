"""`lrfc build` end to end on the tiny Fashion-MNIST model, and its fail-fast option checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from lrfc.errors import UserError
from lrfc.options import BuildOptions

FAST = ["--data", "fashion-mnist", "--objective", "flops", "--epochs", "1", "--train-samples", "2000",
        "--calib-samples", "200", "--step", "10", "--max-rounds", "2", "--methods", "tucker,tt,svd,qr"]


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
    assert report["finetune"]["mode"] == "oneshot" and 1 <= report["finetune"]["rounds"] <= 2
    assert set(report["timings"]) >= {"load", "calibrate", "score", "select", "factorize", "finetune", "report"}
    peaks = report["peak_rss_mb"]  # per phase, the kernel's high-water mark reset at each phase's start
    assert set(peaks) >= {"load", "calibrate", "score", "finetune", "lower"}
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
    assert 0.0 <= report["compressed"]["accuracy"] <= 1.0
    assert (root / "a" / "report.html").read_text().count("<tr") >= 4
    plan = json.loads((root / "a" / "plan.json").read_text())
    assert [c["layer"] for c in plan["layers"]] == [e["name"] for e in factorized]


def test_second_build_is_deterministic_and_served_by_the_cache(first_build, tiny_model_path):
    root, cache, report = first_build
    res = run_cli("build", str(tiny_model_path), *FAST, "--out", str(root / "b"), "--cache-dir", str(cache), "--json")
    assert res.returncode == 0, res.stderr
    again = json.loads(res.stdout)
    assert (root / "b" / "plan.json").read_text() == (root / "a" / "plan.json").read_text()
    assert again["cache"]["misses"] == 0 and again["cache"]["hits"] > 0
    assert again["timings"]["score"] < report["timings"]["score"]


def test_plan_rebuilds_without_searching(first_build, tiny_model_path):
    root, cache, report = first_build
    res = run_cli("build", str(tiny_model_path), "--data", "fashion-mnist", "--plan", str(root / "a" / "plan.json"),
                  "--finetune", "none", "--calib-samples", "200", "--out", str(root / "c"), "--cache-dir", str(cache), "--json")
    assert res.returncode == 0, res.stderr
    rebuilt = json.loads(res.stdout)
    assert json.loads((root / "c" / "plan.json").read_text()) == json.loads((root / "a" / "plan.json").read_text())
    assert rebuilt["compressed"]["params"] == report["compressed"]["params"]
    assert rebuilt["finetune"] == {"mode": "none", "rounds": 0, "epochs": 0, "seconds": 0.0, "distill": False}


def test_failed_build_leaves_no_finished_looking_output(tiny_model_path, tmp_path, monkeypatch):
    from lrfc import pipeline as build

    def boom(state):
        raise RuntimeError("interrupted during fine-tuning")

    monkeypatch.setattr(build, "STAGES", tuple((n, boom if n == "finetune" else f) for n, f in build.STAGES))
    opts = BuildOptions(model=str(tiny_model_path), data="fashion-mnist", calib_samples=100, train_samples=500,
                        step=25, methods=("svd",), out=str(tmp_path / "out"), cache=False)
    with pytest.raises(RuntimeError, match="interrupted"):
        build.run_build(opts, log=lambda m: None)
    leftovers = list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else []
    assert leftovers == []


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


def test_cli_errors_exit_2_before_heavy_work(tiny_model_path, keras, tmp_path):
    res = run_cli("build", str(tiny_model_path), "--data", "fashion-mnist", "--threshold", "2")
    assert res.returncode == 2 and "--threshold: received 2.0" in res.stderr
    res = run_cli("build", str(tiny_model_path), "--data", "fashion-mnist", "--target", "jetson-tx9")
    assert res.returncode == 2 and "unknown profile 'jetson-tx9'" in res.stderr
    # A model with nothing to factorize.
    inp = keras.Input((28, 28, 1))
    x = keras.layers.DepthwiseConv2D(3)(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inp, keras.layers.Softmax()(x)).save(tmp_path / "none.keras")
    res = run_cli("build", str(tmp_path / "none.keras"), "--data", "fashion-mnist", "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "nothing to factorize" in res.stderr
    # Data whose labels the model cannot have.
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.random((50, 28, 28, 1)).astype("float32"), y=np.full(50, 12))
    res = run_cli("build", str(tiny_model_path), "--data", str(tmp_path / "d.npz"), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "labels span 12..12; the model has 10 classes" in res.stderr


@pytest.mark.parametrize("rule", ["vbmf", "energy"])
def test_weight_based_rank_selection_baselines(tiny_model_path, tmp_path, rule):
    res = run_cli("build", str(tiny_model_path), "--data", "fashion-mnist", "--rank-selection", rule, "--finetune", "none",
                  "--calib-samples", "200", "--methods", "tucker,svd", "--no-cache", "--out", str(tmp_path / rule), "--json")
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
