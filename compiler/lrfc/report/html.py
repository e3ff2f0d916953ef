"""The HTML page of a build report: one self-contained file (inline CSS, the plot as a data URI)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from lrfc.benchmark.stage import baseline_of
from lrfc.frontend.catalogue import CUSTOM_NOTE
from lrfc.lower.io_spec import quantized_io_line
from lrfc.objectives import cost_key
from lrfc.provenance import provenance_line
from lrfc.report.classes import class_name, classes_line
from lrfc.report.fmt import (acc_text, accuracy_line, answers_line, baseline_line, budget_line,
                             check_report, cost_source_line, drop_error, fastest_line, finetune_line, gain_line,
                             input_line, missed_rung_line, output_line, pct_removed, ranks_text, report_contract,
                             sim_text, splits_line, test_split_line, threads_line, timed_again_line)
from lrfc.report.plot import pareto_png
from runtime_bench.delegation import delegation_line

_MAX_SOLUTIONS = 10


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
    check_report(report)
    e = lambda x: html.escape(str(x))  # noqa: E731
    orig, comp = report["original"], report["compressed"]
    gain, gap = gain_line(report), test_split_line(report)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">',
        f"<title>lrfc report: {e(report.get('model', ''))}</title><style>{_CSS}</style></head><body>",
        f"<h1>lrfc report: <code>{e(report.get('model', '?'))}</code></h1>",
        f"<p>target <b>{e(report.get('target', '?'))}</b> &middot; objective <b>{e(report['objective'])}</b> &middot; "
        f"threshold <b>{e(report['threshold'])}</b> &middot; seed {e(report.get('seed', '?'))}<br>"
        f"<span class=muted>cost: {e(cost_source_line(report))}</span>"
        + (f"<br><span class=muted>data: {e(splits_line(report['splits']))}</span>" if report.get("splits") else "")
        + (f"<br><span class=muted>input: {e(input_line(report['input']))}</span>" if report.get("input") else "")
        + (f"<br><span class=muted>output: {e(output_line(report['binary_output']))}</span>"
           if report.get("binary_output") else "")
        + (f"<br><span class=muted>made by: {e(provenance_line(report['provenance']))}</span>"
           if report.get("provenance") else "")
        + "</p>",
        '<div class="cards">',
        _card("parameters", f"{orig['params']:,} &rarr; {comp['params']:,}", f"{pct_removed(orig['params'], comp['params'])} removed"),
        _card("MACs", f"{orig['macs']:,} &rarr; {comp['macs']:,}", f"{pct_removed(orig['macs'], comp['macs'])} removed"
              + (" (not counting layers of the model's own classes)"
                 if any(u.get("reason") == CUSTOM_NOTE for u in report.get("unfactorized") or []) else "")),
        _card("accuracy", f"{e(acc_text(orig.get('accuracy')))} &rarr; {e(acc_text(comp.get('accuracy')))}",
              e(accuracy_line(orig.get("accuracy"), comp.get("accuracy"),
                              drop_error(report)).partition("(")[2].rstrip(")")))
        if report.get("labels") != "original" else  # no labels: the original's answers kept instead
        _card("agreement", e(acc_text(comp.get("agreement"))),
              e(answers_line(comp.get("agreement"), drop_error(report)).partition("(")[2].rstrip(")")
                + "; no labels: neither model's accuracy is known")),
        _card("fine-tuning", *map(e, finetune_line(report.get("finetune") or {"mode": "none"}).partition(", ")[::2])),
        *([_budget_card(report["accuracy_budget"], e, missed_rung_line(report))] if report.get("accuracy_budget")
          else []),
        "</div>",
        *([f"<p><b>{e(gain)}</b></p>"] if gain else []),
        *([f"<p>{e(gap)}</p>"] if gap else []),
        "<h2>Layers</h2>", _layer_table(report, e),
        *_classes(report, e),
    ]
    skipped = report.get("unfactorized") or []
    if skipped:
        parts += ["<h2>Not factorized</h2>", "<table><thead><tr><th>layer</th><th>type</th><th>reason</th></tr></thead><tbody>"]
        parts += [f"<tr><td>{e(u['name'])}</td><td>{e(u['type'])}</td><td>{e(u['reason'])}</td></tr>" for u in skipped]
        parts.append("</tbody></table>")
    parts += _deployment(report, e)
    parts += _whole_models(report, e)
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
                  '<th class=n>share</th><th class=n>peak RSS MiB</th></tr></thead><tbody>']
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
                  "<th class=n>bytes</th><th class=n>max abs diff</th><th class=n>top-1 agreement</th><th>sha256</th>"
                  "<th>note</th></tr></thead><tbody>"]
        for a in artifacts:
            if not a.get("passed", True):
                parts.append(f"<tr><td>{e(a.get('model', ''))}</td><td><code>{e(Path(a['path']).name)}</code></td>"
                             f"<td>{e(a['precision'])}</td><td colspan=5><b>not published</b>: {e(a.get('error', ''))}</td></tr>")
                continue
            diff = f"{a['max_abs_diff']:.3g}" + (f" (p{100 * a['tolerance']['quantile']:g} {a['quantile_abs_diff']:.3g})"
                                                 if a.get("quantile_abs_diff") is not None else "")
            parts.append(f"<tr><td>{e(a.get('model', ''))}</td><td><code>{e(Path(a['path']).name)}</code></td>"
                         f"<td>{e(a['precision'])}</td><td class=n>{a['bytes']:,}</td><td class=n>{diff}</td>"
                         f"<td class=n>{100 * a['top1_agreement']:.2f}%</td><td><code>{e((a.get('sha256') or '')[:16])}</code></td>"
                         f"<td>{e(a.get('note') or '')}</td></tr>")
        parts.append("</tbody></table>")
        contract = report_contract(report)
        quantized = [quantized_io_line(a, contract) for a in artifacts if a.get("passed", True)]
        parts += [f"<p class=muted>int8 I/O: {e(line)}</p>" for line in quantized if line]
        delegated = [delegation_line(a) for a in artifacts if a.get("passed", True)]
        parts += [f"<p class=muted>LiteRT: {e(line)}</p>" for line in delegated if line]
    bench = report.get("benchmarks") or {}
    if bench:
        parts.append("<h2>Benchmark: original vs compressed</h2>")
        device = bench.get("device") or {}
        if device:
            parts.append(f"<p class=muted>{e(device.get('cpu', '?'))}, {e(device.get('cores', '?'))} cores, "
                         f"{e(device.get('transport', 'this machine'))}</p>")
        if bench.get("runs"):
            parts.append("<table><thead><tr><th>runtime</th><th>precision</th><th class=n>p50 ms</th><th class=n>p90 ms</th>"
                         "<th class=n>latency ratio</th><th class=n>MAC ratio</th><th class=n>peak RSS MiB</th><th class=n>file bytes</th></tr></thead><tbody>")
            for run in bench["runs"]:
                o, c, r = run["original"], run["compressed"], run["ratios"]
                parts.append(f"<tr><td>{e(run['runtime'])}</td><td>{e(run['precision'])}</td>"
                             f"<td class=n>{o['p50_ms']:.3f} &rarr; {c['p50_ms']:.3f}</td><td class=n>{o['p90_ms']:.3f} &rarr; {c['p90_ms']:.3f}</td>"
                             f"<td class=n>{r['latency_p50']:.2f}x</td><td class=n>{(r.get('macs') or 0):.2f}x</td>"
                             f"<td class=n>{_mib(o.get('peak_rss_mb'))} &rarr; {_mib(c.get('peak_rss_mb'))}</td>"
                             f"<td class=n>{o['file_bytes']:,} &rarr; {c['file_bytes']:,}</td></tr>")
            parts.append("</tbody></table>")
            parts += [f"<p><b>{e(run['runtime'])}: the original's {e(run['precision'])} file failed verification</b> "
                      "(timed, not published)</p>" for run in bench["runs"] if run["original"].get("verified") is False]
            if not any(layer.get("method") is not None for layer in report["layers"]):
                parts.append("<p><b>Nothing was factorized</b>: the same model timed twice, so these ratios are the "
                             "timing's noise</p>")
            parts += [f"<p><b>Timed again</b>: {e(line)}</p>" for line in map(timed_again_line, bench["runs"]) if line]
            parts += _four_way(bench["runs"], e)
        if bench.get("status") and bench["status"] != "measured":
            parts.append(f"<p>{e(bench['status'])}</p>")
        for runtime, why in (bench.get("skipped") or {}).items():
            parts.append(f"<p class=muted>{e(runtime)} not run: {e(why)}</p>")
    return parts


def _whole_models(report: dict, e) -> list[str]:
    """The rungs timed as whole models beside the original (the measure stage), with what the search made of them."""
    whole, sols = report.get("whole_model"), report.get("solutions") or []
    if not whole or not sols:
        return []
    original = (whole.get("original") or {}).get("measured_ms")
    err = whole.get("cost_model_error") or {}
    out = ["<h2>Whole models timed on the target</h2>",
           f"<p class=muted>{e(whole['status'])}" + (f" on {e(whole['runtime'])} ({e(whole['precision'])}); original "
                                                     f"{original:.3f} ms" if original else "") +
           (f"; per-layer cost model off by {100 * err['per_layer_sum']:.0f}% "
            f"({100 * err['with_remainder']:.0f}% with the original's unpriced remainder, "
            f"{100 * err.get('scaled', float('nan')):.0f}% scaled by its measured/summed ratio)" if err else "") + "</p>"]
    rows = [[s["label"], f"{s['predicted_ms']:.3f}", _num(s["measured_ms"], "{:.3f}"),
             "yes" if s["rung"] is not None else "no", _num(s.get("proxy_drop"), "{:.2f}"),
             _num(s.get("drop"), "{:.2f}")] for s in sols]
    lost = "answers changed" if report.get("labels") == "original" else "drop"  # no labels: the original's answers
    return out + _table(["rung", "#per-layer sum ms", "#measured ms", "on the ladder", f"#proxy {lost}",
                         f"#{lost} after fine-tuning"], rows, e)


def _four_way(runs, e) -> list[str]:
    """Original and lrfc, at the target's precision and at the other one, side by side per runtime (the baseline)."""
    rows, others = [], set()
    for run in runs:
        other = baseline_of(run)
        if not other:
            continue
        precision, pair = other
        others.add(precision)
        labelled = {f"original {run['precision']}": run["original"], f"original {precision}": pair["original"],
                    f"lrfc {run['precision']}": run["compressed"], f"lrfc {precision}": pair["compressed"]}
        for label in sorted(labelled, key=lambda k: (k.startswith("lrfc"), k.endswith("int8"))):
            row = labelled[label]
            acc = None if row.get("accuracy") is None else 100 * row["accuracy"]
            shown = label + (" (failed verification, not published)" if row.get("verified") is False else "")
            fastest_at = (f"{row['best_p50_ms']:.3f} ({row['best_threads']})" if "best_threads" in row else "-")
            rows.append([run["runtime"], shown, f"{row['p50_ms']:.3f}", fastest_at, _num(acc, "{:.2f}%"),
                         f"{row['file_bytes']:,}", _mib(row.get("peak_rss_mb"))])
    if not rows:
        return []
    scored = any(r[4] != "-" for r in rows)  # no file has a top-1 without labels (their answers are the original's)
    if not scored:
        rows = [r[:4] + r[5:] for r in rows]
    swept = any(r[3] != "-" for r in rows)
    if not swept:
        rows = [r[:3] + r[4:] for r in rows]
    warnings = [f"<p><b>{e(w)}</b></p>" for w in (baseline_line(r) for r in runs) if w]
    fastest = [f"<p>Fastest on {e(line)}</p>" for line in (fastest_line(r) for r in runs) if line]
    fastest += [f"<p>Threads on {e(line)}</p>" for line in (threads_line(r) for r in runs) if line]
    heading = ("Against the int8 baseline (post-training quantization of the original)" if others == {"int8"}
               else "Against fp32 (the original and lrfc's model unquantized)" if others == {"fp32"}
               else "At both precisions")
    return [f"<h3>{heading}</h3>",
            *_table(["runtime", "model", "#p50 ms"] + (["#p50 ms at its fastest thread count (threads)"] if swept else [])
                    + (["#top-1"] if scored else []) + ["#file bytes", "#peak RSS MiB"], rows, e), *warnings,
            *fastest]


