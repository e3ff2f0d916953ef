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
                       benchmark's "original"), against which lrfc int8 is judged
                       (builds since 2026-12-03 time both models at fp32 beside
                       them: whether int8 pays at all);
* ``<model>/int8-qat`` the same with ``--qat`` (quantization-aware fine-tuning);
* ``<model>/int8-onnx`` ``--target host-int8 --formats onnx``: the build for a
                       user who deploys on ONNX Runtime, priced (its chains as
                       int8 QDQ files: cost.latency.lower_chain), measured and
                       benchmarked there (``targets.with_formats``).

Each report also gives the per-layer cost model's error against the whole
models (``whole_model.cost_model_error``, latency rows). Results:
``bench/results/speed.json``; ``python -m bench.render`` writes them into
docs/BENCHMARKS.md.

After a latency or flops row, the two rows' published fp32 models and the
original are timed once more side by side (``side_by_side``), the fair
comparison of the two objectives.

    python -m bench.speed [--models vgg,resnet] [--rows latency,flops,int8,int8-qat,int8-onnx] [--time-budget MINUTES]
    python -m bench.speed --models vgg --side-by-side
    python -m bench.speed --rows latency --no-side-by-side   (the pair's other row built with other settings)
    python -m bench.speed --refresh
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.machine import note_machine, stamp
from bench.quality import MODELS, headline, run_build
from bench.results_file import put_row, update_json
from lrfc.benchmark.stage import baseline_of

RESULTS = Path("bench/results/speed.json")
WORK = Path("bench/work/speed")
BASE = {"--data": "fashion-mnist", "--target": "host", "--max-acc-drop": "1.0", "--bench-runs": "100"}
ROWS = {"latency": {"--objective": "latency"}, "flops": {"--objective": "flops"},
        "int8": {"--target": "host-int8", "--objective": "latency"},
        "int8-qat": {"--target": "host-int8", "--objective": "latency", "--qat": None},
        "int8-onnx": {"--target": "host-int8", "--objective": "latency", "--formats": "onnx"}}


def latency_table(report: dict) -> dict:
    """Per runtime, each timed file as ``"<original|lrfc> <precision>"``: the target's pair and its baseline's."""
    runs = {}
    for run in report["benchmarks"].get("runs", []):
        precision = run["precision"]  # the target's: fp32 for host, int8 for host-int8
        rows = {f"original {precision}": run["original"], f"lrfc {precision}": run["compressed"]}
        baseline = baseline_of(run)  # the pair at the other precision (lower.stage)
        if baseline:
            other, pair = baseline
            rows.update({f"original {other}": pair["original"], f"lrfc {other}": pair["compressed"]})
        runs[run["runtime"]] = {name: {"p50_ms": r["p50_ms"], "p90_ms": r["p90_ms"], "accuracy": r.get("accuracy"),
                                       "file_bytes": r["file_bytes"], "peak_rss_mb": r.get("peak_rss_mb"),
                                       "verified": r.get("verified"),
                                       **{k: r[k] for k in ("best_threads", "best_p50_ms", "p50_ms_by_threads") if k in r}}
                                for name, r in rows.items()}
    return runs


def speed_headline(report: dict) -> dict:
    """``bench.quality.headline`` plus the four-way latency table per runtime and the cost model's error."""
    runs = latency_table(report)
    whole = report.get("whole_model") or {}
    return {**headline(report), "budget": report["accuracy_budget"],
            "test_before": report["original"].get("test_accuracy"), "test_after": report["compressed"].get("test_accuracy"),
            "latency": runs, "cost_model_error": _cost_model_error(report),
            "solutions": [{k: s[k] for k in ("label", "predicted_ms", "measured_ms", "rung", "drop")}
                          for s in report.get("solutions") or []],
            "whole_original_ms": (whole.get("original") or {}).get("measured_ms"),
            "published": report["budget_search"].get("published")}


def _cost_model_error(report: dict) -> dict | None:
    """``lrfc.cost.measure.cost_model_error`` from a report's timed rungs (so older reports gain newer measures)."""
    from lrfc.cost.measure import cost_model_error

    original = (report.get("whole_model") or {}).get("original")
    if not original:
        return None
    return cost_model_error(original["predicted_ms"], original.get("measured_ms"),
                            [(s["predicted_ms"], s["measured_ms"]) for s in report.get("solutions") or []]) or None


def refresh(results: dict) -> None:
    """Each row's report-derived fields read again from its build's report.json (its command, date and wall stay)."""
    import json

    for name, row in results.get("runs", {}).items():
        path = WORK / name.replace("/", "-") / "report.json"
        if path.is_file():
            row.update(speed_headline(json.loads(path.read_text())))


SIDE_BY_SIDE_RUNS = 300


def side_by_side(model: str) -> dict | None:
    """The latency and flops rows' published fp32 models and the original, timed in one run per runtime.

    Each row's own benchmark ran minutes apart from the other's; the
    objective comparison wants one run (alternating rounds, each file its
    lower median of two sets of fresh workers). None when a row's files are missing.
    """
    dirs = {kind: WORK / f"{model}-{kind}" for kind in ("latency", "flops")}
    return timed_together(lambda fmt: {"original": dirs["latency"] / f"original.{fmt}",
                                       **{k: d / f"model.{fmt}" for k, d in dirs.items()}}, SIDE_BY_SIDE_RUNS)


def timed_together(files_for, runs: int) -> dict | None:
    """``{"original", "flops", "latency"}`` files (``files_for(fmt)``) timed in one runtime_bench run per runtime.

    Returns the date and, per runtime, the command, each file's p50 and the latency file's speed-up over the
    flops file; None when a file is missing.
    """
    out = {**stamp(), "runtimes": {}}
    for runtime, fmt in (("litert", "tflite"), ("onnxruntime-cpu", "onnx")):
        files = files_for(fmt)
        if not all(Path(f).is_file() for f in files.values()):
            return None
        command, p50 = p50_side_by_side(files, runtime, runs)
        out["runtimes"][runtime] = {"command": command, "p50_ms": p50,
                                    "latency_vs_flops": round(p50["flops"] / p50["latency"], 4)}
    return out


def p50_side_by_side(files: dict, runtime: str, runs: int) -> tuple[str, dict]:
    """``files`` (``{name: path}``) timed in one runtime_bench run on ``runtime`` (2 threads, alternating, two sets
    of fresh workers): the command and ``{name: p50 ms}``."""
    import json
    import subprocess
    import sys

    cmd = ["-m", "runtime_bench", *map(str, files.values()), "--runtime", runtime, "--threads", "2",
           "--runs", str(runs), "--lifetimes", "2", "--json"]
    res = json.loads(subprocess.run([sys.executable, *cmd], check=True, capture_output=True, text=True).stdout)
    return "python " + " ".join(cmd), {name: r["p50_ms"] for name, r in zip(files, res["results"])}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="vgg,resnet")
    parser.add_argument("--rows", default="latency,flops")
    parser.add_argument("--time-budget", default=None, help="minutes per build (lrfc build --time-budget)")
    parser.add_argument("--side-by-side", action="store_true",
                        help="build nothing: time the latency and flops rows' published models side by side")
    parser.add_argument("--no-side-by-side", action="store_true",
                        help="keep the last side-by-side timing (a row re-run alone, its pair built otherwise)")
    parser.add_argument("--refresh", action="store_true",
                        help="build nothing: re-read every row's report.json (after a change to what a row derives)")
    args = parser.parse_args(argv)
    if args.refresh:
        update_json(RESULTS, refresh)
        return
    models, rows = args.models.split(","), ([] if args.side_by_side else args.rows.split(","))
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
                   **stamp(), "wall_s": round(wall, 1),
                   "peak_rss_mb": round(peak, 1), **speed_headline(report)}

            def change(results: dict, name=name, row=row) -> None:
                put_row(results.setdefault("runs", {}), name, row)
                note_machine(results)
                results["base"] = BASE

            update_json(RESULTS, change)
            runtime, timed = next(iter(row["latency"].items()), ("no runtime", {}))  # the build's first
            pairs = ", ".join(f"{p} {timed[f'original {p}']['p50_ms']} -> {timed[f'lrfc {p}']['p50_ms']} ms"
                              for p in ("fp32", "int8") if f"original {p}" in timed and f"lrfc {p}" in timed)
            print(f"{name}: drop {row['drop_points']} points, {row['macs_removed_pct']}% MACs removed, {runtime} "
                  f"{pairs}, {wall:.0f} s", flush=True)
        if args.side_by_side or ({"latency", "flops"} & set(rows) and not args.no_side_by_side):  # a row changed
            timed = side_by_side(model)
            if timed is not None:
                update_json(RESULTS, lambda results, m=model, t=timed: put_row(results.setdefault("side_by_side", {}), m, t))
                print(f"{model}: --objective latency vs flops, side by side: "
                      + ", ".join(f"{r} {v['latency_vs_flops']}x" for r, v in timed["runtimes"].items()), flush=True)


if __name__ == "__main__":
    main()
