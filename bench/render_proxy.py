"""The budget search's proxy against the whole validation split (bench/results/proxy.json, by bench.proxy)."""

from __future__ import annotations

from bench.render_common import machine_line


def _rung(r: dict, i: int) -> str:
    """Rung ``i`` of row ``r`` as 'i (MACs removed, drop on the whole split)'; past the ladder: the original."""
    if i >= len(r["rungs"]):
        return "none (the original)"
    removed = 100.0 * (1 - r["rungs"][i]["macs"] / r["macs_before"])
    return f"{i} ({removed:.1f} %, {r['drop_whole'][i]:.2f})"


def proxy(record: dict) -> list[str]:
    runs = record.get("runs", {})
    lines = ["## The budget search's proxy: how many validation samples a look scores", "",
             f"Machine: {machine_line(record)}. `python -m bench.proxy` builds every rung of a build's ladder as the "
             "budget search builds a look (reconstructed, BN re-estimated, no fine-tuning), scores it on the whole "
             "validation split, and replays, for goals of 0.5 to 10 points in steps of 0.25, each rung's decision "
             "(drop <= goal) and a plain bisection over the ladder: on the first 1,000 samples (the proxy before "
             "2026-12-06), sequentially (the proxy now: 1,000 samples at a time while the drop is within two "
             "standard errors of the goal, `train.contract.proxy_side`), and on the whole split (the reference). "
             "*Off*: decisions or picks that differ from the whole split's.", "",
             "| model | rungs | validation samples | decisions off: first 1,000 | sequential | bisection picks off: "
             "first 1,000 | sequential | samples per bisection: first 1,000 | sequential | whole split |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in runs.items():
        picks = r["picks"]
        off_first = sum(p["first"] != p["whole"] for p in picks)
        off_seq = sum(p["sequential"] != p["whole"] for p in picks)
        mean = lambda key: sum(p[key] for p in picks) / len(picks)  # noqa: E731
        lines.append(f"| {name} | {len(r['rungs'])} | {r['validation_samples']:,} | {r['off_first']} of "
                     f"{r['decisions']:,} | {r['off_sequential']} | {off_first} of {len(picks)} | {off_seq} | "
                     f"{mean('samples_first'):,.0f} | {mean('samples_sequential'):,.0f} | {mean('samples_whole'):,.0f} |")
    for name, r in runs.items():
        wrong = [p for p in r["picks"] if p["first"] != p["whole"] or p["sequential"] != p["whole"]]
        if not wrong:
            continue
        lines += ["", f"{name}: the goals where a pick differs; each rung as its index (MACs removed, drop on the "
                  "whole split in points):", "", "| goal | whole split | first 1,000 | sequential |", "|---:|---|---|---|"]
        for p in wrong:
            lines.append(f"| {p['goal']:.2f} | {_rung(r, p['whole'])} | {_rung(r, p['first'])} | "
                         f"{_rung(r, p['sequential'])} |")
    lines.append("")
    lines += [f"- {name}: `{r['command']}` ({r['date']}, {r['wall_s'] / 60:.1f} min); the ladder of `{r['build']}`, "
              "built up to its measure stage" for name, r in runs.items()]
    return lines + [""]
