"""Report rendering and the progress bar: fast, no TensorFlow."""

from __future__ import annotations

import base64
import copy
import io
import json
import math
import re
import struct

import numpy as np
import pytest

from lrfc.benchmark.stage import fastest
from lrfc.common.progress import Progress
from lrfc.report.files import write_report
from lrfc.report.html import render_html
from lrfc.report.plot import pareto_png
from lrfc.report.text import summary_table

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# A 3x3 conv 32->64 on a 14x14 output, a dense 3136->128 and a kept 128->10 head,
# with the costs the factorized structures in docs/METHOD.md give.
CONV = {"kh": 3, "kw": 3, "cin": 32, "cout": 64, "hw": 14 * 14}
DENSE = {"din": 3136, "dout": 128}


def _conv_weights(method: str, ranks: list[int]) -> int:
    kh, kw, cin, cout = CONV["kh"], CONV["kw"], CONV["cin"], CONV["cout"]
    if method == "tucker":
        r1, r2 = ranks
        return cin * r1 + kh * kw * r1 * r2 + r2 * cout
    if method == "cp":
        (r,) = ranks
        return r * (cin + kh + kw + cout)
    r1, r2, r3 = ranks  # tt
    return cin * r1 + kh * r1 * r2 + kw * r2 * r3 + r3 * cout


def _candidate(layer: str, method: str, ranks: list[int], weights: int, macs: int, similarity: float,
               bias: int, data_aware: bool = False) -> dict:
    return {"layer": layer, "method": method, "ranks": ranks, "params": weights + bias, "macs": macs,
            "similarity": similarity, "data_aware": data_aware}


def _candidates() -> list[dict]:
    conv_full = CONV["kh"] * CONV["kw"] * CONV["cin"] * CONV["cout"]
    out = []
    for method, ranks in [("tucker", [4, 8]), ("tucker", [8, 16]), ("tucker", [16, 24]), ("tucker", [24, 48]),
                          ("cp", [16]), ("cp", [48]), ("cp", [96]), ("tt", [4, 8, 4]), ("tt", [8, 16, 8]), ("tt", [16, 24, 16])]:
        w = _conv_weights(method, ranks)
        sim = round(1 - 0.35 * math.exp(-13.7 * w / conv_full) - {"cp": 0.03, "tt": 0.015}.get(method, 0), 4)
        out.append(_candidate("block<1>/conv", method, ranks, w, w * CONV["hw"], sim, bias=64, data_aware=method == "tucker"))
    dense_full = DENSE["din"] * DENSE["dout"]
    for method, r in [("svd", 8), ("svd", 16), ("svd", 32), ("qr", 16), ("qr", 32)]:
        w = r * (DENSE["din"] + DENSE["dout"])
        sim = round(1 - 0.3 * math.exp(-12.1 * w / dense_full) - (0.02 if method == "qr" else 0), 4)
        out.append(_candidate("fc", method, [r], w, w, sim, bias=128, data_aware=method == "svd"))
    out.append(_candidate("fc", "ttm", [1, 8, 1], 8 * (56 * 8 + 56 * 16), 8 * (56 * 8 + 56 * 16), 0.9012, bias=128))
    for method, r in [("svd", 2), ("svd", 4), ("qr", 2), ("qr", 4)]:
        w = r * 138
        out.append(_candidate("head", method, [r], w, w, round(0.55 + 0.07 * r - (0.04 if method == "qr" else 0), 4), bias=10))
    return out


@pytest.fixture
def report() -> dict:
    return {
        "model": "models/tiny.keras",
        "target": "jetson-orin-nano",
        "objective": "flops",
        "threshold": 0.92,
        "seed": 0,
        "cost_source": "macs-stand-in",
        "original": {"params": 421_642, "macs": 4_241_152, "accuracy": 0.9134},
        "compressed": {"params": 56_458, "macs": 755_968, "accuracy": 0.9071},
        "layers": [
            {"name": "block<1>/conv", "type": "Conv2D", "method": "tucker", "ranks": [8, 16], "similarity": 0.9426,
             "params_before": 18_496, "params_after": 2_496, "macs_before": 3_612_672, "macs_after": 476_672, "data_aware": True},
            {"name": "fc", "type": "Dense", "method": "svd", "ranks": [16], "similarity": 0.9379,
             "params_before": 401_536, "params_after": 52_352, "macs_before": 401_408, "macs_after": 52_224, "data_aware": True,
             "note": "rank rounded up to a multiple of 8"},
            {"name": "head", "type": "Dense", "method": None, "ranks": None, "similarity": None,
             "params_before": 1_290, "params_after": 1_290, "macs_before": 1_280, "macs_after": 1_280, "data_aware": None},
        ],
        "finetune": {"mode": "oneshot", "rounds": 1, "epochs": 10, "seconds": 84.25, "distill": True},
        "timings": {"load": 1.2, "calibrate": 3.4, "score": 41.0, "select": 0.3, "factorize": 2.1, "finetune": 84.3, "report": 0.9},
        "peak_rss_mb": {"load": 610.0, "calibrate": 702.4, "score": 1893.6, "finetune": 1420.2},
        "search": {
            "candidates": _candidates(),
            "solutions": [
                {"cost": 755_968.0, "min_similarity": 0.9379, "mean_similarity": 0.9403,
                 "choices": {"block<1>/conv": {"method": "tucker", "ranks": [8, 16]}, "fc": {"method": "svd", "ranks": [16]}, "head": None}},
                {"cost": 1_120_000.0, "min_similarity": 0.9512, "mean_similarity": 0.9601,
                 "choices": {"block<1>/conv": {"method": "tucker", "ranks": [16, 24]}, "fc": {"method": "svd", "ranks": [32]}, "head": None}},
                {"cost": 4_241_152.0, "min_similarity": 1.0, "mean_similarity": 1.0,
                 "choices": {"block<1>/conv": None, "fc": None, "head": None}},
            ],
        },
        "unfactorized": [{"name": "stem", "type": "Conv2D", "reason": "1 input channel: every rank below full costs more"}],
    }


def test_sample_report_is_consistent(report):
    """The fixture's own numbers add up, so the tests below check the renderer and not the fixture."""
    assert len(report["search"]["candidates"]) == 20
    stem = {"params": 320, "macs": 225_792}
    for side, suffix in (("original", "before"), ("compressed", "after")):
        for key in ("params", "macs"):
            assert report[side][key] == stem[key] + sum(l[f"{key}_{suffix}"] for l in report["layers"])


