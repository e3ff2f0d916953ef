"""The real-speed section of docs/BENCHMARKS.md (bench/results/speed.json, written by bench.speed).

Every number, ratio and verdict is read from the results; the sentences that
interpret them are conditional on them.
"""

from __future__ import annotations

from bench.render_common import RUN, as_run, machine_line, machine_of

TARGETS = {"litert": 4.0, "onnxruntime-cpu": 2.5, "int8": 1.5, "objective": 1.3, "error": 0.20}  # issue 14
ROWS = ("original fp32", "original int8", "lrfc fp32", "lrfc int8")
RUNTIMES = {"litert": "LiteRT (XNNPACK)", "onnxruntime-cpu": "ONNX Runtime CPU"}


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _ratio(a, b) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _x(v) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _p50(row: dict, runtime: str, name: str):
    return (row["latency"].get(runtime) or {}).get(name, {}).get("p50_ms")


def builds_table(runs: dict) -> list[str]:
    lines = ["| build | machine | validation | drop (points) | met | test split | params removed | MACs removed | "
             "build min |",
             "|---|---|---|---:|---|---|---:|---:|---:|"]
    for n, r in runs.items():
        lines.append(f"| {n} | {machine_of(r)} | {_pct(r['accuracy_before'])} → {_pct(r['accuracy_after'])} | "
                     f"{r['drop_points']:.2f} | "
                     f"{'yes' if r['budget']['met'] else 'no'} | {_pct(r['test_before'])} → {_pct(r['test_after'])} | "
                     f"{r['params_removed_pct']:.2f}% | {r['macs_removed_pct']:.2f}% | {r['wall_s'] / 60:.1f} |")
    return lines + [""]


