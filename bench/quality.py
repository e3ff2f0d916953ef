"""Compression quality, the paper's design trade-offs, and what `lrfc build` costs to run.

Every row is one real ``lrfc build`` (the CLI, in a child process) on a
``make baselines`` Fashion-MNIST model. A row keeps the command, its wall
time, its peak resident memory (the largest of the report's per-phase peaks
and ``os.wait4``'s ``ru_maxrss``), the report's per-phase time and peak
memory, and its headline numbers. Groups:

* ``methods``   hybrid vs each single method applied alone vs the weight-based
                rank selections (vbmf, energy), at ``--max-acc-drop 1.0`` with
                recovery rounds; VGG- and ResNet-style models. Each model's
                hybrid row runs first on an emptied cache: it is also that
                model's compiler-cost (``scale``) row;
* ``threshold`` the hybrid at similarity thresholds 0.85 ... 0.98, one
                fine-tuning round and no recovery (which would move them);
* ``pareto``    tucker, cp and tt alone at thresholds 0.85/0.92/0.98, the
                hybrid of those three (dense layers kept) at 0.92/0.98, and
                energy at 0.8/0.97 (one round each): with ``threshold`` and the
                one-round ``methods`` rows, each method's accuracy-vs-MACs front,
                from which methods are compared at matched accuracy;
* ``step``      rank-grid steps 2, 5, 10 (% of a layer's cost), each on an
                empty cache and without fine-tuning, so the time is the search's own;
* ``calib``     calibration-set sizes 100, 500, 1000, 2000, one round each;
* ``finetune``  one-shot vs the paper's iterative baseline on the hybrid row's
                plan (``--plan``): one-shot at 1, 2 and 3 epochs, iterative at 1
                epoch after every layer;
* ``scale``     the tiny model's build, next to the VGG and ResNet hybrid rows.

The full run (``make bench``: 41 builds, 79 minutes here) fine-tunes 1 epoch on 10,000
images per round with 500 calibration samples and up to 3 rounds.
``--quick`` (``make bench-quick``, under 15 minutes) is VGG only (and the
tiny model's cost row): 2,000 images, 250 calibration samples, one round
(no recovery), tucker and cp as the single methods, the end points of each
sweep. Results: ``bench/results/quality.json``, quick and full runs kept apart.

    python -m bench.quality [--quick] [--only methods,threshold,finetune,calib,pareto,step,scale] [--rows NAME,...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.machine import note_machine, stamp
from bench.results_file import update_json

RESULTS = Path("bench/results/quality.json")
WORK = Path("bench/work/quality")
MODELS = {"tiny": "models/tiny.keras", "vgg": "models/vgg.keras", "resnet": "models/resnet.keras"}
GROUPS = ("methods", "threshold", "finetune", "calib", "pareto", "step", "scale")
SINGLE = ("tucker", "cp", "tt")  # the conv methods: these models' dense layers hold <1% of their MACs


def budget(quick: bool) -> dict[str, str]:
    """The flags every quality build shares; rows override some (a later flag wins)."""
    flags = {"--data": "fashion-mnist", "--target": "host", "--objective": "flops", "--max-acc-drop": "1.0",
             "--formats": "tflite", "--bench-runs": "0", "--epochs": "1"}
    if quick:
        return {**flags, "--train-samples": "2000", "--calib-samples": "250", "--max-rounds": "1"}
    return {**flags, "--train-samples": "10000", "--calib-samples": "500", "--max-rounds": "3"}


def plan(quick: bool, groups: list[str]) -> list[dict]:
    """One dict per build: group, name, model, extra flags, cache ("shared", "fresh": empty the shared
    cache first, or "cold": a private empty cache)."""
    rows: list[dict] = []

    def add(group, name, model, flags, cache="shared"):
        rows.append({"group": group, "name": name, "model": model, "flags": flags, "cache": cache})

    one = {"--max-rounds": "1"}
    if "methods" in groups:
        add("methods", "vgg/hybrid", "vgg", {}, "fresh")
        for method in SINGLE[:2] if quick else SINGLE:
            add("methods", f"vgg/{method}", "vgg", {"--methods": method})
        for rule in ("vbmf", "energy"):
            add("methods", f"vgg/{rule}", "vgg", {"--rank-selection": rule})
    if "threshold" in groups:  # quick: one round everywhere, so vgg/hybrid is the 0.92 point
        for t in ((0.85, 0.98) if quick else (0.85, 0.88, 0.92, 0.95, 0.98)):
            add("threshold", f"vgg/hybrid-t{t}", "vgg", {"--threshold": str(t), **one})
    if "finetune" in groups:
        hybrid_plan = str(WORK / ("quick" if quick else "full") / "vgg-hybrid" / "plan.json")
        shots = (1,) if quick else (1, 2, 3)
        for mode, epochs in [("oneshot", e) for e in shots] + [("iterative", 1)]:
            add("finetune", f"vgg/{mode}-e{epochs}", "vgg",
                {"--plan": hybrid_plan, "--finetune": mode, "--epochs": str(epochs), **one})
    if "calib" in groups:
        for n in ((100,) if quick else (100, 1000, 2000)):  # the default size: hybrid-t0.92 (quick: vgg/hybrid)
            add("calib", f"vgg/calib{n}", "vgg", {"--calib-samples": str(n), **one})
    if "pareto" in groups and not quick:
        for method in SINGLE:
            for t in (0.85, 0.92, 0.98):
                add("pareto", f"vgg/{method}-t{t}", "vgg", {"--methods": method, "--threshold": str(t), **one})
        for t in (0.92, 0.98):  # the hybrid without the dense methods: what factorizing fc1/logits costs
            add("pareto", f"vgg/hybrid-conv-t{t}", "vgg", {"--methods": ",".join(SINGLE), "--threshold": str(t), **one})
        for e in (0.8, 0.97):
            add("pareto", f"vgg/energy-{e}", "vgg", {"--rank-selection": "energy", "--energy": str(e)})
    if "step" in groups:
        for s in ((5, 10) if quick else (2, 5, 10)):
            add("step", f"vgg/step{s}", "vgg", {"--step": str(s), "--finetune": "none"}, "cold")
    if "scale" in groups:
        add("scale", "tiny/hybrid", "tiny", {}, "cold")
    if "methods" in groups and not quick:  # ResNet last: its rows take the longest
        add("methods", "resnet/hybrid", "resnet", {}, "fresh")
        for method in SINGLE:
            add("methods", f"resnet/{method}", "resnet", {"--methods": method})
        for rule in ("vbmf", "energy"):
            add("methods", f"resnet/{rule}", "resnet", {"--rank-selection": rule})
    if "pareto" in groups and not quick:  # ResNet, after its cost row: three families at the 0.98 threshold
        for method in ("hybrid", "cp", "tt"):
            flags = {} if method == "hybrid" else {"--methods": method}
            add("pareto", f"resnet/{method}-t0.98", "resnet", {**flags, "--threshold": "0.98", **one})
    return rows


def run_lrfc(args: list[str]) -> tuple[int, bytes, str, float, float]:
    """Run ``lrfc ARGS`` in a child process; returns (exit status, stdout, stderr, wall seconds, peak RSS MB).

    The child is reaped with ``os.wait4`` for its own ``ru_maxrss`` (its stderr
    goes to a file, so reading stdout to the end cannot deadlock).
    """
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "lrfc.cli", *args], stdout=subprocess.PIPE, stderr=err)
        out = proc.stdout.read()
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        err.seek(0)
        return os.waitstatus_to_exitcode(status), out, err.read().decode(errors="replace"), wall, usage.ru_maxrss / 1024


def run_build(args: list[str]) -> tuple[dict, float, float]:
    """Run ``lrfc build ... --json``; returns (report, wall seconds, peak RSS MB of the child); exits when it fails."""
    code, out, err, wall, peak = run_lrfc(args)
    if code != 0:
        sys.stderr.write(err)
        raise SystemExit(f"lrfc {' '.join(args)} failed ({code})")
    return json.loads(out), wall, peak


def headline(report: dict) -> dict:
    """What the tables need from one report.json."""
    o, c = report["original"], report["compressed"]
    factorized = [e for e in report["layers"] if e["method"]]
    return {
        "accuracy_before": o["accuracy"], "accuracy_after": c["accuracy"],
        # without labels (report "labels": "original") neither has an accuracy: the share of answers changed
        "drop_points": round(report["accuracy_budget"]["drop"] if o["accuracy"] is None
                             else 100 * (o["accuracy"] - c["accuracy"]), 2),
        "params_before": o["params"], "params_after": c["params"], "macs_before": o["macs"], "macs_after": c["macs"],
        "params_removed_pct": round(100 * (1 - c["params"] / o["params"]), 2),
        "macs_removed_pct": round(100 * (1 - c["macs"] / o["macs"]), 2),
        "finetune": {k: v for k, v in report["finetune"].items() if k != "history"},
        "timings": report["timings"], "phase_peak_rss_mb": report.get("peak_rss_mb", {}),
        "choices": {e["name"]: [e["method"], e["ranks"]] for e in factorized},
        "methods_chosen": sorted({e["method"] for e in factorized}),
        "layers_factorized": len(factorized), "layers": len(report["layers"]),
        "candidates_scored": len(report["search"]["candidates"]),
    }


def _save(key: str, name: str, row: dict) -> None:
    """Merge one row into the results file."""

    def change(results: dict) -> None:
        results.setdefault(key, {"runs": {}})["runs"][name] = row
        note_machine(results[key])
        results[key]["budget"] = budget(key == "quick")

    update_json(RESULTS, change)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=",".join(GROUPS))
    parser.add_argument("--rows", default=None, help="comma list of row names (e.g. vgg/oneshot-e2): only these")
    args = parser.parse_args(argv)
    key = "quick" if args.quick else "full"
    groups = args.only.split(",")
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        raise SystemExit(f"--only: unknown group(s) {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    specs = plan(args.quick, groups)
    if args.rows:
        wanted = args.rows.split(",")
        missing = sorted(set(wanted) - {spec["name"] for spec in specs})
        if missing:
            raise SystemExit(f"--rows: no such row(s) in the chosen groups: {', '.join(missing)}")
        specs = [spec for spec in specs if spec["name"] in wanted]
    started = time.perf_counter()
    for spec in specs:
        name, model = spec["name"], spec["model"]
        cache_dir = WORK / key / f"cache-{model}"
        if spec["cache"] == "cold":
            cache_dir = WORK / key / "cold" / name.replace("/", "-")
        if spec["cache"] in ("cold", "fresh"):
            shutil.rmtree(cache_dir, ignore_errors=True)
        if "--plan" in spec["flags"] and not Path(spec["flags"]["--plan"]).exists():
            raise SystemExit(f"{name}: needs {spec['flags']['--plan']} (run the methods group first)")
        flags = {**budget(args.quick), **spec["flags"]}
        out = WORK / key / name.replace("/", "-")
        cmd = ["build", MODELS[model], *[x for kv in flags.items() for x in kv], "--out", str(out),
               "--cache-dir", str(cache_dir), "--json"]
        report, wall, peak = run_build(cmd)
        # lrfc resets the kernel's high-water mark per phase (lrfc.common.memory), which ru_maxrss follows
        peak = max([peak, *[v for v in report.get("peak_rss_mb", {}).values() if v is not None]])
        row = {"group": spec["group"], "model": model, "cache": spec["cache"], "flags": spec["flags"],
               "command": "lrfc " + " ".join(cmd), **stamp(),
               "wall_s": round(wall, 1), "peak_rss_mb": round(peak, 1), **headline(report)}
        _save(key, name, row)
        print(f"{name}: drop {row['drop_points']} points, {row['macs_removed_pct']}% MACs removed, {wall:.0f} s "
              f"(total {time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
