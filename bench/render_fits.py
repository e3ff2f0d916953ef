"""The score stage's speed-ups: one fit against both, walks in threads (bench/results/fits.json, by bench.fits)."""

from __future__ import annotations

from bench.render_common import machine_line


def fits(record: dict) -> list[str]:
    rows = record.get("rows", {})
    lines = ["## The score stage: one fit per rank, walks in threads", "",
             f"Machine: {machine_line(record)}. Each model's `--finetune none` build runs three times, one after "
             "the other, fresh caches (`python -m bench.fits`): `auto` fits every candidate rank to the weights "
             "alone and to the layer's outputs on the calibration data and keeps the better similarity (the "
             "default before 2026-12-01); `on` (the default now) fits only the second; both run one walk per core "
             "at once (*threads*); `on-1-thread` is `on` one walk at a time (how every build scored before). "
             "*Weight-only wins* counts the candidates of the `auto` build whose weight-only fit scored higher; "
             "*same plan* compares each published plan with `auto`'s.", "",
             "| model | --max-acc-drop | run | threads | score s | build s | candidates | weight-only wins | "
             "same plan | MACs removed | params removed | drop (points) | command (date) |",
             "|---|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|"]
    for name, r in rows.items():
        for run, m in r["runs"].items():
            wins = str(m["weight_only"]) if m["fit"] == "auto" else "-"
            lines.append(f"| {name} | {r['budget']:g} | {run} | {m['score_threads']} | {m['score_s']:.0f} | "
                         f"{m['wall_s']:.0f} | {m['candidates']} | {wins} | {'yes' if m['same_plan'] else 'no'} | "
                         f"{m['macs_removed_pct']:.2f} % | {m['params_removed_pct']:.2f} % | {m['drop_points']:.2f} | "
                         f"`{m['command']}` ({r['measured_at']}) |")
    if rows:
        def total(run):
            return sum(r["runs"][run]["score_s"] for r in rows.values())

        wins = sum(r["runs"]["auto"]["weight_only"] for r in rows.values())
        cands = sum(r["runs"]["auto"]["candidates"] for r in rows.values())
        changed = sum(not r["runs"]["on"]["same_plan"] for r in rows.values())
        lines += ["", f"Over these models the weight-only fit won {wins} of {cands} candidates, and {changed} of "
                  f"{len(rows)} published plans changed without it. Score stage, summed: `auto` {total('auto'):.0f} s, "
                  f"`on` {total('on'):.0f} s ({total('auto') / max(total('on'), 1e-9):.2f}x less), `on` one walk at a "
                  f"time {total('on-1-thread'):.0f} s (threads: {total('on-1-thread') / max(total('on'), 1e-9):.2f}x)."]
    return lines + [""]
