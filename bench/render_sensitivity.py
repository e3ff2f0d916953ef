"""The select stage's sampled end-to-end effects (bench/results/sensitivity.json, written by bench.sensitivity)."""

from __future__ import annotations

from bench.render_common import as_run, machine_line


def sensitivity(record: dict) -> list[str]:
    rows = record.get("rows", {})
    lines = ["## Sampled end-to-end effects in the select stage (issues 13 and 15)", "",
             f"Machine: {machine_line(record)}. Each model's build runs through the select stage with every front "
             "candidate's KL measured and timed (`python -m bench.sensitivity`, a fresh cache); the sampled walk "
             "(`search.sensitivity.along_front`: a front's ends, then an interval's middle while its ends differ by "
             "more than SPREAD) is replayed over those numbers at each SPREAD. *Measured* is how many candidates the "
             "walk measures and the seconds they took against all of them; *log error* compares each interpolated "
             "effect above 1e-4 nats with its measured one (|ln ratio|: 0.69 is a factor 2); *effect ratio* takes "
             "every rung of the sampled ladder and divides its true total effect (its choices' measured KL, "
             "summed) by the least any fully measured rung reaches at no greater cost, both floored at 1e-4 nats: "
             "1.0 is the full "
             "allocator's rung, higher is worse; *deep* rungs remove at least 70 % of the target layers' MACs.", "",
             "| model | layers | front candidates (effect > 1e-4) | probes | SPREAD | measured | seconds (all) | log error median / p90 "
             "| within 2x | effect ratio median / worst | deep median / worst (rungs) | command (date) |",
             "|---|---:|---:|---:|---:|---:|---:|---|---:|---|---|---|"]
    for name, r in rows.items():
        for spread, s in r["spreads"].items():
            e, q = s["interpolated_log_error"], s["effect_ratio"]
            default = " (default)" if float(spread) == float(r["default_spread"]) else ""
            lines.append(
                f"| {name} | {r['layers']} | {r['front_candidates']} ({r.get('above_negligible', '?')}) | "
                f"{r['probe_samples']} | {spread}{default} | "
                f"{s['measured']} ({s['measured_pct']:.0f} %) | {s['seconds_sampled']:.0f} ({r['seconds_all']:.0f}) | "
                f"{e['median'] if e['median'] is not None else '-'} / {e['p90'] if e['p90'] is not None else '-'} | "
                f"{e['within_2x_pct']:.0f} % of {e['n']} | {q['median']} / {q['worst']} | "
                f"{q['deep_median'] if q['deep_median'] is not None else '-'} / "
                f"{q['deep_worst'] if q['deep_worst'] is not None else '-'} ({q['deep_rungs']}) | "
                f"`{r['command']}` ({r['measured_at']}) |")
    built = {name: r["builds"] for name, r in rows.items() if r.get("builds")}
    if built:
        lines += ["", "What the budget search publishes either way (`--builds POINTS`: the real `--finetune none` build, "
                  "fresh caches, the walk sampled and every front candidate measured):", "",
                  "| model | --max-acc-drop | walk | measured / front | select s | MACs removed | params removed | "
                  "drop (points) | command |", "|---|---:|---|---:|---:|---:|---:|---:|---|"]
        for name, b in built.items():
            for mode in ("full", "sampled"):
                m = b[mode]
                lines.append(f"| {name} | {b['budget']:g} | {mode} | {m['measured']} / {m['front_candidates']} | "
                             f"{m['select_s']:.0f} | {m['macs_removed_pct']:.1f} % | {m['params_removed_pct']:.1f} % | "
                             f"{m['drop_points']:.2f} | `{as_run(m['command'], rows[name]['measured_at'])}` |")
    return lines + [""]