def test_summary_table_totals_and_percentages(report):
    text = summary_table(report)
    lines = text.splitlines()
    assert lines[0] == "lrfc build: models/tiny.keras -> jetson-orin-nano  (objective flops, threshold 0.92, seed 0)"
    total = next(l for l in lines if l.startswith("model total"))
    assert re.search(r"3 layers\s+2 factorized\s+421,642 -> 56,458\s+4,241,152 -> 755,968$", total)
    # 1 - 56,458/421,642 = 86.6098%; 1 - 755,968/4,241,152 = 82.1754%
    assert "removed     86.6% of params, 82.2% of MACs" in lines
    assert "accuracy    91.34% -> 90.71% (drop 0.63 points) on validation" in lines
    assert "cost        MACs counted analytically (objective flops)" in lines
    assert "fine-tune   oneshot, 1 round x 10 epochs, distillation, 84.2s" in lines
    from lrfc.report.fmt import finetune_line

    warm = {"mode": "oneshot", "rounds": 4, "epochs": 3, "seconds": 770.19, "distill": True, "round_epochs": [3, 2, 1, 1]}
    assert finetune_line(warm) == "oneshot, 4 rounds of 3+2+1+1 epochs, distillation, 770.2s"
    assert finetune_line({**warm, "round_epochs": [3, 3]}) == "oneshot, 4 rounds x 3 epochs, distillation, 770.2s"
    assert (finetune_line({**warm, "balanced": {"shirt": 6}}) ==  # --max-class-drop on data with few shirts
            "oneshot, 4 rounds of 3+2+1+1 epochs, distillation, rarer classes repeated (shirt x6), 770.2s")
    assert (finetune_line({**warm, "features": 1.0}) ==  # --distill-features 1
            "oneshot, 4 rounds of 3+2+1+1 epochs, distillation, feature maps (weight 1), 770.2s")
    assert "memory      peak 1894 MiB resident, in score" in lines
    conv = next(l for l in lines if l.startswith("block<1>/conv"))
    assert re.search(r"Conv2D\s+tucker\*\s+8x16\s+0\.9426\s+18,496 ->\s+2,496\s+3,612,672 -> 476,672$", conv)
    head = next(l for l in lines if l.startswith("head "))
    assert re.search(r"Dense\s+kept\s+-\s+-\s+1,290 ->\s+1,290\s+1,280 ->\s+1,280$", head)
    assert "note        fc: rank rounded up to a multiple of 8" in lines
    assert "skipped     stem (Conv2D): 1 input channel: every rank below full costs more" in lines
    assert "\x1b" not in text
    # fixed width: every layer row and the total line up on the arrows
    table = [l for l in lines if l.startswith(("block<1>/conv", "fc ", "head ", "model total"))]
    assert len({l.index(" -> ") for l in table}) == 1


@pytest.mark.parametrize("source, objective, expected", [
    ("macs-stand-in", "latency", "MACs stand in for latency"),
    ("measured", "latency", "latency measured on jetson-orin-nano"),
    ("estimated", "latency", "latency estimated for jetson-orin-nano"),
    ("macs-stand-in", "params", "parameters counted analytically"),
])
def test_summary_names_the_cost_source(report, source, objective, expected):
    report.update(cost_source=source, objective=objective)
    cost = next(l for l in summary_table(report).splitlines() if l.startswith("cost "))
    assert expected in cost


def test_summary_without_accuracy(report):
    report["original"]["accuracy"] = report["compressed"]["accuracy"] = None
    assert "accuracy    not evaluated (no data given) on validation" in summary_table(report).splitlines()


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", png[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", png[16:24])


def test_html_has_rows_escaped_names_and_an_embedded_png(report):
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>")
    assert "block&lt;1&gt;/conv" in page and "block<1>" not in page
    body = page.split("<h2>Layers</h2>", 1)[1].split("</table>", 1)[0]
    assert body.count("<tr") == 1 + 3 + 1  # header, three layers, total
    assert "<td>tucker</td><td>8x16</td><td class=n>0.9426</td><td>data</td>" in body
    assert "<td class=n>18,496 &rarr; 2,496</td><td class=n>3,612,672 &rarr; 476,672</td>" in body
    assert "<tr class=kept><td>head</td><td>Dense</td><td>kept</td>" in body
    assert "86.6% removed" in page and "82.2% removed" in page
    assert "91.34% &rarr; 90.71%" in page and "drop 0.63 points" in page
    assert "1 input channel: every rank below full costs more" in page
    assert "<tr class=chosen><td>1 (chosen)</td>" in page and page.count("class=chosen") == 1
    assert "finetune" in page and "84.30" in page
    match = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert match
    width, height = _png_size(base64.b64decode(match.group(1), validate=True))
    assert width > 200 and height > 200


def test_pareto_png_is_deterministic_and_handles_no_candidates(report):
    png = pareto_png(report)
    assert png == pareto_png(copy.deepcopy(report))
    assert b"Software" not in png and b"Matplotlib" not in png
    report["search"] = {"candidates": [], "solutions": []}
    width, height = _png_size(pareto_png(report))
    assert width > 200 and height > 200


def test_pareto_png_caps_subplots(report):
    """60 layers with candidates draw as 24 subplots plus a caption, not as 60 unreadable ones."""
    cands = [dict(c, layer=f"conv{i}") for i in range(60) for c in report["search"]["candidates"][:3]]
    report["search"]["candidates"] = cands
    width, height = _png_size(pareto_png(report))
    assert width > 1000 and height < 3000


def test_write_report_writes_html_then_json(report, tmp_path, monkeypatch):
    from lrfc.report import files

    written = []
    real = files.write_text
    monkeypatch.setattr(files, "write_text", lambda path, text: written.append(path.name) or real(path, text))
    paths = write_report(report, tmp_path / "out")
    assert written == ["report.html", "report.json"]  # report.json last: it marks a finished report
    assert set(paths) == {"html", "json"}
    assert paths["json"] == tmp_path / "out" / "report.json"
    assert json.loads(paths["json"].read_text()) == report
    assert list(json.loads(paths["json"].read_text())) == list(report)  # documented key order kept
    assert paths["html"].read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.html", "report.json"]


def test_write_report_keeps_json_strict(report, tmp_path):
    report["layers"][0]["similarity"] = float("nan")
    text = write_report(report, tmp_path)["json"].read_text()
    assert "NaN" not in text
    assert json.loads(text)["layers"][0]["similarity"] is None


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_not_a_tty_prints_one_final_line():
    stream, clock = io.StringIO(), FakeClock()
    with Progress("score", 40, stream=stream, clock=clock) as bar:
        for i in range(40):
            clock.now += 0.3
            bar.update(info=f"layer{i}")
    assert stream.getvalue() == "score: 40/40 done in 12.0s\n"


def test_progress_reports_failure_and_can_be_disabled():
    stream = io.StringIO()
    with pytest.raises(RuntimeError):
        with Progress("finetune", 10, stream=stream, clock=FakeClock()) as bar:
            bar.update(3)
            raise RuntimeError("boom")
    assert stream.getvalue() == "finetune: 3/10 failed after 0.0s\n"
    quiet = io.StringIO()
    with Progress("score", 5, stream=quiet, enabled=False) as bar:
        bar.update(5)
    assert quiet.getvalue() == ""


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_tty_redraws_in_place_at_most_ten_times_a_second():
    stream, clock = FakeTTY(), FakeClock()
    with Progress("score", 40, stream=stream, clock=clock) as bar:
        for i in range(40):
            clock.now += 0.01  # 400 ms in all: about 4 redraws, not 40
            bar.update(info=f"layer{i}")
    out = stream.getvalue()
    draws = out.split("\r")[1:]
    assert 4 <= len(draws) <= 8
    assert "\n" not in out[:-1] and out.endswith("\n")
    assert draws[-1].startswith("score [" + "#" * 30 + "] 40/40 layer39")


