"""`lrfc build` end to end on the tiny Fashion-MNIST model, and its fail-fast option checks."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from conftest import run_cli
from lrfc.errors import UserError
from lrfc.options import BuildOptions

# ONNX lowering and the benchmark are covered by test_build_deploy.py; these builds skip them to keep `make test` short.
SEARCH = ["--objective", "flops", "--epochs", "1", "--train-samples", "2000",
        "--calib-samples", "200", "--step", "10", "--max-rounds", "2", "--methods", "tucker,tt,svd,qr",
        "--bench-runs", "0", "--formats", "tflite"]
FAST = ["--data", "fashion-mnist", *SEARCH]


def small(data) -> list[str]:
    """FAST on the smaller slice of Fashion-MNIST (conftest.small_fashion_mnist): 1,000 validation images."""
    return ["--data", str(data), *SEARCH]


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
    assert set(report["timings"]) >= {"load", "calibrate", "score", "select", "factorize", "finetune", "test_split",
                                      "report"}
    peaks = report["peak_rss_mb"]  # per phase, the kernel's high-water mark reset at each phase's start
    assert set(peaks) >= {"load", "calibrate", "score", "finetune", "lower"}
    assert all(v == round(v, 1) for v in peaks.values())
    assert all(100 < v < 8000 for v in peaks.values()), peaks  # TensorFlow alone is a few hundred MB
    names = [entry["name"] for entry in report["layers"]]
    assert names == ["conv1", "conv2", "fc1", "logits"]
    factorized = [e for e in report["layers"] if e["method"] is not None]
    assert factorized, "the tiny model should get at least one factorized layer"
    for e in factorized:  # the global allocator offers candidates down to --min-similarity (0.8)
        assert e["similarity"] >= 0.8 - 1e-9
        assert e["params_after"] < e["params_before"] or e["macs_after"] < e["macs_before"]
    # The report's compressed params are those of the saved model.
    from lrfc.frontend.load import load_model

    model = load_model(root / "a" / "model.keras")
    assert model.count_params() == report["compressed"]["params"]
    assert report["compressed"]["macs"] < report["original"]["macs"]
    # the tiny model (1 epoch on 6,000 images) scores ~0.7; the published model is within the budget (a contract)
    assert report["original"]["accuracy"] > 0.6
    budget = report["accuracy_budget"]
    assert budget["drop"] == pytest.approx(100 * (report["original"]["accuracy"] - report["compressed"]["accuracy"]), abs=1e-3)
    assert budget["met"] and budget["enforced"] and budget["drop"] <= 1.0 and budget["validation_samples"] == 5000
    assert report["splits"] == {"calibration": 200, "train": 2000, "validation": 5000, "validation_source": "test split",
                                "test": 5000}
    assert 0.6 < report["original"]["test_accuracy"] and 0.6 < report["compressed"]["test_accuracy"]  # reported
    recall = report["class_recall"]  # each class's recall, weighted by its samples, is the top-1 over all of them
    assert [c["class"] for c in recall["classes"]] == list(range(10))
    assert sum(c["samples"] for c in recall["classes"]) == 5000
    for side in ("original", "compressed"):
        weighted = sum(c[side] * c["samples"] for c in recall["classes"]) / 5000
        assert weighted == pytest.approx(report[side]["accuracy"], abs=1e-5)
    assert recall["worst"] is None or recall["classes"][recall["worst"]]["drop"] == max(c["drop"] for c in
                                                                                       recall["classes"])
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
    """A plan rebuilt without a search, lowered for an older ONNX runtime (``--opset 13``: its file says so)."""
    from lrfc.lower.opset import declared

    root, cache, report = first_build
    res = run_cli("build", str(tiny_model_path), "--data", "fashion-mnist", "--plan", str(root / "a" / "plan.json"),
                  "--finetune", "none", "--calib-samples", "200", "--bench-runs", "0", "--formats", "onnx",
                  "--opset", "13", "--out", str(root / "c"), "--cache-dir", str(cache), "--json")
    assert res.returncode == 0, res.stderr
    rebuilt = json.loads(res.stdout)
    lrfc_onnx = next(a for a in rebuilt["artifacts"] if a["model"] == "compressed")
    assert lrfc_onnx["passed"] and lrfc_onnx["opset"] == 13 and declared(root / "c" / "model.onnx") == (13, 7)
    assert json.loads((root / "c" / "plan.json").read_text()) == json.loads((root / "a" / "plan.json").read_text())
    assert rebuilt["compressed"]["params"] == report["compressed"]["params"]
    assert rebuilt["finetune"] == {"mode": "none", "rounds": 0, "epochs": 0, "seconds": 0.0, "distill": False,
                                   "round_epochs": [], "qat": False, "balanced": {}, "features": 0.0}


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


def test_the_budget_is_a_contract_searched_along_the_ladder(tiny_model_path, small_fashion_mnist, tmp_path):
    """Rounds move to less compression after a miss and to more after a success; the published plan is the most
    compressed one that met the budget, or the original when none did."""
    res = run_cli("build", str(tiny_model_path), *small(small_fashion_mnist), "--max-rounds", "4", "--out", str(tmp_path / "r"),
                  "--cache-dir", str(tmp_path / "cache"), "--json")  # the last --max-rounds counts
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    search, budget = report["budget_search"], report["accuracy_budget"]
    rounds = search["rounds"]
    assert 1 <= len(rounds) <= 4 and search["enforced"] and search["allocation"] == "global"
    effects = report["sensitivity"]  # each front's ends at least, at most all of it
    assert 2 <= effects["measured"] <= effects["front_candidates"] and effects["probe_samples"] == 200
    assert all(r["met"] == (r["drop"] <= 1.0) for r in rounds)
    met = [r for r in rounds if r["met"]]
    for before, after in zip(rounds, rounds[1:]):  # a miss moves up the ladder (less compression), a success down
        assert after["level"] > before["level"] if not before["met"] else after["level"] < before["level"]
    if met:
        best = min(met, key=lambda r: r["level"])
        assert search["published"] == best["label"] and budget["drop"] == pytest.approx(best["drop"], abs=1e-3)
        assert report["compressed"]["params"] == best["params"]
    else:
        assert search["published"] == "original" and report["compressed"]["params"] == report["original"]["params"]
    assert budget["met"] and budget["drop"] <= 1.0
    assert res.stderr.splitlines()[-1].startswith("budget: met: drop ")  # the terminal's last line says so
    assert "retracing" not in res.stderr.lower() and "Warning" not in res.stderr  # lrfc's own lines only


def test_feature_map_distillation_runs_in_the_build_and_the_report_says_so(tiny_model_path, small_fashion_mnist, tmp_path):
    """``--distill-features``: the round trains with the feature-map term (``train.features``); report.json's
    ``finetune.features`` and the fine-tune line carry its weight."""
    res = run_cli("build", str(tiny_model_path), *small(small_fashion_mnist), "--max-rounds", "1",
                  "--distill-features", "0.5", "--out", str(tmp_path / "f"), "--cache-dir", str(tmp_path / "cache"))
    assert res.returncode == 0, res.stderr
    report = json.loads((tmp_path / "f" / "report.json").read_text())
    assert report["finetune"]["features"] == 0.5 and report["finetune"]["rounds"] == 1
    assert re.search(r"^fine-tune +oneshot, 1 round x 1 epoch, distillation, feature maps \(weight 0\.5\), ",
                     res.stdout, re.M), res.stdout


def test_without_fine_tuning_the_contract_backs_off_on_validation(tiny_model_path, tmp_path):
    # the built-in data: its 5,000 test images make the test split's passes (0.3 s) long beside what a stall in the
    # finetune stage's few milliseconds could add under load (on 1,000 images they took 0.07 s)
    res = run_cli("build", str(tiny_model_path), *FAST, "--finetune", "none", "--max-acc-drop", "0.5",
                  "--out", str(tmp_path / "n"), "--cache-dir", str(tmp_path / "cache"), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["accuracy_budget"]["met"] and report["accuracy_budget"]["drop"] <= 0.5
    assert report["finetune"]["rounds"] == 0
    timings = report["timings"]  # the test split's two passes are timed as what they are, not as fine-tuning
    assert timings["test_split"] > 0 and timings["finetune"] < 0.5 * timings["test_split"], timings
    proxies = report["budget_search"]["proxy_drops"]  # --finetune none: the proxy is the validation split itself
    (published,) = report["budget_search"]["rounds"]  # the bisection's own measure is final: one rung, scored once
    assert published["drop"] == pytest.approx(proxies[str(published["level"])], abs=1e-3)
    stopped = report["budget_search"]["stopped"]
    if published["level"] == 0:
        assert stopped.startswith("the most compressed rung met")
    elif stopped == "converged":  # the rung below it was seen failing
        assert str(published["level"] - 1) in proxies
    else:  # or the rungs between it and the last failure seen could save at most 1 % of the cost: not looked at
        skipped = re.fullmatch(r"converged within 1% of the cost \((\d+) rungs? between the last failure and the pass "
                               r"not looked at\)", stopped)
        assert skipped and str(published["level"] - int(skipped[1]) - 1) in proxies, stopped
    bounded = report["budget_search"]["proxy_bounded"]  # dropped before the end of validation: over for sure
    assert published["level"] not in bounded and all(proxies[str(k)] > 0.5 for k in bounded)


def test_with_confidence_the_published_drops_bound_is_within_the_budget(tiny_model_path, tmp_path):
    """--confidence 0.9 without fine-tuning: the bisection judges each rung by its drop plus 1.28 standard errors of
    the paired validation answers; the report and the terminal's last line carry the drop, its error and its bound,
    and the test split's drop its own error. On 5,000 validation samples the margin expected (0.31 points) is over
    half of a 0.6-point budget: the load stage says so, before the search."""
    res = run_cli("build", str(tiny_model_path), *FAST, "--finetune", "none", "--max-acc-drop", "0.6",
                  "--confidence", "0.9", "--out", str(tmp_path / "c"), "--cache-dir", str(tmp_path / "cache"), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    budget, search = report["accuracy_budget"], report["budget_search"]
    (published,) = search["rounds"]
    assert budget["confidence"] == 0.9 and budget["met"] and budget["drop"] == pytest.approx(published["drop"], abs=1e-3)
    if report["compressed"]["params"] < report["original"]["params"]:  # something factorized: the models disagree
        assert 0 < budget["drop_error"] == pytest.approx(published["drop_error"], abs=1e-4)
        assert 0 < report["compressed"]["test_drop_error"] < 2
    assert budget["upper_bound"] == pytest.approx(budget["drop"] + 1.2816 * budget["drop_error"], abs=2e-3)
    assert budget["upper_bound"] <= 0.6
    assert ("lrfc: warning: --confidence 0.9 on 5,000 validation samples adds about 0.31 points to a drop for its "
            "bound (at 3% of them answered differently from the original), half or more of --max-acc-drop 0.6; "
            "about 5,475 samples bring it to half") in res.stderr
    last = res.stderr.splitlines()[-1]
    assert last.startswith(f"budget: met: drop {budget['drop']:.2f} points, at most {budget['upper_bound']:.2f} at 90% "
                           "confidence"), last


def test_a_time_budget_stops_the_search_after_a_round(tiny_model_path, small_fashion_mnist, tmp_path):
    res = run_cli("build", str(tiny_model_path), *small(small_fashion_mnist), "--time-budget", "0.01", "--out", str(tmp_path / "t"),
                  "--cache-dir", str(tmp_path / "cache"), "--json")
    assert res.returncode == 0, res.stderr
    search = json.loads(res.stdout)["budget_search"]
    assert len(search["rounds"]) == 1 and search["stopped"] == "--time-budget 0.01 minutes"


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


@pytest.mark.slow  # the weight-only baselines: compared in make bench (bench.quality); make test keeps within 10 minutes
@pytest.mark.parametrize("rule", ["vbmf", "energy"])
def test_weight_based_rank_selection_baselines(tiny_model_path, tmp_path, rule):
    args = ["build", str(tiny_model_path), "--data", "fashion-mnist", "--rank-selection", rule, "--finetune", "none",
            "--objective", "flops", "--calib-samples", "200", "--methods", "tucker,svd", "--no-cache", "--bench-runs", "0",
            "--formats", "tflite", "--json"]
    res = run_cli(*args, "--max-acc-drop", "100", "--out", str(tmp_path / rule))
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["rank_selection"] == rule
    # The rule's plan is a ladder of one, enforced: within a budget of 100 points it is the one published.
    assert report["accuracy_budget"]["enforced"] and report["budget_search"]["published"] == f"{rule} ranks"
    assert report["budget_search"]["allocation"] == "fixed" and len(report["budget_search"]["rounds"]) == 1
    # One candidate per layer and method: the rank the rule picks from the weights alone.
    per = {}
    for c in report["search"]["candidates"]:
        per.setdefault((c["layer"], c["method"]), []).append(c)
    assert per and all(len(v) == 1 for v in per.values())
    assert {m for _, m in per} == {"tucker", "svd"}
    factorized = [e for e in report["layers"] if e["method"] is not None]
    assert factorized and all(e["params_after"] < e["params_before"] or e["macs_after"] < e["macs_before"]
                              for e in factorized)
    if rule == "energy":  # a rule's plan that loses any accuracy misses a zero budget: the original is published
        drop = report["budget_search"]["rounds"][0]["drop"]
        res = run_cli(*args, "--max-acc-drop", "0", "--out", str(tmp_path / "zero"))
        strict = json.loads(res.stdout)
        assert drop > 0 and strict["budget_search"]["published"] == "original"
        assert all(e["method"] is None for e in strict["layers"]) and strict["accuracy_budget"]["met"]


@pytest.mark.slow  # the paper's iterative baseline, run by make bench (bench.budget)
def test_iterative_finetuning_baseline_runs(first_build, tiny_model_path):
    root, cache, _ = first_build
    res = run_cli("build", str(tiny_model_path), *FAST, "--finetune", "iterative", "--out", str(root / "it"),
                  "--cache-dir", str(cache), "--json")
    assert res.returncode == 0, res.stderr
    it = json.loads(res.stdout)
    assert it["finetune"]["mode"] == "iterative" and it["finetune"]["rounds"] == 1 and it["finetune"]["seconds"] > 0
    from lrfc.frontend.load import load_model

    assert load_model(root / "it" / "model.keras").count_params() == it["compressed"]["params"]
    # The iterative baseline fine-tunes the paper's plan (per layer the cheapest candidate at the threshold), once:
    # the best whole-model solution at the threshold; its budget is measured, not enforced.
    plan = json.loads((root / "it" / "plan.json").read_text())["layers"]
    best = it["search"]["solutions"][0]["choices"]
    assert [(c["layer"], c["method"], c["ranks"]) for c in plan] == \
           [(name, c["method"], c["ranks"]) for name, c in best.items() if c is not None]
    assert not it["accuracy_budget"]["enforced"] and it["budget_search"]["allocation"] == "fixed"


def _fit_fails(monkeypatch, fails):
    """Make the factorization of the walks ``fails(layer, method)`` names raise, as numpy's SVD does when it does not
    converge; every other walk runs as usual."""
    import numpy as np

    from lrfc.search import scoring

    real = scoring.prepared_for

    def prepared_for(task, method, data_aware, cache):
        if fails(task.name, method):
            raise np.linalg.LinAlgError("SVD did not converge")
        return real(task, method, data_aware, cache)

    monkeypatch.setattr(scoring, "prepared_for", prepared_for)


def test_a_walk_that_raises_drops_its_candidates_not_the_build(tiny_model_path, tmp_path, monkeypatch):
    """One layer's TT factorization failing costs that layer its TT candidates: the build goes on with the rest,
    says so in one line, and lists the walk in report.json."""
    from lrfc import pipeline

    _fit_fails(monkeypatch, lambda layer, method: (layer, method) == ("conv2", "tt"))
    logged = []
    opts = BuildOptions(model=str(tiny_model_path), data="fashion-mnist", calib_samples=100, step=25,
                        methods=("tucker", "tt", "svd"), finetune="none", out=str(tmp_path / "out"), cache=False,
                        bench_runs=0, formats=("tflite",))
    state = pipeline.run_build(opts, log=logged.append)
    assert [(f.layer, f.method, f.error) for f in state.failed_walks] == [("conv2", "tt", "LinAlgError: SVD did not converge")]
    assert "LinAlgError" in state.failed_walks[0].trace  # kept for --verbose
    methods = {name: {c.method for c in cands} for name, cands in state.candidates.items()}
    assert methods["conv2"] == {"tucker"} and methods["conv1"] == {"tucker", "tt"} and methods["fc1"] >= {"svd"}
    assert "score: conv2 tt dropped, its walk raised LinAlgError: SVD did not converge" in logged
    assert not any("Traceback" in line for line in logged)  # one line each, unless --verbose (below)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["search"]["failed_walks"] == [{"layer": "conv2", "method": "tt", "error": "LinAlgError: SVD did not converge"}]
    assert report["accuracy_budget"]["met"]


def test_verbose_shows_a_dropped_walks_traceback(tiny_model_path, tmp_path, monkeypatch):
    from lrfc import pipeline
    from lrfc.common import quiet

    _fit_fails(monkeypatch, lambda layer, method: method == "svd")
    monkeypatch.setattr(quiet, "_verbose", True)
    logged = []
    opts = BuildOptions(model=str(tiny_model_path), data="fashion-mnist", calib_samples=100, step=25,
                        methods=("tucker", "svd"), finetune="none", out=str(tmp_path / "out"), cache=False,
                        bench_runs=0, formats=("tflite",))
    state = pipeline.run_build(opts, log=logged.append)
    assert [(f.layer, f.method) for f in state.failed_walks] == [("fc1", "svd"), ("logits", "svd")]
    dropped = [line for line in logged if line.startswith("score: fc1 svd dropped")]
    assert len(dropped) == 1 and "Traceback (most recent call last)" in dropped[0] and "in prepared_for" in dropped[0]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    notes = {e["name"]: e.get("note") for e in report["layers"]}  # the dense layers had no other method
    assert notes["fc1"] == notes["logits"] == "kept: scoring raised for svd (search.failed_walks)"


def test_a_build_whose_every_walk_raises_stops_with_the_first_error(tiny_model_path, tmp_path, monkeypatch):
    from lrfc import pipeline
    from lrfc.search.fanout import ScoringFailed

    _fit_fails(monkeypatch, lambda layer, method: True)
    opts = BuildOptions(model=str(tiny_model_path), data="fashion-mnist", calib_samples=100, step=25, methods=("svd",),
                        finetune="none", out=str(tmp_path / "out"), cache=False, bench_runs=0, formats=("tflite",))
    with pytest.raises(ScoringFailed, match=r"all 2 walks failed; the first, fc1 svd: LinAlgError: SVD did not converge"):
        pipeline.run_build(opts, log=lambda m: None)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # nothing published


def test_a_model_of_undefined_size_builds_at_the_input_shape_given(keras, tmp_path):
    """A fully convolutional model (input None x None): refused in one line without --input-shape, built at it with
    it; the memory plan and the probe size read the given shape, the files have it."""
    from ai_edge_litert.interpreter import Interpreter

    from lrfc import pipeline

    L = keras.layers
    inp = keras.Input((None, None, 1))
    h = L.Conv2D(16, 3, padding="same", activation="relu", name="c1")(inp)
    h = L.Conv2D(32, 3, padding="same", activation="relu", name="c2")(h)
    model = keras.Model(inp, L.Dense(10, name="head")(L.GlobalAveragePooling2D()(h)))
    path = tmp_path / "fcn.keras"
    model.save(path)
    opts = dict(model=str(path), data="fashion-mnist", allow_low_accuracy=True, finetune="none", calib_samples=100,
                step=25, bench_runs=0, formats=("tflite",), out=str(tmp_path / "out"), cache=False)
    with pytest.raises(UserError, match=r"leaves a size undefined; pass --input-shape with the size to compile it "
                                        r"for, e.g. --input-shape 28,28,1 \(--data's first sample is 28x28x1\)"):
        pipeline.run_build(BuildOptions(**opts), log=lambda *_: None)
    assert not (tmp_path / "out").exists()
    pipeline.run_build(BuildOptions(**opts, input_shape=(28, 28, 1)), log=lambda *_: None)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    c2 = next(layer for layer in report["layers"] if layer["name"] == "c2")
    assert c2["macs_before"] == 28 * 28 * 9 * 16 * 32
    details = Interpreter(model_path=str(tmp_path / "out" / "model.tflite")).get_input_details()[0]
    assert list(details["shape"]) == [1, 28, 28, 1]


def test_layer_kinds_the_benchmark_models_lack_build_and_lower_whole(keras, tmp_path):
    """A SeparableConv2D with depth_multiplier 2 (its task runs the depthwise part at that multiplier), dilated
    convolutions (each one TFLite operator, no batch shuffles around it) and a Dense after a Flatten with more inputs
    than calibration vectors (its moment whitened through a range finder): the search scores all of them, and every
    layer it factorizes is lowered and verified."""
    from lrfc import pipeline
    from runtime_bench.delegation import litert_delegation

    keras.utils.set_random_seed(6)
    L = keras.layers
    inp = keras.Input((28, 28, 1))
    h = L.Conv2D(16, 3, padding="same", dilation_rate=2, activation="relu", name="dilated")(inp)
    h = L.SeparableConv2D(24, 3, padding="same", depth_multiplier=2, activation="relu", name="sep")(h)
    h = L.MaxPooling2D(name="pool")(h)
    h = L.Conv2D(16, 3, padding="same", dilation_rate=(2, 3), activation="relu", name="dilated2")(h)
    h = L.Dense(12, activation="relu", name="wide")(L.Flatten(name="flat")(h))  # 14 x 14 x 16 = 3,136 inputs
    model = keras.Model(inp, L.Dense(10, name="head")(h))
    path = tmp_path / "kinds.keras"
    model.save(path)
    opts = BuildOptions(model=str(path), data="fashion-mnist", allow_low_accuracy=True, finetune="none",
                        calib_samples=100, step=25, threshold=0.8, objective="flops", bench_runs=0,
                        formats=("tflite",), out=str(tmp_path / "out"), cache=False)
    pipeline.run_build(opts, log=lambda *_: None)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    layers = {layer["name"]: layer for layer in report["layers"]}
    assert layers["sep"]["type"] == "SeparableConv2D" and layers["wide"]["type"] == "Dense"
    factorized = {name for name, layer in layers.items() if layer.get("method")}
    assert {"sep", "wide"} <= factorized, layers
    assert layers["wide"]["data_aware"] is True
    for name in ("model.tflite", "original.tflite"):
        delegation = litert_delegation(tmp_path / "out" / name)
        assert delegation["not_delegated"] == {} and delegation["partitions"] == 1, (name, delegation)


def test_max_class_drop_holds_every_classs_recall_not_only_the_average(tiny_model_path, tmp_path):
    """The same --finetune none build twice: by --max-acc-drop alone it publishes a plan under which some class
    loses more recall than the average; with --max-class-drop that class's loss is over the limit, the round says
    so, and the published model keeps every class within it."""
    from lrfc import pipeline

    common = dict(model=str(tiny_model_path), data="fashion-mnist", calib_samples=200, step=10, objective="flops",
                  methods=("tucker", "tt", "svd", "qr"), finetune="none", cache=False, bench_runs=0,
                  formats=("tflite",), max_acc_drop=3.0)
    loose = pipeline.run_build(BuildOptions(**common, out=str(tmp_path / "a")), log=lambda m: None)
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    worst = max(c["drop"] for c in report["class_recall"]["classes"])
    assert report["accuracy_budget"]["met"] and worst > report["accuracy_budget"]["drop"] + 1.0 and loose.plan.choices
    assert "max_class_drop" not in report["accuracy_budget"]
    limit = round(worst / 2, 2)
    logged = []
    pipeline.run_build(BuildOptions(**common, out=str(tmp_path / "b"), max_class_drop=limit), log=logged.append)
    held = json.loads((tmp_path / "b" / "report.json").read_text())
    budget = held["accuracy_budget"]
    assert budget["met"] and budget["max_class_drop"] == limit and budget["worst_class"]["drop"] <= limit + 1e-9
    assert max(c["drop"] for c in held["class_recall"]["classes"]) <= limit + 1e-9
    assert any(f"points of recall on the validation split, over --max-class-drop {limit:g}" in m for m in logged)
