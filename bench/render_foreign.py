"""The foreign-models section of docs/BENCHMARKS.md (bench/results/foreign.json, written by bench.foreign)."""

from __future__ import annotations

from bench.render_common import machine_line
from bench.render_speed import RUNTIMES, _pct, four_way_table, loss_lines, ratios_table
from lrfc.report.fmt import input_line


def _trained(t: dict) -> str:
    momentum = ("BN momentum " + ", ".join(f"{m:g}" for m in t["bn_momentum"]) if t["bn_momentum"]
                else "no BatchNorm")
    epochs = f"{t['epochs']} epoch{'s' if t['epochs'] != 1 else ''}"
    return (f"{epochs} on {t['train_samples']:,} images ({t['train_s'] / 60:.1f} min), {momentum}; "
            f"last epoch's training top-1 {_pct(t['train_accuracy'])}, Keras on the 10,000 test images "
            f"{_pct(t['keras_test_accuracy'])}")


def _outcome(r: dict) -> str:
    if "refusal" in r:
        return f"refused (exit {r['exit']}) after {r['wall_s']:.0f} s: {r['refusal'].replace('|', '/')}"
    budget = r["budget"]
    verdict = "met" if budget["met"] else f"MISSED by {budget['drop'] - budget['max_drop']:.2f} points"
    test = ("no test split in the data" if r["test_before"] is None else
            f"test split {_pct(r['test_before'])} → {_pct(r['test_after'])}")
    failed = f"; **exit {r['exit']}**: {r['failed'].replace('|', '/')}" if r.get("failed") else ""
    return (f"validation {_pct(r['accuracy_before'])} → {_pct(r['accuracy_after'])} (drop {r['drop_points']:.2f}, "
            f"{verdict}, {budget['validation_samples']:,} samples); {test}; {r['params_removed_pct']:.1f}% params, "
            f"{r['macs_removed_pct']:.1f}% MACs removed; {r['wall_s'] / 60:.1f} min, peak RSS {r['peak_rss_mb']:,.0f} MiB"
            f"{failed}")


def fastest_lines(runs: dict) -> list[str]:
    out = []
    for n, r in runs.items():
        for runtime, f in (r.get("fastest") or {}).items():
            if f:
                who = "lrfc" if f["model"] == "compressed" else "the original"
                failed = " (failed the verification gate: timed, not published)" if f.get("verified") is False else ""
                quicker = f.get("faster_unverified")
                if quicker:
                    by = "lrfc" if quicker["model"] == "compressed" else "the original"
                    failed += (f"; {quicker['name']} ({by} at {quicker['precision']}, {quicker['p50_ms']:.3f} ms) ran "
                               "faster but failed the verification gate")
                what = "fastest file" if f.get("verified") is False else "fastest verified file"
                on = f" on {f['threads']} thread{'s' * (f['threads'] != 1)}" if f.get("threads") else ""
                out.append(f"- {n}, {RUNTIMES.get(runtime, runtime)}: {what} {f['name']} ({who} at "
                           f"{f['precision']}), p50 {f['p50_ms']:.3f} ms{on}{failed}.")
    return out + ([""] if out else [])


def foreign(record: dict) -> list[str]:
    runs = record.get("runs") or {}
    if not runs:
        return []
    lines = ["## Models nobody here designed", "",
             f"Machine: {machine_line(record)}.",
             "keras.applications architectures (`weights=None`) trained by `bench/foreign.py` on Fashion-MNIST "
             "padded to 32x32x3, with their own preprocessing layers or with preprocessing outside the model, saved "
             "as a Keras-2-style `.h5` or `.keras`, and built by the CLI with default options from a folder of PNGs, "
             "an npz of raw uint8 pixels, a Kaggle-style CSV that lists PNGs and their labels, or TFRecord shards as "
             "TFDS prepares them; only the flags a row names are added. These models are briefly trained, "
             "so fine-tuning can raise their accuracy: a negative drop there is the fine-tuning's, not a free "
             "compression.", "",
             "| row | model | trained | flags | input lrfc read | outcome |", "|---|---|---|---|---|---|"]
    for n, r in runs.items():
        read = input_line(r["input"]) if r.get("input") else "-"
        lines.append(f"| {n} | {r['trained']['architecture']}, `{r['trained']['file']}` | {_trained(r['trained'])} | "
                     f"{'`' + r['flags'] + '`' if r['flags'] else 'defaults'} | {read.replace('|', '/')} | "
                     f"{_outcome(r)} |")
    built = {n: r for n, r in runs.items() if "refusal" not in r}  # exit 1 (a failed file of lrfc's) reports too
    lines.append("")
    if built:
        lines += ratios_table(built, targets=False) + four_way_table(built) + fastest_lines(built)
        lines += ["### Where lrfc loses on them", ""] + loss_lines(built)
    notes = [f"- {n}: {r['note']}" for n, r in runs.items() if r.get("note")]  # said of a run by hand
    return lines + notes + ([""] if notes else []) + [f"- {n}: `{r['command']}` ({r['date']})"
                                                       for n, r in runs.items()] + [""]
