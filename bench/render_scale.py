"""The memory-and-scale section of docs/BENCHMARKS.md (bench/results/scale.json, written by bench.scale).

Every number and verdict is read from the results; the targets are issue 15's.
"""

from __future__ import annotations

from bench.render_common import RUN, as_run, machine_line, pyplot, save_figure

GB = 1024  # MiB in a GiB (peaks are recorded in MiB)
TARGETS = {"resnet50-224": {"peak_gb": 4.0, "score_min": 10.0}, "resnet50-64": {"peak_gb": 4.0, "build_min": 5.0}}
PHASES = ("load", "calibrate", "score", "select", "factorize", "finetune", "test_split", "lower")


def _peak(row: dict) -> float | None:
    peaks = [v for v in (row.get("peak_rss_mb") or {}).values() if v is not None]
    return max(peaks) if peaks else None


def _gb(mb) -> str:
    return "-" if mb is None else f"{mb / GB:.2f}"


def _s(row: dict, phase: str) -> str:
    v = (row.get("timings") or {}).get(phase)
    return "-" if v is None else f"{v:.0f}"


def _allocator(row: dict) -> str:
    """What the row's TensorFlow kernels allocated from; rows from before lrfc chose it ran on oneDNN's pool."""
    return (row.get("memory") or {}).get("allocator") or "oneDNN pool"


def scale(record: dict) -> list[str]:
    rows = record.get("rows", {})
    lines = ["## Memory and time against model size (issue 15)", "",
             f"Machine: {machine_line(record)}. Each row is one `lrfc build` with a fresh score cache (`python -m "
             "bench.scale`); peaks are the kernel's resident high-water mark per stage (`peak_rss_mb` in report.json), "
             "times the stage clock (`timings`). The keras.applications models have random weights (no pretrained "
             "weights offline): at chance by design, and their layers need high ranks, the search's worst case.", "",
             "| model | input | params | MACs | layers | peak GiB (stage) | expected peak GiB | load s | calibrate s | "
             "score s | select s | wall min (stages run) | score peak GiB | TensorFlow allocator |",
             "|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, r in rows.items():
        if r.get("error"):
            lines.append(f"| {name} | | | | | failed: {r['error']} | | | | | | {r['wall_s'] / 60:.1f} | | |")
            continue
        peaks = r["peak_rss_mb"]
        top = max(peaks, key=lambda k: peaks[k] or 0) if peaks else None
        lines.append(f"| {name} | {r['input_shape']} | {r['params']:,} | {r['macs']:,} | {r['layers']} | "
                     f"{_gb(_peak(r))} ({top}) | {_gb((r.get('memory') or {}).get('expected_peak'))} | "
                     f"{_s(r, 'load')} | {_s(r, 'calibrate')} | {_s(r, 'score')} | {_s(r, 'select')} | "
                     f"{r['wall_s'] / 60:.1f} ({'to ' + r['until'] if r.get('until') else 'all'}) | "
                     f"{_gb(peaks.get('score'))} | {_allocator(r)} |")
    lines += _stage_table(rows)
    lines += ["", "Targets (issue 15), read from the rows above:", ""]
    for name, target in TARGETS.items():
        r = rows.get(name)
        if r is None or r.get("error"):
            lines.append(f"- {name}: not measured" + (f" ({r['error']})" if r else ""))
            continue
        peak = _peak(r) / GB
        parts = [f"peak {peak:.2f} GiB ({'met' if peak <= target['peak_gb'] else 'missed'}: <= {target['peak_gb']:g} GiB; "
                 f"{peak * 2**30 / 1e9:.2f} x 10^9 bytes)"]
        if "score_min" in target:
            m = r["timings"]["score"] / 60
            parts.append(f"score {m:.1f} min ({'met' if m <= target['score_min'] else 'missed'}: <= "
                         f"{target['score_min']:g} min)")
        whole = next((w for w in (r, rows.get(name + "-whole")) if w and not w.get("until") and not w.get("error")), None)
        if "build_min" in target and whole is None:
            parts.append(f"whole build not run (stages up to {r['until']} only)")
        elif "build_min" in target:
            m, wpeak = whole["wall_s"] / 60, _peak(whole) / GB
            parts.append(f"whole build {m:.2f} min, {whole['wall_s']:.0f} s ({'met' if m <= target['build_min'] else 'missed'}: <= "
                         f"{target['build_min']:g} min), peak {wpeak:.2f} GiB "
                         f"({'met' if wpeak <= target['peak_gb'] else 'missed'}: <= {target['peak_gb']:g} GiB)")
        lines.append(f"- {name}: " + "; ".join(parts) + ".")
    notes = [f"- {name}: {r['note']}" for name, r in rows.items() if r.get("note")]
    lines += (["", "Conditions:", ""] + notes if notes else []) + ["", "Commands:", ""]
    lines += [f"- {name}: `{_as_run(r['command'], r.get('measured_at'))}` ({r.get('measured_at', '?')})"
              for name, r in rows.items()]
    return lines + ["", "![score phase memory and time against model size](scale.png)", ""]


def _stage_table(rows: dict) -> list[str]:
    """Each whole build's stages: seconds and peak resident memory (the ones the issue's targets sum over)."""
    whole = {n: r for n, r in rows.items() if not r.get("until") and not r.get("error") and r.get("timings")}
    if not whole:
        return []
    names = list(whole)
    out = ["", "Whole builds, stage by stage (seconds / peak GiB):", "",
           "| stage | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    stages = [s for s in PHASES if any((whole[n]["timings"].get(s) or 0) > 0 for n in names)]
    for stage in stages:
        cells = [f"{_s(whole[n], stage)} / {_gb(whole[n]['peak_rss_mb'].get(stage))}" for n in names]
        out.append(f"| {stage} | " + " | ".join(cells) + " |")
    return out


def scale_plot(record: dict, path) -> None:
    """Score-phase peak memory and time against parameters, one point per model (its latest run: rows kept from
    earlier runs of a command are in the tables, not the plot)."""
    rows = {n: r for n, r in record.get("rows", {}).items() if not r.get("error") and RUN not in n}
    if not rows:
        return
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for name, r in rows.items():
        x = r["params"]
        a.scatter(x, (r["peak_rss_mb"].get("score") or 0) / GB)
        a.annotate(name, (x, (r["peak_rss_mb"].get("score") or 0) / GB), fontsize=8)
        b.scatter(x, r["timings"].get("score", 0) / 60)
        b.annotate(name, (x, r["timings"].get("score", 0) / 60), fontsize=8)
    for ax, label in ((a, "score phase peak resident memory (GiB)"), (b, "score phase time (min)")):
        ax.set_xscale("log")
        ax.set_xlabel("model parameters")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    save_figure(fig, path)


def _as_run(command: str, date: str | None) -> str:
    """``as_run`` on the build part of a row's command, its note on how it was cut short kept after it."""
    build, sep, note = command.partition(" (stages up to")
    return as_run(build, date) + sep + note

