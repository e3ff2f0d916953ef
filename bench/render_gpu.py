"""The GPU section of docs/BENCHMARKS.md (bench/results/gpu.json, written by bench.gpu collect).

Every number is read from the results; the sentences that interpret them are conditional on them.
"""

from __future__ import annotations

ROLE_NAMES = {"original": "original", "latency": "lrfc, `--objective latency`", "flops": "lrfc, `--objective flops`",
              "plan": "lrfc, quarter-rank plan (no fine-tuning)", "h200": "lrfc, `--target nvidia-h200` (estimated prices)"}
DATASHEET = {"peak fp32 (GFLOP/s)": 67000.0, "memory bandwidth (GB/s)": 4800.0}  # profiles/nvidia-h200.toml's base
KERNELS = ("Conv", "MatMul", "Gemm")
IO_TITLES = {"host": "numpy in and out (copies timed)", "device": "inputs and outputs on the GPU (IO binding)",
             "graph": "on the GPU, CUDA graph replayed"}


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


def timings(row: dict) -> dict[str, dict]:
    """The group's timings per io mode that ran: ``{io: {batch: {role: row}}}`` (``host`` first)."""
    return {"host": row["batches"], **{io: t for io, t in (row.get("io") or {}).items() if t}}


def group_table(name: str, row: dict, io: str = "host") -> list[str]:
    timed_by_batch = timings(row)[io]
    batches = sorted(timed_by_batch, key=int)
    head = " | ".join(f"batch {b}: p50 ms | vs original" for b in batches)
    check_head = ("CUDA vs CPU: max diff (relative) | top-1 agreement" if io == "host" else
                  "vs a numpy run of the same provider: max diff (relative) | -")
    lines = [f"| {name}, {IO_TITLES.get(io, io)}: file | MAC cut | operators (conv, matmul / all) | {head} | "
             f"images/s at batch {batches[-1]} | {check_head} |",
             "|---|---:|---:|" + "---:|---:|" * len(batches) + "---:|---:|---:|"]
    for role, f in row["files"].items():
        cells = []
        for b in batches:
            timed = timed_by_batch[b]
            p50, base = timed[role]["p50_ms"], timed["original"]["p50_ms"]
            cells.append(f"{p50:.3f} | {base / p50:.2f}x")
        check = row["check"][role]
        if io == "host":
            checked = f"{check['max_abs_diff']:.2g} ({check['relative']:.1e}) | {check['top1_agreement']:.2f}"
        else:
            mine = check.get(io) or {}
            checked = (f"({mine['relative']:.1e}) | -" if "relative" in mine else
                       f"{mine.get('error', 'not checked')} | -")
        lines.append(f"| {ROLE_NAMES.get(role, role)} | {_mac_cut(row['files'], role)} | {_operators(f)} | "
                     f"{' | '.join(cells)} | {timed_by_batch[batches[-1]][role]['throughput_ips']:,.0f} | {checked} |")
    return lines + [""]


