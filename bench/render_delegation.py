"""docs/BENCHMARKS.md's XNNPACK delegation table: keras.applications files before and after lrfc's XNNPACK forms
(bench/results/delegation.json)."""

from __future__ import annotations

from bench.render_common import machine_line, machine_of
from runtime_bench.delegation import left_out

ORDER = ("fp32 before", "fp32 xnnpack forms", "int8 before", "int8 xnnpack forms")


def _left(delegation: dict | None) -> str:
    return left_out(delegation) or "none" if delegation else "?"


def _label(run: dict) -> str:
    return f"{run['model']} (trained)" if run.get("trained") else run["model"]


def delegation(record: dict) -> list[str]:
    runs = record.get("runs") or {}
    if not runs:
        return []
    lines = ["## LiteRT's XNNPACK: what it leaves out, and lrfc's XNNPACK forms", "",
             f"Machine: {machine_line(record)}.",
             "keras.applications models (weights=None, seeded; 10 logits), each lowered to TFLite at fp32 and int8 "
             "as lrfc lowered before its XNNPACK forms (`xnnpack=False`, what the Edge TPU target still gets) and "
             "with them (`lower/xnnpack_forms.py`, `lower/xnnpack_int8.py`). Operators XNNPACK leaves out run on "
             "LiteRT's own kernels and split the file into parts (`runtime_bench/delegation.py`). p50: LiteRT, 2 "
             "threads, batch 1, the model's four files timed side by side in one runtime_bench run. Error: mean "
             "absolute difference from the Keras logits over their standard deviation, on 64 inputs the int8 "
             "calibration did not see; top-1: agreement with Keras; accuracy: top-1 on Fashion-MNIST test images, for the "
             "trained rows (the Keras model's in brackets). The weights of the other rows are untrained, so the error compares "
             "the two lowerings of one model, not int8 against float on a trained one (an untrained MobileNetV3's "
             "logits sit close together: its int8 files agree on 5 % of the top-1s either way), and an untrained "
             "model's activations can vanish or explode, which moves int8 scales to where XNNPACK refuses an operator "
             "it takes in a trained model. 'int8 / fp32': the "
             "int8 file's p50 over the fp32 file's of the same lowering (below 1: int8 is the faster).", "",
             "| model | input | file | operators | XNNPACK parts | left to LiteRT's kernels | p50 ms | int8 / fp32 "
             "| error | top-1 | accuracy (Keras) | command |",
             "|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---|"]
    for name, run in runs.items():
        files = run["files"]
        for key in ORDER:
            f = files.get(key)
            if not f:
                continue
            d = f.get("delegation") or {}
            ratio = ""
            if f["precision"] == "int8":
                fp32 = files.get(key.replace("int8", "fp32"))
                ratio = f"{f['p50_ms'] / fp32['p50_ms']:.2f}" if fp32 and fp32.get("p50_ms") else ""
            accuracy = (f"{100 * f['accuracy']:.1f} % ({100 * run['keras_accuracy']:.1f} %)"
                        if f.get("accuracy") is not None else "")
            lines.append(f"| {_label(run)} | {'x'.join(map(str, run['input'][:2]))} | {key} | {d.get('operators', '?')} "
                         f"| {d.get('partitions', '?')} | {_left(d)} | {f['p50_ms']:.3f} | {ratio} | {f['error']:.4f} "
                         f"| {100 * f['top1_agreement']:.1f} % | {accuracy} | `{run['command']}` ({machine_of(run)}, "
                         f"{run['date']}) |")
    lines += [""]
    speedups = []
    for name, run in runs.items():
        before, after = run["files"].get("int8 before"), run["files"].get("int8 xnnpack forms")
        if before and after:
            speedups.append(f"{_label(run)} at {run['input'][0]}x{run['input'][1]} {before['p50_ms'] / after['p50_ms']:.2f}x")
    if speedups:
        lines += ["int8 p50 before / with the XNNPACK forms: " + ", ".join(speedups) + ".", ""]
    return lines
