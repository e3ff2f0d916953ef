"""Real speed on the target (issue 14): the budget build under measured latency against the flops build and int8.

Every row is one real ``lrfc build --max-acc-drop 1.0 --target host`` (the
CLI, in a child process, through ``bench.quality.run_build``) on a ``make
baselines`` Fashion-MNIST model, with its final benchmark on (``--bench-runs
100``) and the int8 baseline: the build's own runtime_bench run times the
original and lrfc's model at fp32 and both at int8 side by side, per runtime
(LiteRT/XNNPACK and ONNX Runtime CPU), each file keeping its lower median of
two sets of fresh workers. Rows:

* ``<model>/latency``  ``--objective latency``: per-layer prices measured, then
                       the ladder's rungs timed as whole models (``cost.measure``);
* ``<model>/flops``    ``--objective flops``: the same budget, MACs as the cost;
* ``<model>/int8``     ``--target host-int8``: the whole search priced, measured
                       and published at int8 (the original's int8 is the
                       benchmark's "original"), against which lrfc int8 is judged;
* ``<model>/int8-qat`` the same with ``--qat`` (quantization-aware fine-tuning).

Each report also gives the per-layer cost model's error against the whole
models (``whole_model.cost_model_error``, latency rows). Results:
``bench/results/speed.json``; ``python -m bench.render`` writes them into
docs/BENCHMARKS.md.

    python -m bench.speed [--models vgg,resnet] [--rows latency,flops,int8,int8-qat] [--time-budget MINUTES]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench.decompose_time import machine
from bench.quality import MODELS, headline, run_build
from bench.results_file import update_json

RESULTS = Path("bench/results/speed.json")
WORK = Path("bench/work/speed")
BASE = {"--data": "fashion-mnist", "--target": "host", "--max-acc-drop": "1.0", "--bench-runs": "100"}
ROWS = {"latency": {"--objective": "latency"}, "flops": {"--objective": "flops"},
        "int8": {"--target": "host-int8", "--objective": "latency"},
        "int8-qat": {"--target": "host-int8", "--objective": "latency", "--qat": None}}


def speed_headline(report: dict) -> dict:
    """``bench.quality.headline`` plus the four-way latency table per runtime and the cost model's error."""
    runs = {}
    for run in report["benchmarks"].get("runs", []):
        precision = run["precision"]  # the target's: fp32 for host, int8 for host-int8
        rows = {f"original {precision}": run["original"], f"lrfc {precision}": run["compressed"]}
        if run.get("int8"):
            rows.update({"original int8": run["int8"]["original"], "lrfc int8": run["int8"]["compressed"]})
        runs[run["runtime"]] = {name: {"p50_ms": r["p50_ms"], "p90_ms": r["p90_ms"], "accuracy": r.get("accuracy"),
                                       "file_bytes": r["file_bytes"], "peak_rss_mb": r.get("peak_rss_mb")}
                                for name, r in rows.items()}
    whole = report.get("whole_model") or {}
    return {**headline(report), "budget": report["accuracy_budget"],
            "test_before": report["original"].get("test_accuracy"), "test_after": report["compressed"].get("test_accuracy"),
            "latency": runs, "cost_model_error": whole.get("cost_model_error"),
            "solutions": [{k: s[k] for k in ("label", "predicted_ms", "measured_ms", "rung", "drop")}
                          for s in report.get("solutions") or []],
            "whole_original_ms": (whole.get("original") or {}).get("measured_ms"),
            "published": report["budget_search"].get("published")}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="vgg,resnet")
    parser.add_argument("--rows", default="latency,flops")
    parser.add_argument("--time-budget", default=None, help="minutes per build (lrfc build --time-budget)")
    args = parser.parse_args(argv)
    models, rows = args.models.split(","), args.rows.split(",")
    for flag, got, known in (("--models", models, ("vgg", "resnet")), ("--rows", rows, tuple(ROWS))):
        if set(got) - set(known):
            raise SystemExit(f"{flag}: unknown {', '.join(sorted(set(got) - set(known)))}; choose from {', '.join(known)}")
    for model in models:
        for kind in rows:
            name = f"{model}/{kind}"
            flags = {**BASE, **ROWS[kind]}
            if args.time_budget:
                flags["--time-budget"] = args.time_budget
            cli = ["build", MODELS[model], *[x for k, v in flags.items() for x in ((k,) if v is None else (k, v))],
                   "--out", str(WORK / name.replace("/", "-")), "--cache-dir", str(WORK / f"cache-{model}"), "--json"]
            report, wall, peak = run_build(cli)
            row = {"model": model, "kind": kind, "target": flags["--target"], "command": "lrfc " + " ".join(cli),
                   "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "wall_s": round(wall, 1),
                   "peak_rss_mb": round(peak, 1), **speed_headline(report)}

            def change(results: dict, name=name, row=row) -> None:
                results.setdefault("runs", {})[name] = row
                results["machine"], results["base"] = machine(), BASE

            update_json(RESULTS, change)
            lite = row["latency"].get("litert", {})
            pairs = ", ".join(f"{p} {lite[f'original {p}']['p50_ms']} -> {lite[f'lrfc {p}']['p50_ms']} ms"
                              for p in ("fp32", "int8") if f"original {p}" in lite and f"lrfc {p}" in lite)
            print(f"{name}: drop {row['drop_points']} points, {row['macs_removed_pct']}% MACs removed, litert "
                  f"{pairs}, {wall:.0f} s", flush=True)


if __name__ == "__main__":
    main()