def test_a_transient_progress_bar_is_erased_on_a_tty_and_silent_in_a_log():
    """The load stage's pass over the validation split: a bar while it runs, no line left (a refusal after it stays
    one line)."""
    tty, clock = FakeTTY(), FakeClock()
    with Progress("original on validation", 5000, stream=tty, clock=clock, transient=True) as bar:
        for _ in range(20):
            clock.now += 0.2
            bar.update(250)
    out = tty.getvalue()
    assert "original on validation [" in out and "\n" not in out
    *_, last, blanks, rest = out.split("\r")  # the last bar drawn, blanks over it, the cursor back at the start
    assert last == "original on validation [" + "#" * 30 + "] 5000/5000" and blanks == " " * len(last) and rest == ""
    log = io.StringIO()
    with Progress("original on validation", 20, stream=log, clock=clock, transient=True) as bar:
        bar.update(20)
    assert log.getvalue() == ""


def _bench_run(runtime: str, original: float, lrfc: float, original_int8: float, lrfc_int8: float) -> dict:
    def row(ms):
        return {"p50_ms": ms, "p90_ms": ms * 1.1, "file_bytes": 1000, "peak_rss_mb": 50.0, "accuracy": 0.9}

    return {"runtime": runtime, "precision": "fp32", "original": row(original), "compressed": row(lrfc),
            "ratios": {"latency_p50": original / lrfc, "macs": 4.0, "vs_original_int8": original_int8 / lrfc},
            "int8": {"original": row(original_int8), "compressed": row(lrfc_int8),
                     "ratios": {"latency_p50": original_int8 / lrfc_int8}}}


def test_the_summary_says_where_int8_of_the_original_beats_both_lrfc_models(report):
    # the demo on the Xeon (2026-12-03): LiteRT's int8 of the original wins, ONNX Runtime's does not
    report["benchmarks"] = {"runs": [_bench_run("litert", 0.413, 0.120, 0.065, 0.093),
                                     _bench_run("onnxruntime-cpu", 0.292, 0.160, 0.144, 0.123)]}
    lines = [l for l in summary_table(report).splitlines() if l.startswith("baseline ")]
    assert lines == ["baseline    litert: the original at int8 (0.065 ms) is faster than lrfc's model at int8 (0.093 ms) "
                     "and at fp32 (0.120 ms); on this runtime, int8 quantization of the original alone is the faster choice"]
    page = render_html(report)
    assert "litert: the original at int8 (0.065 ms) is faster" in page and "onnxruntime-cpu: the original at int8" not in page
    report["benchmarks"]["runs"][0]["int8"]["compressed"]["p50_ms"] = 0.060  # lrfc's int8 wins: nothing to say
    assert not any(l.startswith("baseline ") for l in summary_table(report).splitlines())


def test_the_summary_names_the_fastest_file_per_runtime_and_says_when_int8_does_not_pay(report):
    # the ResNet-style latency build on the Xeon (2026-12-03): on ONNX Runtime lrfc's int8 file was slower than its fp32
    report["benchmarks"] = {"runs": [_bench_run("litert", 0.571, 0.168, 0.081, 0.099),
                                     _bench_run("onnxruntime-cpu", 0.571, 0.168, 0.299, 0.270)]}
    for run in report["benchmarks"]["runs"]:
        for model, row in (("original", run["original"]), ("model", run["compressed"])):
            row["name"] = f"{model}.{'tflite' if run['runtime'] == 'litert' else 'onnx'}"
        for model, row in (("original", run["int8"]["original"]), ("model", run["int8"]["compressed"])):
            row["name"] = f"{model}.int8.{'tflite' if run['runtime'] == 'litert' else 'onnx'}"
    lines = [l for l in summary_table(report).splitlines() if l.startswith("fastest ")]
    assert lines == ["fastest     litert: original.int8.tflite (the original at int8), p50 0.081 ms",
                     "fastest     onnxruntime-cpu: model.onnx (lrfc at fp32), p50 0.168 ms; lrfc's int8 file (0.270 ms) "
                     "runs 1.61x as long as its fp32 one on this runtime: int8 does not pay here"]
    assert "Fastest on onnxruntime-cpu: model.onnx (lrfc at fp32)" in render_html(report)
    lrfc_int8 = report["benchmarks"]["runs"][1]["int8"]["compressed"]
    lrfc_int8.update(p50_ms=0.120, accuracy=0.8975)  # lrfc's int8 wins: its accuracy is set beside the fp32 file's
    assert [l for l in summary_table(report).splitlines() if l.startswith("fastest ")][1] == (
        "fastest     onnxruntime-cpu: model.int8.onnx (lrfc at int8), p50 0.120 ms; top-1 89.75% against 90.00% at "
        "fp32 on the verification samples")
    del report["benchmarks"]["runs"][1]["int8"]  # no int8 pair timed: nothing to choose between
    assert sum(l.startswith("fastest ") for l in summary_table(report).splitlines()) == 1


def test_an_int8_target_is_set_against_fp32_and_the_summary_says_when_int8_does_not_pay(report):
    # a keras.applications MobileNetV2 (alpha 0.35, 32x32) built for host-int8, the Xeon's LiteRT, 2026-12-03
    run = _bench_run("litert", 0.085, 0.072, 0.073, 0.057)  # the target's pair at int8, the baseline at fp32
    run.update(precision="int8", fp32=run.pop("int8"))
    run["ratios"]["vs_original_fp32"] = run["ratios"].pop("vs_original_int8")
    for model, row in (("original", run["original"]), ("model", run["compressed"])):
        row["name"] = f"{model}.tflite"
    for model, row in (("original", run["fp32"]["original"]), ("model", run["fp32"]["compressed"])):
        row["name"] = f"{model}.fp32.tflite"
    report["benchmarks"] = {"runs": [run]}
    lines = summary_table(report).splitlines()
    assert [l for l in lines if l.startswith("fp32 ")] == [
        "fp32        litert: original fp32 p50 0.073 ms, top-1 90.00%; lrfc fp32 0.057 ms, top-1 90.00% (speed-up "
        "1.28x); lrfc int8 vs original fp32: 1.01x"]
    assert [l for l in lines if l.startswith("fastest ")] == [
        "fastest     litert: model.fp32.tflite (lrfc at fp32), p50 0.057 ms; lrfc's int8 file (0.072 ms) runs 1.26x "
        "as long as its fp32 one on this runtime: int8 does not pay here"]
    assert not any(l.startswith("baseline ") for l in lines)  # lrfc's fp32 file beats the original's
    page = render_html(report)
    assert "<h3>Against fp32 (the original and lrfc's model unquantized)</h3>" in page
    labels = [label for label in ("original int8", "original fp32", "lrfc int8", "lrfc fp32") if label in page]
    assert sorted(labels, key=page.index) == ["original fp32", "original int8", "lrfc fp32", "lrfc int8"]
    run["fp32"]["compressed"]["p50_ms"], run["compressed"]["p50_ms"] = 0.080, 0.090  # the original's fp32 wins
    assert [l for l in summary_table(report).splitlines() if l.startswith("baseline ")] == [
        "baseline    litert: the original at fp32 (0.073 ms) is faster than lrfc's model at fp32 (0.080 ms) and at "
        "int8 (0.090 ms); on this runtime, the original at fp32, as it is, is the faster choice"]


