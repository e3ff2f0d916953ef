"""Render a build report for people: a terminal summary, a Pareto plot and one HTML page.

The report dict is what ``lrfc build`` produces and saves as ``report.json``;
every function here reads it and nothing else, so a saved report can be
re-rendered later. Its documented keys are required; extra keys are ignored.
Accuracies are fractions in [0, 1]; drops are shown in percentage points.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from pathlib import Path

from lrfc.atomic import write_text

# One look per method across every report, so plots can be compared side by side.
_METHOD_STYLE = {
    "tucker": ("#1f77b4", "o"), "cp": ("#ff7f0e", "^"), "tt": ("#2ca02c", "s"),
    "svd": ("#d62728", "D"), "qr": ("#9467bd", "v"), "ttm": ("#8c564b", "P"),
}
_FALLBACK_STYLE = [("#e377c2", "X"), ("#7f7f7f", "h"), ("#bcbd22", "*"), ("#17becf", "p")]
_TOP_KEYS = ("model", "target", "objective", "threshold", "seed", "cost_source", "original", "compressed",
             "layers", "finetune", "timings", "peak_rss_mb", "search", "unfactorized")
_MAX_SUBPLOTS = 24
_MAX_SOLUTIONS = 10


def cost_key(objective: str) -> str:
    """The candidate field the objective ranks by: ``params`` for params/memory, ``macs`` otherwise."""
    return "params" if objective in ("params", "memory") else "macs"


def cost_source_line(report: dict) -> str:
    """Say where the selection's costs came from, so nobody reads MACs as milliseconds."""
    source, objective, target = report.get("cost_source"), report["objective"], report.get("target", "the target")
    costs = report.get("costs") or {}
    if source == "measured":
        where = (costs.get("device") or {}).get("transport") or "this machine"
        how = f" ({costs['runtime']}, {costs['precision']}, {costs['threads']} threads)" if costs.get("runtime") else ""
        return f"latency measured on {target} via {where}{how}" if costs else f"latency measured on {target}"
    if source == "estimated":
        basis = f": {costs['basis']}" if costs.get("basis") else ""
        return f"latency estimated for {target} (not measured){basis}"
    if source == "closed-form":
        return f"{'parameters' if cost_key(objective) == 'params' else 'MACs'} counted analytically (objective {objective})"
    if source == "given plan":
        return "the plan was given (--plan); no search"
    if source == "macs-stand-in":  # reports written before latency was measured
        if objective == "latency":
            return f"MACs stand in for latency (no measured or estimated latency for {target})"
        return f"{'parameters' if cost_key(objective) == 'params' else 'MACs'} counted analytically (objective {objective})"
    return f"cost source {source!r}"


# ----------------------------------------------------------------------------- terminal summary