def probe_lines(probe: dict | None) -> list[str]:
    if not probe:
        return []
    lines = [f"### The probe on the GPU: `lrfc profiles probe --export`, then `--import` ({probe['date']})", "",
             f"`{probe['command']}` (after `bench.gpu pack` exported the models and the GPU machine ran the "
             "command the export names) wrote `profiles/nvidia-h200.toml`: the `nvidia-h200` target's figures now "
             "say where they were measured, and roofline estimates for it (no device at hand) pay the measured "
             "overhead once per operator. "
             + ("Batch 1, inputs and outputs left on the GPU (runtime_bench `--io device`): the figures describe "
                "the GPU as a layer inside a whole model meets it, without copies to and from the host."
                if probe.get("io") == "device" else
                "Batch 1, numpy in and out: the copies to and from the GPU are part of every figure."), "",
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


def _ratios(by_batch: dict) -> dict[str, dict[str, float]]:
    """``{batch: {role: original p50 / role p50}}`` for lrfc's files."""
    return {b: {role: t["original"]["p50_ms"] / t[role]["p50_ms"] for role in t if role != "original"}
            for b, t in by_batch.items()}


def _verdict(name: str, row: dict, overhead_us: float | None, probe_io: str) -> str:
    roles = [r for r in row["files"] if r != "original"]
    modes = []
    for io, by_batch in timings(row).items():
        ratios = _ratios(by_batch)
        batches = sorted(ratios, key=int)
        if len(roles) == 1:
            cells = " / ".join(f"{ratios[b][roles[0]]:.2f}x" for b in batches)
        else:
            cells = "; ".join(f"{ROLE_NAMES.get(r, r)} " + " / ".join(f"{ratios[b][r]:.2f}x" for b in batches)
                              for r in roles)
        modes.append(f"{IO_TITLES.get(io, io)} {cells}")
    head = ROLE_NAMES.get(roles[0], roles[0]) + " against the original" if len(roles) == 1 else "lrfc's files"
    batches = "/".join(sorted(row["batches"], key=int))
    text = f"- **{name}**, {head} at batch {batches}: " + "; ".join(modes) + "."
    ops = {role: sum((f.get("operators") or {}).values()) for role, f in row["files"].items()}
    io = probe_io if probe_io in timings(row) else "host"
    one = timings(row)[io].get("1")
    if overhead_us and all(ops.values()) and one:
        for role in roles:
            extra, gap = ops[role] - ops["original"], one[role]["p50_ms"] - one["original"]["p50_ms"]
            text += (f" {ROLE_NAMES.get(role, role)} has {extra:+d} operators; at the probe's {overhead_us:g} us each "
                     f"that is {extra * overhead_us / 1e3:+.3f} ms, against {gap:+.3f} ms measured at batch 1 "
                     f"(`--io {io}`).")
    return text


def _unconfirmed(name: str, row: dict) -> list[str]:
    """Cells where lrfc reads faster with the copies timed but slower in every mode that leaves them out: copies
    common to both files cannot do that, so the host reading is noise (each batch and mode has fresh workers)."""
    modes = timings(row)
    if len(modes) < 2:
        return []
    lines = []
    for b, by_role in _ratios(modes["host"]).items():
        for role, r in by_role.items():
            others = {io: t for io, t in modes.items() if io != "host" and b in t}
            rest = [_ratios(t)[b][role] for t in others.values()]
            if r > 1 and rest and max(rest) < 1:
                lines.append(f"- {name}, batch {b}: {r:.2f}x with the copies timed, but "
                             + " and ".join(f"{x:.2f}x" for x in rest) + " with them left out. Both files copy the "
                             "same input and output, which can only draw their times together, not turn a loss "
                             "into a gain: this is noise between workers on the GPU machine's host (each batch and "
                             "mode starts fresh ones).")
    return lines


def gpu(record: dict) -> list[str]:
    timing = record.get("timing") or {}
    lines = ["## ONNX Runtime on an NVIDIA GPU (CUDA execution provider) — `python -m bench.gpu`", "",
             f"GPU machine: {_gpu_line(record)}.",
             "lrfc's ONNX files, each group's original beside lrfc's models, timed in one runtime_bench run per "
             f"batch (a worker process per file, {timing.get('rounds', '?')} alternating rounds, "
             f"{timing.get('runs', '?')} timed runs per file after {timing.get('warmup', '?')} warm-ups), "
             + ("once per way in and out (runtime_bench's `--io`): "
                + "; ".join(f"`{io}`, {IO_TITLES.get(io, io)}" for io in timing["io"])
                + " (what a latency deployment does, TensorRT included: one launch per run)"
                if len(timing.get("io") or []) > 1 else
                "each run copying the numpy input to the GPU and the output back, as a numpy caller pays")
             + ". Rows timed before io modes existed (no `device`/`graph` table) copied in and out. The files are the CPU "
             "rows' own: `vgg` is the Fashion-MNIST VGG-style original with `bench.speed`'s `vgg/latency` and "
             "`vgg/flops` builds (plans chosen for the 2-core CPU under `--target host`, not for the GPU), "
             "`resnet50-plan` keras.applications ResNet50 at 224x224x3 (weights=None) with `bench.latency`'s "
             "quarter-rank plan, `vgg-plan` the VGG-style original at the same kind of plan (no fine-tuning: only how "
             "its chains run matters here), `vgg-h200` the VGG-style budget build for this GPU (`lrfc build --target "
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
        for io in timings(row):
            lines += group_table(name, row, io)
        for io, why in (row.get("io_errors") or {}).items():
            lines += [f"{name}, {IO_TITLES.get(io, io)}: did not run ({why}).", ""]
    probe = record.get("probe")
    lines += probe_lines(probe)
    lines += ["### What it says", ""]
    overhead = (probe or {}).get("op_overhead_us")
    changed = {name: row for name, row in groups.items() if not _unchanged(row)}
    ratios = [r for row in changed.values() for by_batch in timings(row).values()
              for by_role in _ratios(by_batch).values() for r in by_role.values()]
    on_gpu = [r for row in changed.values() for io, by_batch in timings(row).items() if io != "host"
              for by_role in _ratios(by_batch).values() for r in by_role.values()]
    if on_gpu and max(on_gpu) < 1 <= max(ratios):
        lines.append(f"- **With the copies left out, lrfc is never faster**: every lrfc file runs "
                     f"{min(on_gpu):.2f}x to {max(on_gpu):.2f}x the original's speed with its inputs and outputs on "
                     "the GPU, CUDA graph or not, at every batch; the readings above 1x are host-side noise "
                     "(below). The plans were chosen for a 2-core CPU, fixed by hand, or priced by estimates; on a "
                     "GPU that runs the original's wide convolutions on tensor cores, a factorized chain's extra, "
                     "thinner kernels cost more than the arithmetic they save.")
    if ratios and max(ratios) < 1:
        lines.append(f"- **On this GPU lrfc loses everywhere measured**: every lrfc file runs {min(ratios):.2f}x to "
                     f"{max(ratios):.2f}x the original's speed, at batch 1 and at the largest batch alike. These "
                     "plans were chosen for a 2-core CPU, where fewer MACs is what pays, fixed by hand, or priced by "
                     "estimates that undercounted a chain's operators (the TT-matrix row); on a GPU that runs the "
                     "original's wide convolutions on tensor cores, a factorized chain's extra, thinner kernels cost "
                     "more than the arithmetic they save. A build for the GPU has to price "
                     "candidates there (`--target nvidia-h200 --device ...`) or, out of reach, with estimates that "
                     "pay the measured per-operator overhead (below).")
    probe_io = (probe or {}).get("io", "host")
    lines += [_verdict(name, row, overhead, probe_io) for name, row in changed.items()]
    lines += [line for name, row in changed.items() for line in _unconfirmed(name, row)]
    graphed = [name for name, row in changed.items() if {"device", "graph"} <= set(timings(row))]
    if graphed:
        best = {name: max(r for by_role in _ratios(timings(changed[name])["graph"]).values()
                          for r in by_role.values()) for name in graphed}
        lines.append("- **CUDA graphs** take the launches out of the run (one per inference): "
                     + ", ".join(f"{name}'s original {timings(changed[name])['device']['1']['original']['p50_ms']:.3f}"
                                 f" -> {timings(changed[name])['graph']['1']['original']['p50_ms']:.3f} ms at batch 1"
                                 for name in graphed)
                     + ". lrfc's extra operators then cost less, and its files come closer (at best "
                     + ", ".join(f"{v:.2f}x on {name}" for name, v in best.items())
                     + (") but stay behind: a factorized chain's thin kernels use the tensor cores worse than the "
                        "layer they replace, so fewer MACs do not turn into time even when launching is free."
                        if max(best.values()) < 1 else ")."))
    for name, row in groups.items():
        if name not in changed:
            r = [t["original"]["p50_ms"] / t[role]["p50_ms"] for by_batch in timings(row).values()
                 for t in by_batch.values() for role in t if role != "original"]
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