def test_notes_and_skipped_layers_that_share_a_reason_are_one_line_each(report):
    # a keras.applications MobileNetV2 printed 17 "passed through" lines and 34 identical notes before
    base = report["layers"][0]
    report["layers"] = [dict(base, name=f"block_{i}_expand", note="kept: no candidate met the threshold at a lower cost")
                        for i in range(5)] + [dict(base, name="fc", note="rank rounded up to a multiple of 8")]
    report["unfactorized"] = ([{"name": f"block_{i}_depthwise", "type": "DepthwiseConv2D",
                                "reason": "depthwise convolution: passed through"} for i in range(17)]
                              + [{"name": "stem", "type": "Conv2D", "reason": "1 input channel"}])
    lines = summary_table(report).splitlines()
    assert [l for l in lines if l.startswith(("note ", "skipped "))] == [
        "note        5 layers (block_0_expand, block_1_expand, block_2_expand, ... 2 more): kept: no candidate met the "
        "threshold at a lower cost",
        "note        fc: rank rounded up to a multiple of 8",
        "skipped     17 DepthwiseConv2D layers (block_0_depthwise, block_1_depthwise, block_2_depthwise, ... 14 more): "
        "depthwise convolution: passed through",
        "skipped     stem (Conv2D): 1 input channel"]


def test_the_input_line_says_how_the_datas_shape_was_fitted(report):
    report["input"] = {"range": "0-255", "source": "inferred", "reason": "the model starts with Rescaling",
                       "data_values": "float32 0..1",
                       "data_fit": "28x28x1 images fitted to the model's 32x32x3: the channel repeated, zero-padded, centred"}
    assert ("input       data float32 0..1 -> pixel values 0-255 (inferred: the model starts with Rescaling); 28x28x1 "
            "images fitted to the model's 32x32x3: the channel repeated, zero-padded, centred") in summary_table(report)
    report["input"]["data_fit"] = None  # the data had the input's shape
    assert "fitted" not in summary_table(report)
    report["input"]["data_values"] = "as given (float32 -3.2..2.9: not pixel values, so fed to the model unchanged)"
    assert ("input       data as given (float32 -3.2..2.9: not pixel values, so fed to the model unchanged); the "
            "model's input contract (pixel values 0-255, inferred: the model starts with Rescaling) is not applied to "
            "it\n") in summary_table(report)


def test_a_baseline_that_failed_its_gate_is_flagged_where_it_is_timed(report):
    # int8 of a keras.applications EfficientNetB0 failed the gate (max abs diff 0.51) where lrfc's int8 passed
    run = _bench_run("litert", 0.558, 0.346, 0.150, 0.180)
    run["int8"]["original"].update(verified=False, name="original.int8.tflite")
    run["int8"]["compressed"]["name"] = "model.int8.tflite"
    report["benchmarks"] = {"runs": [run]}
    lines = summary_table(report).splitlines()
    int8_line = next(l for l in lines if l.startswith("int8 "))
    assert "original int8 p50 0.150 ms, top-1 90.00% (failed verification: timed, not published); lrfc int8" in int8_line
    assert [l for l in lines if l.startswith("baseline ")] == [
        "baseline    litert: the original at int8 (0.150 ms) is faster than lrfc's model at int8 (0.180 ms) and at "
        "fp32 (0.346 ms); on this runtime, it would be the faster choice, but its file failed the verification gate "
        "(timed, not published)"]
    assert [l for l in lines if l.startswith("fastest ")] == [  # the file to deploy is a verified one
        "fastest     litert: model.int8.tflite (lrfc at int8), p50 0.180 ms; original.int8.tflite (the original at int8, "
        "0.150 ms) ran faster but failed the verification gate (timed, not published); top-1 90.00% against 90.00% at "
        "fp32 on the verification samples"]
    assert "original int8 (failed verification, not published)" in render_html(report)


def test_the_summary_names_each_files_fastest_thread_count_where_the_run_swept_them(report):
    # the ResNet-style latency build on the Xeon (2026-12-06), LiteRT at 1 and 2 threads side by side
    from lrfc.benchmark.stage import by_file

    timed = {"original.tflite": (1.119, 0.612), "model.tflite": (0.113, 0.162), "original.int8.tflite": (0.199, 0.166),
             "model.int8.tflite": (0.215, 0.205)}
    rows = by_file([{"name": name, "p50_ms": ms, "p90_ms": ms, "file_bytes": 1000, "accuracy": 0.9}
                    for name, pair in timed.items() for ms in pair], [1, 2])
    o, c, o8, c8 = rows
    run = {"runtime": "litert", "precision": "fp32", "original": o, "compressed": c,
           "ratios": {"latency_p50": 0.612 / 0.162, "latency_p50_best_threads": 0.612 / 0.113, "macs": 7.0,
                      "vs_original_int8": 0.166 / 0.162},
           "int8": {"original": o8, "compressed": c8, "ratios": {"latency_p50": 0.166 / 0.205}}}
    report["benchmarks"] = {"runs": [run]}
    lines = summary_table(report).splitlines()
    assert [l for l in lines if l.startswith("fastest ")] == [
        "fastest     litert: model.tflite (lrfc at fp32), p50 0.113 ms on 1 thread; lrfc's int8 file (0.205 ms) runs "
        "1.81x as long as its fp32 one on this runtime: int8 does not pay here"]  # both at their fastest counts
    assert [l for l in lines if l.startswith("threads ")] == [
        "threads     litert: each file's fastest of 1, 2 threads: original fp32 on 2 (0.612 ms), lrfc fp32 on 1 "
        "(0.113 ms), original int8 on 2 (0.166 ms), lrfc int8 on 2 (0.205 ms); each on its fastest, lrfc fp32 is "
        "5.42x as fast as the original fp32 (3.78x both on 2, the profile's)"]
    page = render_html(report)
    assert "p50 ms at its fastest thread count (threads)" in page and "0.113 (1)" in page
    del report["benchmarks"]["runs"][0]["compressed"]["p50_ms_by_threads"]  # one count timed: no such line
    assert not any(l.startswith("threads ") for l in summary_table(report).splitlines())