def summary_table(report: dict) -> str:
    """The terminal summary: one row per layer, then totals, accuracy, cost source and timings."""
    _check(report)
    head = ("layer", "type", "method", "ranks", "similarity", "params before", "after", "MACs before", "after")
    rows = [(_short(l["name"]), str(l["type"]), _method(l), _ranks(l.get("ranks")), _sim(l.get("similarity")),
             f"{l['params_before']:,}", f"{l['params_after']:,}", f"{l['macs_before']:,}", f"{l['macs_after']:,}")
            for l in report["layers"]]
    orig, comp = report["original"], report["compressed"]
    n_fact = sum(l.get("method") is not None for l in report["layers"])
    total = ("model total", f"{len(rows)} layers", f"{n_fact} factorized", "", "",
             f"{orig['params']:,}", f"{comp['params']:,}", f"{orig['macs']:,}", f"{comp['macs']:,}")
    widths = [max(len(r[i]) for r in [head, total, *rows]) for i in range(len(head))]
    right = {4, 5, 6, 7, 8}

    def line(cells, arrow: str = " -> ", sep: str = "  ") -> str:
        """Cells padded to the column widths; ``arrow`` joins each before/after pair."""
        out = []
        for i, (c, w) in enumerate(zip(cells, widths)):
            cell = c.rjust(w) if i in right else c.ljust(w)
            out.append(cell + (arrow if i in (5, 7) else sep if i < len(cells) - 1 else ""))
        return "".join(out).rstrip()

    rule = line(tuple("-" * w for w in widths), arrow="----")
    out = [_title(report), "", line(head, arrow="    "), rule, *map(line, rows), rule, line(total), ""]
    out.append(f"removed     {_pct_removed(orig['params'], comp['params'])} of params, "
               f"{_pct_removed(orig['macs'], comp['macs'])} of MACs")
    out.append(f"accuracy    {_accuracy_line(orig.get('accuracy'), comp.get('accuracy'))}")
    out.append(f"cost        {cost_source_line(report)}")
    if report.get("finetune"):
        out.append(f"fine-tune   {_finetune_line(report['finetune'])}")
    for a in report.get("artifacts") or []:
        if a.get("model") == "compressed":
            out.append(f"artifact    {_artifact_line(a)}")
    bench = report.get("benchmarks") or {}
    for run in bench.get("runs") or []:
        out.append(f"latency     {_bench_line(run)}")
    if bench.get("status") and bench["status"] != "measured":
        out.append(f"latency     {bench['status']}")
    if report.get("timings"):
        out.append(f"time        {_timings_line(report['timings'])}")
    peaks = {k: v for k, v in (report.get("peak_rss_mb") or {}).items() if v is not None}
    if peaks:
        top = max(peaks, key=peaks.get)
        out.append(f"memory      peak {peaks[top]:.0f} MB resident, in {top}")
    if any(l.get("data_aware") for l in report["layers"]):
        out.append("            * fit to the calibration data (data-aware)")
    for l in report["layers"]:
        if l.get("note"):
            out.append(f"note        {l['name']}: {l['note']}")
    skipped = report.get("unfactorized") or []
    for u in skipped[:5]:
        out.append(f"skipped     {u['name']} ({u['type']}): {u['reason']}")
    if len(skipped) > 5:
        out.append(f"skipped     ... and {len(skipped) - 5} more (see report.html)")
    return "\n".join(out)


def _title(report: dict) -> str:
    return (f"lrfc build: {report.get('model', '?')} -> {report.get('target', '?')}  "
            f"(objective {report['objective']}, threshold {report['threshold']}, seed {report.get('seed', '?')})")


def _check(report: dict) -> None:
    missing = [k for k in ("objective", "threshold", "original", "compressed", "layers") if k not in report]
    if missing:
        raise ValueError(f"not a build report: missing {missing}; received keys {sorted(report)}")


def _short(name: str, width: int = 36) -> str:
    name = str(name)
    return name if len(name) <= width else name[: width // 2 - 2] + "..." + name[-(width - width // 2 - 1):]


def _method(layer: dict) -> str:
    if layer.get("method") is None:
        return "kept"
    return layer["method"] + ("*" if layer.get("data_aware") else "")


def _ranks(ranks) -> str:
    return "x".join(str(r) for r in ranks) if ranks else "-"


def _sim(sim) -> str:
    return "-" if sim is None else f"{sim:.4f}"


def _pct_removed(before: int, after: int) -> str:
    """Share of ``before`` that is gone, one decimal; negative when the model grew."""
    return "n/a" if not before else f"{100 * (1 - after / before):.1f}%"


def _accuracy_line(before, after) -> str:
    if before is None and after is None:
        return "not evaluated (no data given)"
    if before is None or after is None:
        return f"{_acc(before)} -> {_acc(after)}"
    drop = 100 * (before - after)
    change = f"drop {drop:.2f} points" if drop >= 0 else f"gain {-drop:.2f} points"
    return f"{_acc(before)} -> {_acc(after)} ({change})"


def _acc(a) -> str:
    return "n/a" if a is None else f"{100 * a:.2f}%"


def _finetune_line(ft: dict) -> str:
    if ft.get("mode", "none") == "none":
        return "none"
    rounds, epochs = ft.get("rounds", 0), ft.get("epochs", 0)
    parts = [ft["mode"], f"{rounds} round{'s' * (rounds != 1)} x {epochs} epoch{'s' * (epochs != 1)}"]
    if ft.get("distill"):
        parts.append("distillation")
    parts.append(f"{ft.get('seconds', 0.0):.1f}s")
    return ", ".join(parts)


def _artifact_line(a: dict) -> str:
    note = f" ({a['note']})" if a.get("note") else ""
    return (f"{Path(a['path']).name}  {a['precision']}  {a['bytes']:,} bytes  verified on {a['samples']} samples: "
            f"max abs diff {a['max_abs_diff']:.3g}, top-1 agreement {100 * a['top1_agreement']:.2f}%{note}")


def _bench_line(run: dict) -> str:
    o, c, r = run["original"], run["compressed"], run["ratios"]

    def mb(x):
        return "n/a" if x is None else f"{x:.1f}"

    return (f"{run['runtime']} {run['precision']}: p50 {o['p50_ms']:.3f} -> {c['p50_ms']:.3f} ms "
            f"(speed-up {r['latency_p50']:.2f}x; MAC reduction {r.get('macs') or 0:.2f}x), peak RSS "
            f"{mb(o.get('peak_rss_mb'))} -> {mb(c.get('peak_rss_mb'))} MB, file {o['file_bytes']:,} -> {c['file_bytes']:,} bytes")


def _timings_line(timings: dict) -> str:
    total = sum(timings.values())
    return f"{total:.1f}s (" + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()) + ")"