def _classes(report: dict, e) -> list[str]:
    """Each class's recall (answers kept, without labels) before and after, on the validation split."""
    recall = report.get("class_recall")
    if not recall:
        return []
    what = "answers kept" if report.get("labels") == "original" else "recall"
    line = classes_line(recall, report.get("labels"))
    rows = [[class_name(r), f"{r['samples']:,}", f"{100 * r['original']:.2f}%", f"{100 * r['compressed']:.2f}%",
             f"{r['drop']:.2f} ± {r['drop_error']:.2f}", "flagged" if r["flagged"] else ""]
            for r in sorted(recall["classes"], key=lambda r: -r["drop"])]
    return [f"<h2>Classes ({what} on the validation split, largest loss first)</h2>",
            *([f"<p>{e(line)}</p>"] if line else []),
            *_table(["class", "#samples", f"#original {what}", f"#lrfc {what}", "#loss (points)", "note"], rows, e)]


def _table(head: list[str], rows: list[list[str]], e) -> list[str]:
    """An HTML table; a heading that starts with ``#`` marks a numeric (right-aligned) column."""
    numeric = [h.startswith("#") for h in head]

    def cell(tag: str, text: str, n: bool) -> str:
        return f"<{tag}{' class=n' if n else ''}>{e(text)}</{tag}>"

    out = ["<table><thead><tr>" + "".join(cell("th", h.lstrip("#"), n) for h, n in zip(head, numeric))
           + "</tr></thead><tbody>"]
    out += ["<tr>" + "".join(cell("td", c, n) for c, n in zip(r, numeric)) + "</tr>" for r in rows]
    return out + ["</tbody></table>"]