def test_the_fastest_file_named_is_one_that_passed_the_gate(report):
    # bench.foreign's MobileNetV3Small on ONNX Runtime (2026-12-03): both int8 files failed the gate and ran fastest
    run = _bench_run("onnxruntime-cpu", 0.625, 0.562, 0.364, 0.284)
    for model, name in (("original", "original.int8.onnx"), ("compressed", "model.int8.onnx")):
        run["int8"][model].update(verified=False, name=name)
    run["compressed"]["name"] = "model.onnx"
    best = fastest(run)
    assert (best["name"], best["p50_ms"], best["verified"]) == ("model.onnx", 0.562, True)
    assert best["faster_unverified"]["name"] == "model.int8.onnx" and best["faster_unverified"]["p50_ms"] == 0.284
    report["benchmarks"] = {"runs": [run]}
    assert [l for l in summary_table(report).splitlines() if l.startswith("fastest ")] == [
        "fastest     onnxruntime-cpu: model.onnx (lrfc at fp32), p50 0.562 ms; model.int8.onnx (lrfc at int8, 0.284 ms) "
        "ran faster but failed the verification gate (timed, not published)"]
    run["int8"]["compressed"]["verified"] = True  # had it passed, it is the one to deploy
    assert fastest(run)["name"] == "model.int8.onnx" and "faster_unverified" not in fastest(run)


def test_a_gain_beyond_the_validation_splits_noise_is_called_training_not_compression(report):
    # bench.foreign's MobileNetV2 (trained 6 epochs): 81.89% -> 84.84% on 1,900 validation samples after fine-tuning
    report["original"]["accuracy"], report["compressed"]["accuracy"] = 0.8189, 0.8484
    report["accuracy_budget"] = {"max_drop": 1.0, "drop": -2.95, "met": True, "validation_samples": 1900}
    lines = [l for l in summary_table(report).splitlines() if l.startswith("gain ")]
    assert lines == ["gain        the compressed model scores 2.95 points above the original on validation (one "
                     "standard error is 0.88): the original looks under-trained for this data and fine-tuning trained "
                     "it further, so the gain is training, not compression; the original fine-tuned the same way is "
                     "the fair baseline"]
    assert "the gain is training, not compression" in render_html(report)
    report["compressed"]["accuracy"] = 0.8340  # 1.51 points: within two standard errors, noise as likely as training
    assert not any(l.startswith("gain ") for l in summary_table(report).splitlines())
    assert "not compression" not in render_html(report)
    report["accuracy_budget"]["validation_samples"] = 5000  # the same gain on 5,000 samples (0.54 points): said
    assert any(l.startswith("gain ") for l in summary_table(report).splitlines())
    # the drop's paired error decides where the report has it: the two models disagree on few samples, so the same
    # 1.51 points on 1,900 samples are 3 errors of 0.5, not 1.7 of the unpaired 0.88
    report["accuracy_budget"].update(validation_samples=1900, drop_error=0.5)
    gain = next(l for l in summary_table(report).splitlines() if l.startswith("gain "))
    assert "1.51 points above the original on validation (one standard error is 0.50)" in gain
    report["accuracy_budget"]["drop_error"] = 0.8  # 1.9 errors: not said
    assert not any(l.startswith("gain ") for l in summary_table(report).splitlines())
    report["accuracy_budget"].update(validation_samples=5000, drop_error=None)
    # --finetune none: nothing was fine-tuned; the untrained EfficientNetV2B0 of the keras.applications sweep went
    # from 3.6 to 8.8 % by its BatchNorm statistics alone
    report["finetune"] = {"mode": "none", "rounds": 0, "epochs": 0, "seconds": 0, "distill": False}
    report["repair"] = {"reconstruct": True, "bn_reestimate": True}
    gain = next(l for l in summary_table(report).splitlines() if l.startswith("gain "))
    assert "fine-tun" not in gain and gain.endswith(
        "BatchNorm statistics re-estimated and layers reconstructed on the calibration data trained it further, so the gain is training, not compression; the original repaired the same way is the "
        "fair baseline")


def test_an_int8_artifact_line_shows_the_difference_its_bound_judged(report):
    from lrfc.lower.records import ArtifactRecord

    record = ArtifactRecord("tflite", "out/model.int8.tflite", "int8", True, bytes=1000, max_abs_diff=0.412,
                            model="compressed", quantile_abs_diff=0.245, top1_agreement=0.9785, samples=512,
                            tolerance={"max_abs_diff": 0.35, "top1_agreement": 0.9, "quantile": 0.99})
    report["artifacts"] = [record.to_json()]
    line = next(l for l in summary_table(report).splitlines() if l.startswith("artifact "))
    assert line.endswith("model.int8.tflite  int8  1,000 bytes  verified on 512 samples: max abs diff 0.412 (0.245 at "
                         "the 99th percentile sample), top-1 agreement 97.85%")
    assert "0.412 (p99 0.245)" in render_html(report)


def test_the_budget_line_judges_an_int8_targets_files_too(report):
    from lrfc.report.fmt import budget_line, finetune_line

    budget = {"max_drop": 1.0, "drop": -1.36, "met": True, "validation_samples": 5000, "enforced": True}
    files = [{"file": "model.tflite", "format": "tflite", "precision": "int8", "accuracy": 0.8305, "drop": 1.67,
              "met": False, "original_accuracy": 0.8210},
             {"file": "model.onnx", "format": "onnx", "precision": "int8", "accuracy": 0.8421, "drop": 0.51,
              "met": True, "original_accuracy": None}]
    assert budget_line({**budget, "deliverables": files}) == (
        "MISSED by the int8 files (model.tflite drop 1.67, over; model.onnx drop 0.51, within) against "
        "--max-acc-drop 1; the Keras model met it (drop -1.36), on 5,000 validation samples")
    assert budget_line({**budget, "deliverables": files[1:]}) == (
        "met: drop -1.36 points within --max-acc-drop 1; its int8 files: model.onnx drop 0.51, within, on 5,000 "
        "validation samples")
    assert budget_line({**budget, "enforced": False, "deliverables": files[1:]}).endswith(
        "within (a fixed plan: measured, not enforced), on 5,000 validation samples")
    assert budget_line(budget) == "met: drop -1.36 points within --max-acc-drop 1, on 5,000 validation samples"
    over = {**budget, "drop": 1.25, "met": False}
    assert budget_line(over) == "MISSED by 0.25 points: drop 1.25 against --max-acc-drop 1, on 5,000 validation samples"
    assert budget_line(over, verdict=False) == "drop 1.25 against --max-acc-drop 1, on 5,000 validation samples"
    assert budget_line({**budget, "deliverables": files}, verdict=False) == budget_line({**budget, "deliverables": files})
    report["accuracy_budget"] = {**budget, "deliverables": files}
    page = render_html(report)
    assert "<b>missed</b>" in page and "MISSED by the int8 files (model.tflite drop 1.67, over;" in page
    report["accuracy_budget"] = {**budget, "deliverables": files[1:]}
    assert "<b>met</b>" in render_html(report)
    assert "quantization-aware" in finetune_line({"mode": "oneshot", "rounds": 1, "epochs": 2, "seconds": 62.5,
                                                  "distill": True, "qat": True})
    assert "quantization-aware" not in finetune_line({"mode": "oneshot", "rounds": 1, "epochs": 2, "seconds": 1.0,
                                                      "distill": True})