# ----------------------------------------------------------------------------- Pareto plot

def pareto_png(report: dict) -> bytes:
    """Per factorized layer, the candidates' cost (fraction of the original) against similarity, as a PNG.

    One subplot per layer that has candidates, factorized layers first and the
    largest first when there are more than 24; one colour and marker per method;
    the threshold as a dashed line; the chosen point ringed in black. The bytes
    are the same for the same report (no timestamp or version in the metadata).
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import PercentFormatter

    _check(report)
    key = cost_key(report["objective"])
    unit = "params" if key == "params" else "MACs"
    threshold = float(report["threshold"])
    by_layer: dict[str, list[dict]] = {}
    for c in (report.get("search") or {}).get("candidates") or []:
        if c.get("similarity") is not None:
            by_layer.setdefault(c["layer"], []).append(c)
    layers = {l["name"]: l for l in report["layers"]}
    shown, caption = _pick_layers(by_layer, layers, key)
    styles = _styles({c["method"] for name in shown for c in by_layer[name]})
    two_fits = len({bool(c.get("data_aware")) for name in shown for c in by_layer[name]}) == 2

    with matplotlib.rc_context({"font.size": 8, "axes.titlesize": 8.5}):
        fig, axes = _grid(Figure, len(shown), caption=bool(caption))
        for ax, name in zip(axes, shown):
            layer = layers.get(name, {})
            cands = by_layer[name]
            base = layer.get(f"{key}_before") or max(c[key] for c in cands) or 1
            for method in sorted({c["method"] for c in cands}):
                color, marker = styles[method]
                pts = sorted((c[key] / base, c["similarity"], bool(c.get("data_aware"))) for c in cands if c["method"] == method)
                for fit in (False, True):
                    sel = [p for p in pts if p[2] == fit]
                    if sel:
                        ax.scatter([p[0] for p in sel], [p[1] for p in sel], s=18, marker=marker, linewidths=1.0,
                                   facecolors=color if (fit or not two_fits) else "none", edgecolors=color, alpha=0.85, zorder=3)
                front = _frontier(pts)
                ax.plot([p[0] for p in front], [p[1] for p in front], color=color, lw=0.9, alpha=0.6, drawstyle="steps-post", zorder=2)
            ax.axhline(threshold, color="#444444", ls="--", lw=0.9, zorder=1)
            ax.axvline(1.0, color="#bbbbbb", ls=":", lw=0.8, zorder=0)
            chosen = _chosen_point(layer, cands, key)
            if chosen:
                ax.scatter([chosen[0]], [chosen[1]], s=110, facecolors="none", edgecolors="black", linewidths=1.6, zorder=4)
            ax.set_xlim(0, 1.04 * max(1.0, max(c[key] / base for c in cands)))
            ys = [c["similarity"] for c in cands] + [threshold]
            ax.set_ylim(min(ys) - 0.02 * (1.0 - min(ys)) - 0.005, max(1.0, max(ys)) + 0.01)
            ax.xaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))
            ax.grid(True, lw=0.4, alpha=0.4)
            if layer:
                pick = f"{layer['method']} {_ranks(layer.get('ranks'))}" if layer.get("method") else "kept"
                sub = f"{layer.get('type', '?')}: {pick}"
            else:
                sub = "not in the layer table"
            ax.set_title(f"{_mathsafe(_short(name, 34))}\n{_mathsafe(sub)}")
        for ax in list(axes)[len(shown):]:
            ax.remove()
        if shown:
            methods = [Line2D([], [], ls="", marker=styles[m][1], color=styles[m][0], label=m) for m in styles]
            marks = [Line2D([], [], ls="--", color="#444444", label=f"threshold {threshold:g}"),
                     Line2D([], [], ls="", marker="o", ms=9, mfc="none", mec="black", mew=1.6, label="chosen")]
            if two_fits:
                marks.append(Line2D([], [], ls="", marker="o", color="#666666", label="data-aware fit"))
                marks.append(Line2D([], [], ls="", marker="o", mfc="none", mec="#666666", label="weight fit"))
            handles, ncols_legend = _legend_rows([methods, marks], lambda: Line2D([], [], ls="", label=""))
            width, height = fig.get_size_inches()
            fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1 - 0.04 / height), ncols=ncols_legend, frameon=False)
            fig.supxlabel(f"{unit} of the candidate as a share of the layer's original {unit}"
                          + (f"\n{caption}" if caption else ""), y=0.04 / height, va="bottom", fontsize=8)
            fig.supylabel("output similarity on calibration data", x=0.04 / width, ha="left", fontsize=8)
        buf = io.BytesIO()
        FigureCanvasAgg(fig).print_png(buf, metadata={"Software": None})  # Agg whatever the user's backend
    return buf.getvalue()


def _grid(Figure, n: int, caption: bool):
    """A figure with ``n`` axes, 4 to a row, laid out in fixed inches.

    Fixed margins (room for the legend, two-line titles, tick labels) instead
    of constrained layout: the grid is regular and this draws twice as fast.
    """
    if not n:
        fig = Figure(figsize=(6.5, 2.5), dpi=110)
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, "No search candidates in this report.", ha="center", va="center")
        return fig, []
    top, bottom, left, right, row_gap, col_gap = 1.0, 0.6 + 0.18 * caption, 0.75, 0.2, 0.8, 0.55
    ncols, nrows = min(4, n), math.ceil(n / 4)
    ax_w = max(2.75, (6.5 - left - right - (ncols - 1) * col_gap) / ncols)
    ax_h = 1.95
    width = left + ncols * ax_w + (ncols - 1) * col_gap + right
    height = top + nrows * ax_h + (nrows - 1) * row_gap + bottom
    fig = Figure(figsize=(width, height), dpi=110)
    axes = fig.subplots(nrows, ncols, squeeze=False, gridspec_kw={
        "left": left / width, "right": 1 - right / width, "top": 1 - top / height, "bottom": bottom / height,
        "wspace": col_gap / ax_w, "hspace": row_gap / ax_h}).ravel()
    return fig, list(axes)


def _pick_layers(by_layer: dict, layers: dict, key: str) -> tuple[list[str], str]:
    """Layers to plot in model order; at most 24, preferring factorized then costly layers."""
    order = [n for n in layers if n in by_layer] + [n for n in by_layer if n not in layers]
    if len(order) <= _MAX_SUBPLOTS:
        return order, ""
    rank = sorted(order, key=lambda n: (layers.get(n, {}).get("method") is None, -layers.get(n, {}).get(f"{key}_before", 0)))
    keep = set(rank[:_MAX_SUBPLOTS])
    caption = (f"Showing {_MAX_SUBPLOTS} of {len(order)} layers with candidates (factorized and largest first); "
               f"all candidates are in report.json.")
    return [n for n in order if n in keep], caption


def _styles(methods: set[str]) -> dict[str, tuple[str, str]]:
    """Colour and marker per method, in the order of docs/METHOD.md (conv methods, then dense)."""
    known = [m for m in _METHOD_STYLE if m in methods]
    other = sorted(methods - set(known))
    return {m: _METHOD_STYLE[m] for m in known} | {m: _FALLBACK_STYLE[i % len(_FALLBACK_STYLE)] for i, m in enumerate(other)}


def _legend_rows(rows: list[list], blank) -> tuple[list, int]:
    """Handles in the column-major order ``fig.legend`` fills, so each list becomes one row."""
    ncols = max(len(r) for r in rows)
    padded = [r + [blank() for _ in range(ncols - len(r))] for r in rows]
    return [padded[r][c] for c in range(ncols) for r in range(len(rows))], ncols


def _frontier(pts: list[tuple]) -> list[tuple]:
    """The best similarity reachable at or below each cost: the method's trade-off curve."""
    front, best = [], -math.inf
    for x, y, *_ in pts:
        if y > best:
            front.append((x, y))
            best = y
    return front


