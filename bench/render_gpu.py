"""The GPU section of docs/BENCHMARKS.md (bench/results/gpu.json, written by bench.gpu collect).

Every number is read from the results; the sentences that interpret them are conditional on them.
"""

from __future__ import annotations

ROLE_NAMES = {"original": "original", "latency": "lrfc, `--objective latency`", "flops": "lrfc, `--objective flops`",
              "plan": "lrfc, quarter-rank plan", "h200": "lrfc, `--target nvidia-h200` (estimated prices)"}
DATASHEET = {"peak fp32 (GFLOP/s)": 67000.0, "memory bandwidth (GB/s)": 4800.0}  # profiles/nvidia-h200.toml's base
KERNELS = ("Conv", "MatMul", "Gemm")


def _gpu_line(record: dict) -> str:
    m = record.get("machine") or {}
    v = m.get("versions") or {}
    versions = ", ".join(f"{k} {v[k]}" for k in sorted(v) if v[k])
    return (f"{m.get('gpu') or '?'} (name, driver, memory as nvidia-smi gives them); host {m.get('cpu', '?')}, "
            f"{m.get('cores', '?')} cores, Python {m.get('python', '?')}, numpy {m.get('numpy', '?')}; {versions}")


def _mac_cut(files: dict, role: str) -> str:
    before, after = files["original"].get("macs"), files[role].get("macs")
    return "-" if not before or not after else f"{before / after:.2f}x"


def _operators(f: dict) -> str:
    ops = f.get("operators") or {}
    return "-" if not ops else f"{sum(ops.get(k, 0) for k in KERNELS)} / {sum(ops.values())}"


def group_table(name: str, row: dict) -> list[str]:
    batches = sorted(row["batches"], key=int)
    head = " | ".join(f"batch {b}: p50 ms | vs original" for b in batches)
    lines = [f"| {name}: file | MAC cut | operators (conv, matmul / all) | {head} | images/s at batch {batches[-1]} | "
             "CUDA vs CPU: max diff (relative) | top-1 agreement |",
             "|---|---:|---:|" + "---:|---:|" * len(batches) + "---:|---:|---:|"]
    for role, f in row["files"].items():
        cells = []
        for b in batches:
            timed = row["batches"][b]
            p50, base = timed[role]["p50_ms"], timed["original"]["p50_ms"]
            cells.append(f"{p50:.3f} | {base / p50:.2f}x")
        check = row["check"][role]
        lines.append(f"| {ROLE_NAMES.get(role, role)} | {_mac_cut(row['files'], role)} | {_operators(f)} | "
                     f"{' | '.join(cells)} | {row['batches'][batches[-1]][role]['throughput_ips']:,.0f} | "
                     f"{check['max_abs_diff']:.2g} ({check['relative']:.1e}) | {check['top1_agreement']:.2f} |")
    return lines + [""]


def probe_lines(probe: dict | None) -> list[str]:
    if not probe:
        return []
    lines = [f"### The probe on the GPU: `lrfc profiles probe --export`, then `--import` ({probe['date']})", "",
             f"`{probe['command']}` (after `bench.gpu pack` exported the models and the GPU machine ran the "
             "command the export names) wrote `profiles/nvidia-h200.toml`: the `nvidia-h200` target's figures now "
             "say where they were measured, and roofline estimates for it (no device at hand) pay the measured "
             "overhead once per operator. Batch 1, numpy in and out: the copies to and from the GPU are part of "
             "every figure, as they are of every price lrfc measures.", "",
             "| figure | measured | data sheet |", "|---|---:|---:|"]
    rows = {"peak fp32 (GFLOP/s)": probe["peak_gops"].get("fp32"), "memory bandwidth (GB/s)": probe["bandwidth_gbps"],
            "per-operator overhead (us)": probe["op_overhead_us"],
            "channel multiple (fp32)": probe["multiples"].get("fp32")}
    for name, value in rows.items():
        sheet = DATASHEET.get(name)
        lines.append(f"| {name} | {value:,} | {'-' if sheet is None else f'{sheet:,.0f}'} |")
    lines.append("")
    sheet = DATASHEET["memory bandwidth (GB/s)"]
    if probe["bandwidth_gbps"] > sheet:
        chain = probe.get("chain_ms") or {}
        lines += [f"The bandwidth reading is above the data sheet's {sheet:,.0f} GB/s, which no measurement of memory "
                  "can be: the H200's L2 (60 MB) holds most of the probe's 64 MiB tensor, and the figure is the "
                  f"difference of two copy-dominated timings ({chain.get('big1', '?')} and {chain.get('big5', '?')} "
                  "ms). The profile keeps the data sheet's figure and says so in its source (`cost/probe.py`, "
                  "`_believed`).", ""]
    return lines