def four_way_table(runs: dict) -> list[str]:
    lines = ["| build | runtime | model | p50 ms | p90 ms | top-1 (verify samples) | file bytes | peak RSS MiB |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for n, r in runs.items():
        for runtime, models in r["latency"].items():
            for name in ROWS:
                m = models.get(name)
                if m is None:
                    continue
                rss = "-" if m.get("peak_rss_mb") is None else f"{m['peak_rss_mb']:.1f}"
                failed = " (failed verification: timed, not published)" if m.get("verified") is False else ""
                lines.append(f"| {n} | {RUNTIMES.get(runtime, runtime)} | {name} | {m['p50_ms']:.3f} | {m['p90_ms']:.3f} | "
                             f"{_pct(m.get('accuracy'))}{failed} | {m['file_bytes']:,} | {rss} |")
    return lines + [""]


def _unverified(models: dict, *names: str) -> str:
    """A mark for a ratio one of whose files failed the verification gate (timed, not published)."""
    failed = [n for n in names if (models.get(n) or {}).get("verified") is False]
    return f" ({', '.join(failed)} failed verification)" if failed else ""


def ratios_table(runs: dict, targets: bool = True) -> list[str]:
    """Speed-ups per build and runtime; ``targets``: beside issue 14's (its Fashion-MNIST baselines' targets)."""
    target = "(target) | " if targets else ""
    lines = [f"| build | machine | runtime | lrfc fp32 vs original fp32 | {target}lrfc int8 vs original int8 | "
             f"{target}lrfc fp32 vs original int8 | MAC reduction | latency cut / MAC cut |",
             "|---|---|---|---:|" + ("---:|" if targets else "") + "---:|" + ("---:|" if targets else "") + "---:|---:|---:|"]
    for n, r in runs.items():
        macs = r["macs_before"] / max(1, r["macs_after"])
        for runtime in r["latency"]:
            fp = _ratio(_p50(r, runtime, "original fp32"), _p50(r, runtime, "lrfc fp32"))
            i8 = _ratio(_p50(r, runtime, "original int8"), _p50(r, runtime, "lrfc int8"))
            vs = _ratio(_p50(r, runtime, "original int8"), _p50(r, runtime, "lrfc fp32"))
            models = r["latency"][runtime]
            cut = None if fp is None or macs <= 1 else (1 - 1 / fp) / (1 - 1 / macs)
            t_fp, t_i8 = (f"{TARGETS.get(runtime, 0):g}x | ", f"{TARGETS['int8']:g}x | ") if targets else ("", "")
            lines.append(f"| {n} | {machine_of(r)} | {RUNTIMES.get(runtime, runtime)} | {_x(fp)} | "
                         f"{t_fp}{_x(i8)}{_unverified(models, 'original int8', 'lrfc int8')} | "
                         f"{t_i8}{_x(vs)}{_unverified(models, 'original int8', 'lrfc fp32')} | {macs:.2f}x | "
                         f"{'-' if cut is None else f'{cut:.2f}'} |")
    return lines + [""]


def threads_table(runs: dict) -> list[str]:
    """The same files, each at its fastest thread count of those the benchmark timed side by side (1 and 2 here)."""
    lines = ["| build | machine | runtime | original fp32 | lrfc fp32 | original int8 | lrfc int8 | lrfc fp32 vs original "
             "fp32 | (target) | lrfc int8 vs original int8 | (target) | lrfc fp32 vs original int8 |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, r in runs.items():
        for runtime, models in r["latency"].items():
            if "best_p50_ms" not in (models.get("lrfc fp32") or {}):  # timed at the profile's count alone
                continue
            best = {name: (models.get(name) or {}).get("best_p50_ms") for name in ROWS}
            cells = [f"{best[name]:.3f} ({models[name]['best_threads']})" if best[name] is not None else "-"
                     for name in ROWS]
            fp = _ratio(best["original fp32"], best["lrfc fp32"])
            i8 = _ratio(best["original int8"], best["lrfc int8"])
            vs = _ratio(best["original int8"], best["lrfc fp32"])
            lines.append(f"| {n} | {machine_of(r)} | {RUNTIMES.get(runtime, runtime)} | {cells[0]} | {cells[2]} | "
                         f"{cells[1]} | {cells[3]} | {_x(fp)} | {TARGETS.get(runtime, 0):g}x | {_x(i8)} | "
                         f"{TARGETS['int8']:g}x | {_x(vs)} |")
    if len(lines) == 2:
        return []
    return (["Each file at its fastest thread count (in brackets), of 1 and 2 timed side by side in the same "
             "runtime_bench run as the table above (the benchmark stage's thread sweep; rows built before it have "
             "none): a device's cores are what a model may use, and a small model can lose more to the runtime's "
             "thread handoffs than it gains. p50 ms:", ""] + lines + [""])


def loss_lines(runs: dict) -> list[str]:
    """Where lrfc loses, each case computed: slower than the original, or than the user's int8 alternative."""
    out = []
    for n, r in runs.items():
        for runtime in r["latency"]:
            where = RUNTIMES.get(runtime, runtime)
            for mine, theirs in (("lrfc fp32", "original fp32"), ("lrfc int8", "original int8"),
                                 ("lrfc fp32", "original int8")):
                a, b = _p50(r, runtime, mine), _p50(r, runtime, theirs)
                if a is not None and b is not None and a > b:
                    failed = [name for name in (mine, theirs)
                              if (r["latency"][runtime].get(name) or {}).get("verified") is False]
                    note = f"; {' and '.join(failed)} failed verification (timed, not published)" if failed else ""
                    out.append(f"- {n} ({machine_of(r)}), {where}: {mine} {a:.3f} ms is slower than "
                               f"{theirs} {b:.3f} ms ({b / a:.2f}x{note}).")
    if not out:
        return ["lrfc was faster than the original and than its int8 in every row.", ""]
    return out + [""]


def _side_by_side_lines(model: str, lat: dict, flo: dict, timed: dict) -> list[str]:
    where = f"{model} ({machine_of(timed)})"
    out = []
    for runtime, t in timed["runtimes"].items():
        p50, ratio = t["p50_ms"], t["latency_vs_flops"]
        verdict = ("meets" if ratio >= TARGETS["objective"] else "misses") + f" the {TARGETS['objective']:g}x target"
        out.append(f"- {where}, {RUNTIMES.get(runtime, runtime)}, side by side in one run ({timed['date']}): "
                   f"`--objective latency` {p50['latency']:.3f} ms (drop {lat['drop_points']:.2f}, "
                   f"{lat['macs_removed_pct']:.1f}% MACs removed) against `--objective flops` {p50['flops']:.3f} ms "
                   f"(drop {flo['drop_points']:.2f}, {flo['macs_removed_pct']:.1f}% MACs removed), original "
                   f"{p50['original']:.3f} ms: {ratio:.2f}x, {verdict}. `{t['command']}`")
    return out


def _latest(entries: dict, name: str, machine: str) -> dict | None:
    """The latest entry called ``name`` (itself or a kept ``name, run of DATE``) measured on ``machine``."""
    found = [e for n, e in entries.items() if n.split(RUN)[0] == name and machine_of(e) == machine]
    return max(found, key=lambda e: e["date"], default=None)


def objective_lines(runs: dict, side_by_side: dict | None = None) -> list[str]:
    """Per model and machine, the latency row against the flops row: side by side where one run timed them both."""
    out = []
    for model in sorted({r["model"] for r in runs.values()}):
        for machine in sorted({machine_of(r) for r in runs.values() if r["model"] == model}):
            lat, flo = _latest(runs, f"{model}/latency", machine), _latest(runs, f"{model}/flops", machine)
            if lat is None or flo is None:
                continue
            timed = _latest(side_by_side or {}, model, machine)
            if timed and timed["date"] >= max(lat["date"], flo["date"]):
                out += _side_by_side_lines(model, lat, flo, timed)
                continue
            for runtime in lat["latency"]:
                a, b = _p50(lat, runtime, "lrfc fp32"), _p50(flo, runtime, "lrfc fp32")
                if a is None or b is None:
                    continue
                ratio = b / a
                verdict = ("meets" if ratio >= TARGETS["objective"] else "misses") + f" the {TARGETS['objective']:g}x target"
                out.append(f"- {model} ({machine}), {RUNTIMES.get(runtime, runtime)}: `--objective latency` {a:.3f} ms "
                           f"(drop {lat['drop_points']:.2f}, {lat['macs_removed_pct']:.1f}% MACs removed) against "
                           f"`--objective flops` {b:.3f} ms (drop {flo['drop_points']:.2f}, {flo['macs_removed_pct']:.1f}% "
                           f"MACs removed): {ratio:.2f}x, {verdict}. Each from its own build's benchmark, so measured "
                           "minutes apart, not side by side.")
    return out + ([""] if out else [])


def cost_model_lines(runs: dict) -> list[str]:
    out = []
    for n, r in runs.items():
        err = r.get("cost_model_error")
        if not err:
            continue
        def judged(key: str) -> str:
            return f"{100 * err[key]:.0f}% ({'within' if err[key] <= TARGETS['error'] else 'above'} the " \
                   f"{100 * TARGETS['error']:.0f}% aim)"

        scaled = f"; scaled by the original's measured / summed ratio, {judged('scaled')}" if "scaled" in err else ""
        out.append(f"- {n} ({machine_of(r)}): over {err['rungs']} whole models timed beside the original "
                   "(median relative error): "
                   f"the per-layer sum is off by {100 * err['per_layer_sum']:.0f}%; adding what the original spends "
                   f"outside its priced layers, {judged('with_remainder')}{scaled}.")
        sols = r.get("solutions") or []
        if sols:
            kept = sum(s["rung"] is not None for s in sols)
            out.append("  Rungs timed: " + "; ".join(
                f"{s['label']} {s['predicted_ms']:.3f} predicted / {s['measured_ms']:.3f} ms measured"
                + (" (kept)" if s["rung"] is not None else " (dropped)") for s in sols if s["measured_ms"] is not None)
                + f"; original {r['whole_original_ms']:.3f} ms; {kept} of {len(sols)} kept.")
    return out + ([""] if out else [])


def speed(record: dict) -> list[str]:
    runs = record.get("runs") or {}
    if not runs:
        return []
    lines = ["## Real speed: whole-model latency in the choice, against int8 of the original", "",
             f"Machine: {machine_line(record)}.",
             "Each row is one `lrfc build --max-acc-drop 1.0 --target host` (`host-int8` for the int8 rows: "
             "the whole search at int8) with its own final benchmark: the original and lrfc's model at fp32 and "
             "both at int8 (post-training quantization, what a user would do instead), timed side by side in one runtime_bench run per runtime (alternating rounds, batch 1, "
             "2 threads, each file the lower median of two sets of fresh workers; since the benchmark stage's thread sweep "
             "each file at 1 thread too, in the same run: the second table). Targets (issue 14): lrfc fp32 "
             f">= {TARGETS['litert']:g}x the original fp32 on LiteRT and >= {TARGETS['onnxruntime-cpu']:g}x on "
             f"ONNX Runtime; lrfc int8 >= {TARGETS['int8']:g}x the original int8; `--objective latency` >= "
             f"{TARGETS['objective']:g}x `--objective flops`; cost-model error <= {100 * TARGETS['error']:.0f}%.", ""]
    lines += builds_table(runs) + ratios_table(runs) + threads_table(runs) + four_way_table(runs)
    lines += ["### Where lrfc loses", ""] + loss_lines(runs)
    lines += ["### `--objective latency` against `--objective flops`", ""]
    lines += objective_lines(runs, record.get("side_by_side"))
    lines += ["### The per-layer cost model against whole models", ""] + cost_model_lines(runs)
    lines += [f"- {n}: `{as_run(r['command'], r['date'])}` ({r['date']}, {r['wall_s'] / 60:.1f} min)"
              for n, r in runs.items()] + [""]
    return lines


def _multiple(run: dict, precision: str) -> str:
    """A probe row's channel multiple by today's rule, with the one its run recorded in brackets where they differ."""
    from lrfc.cost.probe import channel_multiple

    sweep = run.get("sweep_ms", {}).get(precision)
    recorded = run.get("multiples", {}).get(precision)
    if not sweep:
        return str(recorded if recorded is not None else "-")
    today = channel_multiple({int(c): ms for c, ms in sweep.items()})
    return str(today) if recorded in (None, today) else f"{today} ({recorded})"


def probe(record: dict) -> list[str]:
    """`lrfc profiles probe` on this machine (bench/results/probe.json): the measured figures per runtime."""
    runs = record.get("runs") or {}
    if not runs:
        return []
    lines = ["## `lrfc profiles probe` on the machines this project ran on", "",
             "What the probe measured per runtime (2 threads; each synthetic model's fastest run over 3 sets of "
             "fresh workers): peak compute of a 3x3 conv (256 -> 256 channels, 28x28), memory bandwidth from "
             "element-wise adds over 64 MiB, the cost of one more tiny operator, and the channel multiple where a "
             "1x1 conv's latency steps (output channels 33-64 swept). The multiples are read off each sweep by "
             "today's rule (`lrfc.cost.probe.channel_multiple`: a coarser multiple judged against the finer grid it "
             "replaces); where the run read another with the rule of its day, that one follows in brackets (until "
             "2026-12-07 a coarse grid was judged against every count, and ONNX Runtime's slow counts off a multiple "
             "of 4 made 32 look free).", "",
             "| machine | runtime | version | peak fp32 GFLOP/s | peak int8 GOP/s | bandwidth GB/s | op overhead us | "
             "multiple fp32 | multiple int8 | date |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for p in runs.values():
        machine = " ".join(v for v in (p["device"].get("cpu"), p["device"].get("isa")) if v)
        multiples = [_multiple(p, precision) for precision in ("fp32", "int8")]
        lines.append(f"| {machine} | {RUNTIMES.get(p['runtime'], p['runtime'])} | "
                     f"{p['device'].get('runtime_version', '?')} | "
                     f"{p['peak_gops'].get('fp32', '-')} | {p['peak_gops'].get('int8', '-')} | {p['bandwidth_gbps']} | "
                     f"{p['op_overhead_us']} | {multiples[0]} | {multiples[1]} | {p['date']} |")
    lines.append("")
    for name, p in runs.items():
        for precision, sweep in p.get("sweep_ms", {}).items():
            values = ", ".join(f"{c}: {ms:.3f}" for c, ms in sweep.items())
            lines.append(f"- {name} {precision} sweep (channels: ms): {values}.")
    commands = record.get("command") or {}
    lines += [""] + [f"- {n}: `{c}` ({runs[n]['date']})" for n, c in commands.items() if n in runs] + [""]
    return lines


def qat(record: dict) -> list[str]:
    """`--qat` against post-training quantization on one plan (bench/results/qat.json, written by bench.qat)."""
    runs = record.get("runs") or {}
    if not runs:
        return []
    lines = ["### Quantization-aware fine-tuning against post-training quantization, one plan", "",
             "Two `lrfc build --target host-int8 --plan PLAN` builds of the same plan and fine-tuning round, one "
             "with `--qat`; each published int8 `model.tflite` (and the int8 original) scored in LiteRT on all "
             "10,000 Fashion-MNIST test images. A build whose int8 files fail the verification gate publishes none: "
             "for those rows (marked *) the bench exports the int8 files itself from the published `model.keras` and "
             "the original, the same converter on its own 500 calibration images, and the gate column is the "
             "build's verdict (top-1 agreement with the Keras model on 512 validation samples).", "",
             "| build | float model, validation | lrfc int8, test | original int8, test | gate, lrfc / original | "
             "build min |",
             "|---|---:|---:|---:|---|---:|"]

    def verdict(g) -> str:
        return "passed" if g is None or g["passed"] else f"failed ({g['top1_agreement']:.3f})"

    for n, r in runs.items():
        gates = r.get("gate") or {}
        star = "*" if r.get("int8_files") else ""
        lines.append(f"| {n} | {_pct(r['float_validation'])} | {_pct(r['int8_test'])}{star} | "
                     f"{_pct(r['original_int8_test'])}{star} | {verdict(gates.get('compressed'))} / "
                     f"{verdict(gates.get('original'))} | {r['wall_s'] / 60:.1f} |")
    for model in sorted({r["model"] for r in runs.values()}):
        ptq, q = runs.get(f"{model}/ptq"), runs.get(f"{model}/qat")
        if ptq and q:
            gain = 100 * (q["int8_test"] - ptq["int8_test"])
            word = "gains" if gain > 0 else "loses" if gain < 0 else "changes nothing:"
            lines += ["", f"On {model}, `--qat` {word} {abs(gain):.2f} points of int8 test accuracy against "
                          f"post-training quantization of the same plan (10,000 images: a point is 100 of them)."]
    return lines + [""] + [f"- {n}: `{as_run(r['command'], r['date'])}` ({r['date']})" for n, r in runs.items()] + [""]


def equalize(record: dict) -> list[str]:
    """int8 of factorized chains as factorized, equalized, and with CP's depthwise pairs as one operator
    (bench/results/equalize.json, written by bench.equalize)."""
    runs = record.get("runs") or {}
    if not runs:
        return []
    lines = ["### int8 of the factorized chains: equalized, and CP's depthwise pair as one operator", "",
             f"Machine: {machine_line(record)}.", "",
             "One `lrfc build --finetune none --bench-runs 0` per model chooses the plan (no int8 file, so its "
             "`model.keras` holds the chains as factorized); the bench lowers that model to int8 as it is, with its "
             "chains equalized (`factorize/equalize.py`: each chain's inner channels rescaled to one range, the same "
             "function in float), and equalized with CP's depthwise kh x 1 and 1 x kw stages kept as two operators "
             "(`lower/separable_depthwise.py` switched off: how builds lowered them before 2026-12-05 09:00 UTC); "
             "a build's files are the equalized ones with the pair as one operator. The original at int8 beside "
             "them, with a build's converters on 500 calibration images. Every file runs the 10,000 test images "
             "against its float Keras model: top-1, top-1 agreement with the float model, and the largest output "
             "difference per image (mean, 99th percentile: the verification gate's measure). A row without the "
             "two-operator variant ran before the change, when every variant kept the pair as two operators.", "",
             "| model | plan | runtime | int8 file | its float model's top-1 | int8 top-1 | agreement with float | "
             "mean diff | p99 diff |",
             "|---|---|---|---|---:|---:|---:|---:|---:|"]
    variants = (("original int8", "original"), ("lrfc int8, as factorized", "factorized"),
                ("lrfc int8, equalized, CP's pair as two operators", "equalized_pairs_kept"),
                ("lrfc int8, equalized (a build's)", "equalized"))
    for name, r in runs.items():
        plan = (f"{r['macs_removed_pct']:.1f}% of MACs removed at {r['drop_points']:.2f} points; "
                + ", ".join(f"{m} x{n}" for m, n in r["methods"].items()))
        for runtime in RUNTIMES:
            for label, key in variants:
                if key not in r:
                    continue
                s = r[key]["int8"][runtime]
                lines.append(f"| {name} | {plan} | {RUNTIMES[runtime]} | {label} | {_pct(r[key]['float_accuracy'])} | "
                             f"{_pct(s['accuracy'])} | {_pct(s['agreement'])} | {s['mean_diff']:.4f} | "
                             f"{s['p99_diff']:.4f} |")
    lines.append("")
    for name, r in runs.items():
        e = r["equalization"]
        cuts = ", ".join(f"{RUNTIMES[rt]} {r['factorized']['int8'][rt]['mean_diff']:.4f} -> "
                         f"{r['equalized']['int8'][rt]['mean_diff']:.4f}" for rt in RUNTIMES)
        lines.append(f"- {name}: {e['links']} inner tensors of {e['chains']} chains equalized (channel ranges spread "
                     f"{e['median_spread']:.3g}:1 at the median, largest scale {e['max_scale']:.3g}); mean difference "
                     f"from the float model {cuts}.")
        if "equalized_pairs_kept" in r:
            merged = ", ".join(f"{RUNTIMES[rt]} {r['equalized_pairs_kept']['int8'][rt]['mean_diff']:.4f} -> "
                               f"{r['equalized']['int8'][rt]['mean_diff']:.4f} (agreement "
                               f"{_pct(r['equalized_pairs_kept']['int8'][rt]['agreement'])} -> "
                               f"{_pct(r['equalized']['int8'][rt]['agreement'])})" for rt in RUNTIMES)
            lines.append(f"- {name}: CP's depthwise pair as one operator, equalized int8 files' mean difference "
                         f"{merged}.")
        behind = [rt for rt in RUNTIMES if r["original"]["int8"][rt]["mean_diff"] < r["equalized"]["int8"][rt]["mean_diff"]]
        if behind:
            lines.append(f"- {name}: the original's int8 stays nearer its float model on "
                         f"{' and '.join(RUNTIMES[rt] for rt in behind)}: a factorized layer's chain rounds one to "
                         "three more tensors than the layer it replaces (SVD one, Tucker two, CP two, three before "
                         "its depthwise pair became one operator), each adding its own rounding noise.")
    lines += _pair_timing(runs)
    return lines + [""] + [f"- {n}: `{r['command']}`, then `python -m bench.equalize --models {n}` ({r['date']})"
                           for n, r in runs.items()] + [""]


def _pair_timing(runs: dict) -> list[str]:
    """The equalized files with CP's pair as one operator and as two, and the original's, timed side by side."""
    timed = {n: r["timed"] for n, r in runs.items() if r.get("timed")}
    if not timed:
        return []
    files = ("original fp32", "original int8", "lrfc, pairs as two operators fp32", "lrfc fp32",
             "lrfc, pairs as two operators int8", "lrfc int8")
    lines = ["", "The equalized model's files with CP's depthwise pair as two operators and as one (a build's), and "
             "the original's, timed side by side (p50 ms; one runtime_bench run per runtime, alternating, two sets "
             "of fresh workers, 2 threads, batch 1):", "",
             "| model | runtime | original fp32 | original int8 | lrfc fp32, pair as two | lrfc fp32 | "
             "lrfc int8, pair as two | lrfc int8 | one operator against two, fp32 / int8 |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, t in timed.items():
        for runtime, m in t.items():
            p = m["p50_ms"]
            gain = " / ".join(_x(_ratio(p[f"lrfc, pairs as two operators {q}"], p[f"lrfc {q}"])) for q in ("fp32", "int8"))
            lines.append(f"| {name} | {RUNTIMES[runtime]} | " + " | ".join(f"{p[f]:.3f}" for f in files) + f" | {gain} |")
    lines.append("")
    lines += [f"- {name}, {RUNTIMES[rt]}: `{m['command']}`" for name, t in timed.items() for rt, m in t.items()]
    return lines
