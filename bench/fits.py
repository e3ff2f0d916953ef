"""The score stage's two speed-ups, measured on real builds: one fit per rank instead of both, and walks in threads.

``--data-aware auto`` fits every candidate rank twice, to the weights alone
and to the layer's outputs on the calibration data
(``search.scoring.fit_modes``), and keeps the better similarity; ``on`` (the
default) fits only the second. In process the score stage runs one walk per
core at once (``frontend.memory_plan``'s ``score_threads``). This harness
runs the same real ``--finetune none`` build three ways, fresh caches, one
after the other: ``auto`` and ``on`` with the default threads, and ``on``
with one walk at a time (the build's ``memory_plan.cores`` set to 1, in a
child process). It records the score stage's seconds, what the budget
search publishes, and how many of ``auto``'s candidates the weight-only fit
won.

    python -m bench.fits [--models demo,vgg,resnet] [--budget POINTS]

Results: ``bench/results/fits.json``; ``python -m bench.render``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.machine import note_machine, stamp
from bench.results_file import update_json
from bench.scale import model_path

RESULTS = Path("bench/results/fits.json")
WORK = Path("bench/work/fits")
MODELS = ("demo", "vgg", "resnet")
BUDGETS = {"demo": 1.0}  # points of --max-acc-drop per model; the rest take --budget
RUNS = (("auto", "auto", None), ("on", "on", None), ("on-1-thread", "on", 1))  # (name, --data-aware, cores)


def _child_build(cores: int, argv: list[str]) -> None:
    """``lrfc build ARGV`` with the memory plan seeing ``cores`` cores (so that many score threads at most)."""
    from lrfc import cli
    from lrfc.frontend import memory_plan

    memory_plan.cores = lambda: cores
    raise SystemExit(cli.main(["build", *argv]))


def build(name: str, run: str, fit: str, cores: int | None, budget: float) -> dict:
    """One ``--finetune none`` build with ``--data-aware fit`` and a fresh cache: its stages and what it published."""
    argv = [str(model_path(name)), "--data", "fashion-mnist", "--target", "host", "--objective", "flops",
            "--max-acc-drop", f"{budget:g}", "--finetune", "none", "--formats", "tflite", "--bench-runs", "0",
            "--data-aware", fit, "--out", str(WORK / "out" / f"{name}-{run}"),
            "--cache-dir", str(WORK / "cache" / f"{name}-{run}"), "--json"]
    shutil.rmtree(WORK / "cache" / f"{name}-{run}", ignore_errors=True)
    cmd = [sys.executable, "-m", "lrfc.cli", "build", *argv] if cores is None else \
        [sys.executable, "-m", "bench.fits", "--child-build", str(cores), "--", *argv]
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write(res.stderr)
        raise SystemExit(f"{run} build of {name} failed ({res.returncode})")
    report = json.loads(res.stdout)
    o, c = report["original"], report["compressed"]
    candidates = report["search"]["candidates"]
    shown = "lrfc build " + " ".join(argv[:-1])
    return {"fit": fit, "score_threads": report["memory"]["score_threads"],
            "score_s": report["timings"]["score"], "wall_s": round(time.perf_counter() - start, 1),
            "candidates": len(candidates), "weight_only": sum(not x["data_aware"] for x in candidates),
            "macs_removed_pct": round(100 * (1 - c["macs"] / o["macs"]), 2),
            "params_removed_pct": round(100 * (1 - c["params"] / o["params"]), 2),
            "drop_points": round(100 * (o["accuracy"] - c["accuracy"]), 2), "test_accuracy": c.get("test_accuracy"),
            "plan": json.loads((WORK / "out" / f"{name}-{run}" / "plan.json").read_text())["layers"],
            "command": shown if cores is None else f"{shown} (one walk at a time: python -m bench.fits)"}


def compare(name: str, budget: float) -> dict:
    """The three builds of one model, and whether each published the plan of the ``auto`` one."""
    runs = {run: build(name, run, fit, cores, budget) for run, fit, cores in RUNS}
    for r in runs.values():
        r["same_plan"] = r["plan"] == runs["auto"]["plan"]
    for r in runs.values():
        r.pop("plan")
    return {"budget": budget, **stamp("measured_at"), "runs": runs}


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child-build"]:
        return _child_build(int(argv[1]), argv[3:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--budget", type=float, default=2.0, help="--max-acc-drop for the models not in BUDGETS")
    args = parser.parse_args(argv)
    for name in args.models.split(","):
        if name not in MODELS:
            raise SystemExit(f"--models: unknown {name}; choose from {', '.join(MODELS)}")
        row = compare(name, BUDGETS.get(name, args.budget))
        print(f"{name}: {row}", flush=True)
        update_json(RESULTS, lambda doc: (doc.setdefault("rows", {}).__setitem__(name, row),
                                          note_machine(doc)))


if __name__ == "__main__":
    main()