def _unchanged(row: dict) -> bool:
    """Every lrfc file of the group is the original network (nothing factorized: same MACs and operators)."""
    files = row["files"]
    return all(f.get("macs") == files["original"].get("macs") and f.get("operators") == files["original"].get("operators")
               for f in files.values())


def _verdict(name: str, row: dict, overhead_us: float | None) -> str:
    parts = []
    for b in sorted(row["batches"], key=int):
        timed = row["batches"][b]
        ratios = {role: timed["original"]["p50_ms"] / timed[role]["p50_ms"] for role in timed if role != "original"}
        best = max(ratios, key=ratios.get)
        parts.append(f"batch {b}: {ROLE_NAMES.get(best, best)} {ratios[best]:.2f}x the original's speed")
    text = f"- **{name}**, lrfc's fastest file: " + "; ".join(parts) + "."
    ops = {role: sum((f.get("operators") or {}).values()) for role, f in row["files"].items()}
    if overhead_us and all(ops.values()):
        one = row["batches"]["1"]
        for role in (r for r in ops if r != "original"):
            extra, gap = ops[role] - ops["original"], one[role]["p50_ms"] - one["original"]["p50_ms"]
            text += (f" {ROLE_NAMES.get(role, role)} has {extra:+d} operators; at the probe's {overhead_us:g} us each "
                     f"that is {extra * overhead_us / 1e3:+.3f} ms, against {gap:+.3f} ms measured at batch 1.")
    return text