def test_the_budget_and_accuracy_lines_carry_the_drops_standard_error_and_its_bound(report):
    from lrfc.report.fmt import accuracy_line, budget_line
    from lrfc.report.stage import accuracy_budget
    from lrfc.report.text import summary_table

    class Options:
        max_acc_drop, confidence, max_class_drop = 1.0, None, None

    budget = accuracy_budget(Options, 0.9386, 0.9300, 5000, True, error=0.2712)
    assert (budget["drop"], budget["drop_error"], budget["upper_bound"], budget["met"]) == (0.86, 0.2712, None, True)
    assert budget_line(budget) == ("met: drop 0.86 points (standard error 0.27) within --max-acc-drop 1, on 5,000 "
                                   "validation samples")
    Options.confidence = 0.9  # 0.86 + 1.28 x 0.27 = 1.21: the bound decides, and it is over
    held = accuracy_budget(Options, 0.9386, 0.9300, 5000, True, error=0.2712)
    assert held["upper_bound"] == pytest.approx(1.2076, abs=1e-4) and not held["met"]
    assert budget_line(held) == ("MISSED by 0.21 points: drop 0.86, at most 1.21 at 90% confidence (standard error "
                                 "0.27) against --max-acc-drop 1, on 5,000 validation samples")
    assert accuracy_budget(Options, 0.9386, 0.9340, 5000, True, error=0.2)["met"]  # 0.46 + 0.26
    Options.confidence, Options.max_class_drop = None, 5.0  # --max-class-drop: each class's recall held too
    recall = {"classes": [{"class": 0, "name": None, "drop": 0.4}, {"class": 6, "name": "shirt", "drop": 7.25}]}
    by_class = accuracy_budget(Options, 0.9386, 0.9300, 5000, True, error=0.2712, recall=recall)
    assert not by_class["met"] and by_class["worst_class"] == {"class": 6, "name": "shirt", "drop": 7.25}
    assert budget_line(by_class) == ("MISSED by 'shirt': drop 0.86 points (standard error 0.27) within --max-acc-drop "
                                     "1, but 'shirt' lost 7.25 points of recall against --max-class-drop 5, on 5,000 "
                                     "validation samples")
    recall["classes"][1]["drop"] = 3.0
    kept = accuracy_budget(Options, 0.9386, 0.9300, 5000, True, error=0.2712, recall=recall)
    assert kept["met"] and budget_line(kept).endswith("within --max-acc-drop 1, every class within --max-class-drop "
                                                      "5 (worst 3.00), on 5,000 validation samples")
    Options.max_class_drop = None
    assert accuracy_line(0.9386, 0.93, 0.2712) == "93.86% -> 93.00% (drop 0.86 points, standard error 0.27)"
    assert accuracy_line(0.9386, 0.93, None) == accuracy_line(0.9386, 0.93, 0.0) == "93.86% -> 93.00% (drop 0.86 points)"
    report["accuracy_budget"] = budget
    report["original"]["test_accuracy"], report["compressed"]["test_accuracy"] = 0.9396, 0.9306
    report["compressed"]["test_drop_error"] = 0.2534
    lines = summary_table(report).splitlines()
    assert any(line.startswith("accuracy ") and line.endswith(", standard error 0.27) on validation") for line in lines)
    assert "test        93.96% -> 93.06% (drop 0.90 points, standard error 0.25) on the test split" in lines


def test_a_test_split_over_the_budget_that_validation_met_is_set_against_the_noise_between_the_halves(report):
    from lrfc.report.fmt import test_split_line

    # the EPYC's VGG-style default build (2026-12-04): 0.94 points on validation, 1.34 on the test split
    report["original"]["test_accuracy"], report["compressed"]["test_accuracy"] = 0.9356, 0.9222
    report["accuracy_budget"] = {"max_drop": 1.0, "drop": 0.94, "drop_error": 0.27, "met": True, "enforced": True,
                                 "validation_samples": 5000, "confidence": None}
    report["compressed"]["test_drop_error"] = 0.28
    expected = ("the test split's drop (1.34 points) is over --max-acc-drop 1 while validation's (0.94) met it: the "
                "halves differ by 0.40 points, 1.0 standard errors of their difference (0.39); validation decides, and "
                "other held-out images move the drop as much; --confidence 0.9 holds the budget on the drop's bound")
    assert test_split_line(report) == expected
    assert f"test split  {expected}" in summary_table(report).splitlines()
    assert "the halves differ by 0.40 points" in render_html(report)
    report["accuracy_budget"]["confidence"] = 0.9  # already held on a bound: no advice
    assert test_split_line(report).endswith("other held-out images move the drop as much")
    report["compressed"]["test_drop_error"] = None  # a report from before the errors were kept: no spread
    assert "standard errors" not in test_split_line(report)
    report["compressed"]["test_accuracy"] = 0.9266  # 0.90 on the test split: within, nothing said
    assert test_split_line(report) is None
    report["compressed"]["test_accuracy"] = 0.9222
    report["accuracy_budget"]["met"] = False  # validation missed: the budget line says so already
    assert test_split_line(report) is None
    report["accuracy_budget"].update(met=True, enforced=False)  # a fixed plan: measured, not held
    assert test_split_line(report) is None


def test_a_benchmark_timed_again_says_so_in_the_summary_and_the_page(report):
    # the ResNet-style latency build on the EPYC (2026-12-04 13:50): the final benchmark read 2.92x for a plan the
    # search had timed at 3.46-4.66x; since, such a run is timed once more and both readings are shown
    litert = _bench_run("litert", 1.290, 0.442, 1.273, 0.503)
    litert["agreement"] = {"search": [3.46, 4.66], "first": 2.92, "retimed": True, "final": 3.8, "agrees": True}
    ort = _bench_run("onnxruntime-cpu", 1.348, 0.376, 1.007, 0.461)
    report["benchmarks"] = {"runs": [litert, ort]}
    expected = ("litert: the search timed the published plan at 3.46-4.66x the original; this benchmark read 2.92x, "
                "timed again 3.80x (now within the search's timing)")
    assert [l for l in summary_table(report).splitlines() if l.startswith("check ")] == [f"check       {expected}"]
    assert f"<b>Timed again</b>: {expected.replace(chr(39), '&#x27;')}" in render_html(report)
    litert["agreement"].update(retimed=False, first=4.0, final=4.0)  # within the search's timing: nothing to say
    assert not any(l.startswith("check ") for l in summary_table(report).splitlines())
    assert "Timed again" not in render_html(report)
    # a runtime the search did not time on, timed again because the cores were far apart throughout
    ort["timed_again"] = "cores_far"
    (line,) = [l for l in summary_table(report).splitlines() if l.startswith("check ")]
    assert line.startswith("check       onnxruntime-cpu: timed once more, as a file on several threads met this "
                           "machine's cores far apart in every round")
    assert "<b>Timed again</b>: onnxruntime-cpu: timed once more" in render_html(report)


