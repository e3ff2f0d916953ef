"""`lrfc build` end to end with the latency objective: measured costs, verified artifacts, benchmark."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import run_cli

LATENCY = ["--objective", "latency", "--epochs", "1", "--train-samples", "2000",
           "--calib-samples", "200", "--step", "10", "--max-rounds", "1", "--methods", "tucker,tt,svd,qr",
           "--bench-runs", "20"]


DEMO = Path(__file__).resolve().parent.parent / "demo" / "demo.keras"


@pytest.fixture(scope="module")
def latency_builds(tmp_path_factory, small_fashion_mnist):
    """A latency build of the demo model, then a second against the same cost database (about 1.5 + 0.5 minutes).

    The demo model, not the tiny one: the tiny model's layers run in
    microseconds, so no factorization beats them and the ladder is empty;
    the demo model's 58M MACs give a real ladder to time and choose from.
    Both run on the smaller slice of Fashion-MNIST (``small_fashion_mnist``).
    The second build does everything up to the ladder and its timing as the
    first did, then judges the rungs without fine-tuning (``--finetune
    none``): what it must show (nothing measured again, the same ladder and
    timings read back) is decided before fine-tuning, and two fine-tuning
    rounds were most of its 75 s.

    Its budget is 3 points over up to 3 rounds, not the default 1 over 2: what these tests need is a published
    compressed rung, and one epoch on 2,000 images puts the demo model's rungs near 1 point (at seed 0 the
    published one read 0.90 here; on CI's machine none met and the original was published; at seed 1 none met
    here either). At 3 points seeds 0, 1, 4 published levels 2, 3, 3 (drops 3.0, 2.6, 2.5), and a third round
    backs off to a rung the proxy puts near 1 point when the second misses.
    """
    root = tmp_path_factory.mktemp("latency")
    common = ["--data", str(small_fashion_mnist), "--objective", "latency", "--epochs", "1", "--train-samples", "2000",
              "--calib-samples", "64", "--step", "20", "--max-rounds", "3", "--max-acc-drop", "3", "--methods", "cp,svd",
              "--max-sol", "4", "--cache-dir", str(root / "cache"), "--cost-db", str(root / "costs.sqlite"), "--json"]
    reports = []
    for name, extra in (("a", ["--bench-runs", "20"]), ("b", ["--bench-runs", "0", "--formats", "tflite", "--finetune", "none"])):
        res = run_cli("build", str(DEMO), *common, *extra, "--out", str(root / name), timeout=600)
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
    # a second build on the same device measures nothing new and builds the same ladder from the same costs (the
    # whole models too, unless the stored timings hold an inversion: then it times them afresh, cost.measure)
    assert second["costs"]["measured"] == 0 and second["costs"]["reused"] >= costs["measured"]
    if not _stored_inversion(first):
        assert second["budget_search"]["levels"] == first["budget_search"]["levels"]
    assert [(s["level"], s["plan"], s["predicted_ms"]) for s in second["solutions"]] == \
        [(s["level"], s["plan"], s["predicted_ms"]) for s in first["solutions"]]
    if not _stored_inversion(first):
        assert [s["rung"] for s in second["solutions"]] == [s["rung"] for s in first["solutions"]]
    # judged without fine-tuning, it publishes a rung within the budget on the ladder both builds share
    assert second["accuracy_budget"]["met"] and second["budget_search"]["published_level"] is not None
    # every candidate the selector could pick carries its latency; the chosen ones beat the original layer
    passing = [c for c in first["search"]["candidates"] if c["similarity"] >= first["threshold"]]
    assert passing and all(c["measured_ms"] is not None and c["measured_ms"] > 0 for c in passing)
    for layer in first["layers"]:
        if layer["method"] is not None:
            assert layer["latency_ms_after"] < layer["latency_ms_before"]


def test_whole_models_are_timed_and_the_published_plan_is_never_slower(latency_builds):
    root, (report, second) = latency_builds
    whole = report["whole_model"]
    assert whole["status"] == "measured" and whole["runtime"] == "litert" and whole["precision"] == "fp32"
    original = whole["original"]["measured_ms"]
    assert original > 0 and whole["original"]["predicted_ms"] > 0
    sols = report["solutions"]
    assert len(sols) == 4  # --max-sol rungs spread along the ladder
    assert all(s["predicted_ms"] > 0 and s["measured_ms"] > 0 and s["plan"] for s in sols)
    # the ladder the budget search walked: the measured rungs faster than the original and every less compressed
    # one, and the levels between two such neighbours (where latency falls steadily)
    kept = sorted((s for s in sols if s["rung"] is not None), key=lambda s: s["rung"])
    assert whole["ladder_rungs"] == report["budget_search"]["levels"] >= len(kept) and whole["measured_rungs"] == 4
    assert all(s["measured_ms"] < original for s in kept)
    assert [s["measured_ms"] for s in kept] == sorted(s["measured_ms"] for s in kept)
    assert kept and sols[0]["measured_ms"] < 0.5 * original  # the most compressed rung halves the latency at least
    level = report["budget_search"]["published_level"]
    assert level is not None, report["budget_search"]["rounds"]  # a compressed rung met the fixture's budget
    row = next((s for s in kept if s["rung"] == level), None)
    if row is not None:  # a measured rung: tried, within the budget, faster than the original
        assert row["drop"] is not None and row["drop"] <= report["accuracy_budget"]["max_drop"]
        assert row["measured_ms"] < original and row["label"] == report["budget_search"]["published"]
    else:  # a level between two measured rungs on the frontier
        assert any(a["rung"] < level < b["rung"] for a, b in zip(kept, kept[1:]))
    # a compressed plan within the budget (which one depends on measured latency, so not pinned: under load the
    # timings can favour a less compressed rung)
    assert report["accuracy_budget"]["met"] and report["compressed"]["macs"] < report["original"]["macs"]
    # never slower: the final benchmark, measured apart from the search, agrees
    assert report["benchmarks"]["runs"][0]["ratios"]["latency_p50"] > 1.0
    assert set(whole["cost_model_error"]) == {"per_layer_sum", "with_remainder", "scaled", "rungs"}
    html = (root / "a" / "report.html").read_text()
    assert "Whole models timed on the target" in html and "Against the int8 baseline" in html
    assert "Fastest on litert: " in html and "Fastest on onnxruntime-cpu: " in html
    # a second build finds every whole model in the cost database and reads the same numbers back, unless they hold
    # an inversion (a rung slower than a less compressed one kept: on a loaded machine), which it times afresh
    if not _stored_inversion(report):
        assert second["whole_model"]["original"]["measured_ms"] == original
        assert [s["measured_ms"] for s in second["solutions"]] == [s["measured_ms"] for s in sols]
    else:
        assert [s["measured_ms"] for s in second["solutions"]] != [s["measured_ms"] for s in sols]


def _stored_inversion(report) -> bool:
    """Whether the whole-model timings a build stored hold an inversion (``cost.measure.inverted``)."""
    from lrfc.cost.measure import inverted

    whole = report["whole_model"]
    return bool(inverted({s["level"]: s["measured_ms"] for s in report["solutions"]}, whole["original"]["measured_ms"]))


def test_ranks_are_rounded_to_the_targets_channel_multiple(latency_builds):
    _, (report, _) = latency_builds
    assert report["rank_multiple"] == 16  # profiles/host.toml's [rank_multiple], measured by lrfc profiles probe
    wide = [c for c in report["search"]["candidates"] if c["layer"] in ("conv2", "conv3", "conv4")]  # >= 32 channels
    assert wide and all(r % 16 == 0 for c in wide for r in c["ranks"])
    chosen = [layer for layer in report["layers"] if layer["method"] is not None and layer["name"] in ("conv2", "conv3", "conv4")]
    assert chosen and all(r % 16 == 0 for layer in chosen for r in layer["ranks"])


def test_artifacts_are_written_verified_and_reported(latency_builds):
    root, (report, _) = latency_builds
    arts = {(a["model"], a["format"], a.get("variant")): a for a in report["artifacts"]}
    pairs = {("compressed", "tflite"), ("compressed", "onnx"), ("original", "tflite"), ("original", "onnx")}
    # the target's fp32 files, and both models at int8: the baseline a user would build instead
    assert set(arts) == {(*p, None) for p in pairs} | {(*p, "int8 baseline") for p in pairs}
    eq = report["int8_equalization"]  # the chains were equalized (factorize.equalize) before any file was written
    chains = [layer for layer in report["layers"] if layer.get("method") not in (None, "ttm")]
    assert eq["chains"] == len(chains) > 0 and eq["links"] >= len(chains) and eq["max_scale"] >= 1.0
    for (role, fmt, variant), a in arts.items():
        path = Path(a["path"])
        stem = "model" if role == "compressed" else "original"
        assert path.name == (f"{stem}.{fmt}" if variant is None else f"{stem}.int8.{fmt}")
        assert path.stat().st_size == a["bytes"] > 1000
        assert a["passed"] and a["precision"] == ("fp32" if variant is None else "int8")
        if variant is None:
            assert a["max_abs_diff"] < 1e-4 and a["top1_agreement"] >= 0.99 and a["samples"] > 0
        else:  # int8 is within the gate's int8 tolerance, and far smaller: its weights take a quarter of the bytes,
            # while scales, int32 biases and the graph do not shrink (measured: 13-18 KB on the original, 27-32 KB on
            # the compressed model, whose chains have more tensors: 108 -> 54 KB in TFLite, 106 -> 58 KB in ONNX)
            fp32 = arts[(role, fmt, None)]["bytes"]
            assert a["top1_agreement"] >= 0.9 and a["bytes"] < min(fp32 / 4 + 48_000, 0.75 * fp32)
    # the host target's device is this machine: where its ONNX Runtime saturates 8-bit products, 7-bit weights at once
    from lrfc.lower.artifacts import ONNX_7_BITS_NOTE, saturates_int8
    from runtime_bench.device import fingerprint

    seven = saturates_int8(fingerprint("onnxruntime-cpu"))
    for role in ("compressed", "original"):
        assert (arts[(role, "onnx", "int8 baseline")].get("note") == ONNX_7_BITS_NOTE) == seven
        assert not arts[(role, "onnx", None)].get("note")
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
        # 20 runs in 5 rounds, less the rounds run with the cores far apart where others were near (runtime_bench.cores);
        # each file's row comes from whichever of the stage's two runs read it lower (benchmark.stage), so the two
        # files may have kept different rounds
        assert o["runs"] in (4, 8, 12, 16, 20) and c["runs"] in (4, 8, 12, 16, 20)
        assert run["ratios"]["latency_p50"] == pytest.approx(o["p50_ms"] / c["p50_ms"], rel=1e-3)
        assert run["ratios"]["file_bytes"] == pytest.approx(o["file_bytes"] / c["file_bytes"], rel=1e-3)
        assert run["ratios"]["macs"] == pytest.approx(report["original"]["macs"] / report["compressed"]["macs"], rel=1e-3)
        assert o["peak_rss_mb"] > 20 and c["peak_rss_mb"] > 20
        # the search timed whole models on LiteRT at fp32: that run is checked against it, and timed again when it
        # strays (benchmark.stage.AGREEMENT)
        agreement = run.get("agreement")
        assert (agreement is not None) == (run["runtime"] == "litert")
        # timed once more where the speed-up strayed (LiteRT, above) or the cores were far apart in every round
        retimed = run.get("timed_again") is not None
        assert run.get("timed_again") in (None, "strayed", "cores_far")
        if agreement:
            assert 0 < agreement["search"][0] <= agreement["search"][1] and agreement["final"] == run["ratios"]["latency_p50"]
            assert agreement["retimed"] == retimed
        else:
            assert run.get("timed_again") != "strayed"  # no search timing on this runtime to stray from
        assert o["lifetimes"] == c["lifetimes"] == (4 if retimed else 2)  # each file's lower median over fresh workers
        # the int8 baseline, timed in the same run: both models at int8, and lrfc's fp32 against the original's int8
        i8 = run["int8"]
        fmt = run["format"]
        assert i8["original"]["name"] == f"original.int8.{fmt}" and i8["compressed"]["name"] == f"model.int8.{fmt}"
        assert run["ratios"]["vs_original_int8"] == pytest.approx(i8["original"]["p50_ms"] / c["p50_ms"], rel=1e-3)
        assert i8["ratios"]["latency_p50"] == pytest.approx(i8["original"]["p50_ms"] / i8["compressed"]["p50_ms"], rel=1e-3)
        assert all(0.5 < row["accuracy"] <= 1 for row in (o, c, i8["original"], i8["compressed"]))
        # every file timed at 1 and 2 threads too (the host profile's 2 are what a model may use, not must):
        # the headline at 2, each file's fastest count beside it
        for row in (o, c, i8["original"], i8["compressed"]):
            assert set(row["p50_ms_by_threads"]) == {"1", "2"} and row["p50_ms"] == row["p50_ms_by_threads"]["2"]
            assert row["best_p50_ms"] == row["p50_ms_by_threads"][str(row["best_threads"])] == min(
                row["p50_ms_by_threads"].values())
        assert run["ratios"]["latency_p50_best_threads"] == pytest.approx(o["best_p50_ms"] / c["best_p50_ms"], rel=1e-3)
        assert run["ratios"]["vs_original_int8_best_threads"] == pytest.approx(
            i8["original"]["best_p50_ms"] / c["best_p50_ms"], rel=1e-3)
        # the file to deploy on this runtime, and on how many threads: the lowest p50 of the four timed that passed
        # the gate, each at its fastest count
        best = min((r for r in (o, c, i8["original"], i8["compressed"]) if r.get("verified") is not False),
                   key=lambda row: row["best_p50_ms"])
        assert run["fastest"]["name"] == best["name"] and run["fastest"]["p50_ms"] == best["best_p50_ms"]
        assert run["fastest"]["threads"] == best["best_threads"]
        assert run["fastest"]["precision"] == ("int8" if ".int8." in best["name"] else "fp32")


def test_an_int8_target_times_both_models_at_fp32_beside_its_own(tiny_model_path, small_fashion_mnist, tmp_path):
    """The baseline of an int8 build is fp32: whether int8 pays at all on the device."""
    res = run_cli("build", str(tiny_model_path), "--data", str(small_fashion_mnist), "--target", "host-int8",
                  "--objective", "flops", "--finetune", "none", "--calib-samples", "64", "--formats", "tflite",
                  "--bench-runs", "20", "--out", str(tmp_path / "i8"), "--cache-dir", str(tmp_path / "cache"),
                  timeout=600)
    assert res.returncode == 0, res.stderr
    report = json.loads((tmp_path / "i8" / "report.json").read_text())
    arts = {(a["model"], a.get("variant")): a for a in report["artifacts"]}
    assert set(arts) == {(m, v) for m in ("compressed", "original") for v in (None, "fp32 baseline")}
    for (role, variant), a in arts.items():
        stem = "model" if role == "compressed" else "original"
        assert a["passed"] and a["precision"] == ("int8" if variant is None else "fp32")
        assert Path(a["path"]).name == (f"{stem}.tflite" if variant is None else f"{stem}.fp32.tflite")
        assert Path(a["path"]).is_file()
    (run,) = report["benchmarks"]["runs"]
    assert run["precision"] == "int8" and "int8" not in run
    fp32 = run["fp32"]
    assert fp32["original"]["name"] == "original.fp32.tflite" and fp32["compressed"]["name"] == "model.fp32.tflite"
    assert run["ratios"]["vs_original_fp32"] == pytest.approx(fp32["original"]["p50_ms"] / run["compressed"]["p50_ms"],
                                                              rel=1e-3)
    rows = (run["original"], run["compressed"], fp32["original"], fp32["compressed"])
    assert run["fastest"]["name"] == min((r for r in rows if r.get("verified") is not False),  # each on its
                                         key=lambda r: r["best_p50_ms"])["name"]                  # fastest count
    assert any(l.startswith("fp32        litert: original fp32 p50 ") for l in res.stdout.splitlines())
    assert any(l.startswith("fastest     litert: ") for l in res.stdout.splitlines())
    # the int8 file's I/O: its calibrated scale and zero point, and what 8-bit pixels become (one line, its own)
    (q,) = arts[("compressed", None)]["io"]["inputs"]
    assert q["dtype"] == "int8" and q["scale"] > 0 and "io" in arts[("compressed", "fp32 baseline")]
    (line,) = [l for l in res.stdout.splitlines() if l.startswith("int8 I/O    ")]
    assert line.startswith(f"int8 I/O    model.tflite takes int8 (scale {q['scale']:.6g}, zero point "
                           f"{q['zero_point']}; from 8-bit pixels p: q = "), line
    html = (tmp_path / "i8" / "report.html").read_text()  # and report.html, for each int8 file (the original's too)
    assert html.count("<p class=muted>int8 I/O: ") == 2 and "int8 I/O: model.tflite takes int8 (scale " in html
    # which operators LiteRT's XNNPACK takes, per file: all of this model's, in one part (so no line says otherwise)
    for a in arts.values():
        assert a["delegation"]["not_delegated"] == {} and a["delegation"]["partitions"] == 1, a["delegation"]
        assert a["delegation"]["operators"] == a["delegation"]["delegated"] >= 5
    assert not [l for l in res.stdout.splitlines() if l.startswith("delegate    ")]
    # what the user deploys is the int8 file: it is scored on the whole validation split, against the budget
    budget = report["accuracy_budget"]
    (deliverable,) = budget["deliverables"]
    assert (deliverable["file"], deliverable["format"], deliverable["precision"]) == ("model.tflite", "tflite", "int8")
    assert deliverable["drop"] == pytest.approx(100 * (report["original"]["accuracy"] - deliverable["accuracy"]), abs=1e-3)
    assert deliverable["met"] == (deliverable["drop"] <= 1.0)
    # the same files' top-1 on the gate's 512 samples, a subset of the split, is close
    assert abs(deliverable["accuracy"] - arts[("compressed", None)]["accuracy"]) < 0.08
    assert abs(deliverable["original_accuracy"] - arts[("original", None)]["accuracy"]) < 0.08
    last = res.stdout.strip().splitlines()[-1]  # the summary ends with the budget, the int8 file's drop in it
    assert last.startswith("budget      ") and f"model.tflite drop {deliverable['drop']:.2f}" in last, last
    # the budget search judged that file before publishing it (lower.judge): the same drop, from the same numbers
    search = report["budget_search"]
    (published,) = [r for r in search["rounds"] if r["level"] == search["published_level"]]
    assert search["judged"] == "int8 files" and search["judge_seconds"] > 0 and published["met"]
    assert published["files"] == {"tflite": deliverable["drop"]} and published["drop"] == deliverable["drop"]
    assert published["model_drop"] == round(100 * (report["original"]["accuracy"] - report["compressed"]["accuracy"]), 4)
    line = next(l for l in res.stdout.splitlines() if l.startswith("search      "))
    judged = sum(1 for r in search["rounds"] if r["files"])
    assert judged >= 1 and line.endswith(f"; judged on its int8 files: {judged} round{'s' * (judged != 1)} that met "
                                         f"the budget on the Keras model lowered and scored "
                                         f"({search['judge_seconds']:.0f} s)"), line


def test_a_baseline_that_fails_its_gate_is_timed_and_marked_but_never_published(tiny_model_path, small_fashion_mnist,
                                                                                  tmp_path, monkeypatch):
    """int8 of a keras.applications EfficientNetB0 failed the gate where lrfc's passed: the comparison still shows.
    Here every int8 file fails (a tolerance no int8 file meets): both are timed, flagged, and left out of ``out``."""
    import lrfc
    from lrfc.lower import verify
    from lrfc.report.text import summary_table

    monkeypatch.setitem(verify.TOLERANCES, "int8", verify.Tolerance(max_abs_diff=1e-9, top1_agreement=1.0))
    result = lrfc.build(str(tiny_model_path), str(small_fashion_mnist), target="host", objective="flops",
                        finetune="none", calib_samples=64, formats=("tflite",), bench_runs=20, out=tmp_path / "o",
                        cache_dir=str(tmp_path / "cache"), log=lambda m: None)
    assert result.failed == []  # the baselines are not the deliverable
    baselines = [a for a in result.artifacts if a.variant == "int8 baseline"]
    assert len(baselines) == 2 and not any(a.passed for a in baselines)
    assert sorted(p.name for p in (tmp_path / "o").iterdir() if p.suffix == ".tflite") == ["model.tflite",
                                                                                          "original.tflite"]
    assert not list((tmp_path / "o").glob(".lrfc-staging-*"))
    (run,) = result.report["benchmarks"]["runs"]
    pair = run["int8"]
    assert pair["original"]["name"] == "original.int8.tflite" and pair["original"]["verified"] is False
    assert pair["compressed"]["verified"] is False and pair["original"]["p50_ms"] > 0
    assert "verified" not in run["original"]  # the deliverables passed: nothing to flag
    int8_line = next(l for l in summary_table(result.report).splitlines() if l.startswith("int8 "))
    assert int8_line.count("(failed verification: timed, not published)") == 2


def test_an_int8_target_whose_original_fails_its_gate_still_builds_and_times_it(tiny_model_path, small_fashion_mnist,
                                                                                tmp_path, monkeypatch):
    """The original's own int8 file is the reference lrfc's is timed against, not the deliverable (bench.foreign's
    MobileNetV3Small: post-training int8 of the original fails the gate). Here the gate is made impossible for
    ``original.tflite`` alone: lrfc's file is published, the exit status is 0, the original's file is timed beside it,
    flagged, and left out of ``out``. Then for every int8 file: lrfc's failure says the original's fails too, and
    what to do."""
    import lrfc
    from lrfc.errors import VerificationError
    from lrfc.lower import verify
    from lrfc.report.text import summary_table

    impossible = verify.Tolerance(max_abs_diff=1e-9, top1_agreement=1.0)
    real_gate = verify.gate

    def strict_for_original(path, fmt, precision, *args, **kwargs):
        if not Path(path).stem.endswith("original") or precision != "int8":  # its second try too (int8_ranges)
            return real_gate(path, fmt, precision, *args, **kwargs)
        with monkeypatch.context() as m:
            m.setitem(verify.TOLERANCES, "int8", impossible)
            return real_gate(path, fmt, precision, *args, **kwargs)

    monkeypatch.setattr(verify, "gate", strict_for_original)
    options = dict(target="host-int8", objective="flops", finetune="none", calib_samples=64, formats=("tflite",),
                   bench_runs=20, cache_dir=str(tmp_path / "cache"), log=lambda m: None)
    result = lrfc.build(str(tiny_model_path), str(small_fashion_mnist), out=tmp_path / "o", **options)
    assert result.failed == []  # lrfc's file passed: the build delivered
    original = next(a for a in result.artifacts if a.model == "original" and a.variant is None)
    assert not original.passed and original.error.startswith("original.tflite (int8) failed verification")
    assert not original.deliverable and next(a for a in result.artifacts if a.model == "compressed").deliverable
    assert sorted(p.name for p in (tmp_path / "o").iterdir() if p.suffix == ".tflite") == ["model.fp32.tflite",
                                                                                          "model.tflite",
                                                                                          "original.fp32.tflite"]
    assert not list((tmp_path / "o").glob(".lrfc-staging-*"))
    (run,) = result.report["benchmarks"]["runs"]  # timed all the same, beside lrfc's file
    assert run["precision"] == "int8" and run["original"]["verified"] is False and run["original"]["p50_ms"] > 0
    assert "verified" not in run["compressed"] and run["ratios"]["latency_p50"] > 0
    summary = summary_table(result.report)
    latency = next(l for l in summary.splitlines() if l.startswith("latency     litert int8"))
    assert latency.endswith("(the original's file failed verification: timed, not published)")
    assert "original.tflite  int8  NOT PUBLISHED: original.tflite (int8) failed verification" in summary

    monkeypatch.setitem(verify.TOLERANCES, "int8", impossible)  # now lrfc's int8 file fails too: the build does
    with pytest.raises(VerificationError) as failure:
        lrfc.build(str(tiny_model_path), str(small_fashion_mnist), out=tmp_path / "p", **options)
    (mine,) = failure.value.result.failed
    assert mine.name == "model.tflite" and mine.error.startswith("model.tflite (int8) failed verification")
    assert mine.error.endswith("(the original's own int8 file fails the gate too: post-training int8 loses this much "
                               "on this model; --qat (with --finetune oneshot), which fine-tunes through int8 "
                               "rounding, may recover it)"), mine.error
    assert str(failure.value) == mine.error


def test_formats_choose_the_runtime_the_build_is_measured_on(tiny_model_path, small_fashion_mnist, tmp_path):
    """``--formats onnx`` on a target whose first runtime is LiteRT: the files are ONNX Runtime's, so the chains are
    priced (at int8, as the files), the ranks rounded and the files benchmarked there (``targets.with_formats``),
    never on LiteRT."""
    res = run_cli("build", str(tiny_model_path), "--data", str(small_fashion_mnist), "--target", "host-int8",
                  "--objective", "latency", "--finetune", "none", "--calib-samples", "64", "--methods", "tucker,svd",
                  "--formats", "onnx", "--bench-runs", "10", "--out", str(tmp_path / "o"),
                  "--cache-dir", str(tmp_path / "cache"), "--cost-db", str(tmp_path / "costs.sqlite"), timeout=600)
    assert res.returncode == 0, res.stderr
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    costs = report["costs"]
    assert costs["runtime"] == "onnxruntime-cpu" and costs["precision"] == "int8"  # chains as the files: int8 QDQ
    assert costs["measured"] > 0 and costs["threads"] == 2
    assert report["rank_multiple"] == 16  # host-int8's multiple for ONNX Runtime int8 (test_profiles: the runtime's own)
    assert [(r["runtime"], r["precision"]) for r in report["benchmarks"]["runs"]] == [("onnxruntime-cpu", "int8")]
    assert {Path(a["path"]).suffix for a in report["artifacts"]} == {".onnx"}


def test_unreachable_target_is_estimated_and_says_so(tiny_model_path, small_fashion_mnist, tmp_path):
    """An unreachable board is priced by roofline estimates, and every place that shows a cost says so. The board
    is the Orin Nano built for LiteRT (``--formats tflite``), which runs on its CPU: the estimates use the
    profile's [cpu] figures (with the GPU's per-operator launch, the tiny model's layers cost less than one
    launch each, so nothing would be factorized and there would be no ladder to estimate)."""
    res = run_cli("build", str(tiny_model_path), "--data", str(small_fashion_mnist), *LATENCY,
                  "--target", "jetson-orin-nano", "--finetune", "none",
                  "--formats", "tflite", "--out", str(tmp_path / "j"), "--cache-dir", str(tmp_path / "cache"),
                  "--cost-db", str(tmp_path / "costs.sqlite"), timeout=600)
    assert res.returncode == 0, res.stderr
    report = json.loads((tmp_path / "j" / "report.json").read_text())
    assert report["cost_source"] == "estimated" and report["costs"]["measured"] == 0 and report["costs"]["estimated"] > 0
    assert report["costs"]["basis"] == "roofline from jetson-orin-nano's CPU peak 144 GOP/s fp16 and 68 GB/s"
    assert report["benchmarks"]["status"].startswith("not measured: target jetson-orin-nano is not reachable")
    assert [a["precision"] for a in report["artifacts"]] == ["fp16", "fp16"]  # the profile's precision
    cost_line = next(l for l in res.stdout.splitlines() if l.startswith("cost "))
    assert "estimated" in cost_line and "measured" not in cost_line.replace("not measured", "")
    assert "latency costs: estimated, not measured" in res.stderr
    assert not (tmp_path / "costs.sqlite").exists()  # nothing measured, nothing stored
    assert report["whole_model"]["status"] == "estimated" and report["solutions"]
    assert all(s["measured_ms"] is None and s["rung"] == s["level"] for s in report["solutions"])
    # the budget of an fp16 target is judged on the fp16 file it publishes (lower.judge), and reported from it
    search, (deliverable,) = report["budget_search"], report["accuracy_budget"]["deliverables"]
    assert search["judged"] == "fp16 files" and deliverable["precision"] == "fp16"
    (published,) = [r for r in search["rounds"] if r["level"] == search["published_level"]]
    assert published["met"] and published["files"] == {"tflite": deliverable["drop"]}


def test_bad_device_url_is_one_line_exit_2(tiny_model_path, tmp_path):
    res = run_cli("build", str(tiny_model_path), "--data", "fashion-mnist", *LATENCY, "--device", "ssh://-oProxyCommand=x", "--out", str(tmp_path / "x"))
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "--device" in res.stderr


def test_a_chain_that_does_not_lower_drops_its_candidate_not_the_build(tiny_model_path, small_fashion_mnist, tmp_path,
                                                                       monkeypatch):
    """The converter refusing one kind of chain (here every CP chain: its depthwise stages) costs those candidates
    their place: the build prices and publishes the rest, names each one dropped, and the report keeps the errors."""
    from lrfc import pipeline
    from lrfc.cost import latency
    from lrfc.options import BuildOptions

    real = latency.lower_chain

    def lower_chain(chain, path, precision, *rest):
        if any(stage.kind == "depthwise" for stage in chain.stages):
            raise ValueError("the converter refused a DEPTHWISE_CONV_2D here")
        return real(chain, path, precision, *rest)

    monkeypatch.setattr(latency, "lower_chain", lower_chain)
    logged = []
    opts = BuildOptions(model=str(tiny_model_path), data=str(small_fashion_mnist), objective="latency",
                        calib_samples=100, step=25, methods=("cp", "tucker", "svd"), finetune="none",
                        out=str(tmp_path / "out"), cost_db=str(tmp_path / "costs.sqlite"), cache=False, bench_runs=0,
                        formats=("tflite",))
    state = pipeline.run_build(opts, log=logged.append)
    info = state.pricer.info
    assert info.unlowerable and all(u["error"] == "ValueError: the converter refused a DEPTHWISE_CONV_2D here"
                                    for u in info.unlowerable)
    assert info.measured > 0  # the others were timed
    priced = {c.method for cs in state.candidates.values() for c in cs if c.measured_ms is not None}
    assert priced == {"tucker", "svd"}  # CP's priced candidates are gone (those below the walk's start never were)
    dropped = [line for line in logged if line.startswith("price: ") and " cp at ranks " in line]
    assert dropped and all(line.endswith("dropped, its chain does not lower or load (costs.unlowerable in report.json)")
                           for line in dropped)
    assert all(c.method != "cp" for c in state.plan.choices)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert len(report["costs"]["unlowerable"]) == len(info.unlowerable)