def gpu(record: dict) -> list[str]:
    timing = record.get("timing") or {}
    lines = ["## ONNX Runtime on an NVIDIA GPU (CUDA execution provider) — `python -m bench.gpu`", "",
             f"GPU machine: {_gpu_line(record)}.",
             "lrfc's ONNX files, each group's original beside lrfc's models, timed in one runtime_bench run per "
             f"batch (a worker process per file, {timing.get('rounds', '?')} alternating rounds, "
             f"{timing.get('runs', '?')} timed runs per file after {timing.get('warmup', '?')} warm-ups); each run "
             "copies the numpy input to the GPU and the output back, as a numpy caller pays. The files are the CPU "
             "rows' own: `vgg` is the Fashion-MNIST VGG-style original with `bench.speed`'s `vgg/latency` and "
             "`vgg/flops` builds (plans chosen for the 2-core CPU under `--target host`, not for the GPU), "
             "`resnet50-plan` keras.applications ResNet50 at 224x224x3 (weights=None) with `bench.latency`'s "
             "quarter-rank plan, `vgg-h200` the VGG-style budget build for this GPU (`lrfc build --target "
             "nvidia-h200 --max-acc-drop 1.0`, no device at hand: every price a roofline estimate from the "
             "probed profile below, the per-operator overhead included). The GPU machine has no TensorFlow and takes 64 MiB per call beside the "
             "onnxruntime-gpu package, so weights over 16 KiB travel as shape only and are drawn again there "
             "(He-normal): timing does not depend on the values. The check runs one batch of 4 through the CUDA "
             "and the CPU provider on the same weights, every output compared (a softmax's logits too). Commands: "
             "`python -m bench.gpu pack` here, "
             f"`sh bench/gpu_device.sh .gpu OUT` there (it ran `{record.get('command', '?')}`), "
             "`python -m bench.gpu collect OUT/gpu.json` here.", ""]
    groups = record.get("groups") or {}
    options = next((c.get("options") for row in groups.values() for c in row["check"].values() if c.get("options")),
                   None)
    if options:
        lines += ["CUDA provider options as the sessions ran (its defaults): "
                  + ", ".join(f"`{k}={v}`" for k, v in sorted(options.items())) + ".", ""]
    for name, row in groups.items():
        lines += [f"### {name} ({row.get('machine', '?')}, {row.get('date', '?')})", ""]
        if row.get("note"):
            lines += [row["note"][0].upper() + row["note"][1:] + ".", ""]
        lines += group_table(name, row)
    probe = record.get("probe")
    lines += probe_lines(probe)
    lines += ["### What it says", ""]
    overhead = (probe or {}).get("op_overhead_us")
    changed = {name: row for name, row in groups.items() if not _unchanged(row)}
    ratios = [t["original"]["p50_ms"] / t[role]["p50_ms"] for row in changed.values() for t in row["batches"].values()
              for role in t if role != "original"]
    if ratios and max(ratios) < 1:
        lines.append(f"- **On this GPU lrfc loses everywhere measured**: every lrfc file runs {min(ratios):.2f}x to "
                     f"{max(ratios):.2f}x the original's speed, at batch 1 and at the largest batch alike. These "
                     "plans were chosen for a 2-core CPU, where fewer MACs is what pays, fixed by hand, or priced by "
                     "estimates that undercounted a chain's operators (the TT-matrix row); on a GPU that runs the "
                     "original's wide convolutions on tensor cores, a factorized chain's extra, thinner kernels cost "
                     "more than the arithmetic they save. A build for the GPU has to price "
                     "candidates there (`--target nvidia-h200 --device ...`) or, out of reach, with estimates that "
                     "pay the measured per-operator overhead (below).")
    lines += [_verdict(name, row, overhead) for name, row in changed.items()]
    for name, row in groups.items():
        if name not in changed:
            r = [t["original"]["p50_ms"] / t[role]["p50_ms"] for t in row["batches"].values() for role in t
                 if role != "original"]
            lines.append(f"- **{name}**: the build factorized nothing and published the original network (the same "
                         f"operators and MACs); timed as two files it reads {min(r):.2f}x-{max(r):.2f}x: the noise "
                         "between two workers of one run on this machine, and no plan at all is what a GPU at these "
                         "sizes rewards.")
    diffs = [c["relative"] for row in groups.values() for c in row["check"].values()]
    if diffs and (record.get("machine") or {}).get("gpu") and options and options.get("use_tf32") == "1":
        same = all(c["top1_agreement"] == 1.0 for row in groups.values() for c in row["check"].values())
        lines.append(f"- The CUDA provider agrees with the CPU provider to {min(diffs):.1e}-{max(diffs):.1e} of each "
                     "output's largest magnitude"
                     + (", with the same top-1 class for every sample" if same else "")
                     + ": TF32 arithmetic (`use_tf32=1`, the default) keeps about 10 bits of mantissa. Drawn weights "
                     "with no trained batch-norm scales make some logits huge, hence the large absolute differences.")
    trt = record.get("tensorrt")
    lines += ["- **TensorRT** (ONNX Runtime's TensorRT provider): "
              + ("started." if trt == "started" else f"not measured: {trt}. The TensorRT libraries (libnvinfer 10 "
                 "for CUDA 13) are not in the GPU machine's image and could not be fetched here (pypi.nvidia.com is "
                 "out of reach; TensorRT's wheels run to gigabytes, the device call carries 64 MiB), so the "
                 "TensorRT rows the issue asks for are missing, and int8 on the GPU with them (ONNX Runtime's CUDA "
                 "provider has no int8 convolution)."), ""]
    return lines