def test_a_latency_ratio_of_a_model_with_nothing_factorized_says_it_is_noise(report):
    """Nothing factorized: lrfc's files are the original's graph, so their side-by-side ratio measures the timing's
    noise (an untrained MobileNet read 1.40x so with --bench-runs 5 on a busy host); a factorized one says nothing."""
    run = _bench_run("litert", 0.729, 0.522, 0.150, 0.180)
    report["benchmarks"] = {"runs": [run]}
    latency = next(l for l in summary_table(report).splitlines() if l.startswith("latency "))
    assert "nothing was factorized" not in latency
    for layer in report["layers"]:
        layer["method"] = None
    latency = next(l for l in summary_table(report).splitlines() if l.startswith("latency "))
    assert latency.endswith("(nothing was factorized: the same model timed twice, so this ratio is the timing's "
                            "noise)"), latency
    assert "<b>Nothing was factorized</b>: the same model timed twice" in render_html(report)


def test_the_search_line_says_when_the_last_round_took_a_rung_by_its_start(report):
    report["budget_search"] = {"levels": 15, "allocation": "global", "published": "lambda 5.423",
                               "stopped": "--max-rounds 3",
                               "rounds": [{"secured": False}, {"secured": False}, {"secured": True}]}
    line = next(l for l in summary_table(report).splitlines() if l.startswith("search "))
    assert line == ("search      3 rounds over 15 levels (global allocation): published lambda 5.423; stopped: "
                    "--max-rounds 3; round 3, the last after misses, took a rung whose start already met the budget")
    report["budget_search"]["rounds"][2]["secured"] = False
    assert next(l for l in summary_table(report).splitlines() if l.startswith("search ")).endswith("--max-rounds 3")


def _round(level: int, params: int, macs: int, drop: float, met: bool, error: float = 0.29, **extra) -> dict:
    return {"level": level, "label": f"lambda {level}", "params": params, "macs": macs, "drop": drop, "met": met,
            "drop_error": error, "secured": False, "class_drop": None, **extra}


def test_the_next_rung_line_names_the_least_compressed_miss_past_the_published_rung(report):
    """Rounds at levels 9 (published), 4 and 6 (both missed, past it) and 12 (missed, before it: a shallower rung
    that does not bound anything the user could have had): the line names level 6, with what it would have removed."""
    report["accuracy_budget"] = {"max_drop": 1.0, "drop": 0.64, "met": True, "validation_samples": 5000,
                                 "drop_error": 0.26}
    report["budget_search"] = {"levels": 15, "allocation": "global", "published": "lambda 9", "published_level": 9,
                               "stopped": "--max-rounds 4",
                               "rounds": [_round(12, 300_000, 3_000_000, 1.4, False), _round(9, 100_000, 1_000_000,
                                                                                             0.64, True),
                                          _round(4, 42_164, 424_115, 1.06, False), _round(6, 84_328, 848_230, 1.02,
                                                                                          False)]}
    lines = summary_table(report).splitlines()
    line = next(l for l in lines if l.startswith("next rung "))
    assert line == ("next rung   round 4's lambda 6 (80.0% of params and 80.0% of MACs removed) missed: drop 1.02 "
                    "points (standard error 0.29), 0.02 over --max-acc-drop 1, within one standard error")
    assert lines.index(line) == 1 + next(i for i, l in enumerate(lines) if l.startswith("search "))
    assert "; the next rung: round 4&#x27;s lambda 6 (80.0% of params" in render_html(report)
    report["budget_search"]["rounds"][3]["drop"] = 1.5  # a miss by more than one standard error is not called close
    assert next(l for l in summary_table(report).splitlines() if l.startswith("next rung ")).endswith(
        "drop 1.50 points (standard error 0.29), 0.50 over --max-acc-drop 1")


def test_the_next_rung_line_says_what_missed_when_the_drop_was_within_the_budget(report):
    report["accuracy_budget"] = {"max_drop": 1.0, "drop": 0.3, "met": True, "validation_samples": 5000,
                                 "confidence": 0.9, "upper_bound": 0.63, "drop_error": 0.26}
    report["budget_search"] = {"levels": 15, "allocation": "global", "published": "lambda 9", "published_level": 9,
                               "rounds": [_round(9, 100_000, 1_000_000, 0.3, True), _round(5, 84_328, 848_230, 0.8,
                                                                                          False)]}
    line = next(l for l in summary_table(report).splitlines() if l.startswith("next rung "))
    assert line.endswith("drop 0.80 points (standard error 0.29) within --max-acc-drop 1, but it missed on the drop's "
                         "90% bound (--confidence)"), line
    del report["accuracy_budget"]["confidence"], report["accuracy_budget"]["upper_bound"]
    report["budget_search"]["rounds"][1]["class_drop"] = {"class": 6, "drop": 4.2}
    line = next(l for l in summary_table(report).splitlines() if l.startswith("next rung "))
    assert line.endswith("but it missed on a class's recall (--max-class-drop)"), line


def test_no_next_rung_line_when_every_round_past_the_published_rung_met_it(report):
    """Every round met the budget (the published rung is the deepest tried), or only shallower rounds missed, or
    there was no search (a fixed plan): nothing past the published rung is known to miss, so no line."""
    report["accuracy_budget"] = {"max_drop": 1.0, "drop": 0.64, "met": True, "validation_samples": 5000}
    report["budget_search"] = {"levels": 15, "allocation": "global", "published": "lambda 4", "published_level": 4,
                               "rounds": [_round(9, 100_000, 1_000_000, 0.5, True), _round(12, 300_000, 3_000_000,
                                                                                          1.4, False),
                                          _round(4, 84_328, 848_230, 0.64, True)]}
    assert not any(l.startswith("next rung ") for l in summary_table(report).splitlines())
    assert "the next rung" not in render_html(report)
    report["budget_search"]["rounds"] = []
    assert not any(l.startswith("next rung ") for l in summary_table(report).splitlines())


def test_when_nothing_met_the_budget_the_next_rung_is_the_least_compressed_miss(report):
    """The original published (``published_level`` None): every missed round is past it; the least compressed names
    how close the search came."""
    report["accuracy_budget"] = {"max_drop": 1.0, "drop": 0.0, "met": True, "validation_samples": 5000}
    report["budget_search"] = {"levels": 15, "allocation": "global", "published": "original", "published_level": None,
                               "rounds": [_round(3, 42_164, 424_115, 2.5, False), _round(11, 210_821, 2_120_576,
                                                                                         1.2, False)]}
    line = next(l for l in summary_table(report).splitlines() if l.startswith("next rung "))
    assert line.startswith("next rung   round 2's lambda 11 (50.0% of params and 50.0% of MACs removed) missed: drop "
                           "1.20 points"), line


