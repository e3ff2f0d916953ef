"""The terminal summary of a build report (what `lrfc build` prints)."""

from __future__ import annotations

from pathlib import Path

from lrfc.benchmark.stage import baseline_of
from lrfc.lower.io_spec import quantized_io_line
from lrfc.frontend.catalogue import CUSTOM_NOTE
from lrfc.report.classes import classes_line
from lrfc.lower.verify import percentile_sample
from lrfc.report.fmt import (accuracy_line, answers_line, baseline_line, budget_line, check_report,
                             cost_source_line, drop_error, fastest_line, finetune_line, gain_line, input_line,
                             left_open, missed_rung_line, output_line, pct_removed, ranks_text, report_contract, short,
                             sim_text, splits_line, test_split_line, threads_line, timed_again_line)
from runtime_bench.delegation import delegation_line


def summary_table(report: dict) -> str:
    """The terminal summary: one row per layer, then totals, accuracy, cost source and timings."""
    check_report(report)
    head = ("layer", "type", "method", "ranks", "similarity", "params before", "after", "MACs before", "after")
    rows = [(short(l["name"]), str(l["type"]), _method(l), ranks_text(l.get("ranks")), sim_text(l.get("similarity")),
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
    return "\n".join(out + _footer(report))


def _footer(report: dict) -> list[str]:
    """The lines under the layer table: what was removed and measured, notes, and the accuracy budget last."""
    orig, comp = report["original"], report["compressed"]
    uncounted = [u["name"] for u in report.get("unfactorized") or [] if u.get("reason") == CUSTOM_NOTE]
    out = [f"removed     {pct_removed(orig['params'], comp['params'])} of params, "
           f"{pct_removed(orig['macs'], comp['macs'])} of MACs"
           + (f" (of the MACs lrfc counts, not those of {_names(uncounted)}: "
              f"{'a layer' if len(uncounted) == 1 else 'layers'} of the model's own class, whose work it cannot see)"
              if uncounted else ""),
           f"accuracy    {accuracy_line(orig.get('accuracy'), comp.get('accuracy'), drop_error(report))} on validation"]
    if report.get("labels") == "original":  # no labels given: agreement with the original's answers instead
        out[-1] = (f"agreement   {answers_line(comp.get('agreement'), drop_error(report))} on validation (no labels: "
                   "neither model's accuracy is known, and its drop is at most the share changed)")
        if comp.get("test_agreement") is not None:
            out.append(f"test        {answers_line(comp['test_agreement'], comp.get('test_drop_error'))} on the test "
                       "split")
    if orig.get("test_accuracy") is not None:
        test = accuracy_line(orig["test_accuracy"], comp.get("test_accuracy"), comp.get("test_drop_error"))
        out.append(f"test        {test} on the test split")
    gain, gap = gain_line(report), test_split_line(report)
    if gap:
        out.append(f"test split  {gap}")
    if gain:
        out.append(f"gain        {gain}")
    search = report.get("budget_search") or {}
    if search.get("rounds"):
        secured = [k for k, r in enumerate(search["rounds"], 1) if r.get("secured")]
        judged = sum(1 for r in search["rounds"] if r.get("files"))  # an int8/fp16 target's rounds (lower.judge)
        untried = left_open(search)
        out.append(f"search      {len(search['rounds'])} round{'s' * (len(search['rounds']) != 1)} over "
                   f"{search['levels']} levels ({search['allocation']} allocation): published {search['published']}"
                   f"{'; stopped: ' + search['stopped'] if search.get('stopped') else ''}"
                   + (f", with {untried}" if untried else "")
                   + "".join(f"; round {k}, the last after misses, took a rung whose start already met the budget"
                             for k in secured)
                   + (f"; judged on its {search['judged']}: {judged} round{'s' * (judged != 1)} that met the budget "
                      f"on the Keras model lowered and scored ({search.get('judge_seconds', 0):.0f} s)" if judged else ""))
    missed = missed_rung_line(report)
    if missed:
        out.append(f"next rung   {missed}")
    if report.get("splits"):
        out.append(f"data        {splits_line(report['splits'])}"
                   + ("; the training samples had no labels: the original's answers stood in"
                      if report.get("labels") == "held-out" else ""))
    if report.get("input"):
        out.append(f"input       {input_line(report['input'])}")
    if report.get("binary_output"):
        out.append(f"output      {output_line(report['binary_output'])}")
    out.append(f"cost        {cost_source_line(report)}")
    if report.get("finetune"):
        out.append(f"fine-tune   {finetune_line(report['finetune'])}")
    contract = report_contract(report)
    for a in report.get("artifacts") or []:
        if a.get("model") == "compressed" or not a.get("passed", True):
            out.append(f"artifact    {_artifact_line(a)}")
            quantized = quantized_io_line(a, contract) if a.get("passed", True) else None
            if quantized:
                out.append(f"int8 I/O    {quantized}")
            delegated = delegation_line(a) if a.get("passed", True) else None
            if delegated:
                out.append(f"delegate    {delegated}")
    bench = report.get("benchmarks") or {}
    same = not any(l.get("method") is not None for l in report["layers"])  # nothing factorized: one model twice
    for run in bench.get("runs") or []:
        out.append(f"latency     {_bench_line(run)}"
                   + (" (nothing was factorized: the same model timed twice, so this ratio is the timing's noise)"
                      if same else ""))
        again = timed_again_line(run)
        if again:
            out.append(f"check       {again}")
        other = baseline_of(run)
        if other:
            out.append(f"{other[0]:<12}{_baseline_pair_line(run, *other)}")
            warning = baseline_line(run)
            if warning:
                out.append(f"baseline    {warning}")
            out.append(f"fastest     {fastest_line(run)}")
        swept = threads_line(run)
        if swept:
            out.append(f"threads     {swept}")
    if bench.get("status") and bench["status"] != "measured":
        out.append(f"latency     {bench['status']}")
    if report.get("timings"):
        out.append(f"time        {_timings_line(report['timings'])}")
    peaks = {k: v for k, v in (report.get("peak_rss_mb") or {}).items() if v is not None}
    if peaks:
        top = max(peaks, key=peaks.get)
        plan = report.get("memory") or {}
        budget = f" (budget {plan['budget']:.0f} MiB, {plan['budget_source']})" if plan.get("budget") else ""
        out.append(f"memory      peak {peaks[top]:.0f} MiB resident, in {top}{budget}")
    if any(l.get("data_aware") for l in report["layers"]):
        out.append("            * fit to the calibration data (data-aware)")
    notes: dict[str, list[str]] = {}
    for l in report["layers"]:
        if l.get("note"):
            notes.setdefault(l["note"], []).append(l["name"])
    out += [f"note        {_names(names)}: {note}" for note, names in notes.items()]
    for f in (report.get("search") or {}).get("failed_walks") or []:
        out.append(f"dropped     {f['layer']} {f['method']}: scoring raised {f['error']}")
    skipped: dict[tuple[str, str], list[str]] = {}
    for u in report.get("unfactorized") or []:
        skipped.setdefault((u["type"], u["reason"]), []).append(u["name"])
    groups = list(skipped.items())
    out += [f"skipped     {names[0]} ({kind}): {reason}" if len(names) == 1 else
            f"skipped     {_names(names, kind)}: {reason}" for (kind, reason), names in groups[:5]]
    if len(groups) > 5:
        rest = sum(len(names) for _, names in groups[5:])
        out.append(f"skipped     ... and {rest} more (see report.html)")
    recall = classes_line(report.get("class_recall"), report.get("labels"))
    if recall:
        out.append(f"classes     {recall}")
    if report.get("accuracy_budget"):
        out.append(f"budget      {budget_line(report['accuracy_budget'])}")
    return out


def _names(names: list[str], kind: str = "", show: int = 3) -> str:
    """One layer's name, or a count and the first few: a note shared by 17 layers is one line, not 17."""
    if len(names) == 1:
        return names[0]
    more = f", ... {len(names) - show} more" if len(names) > show else ""
    return f"{len(names)} {kind + ' ' if kind else ''}layers ({', '.join(names[:show])}{more})"


def _title(report: dict) -> str:
    return (f"lrfc build: {report.get('model', '?')} -> {report.get('target', '?')}  "
            f"(objective {report['objective']}, threshold {report['threshold']}, seed {report.get('seed', '?')})")


def _method(layer: dict) -> str:
    if layer.get("method") is None:
        return "kept"
    return layer["method"] + ("*" if layer.get("data_aware") else "")


def _artifact_line(a: dict) -> str:
    if not a.get("passed", True):
        return f"{Path(a['path']).name}  {a['precision']}  NOT PUBLISHED: {a.get('error') or 'failed verification'}"
    note = f" ({a['note']})" if a.get("note") else ""
    quantile = (f" ({a['quantile_abs_diff']:.3g} at the {percentile_sample(a['tolerance']['quantile'])})"
                if a.get("quantile_abs_diff") is not None else "")
    return (f"{Path(a['path']).name}  {a['precision']}  {a['bytes']:,} bytes  verified on {a['samples']} samples: "
            f"max abs diff {a['max_abs_diff']:.3g}{quantile}, top-1 agreement {100 * a['top1_agreement']:.2f}%{note}")


def _bench_line(run: dict) -> str:
    o, c, r = run["original"], run["compressed"], run["ratios"]

    def mb(x):
        return "n/a" if x is None else f"{x:.1f}"

    unverified = " (the original's file failed verification: timed, not published)" if o.get("verified") is False else ""
    return (f"{run['runtime']} {run['precision']}: p50 {o['p50_ms']:.3f} -> {c['p50_ms']:.3f} ms "
            f"(speed-up {r['latency_p50']:.2f}x; MAC reduction {r.get('macs') or 0:.2f}x), peak RSS "
            f"{mb(o.get('peak_rss_mb'))} -> {mb(c.get('peak_rss_mb'))} MiB, file {o['file_bytes']:,} -> "
            f"{c['file_bytes']:,} bytes{unverified}")


def _baseline_pair_line(run: dict, precision: str, pair: dict) -> str:
    """Both models at the other precision (int8 for a float target: the user's alternative), and lrfc at the
    target's precision against the original at that one."""
    o, c, r = pair["original"], pair["compressed"], pair["ratios"]

    def acc(row):
        top1 = "" if row.get("accuracy") is None else f", top-1 {100 * row['accuracy']:.2f}%"
        return top1 + (" (failed verification: timed, not published)" if row.get("verified") is False else "")

    return (f"{run['runtime']}: original {precision} p50 {o['p50_ms']:.3f} ms{acc(o)}; lrfc {precision} "
            f"{c['p50_ms']:.3f} ms{acc(c)} (speed-up {r['latency_p50']:.2f}x); lrfc {run['precision']} vs original "
            f"{precision}: {run['ratios'][f'vs_original_{precision}']:.2f}x")


def _timings_line(timings: dict) -> str:
    total = sum(timings.values())
    return f"{total:.1f}s (" + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()) + ")"