def _num(x, fmt: str) -> str:
    return "-" if x is None else fmt.format(x)


def _mib(x) -> str:
    return "n/a" if x is None else f"{x:.1f}"


def _cost(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def _card(title: str, value: str, sub: str) -> str:
    return f'<div class="card"><span class=muted>{html.escape(title)}</span><b>{value}</b><span class=muted>{sub}</span></div>'


def _budget_card(budget: dict, e, missed: str | None = None) -> str:
    """Met only when the Keras model and every file of a non-fp32 target met it; the line without its verdict word,
    then the least compressed rung past the published one that missed (``fmt.missed_rung_line``), if one did."""
    met = budget["met"] and all(d["met"] for d in budget.get("deliverables") or [])
    sub = budget_line(budget, verdict=False) + (f"; the next rung: {missed}" if missed else "")
    return _card("accuracy budget", "met" if met else "missed", e(sub))


def _layer_table(report: dict, e) -> str:
    head = ("layer", "type", "method", "ranks", "similarity", "fit", "params", "MACs", "note")
    numeric = {"similarity", "params", "MACs"}
    rows = ["<table><thead><tr>" + "".join(f"<th{' class=n' if h in numeric else ''}>{h}</th>" for h in head) + "</tr></thead><tbody>"]
    for l in report["layers"]:
        fit = "-" if l.get("data_aware") is None else ("data" if l["data_aware"] else "weights")
        cells = (f"<td>{e(l['name'])}</td><td>{e(l['type'])}</td><td>{e(l.get('method') or 'kept')}</td>"
                 f"<td>{e(ranks_text(l.get('ranks')))}</td><td class=n>{e(sim_text(l.get('similarity')))}</td><td>{e(fit)}</td>"
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
        text = "; ".join(f"{k}: {v[0]} {ranks_text(v[1])}" if v else f"{k}: kept" for k, v in picked.items())
        out.append(f"<tr{' class=chosen' if chosen else ''}><td>{i}{' (chosen)' if chosen else ''}</td><td class=n>{_cost(s['cost'])}</td>"
                   f"<td class=n>{sim_text(s.get('min_similarity'))}</td><td class=n>{sim_text(s.get('mean_similarity'))}</td><td>{e(text)}</td></tr>")
    out.append("</tbody></table>")
    return out


# ----------------------------------------------------------------------------- files