def test_the_search_line_says_when_the_rounds_ran_out_with_rungs_left_to_try(report):
    """Stopped on --max-rounds with rungs untried between the published one and the nearest miss past it (or past
    it at all, when nothing missed): the line says more rounds or --time-budget would search on. Not when the
    nearest miss is the next rung (the search had closed), nor when it stopped for another reason."""
    report["accuracy_budget"] = {"max_drop": 1.0, "drop": 0.64, "met": True, "validation_samples": 5000}
    search = report["budget_search"] = {"levels": 15, "allocation": "global", "published": "lambda 9",
                                        "published_level": 9, "stopped": "--max-rounds 4",
                                        "rounds": [_round(12, 300_000, 3_000_000, 0.3, True),
                                                   _round(9, 100_000, 1_000_000, 0.64, True)]}

    def line():
        return next(l for l in summary_table(report).splitlines() if l.startswith("search "))

    assert line().endswith("stopped: --max-rounds 4, with rungs past the published one untried (more rounds, or "
                           "--time-budget, would search on)"), line()
    search["rounds"].append(_round(6, 84_328, 848_230, 1.02, False))
    assert line().endswith("stopped: --max-rounds 4, with rungs between the published one and the nearest miss "
                           "untried (more rounds, or --time-budget, would search on)"), line()
    search["rounds"].append(_round(8, 90_000, 900_000, 1.1, False))  # rung 8 missed: nothing left between 8 and 9
    assert line().endswith("stopped: --max-rounds 4"), line()
    search["rounds"].pop()
    search["stopped"] = "--time-budget 15 minutes"
    assert line().endswith("stopped: --time-budget 15 minutes"), line()
    # nothing met the budget (the original published): the rungs less compressed than the nearest miss were untried
    search.update(published="original", published_level=None, stopped="--max-rounds 2",
                  rounds=[_round(3, 42_164, 424_115, 2.5, False), _round(11, 210_821, 2_120_576, 1.2, False)])
    assert line().endswith("between the published one and the nearest miss untried (more rounds, or --time-budget, "
                           "would search on)"), line()
    search["rounds"][1]["level"] = 14  # the least compressed rung missed: nothing left to try
    assert line().endswith("stopped: --max-rounds 2"), line()


def test_without_labels_the_html_titles_no_column_accuracy_or_drop(report):
    """``"labels": "original"``: no file has a top-1 (the four-way table loses that column) and the whole-model table's
    proxy and fine-tuned figures are answers changed, titled so."""
    report["benchmarks"] = {"runs": [_bench_run("litert", 0.413, 0.120, 0.065, 0.093)]}
    report["whole_model"] = {"status": "measured", "runtime": "litert", "precision": "fp32",
                             "original": {"measured_ms": 0.413}}
    report["solutions"] = [{"label": "level 1", "predicted_ms": 0.2, "measured_ms": 0.12, "rung": 1,
                            "proxy_drop": 3.1, "drop": 0.9}]
    page = render_html(report)  # labelled: top-1 of every file, drops
    assert "<th class=n>top-1</th>" in page and "<th class=n>drop after fine-tuning</th>" in page
    report["labels"] = "original"
    report["original"]["accuracy"] = report["compressed"]["accuracy"] = None
    report["compressed"]["agreement"] = 0.991
    run = report["benchmarks"]["runs"][0]
    for row in (run["original"], run["compressed"], run["int8"]["original"], run["int8"]["compressed"]):
        row["accuracy"] = None
    page = render_html(report)
    assert "top-1</th>" not in page and ">drop" not in page
    assert "<th class=n>proxy answers changed</th>" in page and "<th class=n>answers changed after fine-tuning</th>" in page
    assert "<td class=n>0.90</td>" in page and "<td class=n>1,000</td><td class=n>50.0</td>" in page  # columns aligned


def test_a_class_that_lost_far_beyond_the_budget_is_flagged_and_noise_is_not():
    """A rare defect class losing half its recall at a 1-point drop overall is flagged; 1,000 classes of 5 samples
    with a 5 % flip rate are not (the 95 % confidence is over all classes at once)."""
    from lrfc.report.classes import class_recall, classes_line

    y = np.r_[np.zeros(4900, int), np.ones(100, int)]
    before = np.ones(5000, bool)
    after = before.copy()
    after[4900:4950] = False  # half the defects missed: 1.0 point over all 5,000 samples
    recall = class_recall(y, before, after, ("ok", "defect"), 1.0)
    assert recall["flagged"] == [1] and recall["worst"] == 1
    assert recall["classes"][1] == {"class": 1, "name": "defect", "samples": 100, "original": 1.0, "compressed": 0.5,
                                    "drop": 50.0, "drop_error": 5.0252, "flagged": True}
    line = classes_line(recall)
    assert line.startswith("worst of 2: 'defect' recall 100.0% -> 50.0% (50.0 ± 5.0 points, 100 samples); warning: "
                           "'defect' lost over 5 points of recall, beyond the budget at 95% confidence over all 2 ")
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(1000), 5)
    noisy = class_recall(y, before, rng.random(5000) > 0.05, None, 1.0)
    assert noisy["flagged"] == [] and "warning" not in classes_line(noisy)
    assert classes_line(class_recall(y, before, before, None, 1.0)) is None  # nothing lost: no line
    unlabelled = classes_line(recall, labels="original")
    assert "'defect' answers kept 100.0% -> 50.0%" in unlabelled


def test_the_html_and_the_summary_show_each_classs_recall(report):
    from lrfc.report.classes import class_recall

    y = np.r_[np.zeros(4900, int), np.ones(100, int)]
    before, after = np.ones(5000, bool), np.r_[np.ones(4950, bool), np.zeros(50, bool)]
    with_classes = {**report, "class_recall": class_recall(y, before, after, ("ok", "de<fect"), 1.0)}
    page = render_html(with_classes)
    table = page.split("<h2>Classes (recall on the validation split, largest loss first)</h2>", 1)[1]
    assert ("<tr><td>&#x27;de&lt;fect&#x27;</td><td class=n>100</td><td class=n>100.00%</td><td class=n>50.00%</td>"
            "<td class=n>50.00 ± 5.03</td><td>flagged</td></tr>") in table
    assert "<h2>Classes" not in render_html(report)  # a report without them (before 2026-12-06): no section
    with_classes["accuracy_budget"] = {"max_drop": 1.0, "drop": 1.0, "met": True, "validation_samples": 5000}
    lines = summary_table(with_classes).splitlines()
    assert lines[-2].startswith("classes     worst of 2: 'de<fect' recall 100.0% -> 50.0%")  # just above the budget
    assert lines[-1].startswith("budget      met")