def _chosen_point(layer: dict, cands: list[dict], key: str) -> tuple[float, float] | None:
    if not layer.get("method") or not layer.get(f"{key}_before"):
        return None
    sim = layer.get("similarity")
    if sim is None:
        match = [c for c in cands if c["method"] == layer["method"] and list(c["ranks"]) == list(layer.get("ranks") or [])]
        if not match:
            return None
        sim = match[0]["similarity"]
    return layer[f"{key}_after"] / layer[f"{key}_before"], sim


def _mathsafe(text: str) -> str:
    """Matplotlib reads ``$...$`` as math; layer names are plain text."""
    return str(text).replace("$", r"\$")


# ----------------------------------------------------------------------------- HTML page

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0} th,td{padding:3px 10px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#f6f6f6} td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr.kept td{color:#777} tr.chosen td{background:#eef6ee} tfoot td{font-weight:600;border-top:2px solid #ccc}
.cards{display:flex;gap:1em;flex-wrap:wrap} .card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:12em}
.card b{display:block;font-size:1.3em} .muted{color:#777} code{background:#f3f3f3;padding:0 3px;border-radius:3px}
img{max-width:100%;height:auto;border:1px solid #eee}
"""


def render_html(report: dict) -> str:
    """One self-contained page (inline CSS, the Pareto plot as a data URI); every string is escaped."""
    _check(report)
    e = lambda x: html.escape(str(x))  # noqa: E731
    orig, comp = report["original"], report["compressed"]
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">',
        f"<title>lrfc report: {e(report.get('model', ''))}</title><style>{_CSS}</style></head><body>",
        f"<h1>lrfc report: <code>{e(report.get('model', '?'))}</code></h1>",
        f"<p>target <b>{e(report.get('target', '?'))}</b> &middot; objective <b>{e(report['objective'])}</b> &middot; "
        f"threshold <b>{e(report['threshold'])}</b> &middot; seed {e(report.get('seed', '?'))}<br>"
        f"<span class=muted>cost: {e(cost_source_line(report))}</span></p>",
        '<div class="cards">',
        _card("parameters", f"{orig['params']:,} &rarr; {comp['params']:,}", f"{_pct_removed(orig['params'], comp['params'])} removed"),
        _card("MACs", f"{orig['macs']:,} &rarr; {comp['macs']:,}", f"{_pct_removed(orig['macs'], comp['macs'])} removed"),
        _card("accuracy", f"{e(_acc(orig.get('accuracy')))} &rarr; {e(_acc(comp.get('accuracy')))}",
              e(_accuracy_line(orig.get("accuracy"), comp.get("accuracy")).partition("(")[2].rstrip(")"))),
        _card("fine-tuning", *map(e, _finetune_line(report.get("finetune") or {"mode": "none"}).partition(", ")[::2])),
        "</div>",
        "<h2>Layers</h2>", _layer_table(report, e),
    ]
    skipped = report.get("unfactorized") or []
    if skipped:
        parts += ["<h2>Not factorized</h2>", "<table><thead><tr><th>layer</th><th>type</th><th>reason</th></tr></thead><tbody>"]
        parts += [f"<tr><td>{e(u['name'])}</td><td>{e(u['type'])}</td><td>{e(u['reason'])}</td></tr>" for u in skipped]
        parts.append("</tbody></table>")
    parts += _deployment(report, e)
    parts += _solutions(report, e)
    parts.append("<h2>Candidates: cost against similarity</h2>")
    try:
        png = base64.b64encode(pareto_png(report)).decode("ascii")
        parts.append(f'<img alt="Pareto plot of candidate cost against similarity per layer" src="data:image/png;base64,{png}">')
    except ImportError as exc:  # matplotlib is a dependency; a broken install should not lose the rest
        parts.append(f"<p class=muted>plot unavailable: {e(exc)}</p>")
    if report.get("timings"):
        timings = report["timings"]
        total = sum(timings.values()) or 1.0
        peaks = report.get("peak_rss_mb") or {}
        parts += ["<h2>Time and peak memory per phase</h2>", '<table><thead><tr><th>phase</th><th class=n>seconds</th>'
                  '<th class=n>share</th><th class=n>peak RSS MB</th></tr></thead><tbody>']
        parts += [f"<tr><td>{e(k)}</td><td class=n>{v:.2f}</td><td class=n>{100 * v / total:.0f}%</td>"
                  f"<td class=n>{'' if peaks.get(k) is None else f'{peaks[k]:.0f}'}</td></tr>" for k, v in timings.items()]
        parts.append(f"</tbody><tfoot><tr><td>total</td><td class=n>{sum(timings.values()):.2f}</td><td></td></tr></tfoot></table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _deployment(report: dict, e) -> list[str]:
    """Artifacts with their verification numbers, and the original-vs-compressed benchmark."""
    parts = []
    artifacts = report.get("artifacts") or []
    if artifacts:
        parts += ["<h2>Artifacts</h2>", "<table><thead><tr><th>model</th><th>file</th><th>precision</th>"
                  "<th class=n>bytes</th><th class=n>max abs diff</th><th class=n>top-1 agreement</th><th>note</th></tr></thead><tbody>"]
        parts += [f"<tr><td>{e(a['model'])}</td><td><code>{e(Path(a['path']).name)}</code></td><td>{e(a['precision'])}</td>"
                  f"<td class=n>{a['bytes']:,}</td><td class=n>{a['max_abs_diff']:.3g}</td>"
                  f"<td class=n>{100 * a['top1_agreement']:.2f}%</td><td>{e(a.get('note', ''))}</td></tr>" for a in artifacts]
        parts.append("</tbody></table>")
    bench = report.get("benchmarks") or {}
    if bench:
        parts.append("<h2>Benchmark: original vs compressed</h2>")
        device = bench.get("device") or {}
        if device:
            parts.append(f"<p class=muted>{e(device.get('cpu', '?'))}, {e(device.get('cores', '?'))} cores, "
                         f"{e(device.get('transport', 'this machine'))}</p>")
        if bench.get("runs"):
            parts.append("<table><thead><tr><th>runtime</th><th>precision</th><th class=n>p50 ms</th><th class=n>p90 ms</th>"
                         "<th class=n>latency ratio</th><th class=n>MAC ratio</th><th class=n>peak RSS MB</th><th class=n>file bytes</th></tr></thead><tbody>")
            for run in bench["runs"]:
                o, c, r = run["original"], run["compressed"], run["ratios"]
                parts.append(f"<tr><td>{e(run['runtime'])}</td><td>{e(run['precision'])}</td>"
                             f"<td class=n>{o['p50_ms']:.3f} &rarr; {c['p50_ms']:.3f}</td><td class=n>{o['p90_ms']:.3f} &rarr; {c['p90_ms']:.3f}</td>"
                             f"<td class=n>{r['latency_p50']:.2f}x</td><td class=n>{(r.get('macs') or 0):.2f}x</td>"
                             f"<td class=n>{e(o.get('peak_rss_mb'))} &rarr; {e(c.get('peak_rss_mb'))}</td>"
                             f"<td class=n>{o['file_bytes']:,} &rarr; {c['file_bytes']:,}</td></tr>")
            parts.append("</tbody></table>")
        if bench.get("status") and bench["status"] != "measured":
            parts.append(f"<p>{e(bench['status'])}</p>")
        for runtime, why in (bench.get("skipped") or {}).items():
            parts.append(f"<p class=muted>{e(runtime)} not run: {e(why)}</p>")
    return parts


def _cost(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def _card(title: str, value: str, sub: str) -> str:
    return f'<div class="card"><span class=muted>{html.escape(title)}</span><b>{value}</b><span class=muted>{sub}</span></div>'


def _layer_table(report: dict, e) -> str:
    head = ("layer", "type", "method", "ranks", "similarity", "fit", "params", "MACs", "note")
    numeric = {"similarity", "params", "MACs"}
    rows = ["<table><thead><tr>" + "".join(f"<th{' class=n' if h in numeric else ''}>{h}</th>" for h in head) + "</tr></thead><tbody>"]
    for l in report["layers"]:
        fit = "-" if l.get("data_aware") is None else ("data" if l["data_aware"] else "weights")
        cells = (f"<td>{e(l['name'])}</td><td>{e(l['type'])}</td><td>{e(l.get('method') or 'kept')}</td>"
                 f"<td>{e(_ranks(l.get('ranks')))}</td><td class=n>{e(_sim(l.get('similarity')))}</td><td>{e(fit)}</td>"
                 f"<td class=n>{l['params_before']:,} &rarr; {l['params_after']:,}</td>"
                 f"<td class=n>{l['macs_before']:,} &rarr; {l['macs_after']:,}</td><td>{e(l.get('note', ''))}</td>")
        rows.append(f"<tr{' class=kept' if l.get('method') is None else ''}>{cells}</tr>")
    orig, comp = report["original"], report["compressed"]
    rows.append(f"</tbody><tfoot><tr><td>model total</td><td colspan=5></td><td class=n>{orig['params']:,} &rarr; {comp['params']:,}</td>"
                f"<td class=n>{orig['macs']:,} &rarr; {comp['macs']:,}</td><td></td></tr></tfoot></table>")
    return "\n".join(rows)


def _solutions(report: dict, e) -> list[str]:
    sols = (report.get("search") or {}).get("solutions") or []
    if not sols:
        return []
    final = {l["name"]: (l["method"], list(l.get("ranks") or [])) if l.get("method") else None for l in report["layers"]}
    out = ["<h2>Top solutions</h2>"]
    if len(sols) > _MAX_SOLUTIONS:
        out.append(f"<p class=muted>The first {_MAX_SOLUTIONS} of {len(sols)}; all are in report.json.</p>")
    unit = {"params": " (params)", "macs": " (MACs)"}[cost_key(report["objective"])] if report.get("cost_source") == "macs-stand-in" else ""
    out.append(f"<table><thead><tr><th>#</th><th class=n>cost{unit}</th><th class=n>min similarity</th><th class=n>mean similarity</th>"
               "<th>choices</th></tr></thead><tbody>")
    for i, s in enumerate(sols[:_MAX_SOLUTIONS], 1):
        choices = s.get("choices") or {}
        picked = {k: (v["method"], list(v["ranks"])) if v else None for k, v in choices.items()}
        chosen = bool(choices) and all(final.get(k) == v for k, v in picked.items())
        text = "; ".join(f"{k}: {v[0]} {_ranks(v[1])}" if v else f"{k}: kept" for k, v in picked.items())
        out.append(f"<tr{' class=chosen' if chosen else ''}><td>{i}{' (chosen)' if chosen else ''}</td><td class=n>{_cost(s['cost'])}</td>"
                   f"<td class=n>{_sim(s.get('min_similarity'))}</td><td class=n>{_sim(s.get('mean_similarity'))}</td><td>{e(text)}</td></tr>")
    out.append("</tbody></table>")
    return out


# ----------------------------------------------------------------------------- files

def write_report(report: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.html`` then ``report.json`` into ``out_dir``, each atomically.

    ``report.json`` goes last: its presence marks a finished build. Its keys
    keep the documented order (extra keys after, sorted); floats that are not
    finite become ``null`` so the file stays strict JSON.

    Returns:
        ``{"html": path, "json": path}``.
    """
    _check(report)
    out_dir = Path(out_dir)
    paths = {"html": out_dir / "report.html", "json": out_dir / "report.json"}
    write_text(paths["html"], render_html(report))
    ordered = {k: report[k] for k in _TOP_KEYS if k in report} | {k: report[k] for k in sorted(report) if k not in _TOP_KEYS}
    text = json.dumps(_finite(ordered), indent=2, default=_json_default, allow_nan=False)
    write_text(paths["json"], text + "\n")
    return paths


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _json_default(obj):
    """numpy scalars and arrays, paths: what a build is likely to leave in the dict."""
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist"):
        return _finite(obj.tolist())
    raise TypeError(f"report value of type {type(obj).__name__} is not JSON serializable: {obj!r}")
