"""`lrfc build` on the Fashion-MNIST baselines: accuracy, compression, time per phase.

Runs each configured build through the real CLI and keeps the headline
numbers of its report.json in ``bench/results/builds.json``. Needs
``make baselines`` first (models/vgg.keras, models/resnet.keras).

    python -m bench.builds [--only NAME,...] [--epochs N] [--train-samples N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.decompose_time import machine

RESULTS = Path("bench/results/builds.json")


def configs(epochs: int, train: int) -> dict[str, list[str]]:
    common = ["--data", "fashion-mnist", "--max-acc-drop", "1.0", "--epochs", str(epochs), "--train-samples", str(train)]
    return {
        "vgg-params": ["models/vgg.keras", "--objective", "params", *common],
        "vgg-flops": ["models/vgg.keras", "--objective", "flops", *common],
        "resnet-params": ["models/resnet.keras", "--objective", "params", *common],
        "resnet-flops": ["models/resnet.keras", "--objective", "flops", *common],
        "vgg-oneshot-1round": ["models/vgg.keras", "--objective", "params", *common, "--max-rounds", "1"],
        "vgg-iterative": ["models/vgg.keras", "--objective", "params", *common, "--finetune", "iterative"],
    }


def headline(report: dict) -> dict:
    o, c = report["original"], report["compressed"]
    return {
        "accuracy_before": o["accuracy"], "accuracy_after": c["accuracy"],
        "drop_points": round(100 * (o["accuracy"] - c["accuracy"]), 2),
        "params_removed_pct": round(100 * (1 - c["params"] / o["params"]), 1),
        "macs_removed_pct": round(100 * (1 - c["macs"] / o["macs"]), 1),
        "finetune": report["finetune"], "timings": report["timings"],
        "methods_chosen": sorted({e["method"] for e in report["layers"] if e["method"]}),
        "layers_factorized": sum(1 for e in report["layers"] if e["method"]),
        "layers": len(report["layers"]),
    }


def _save(name: str, row: dict) -> None:
    """Merge one run into the results file, re-read just before writing (runs may overlap)."""
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"runs": {}}
    results["runs"][name] = row
    results["machine"] = machine()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-samples", type=int, default=20000)
    parser.add_argument("--cache-dir", default="bench/work/cache")
    parser.add_argument("--record", nargs=3, metavar=("NAME", "REPORT_JSON", "COMMAND"),
                        help="add a finished build's report.json (run by hand with COMMAND) instead of running builds")
    args = parser.parse_args(argv)
    runs = configs(args.epochs, args.train_samples)
    names = args.only.split(",") if args.only else list(runs)
    if args.record:
        name, path, command = args.record
        report = json.loads(Path(path).read_text())
        wall = sum(report["timings"].values())
        _save(name, {"command": command, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(Path(path).stat().st_mtime)),
                     "wall_s": round(wall, 1), **headline(report)})
        return
    for name in names:
        cmd = ["lrfc", "build", *runs[name], "--out", f"bench/work/{name}", "--cache-dir", args.cache_dir, "--json"]
        start = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "lrfc.cli", *cmd[1:]], capture_output=True, text=True)
        if res.returncode != 0:
            print(res.stderr, file=sys.stderr)
            raise SystemExit(f"{name}: lrfc build failed ({res.returncode})")
        row = {"command": " ".join(cmd), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "wall_s": round(time.perf_counter() - start, 1), **headline(json.loads(res.stdout))}
        _save(name, row)
        print(json.dumps({name: row}), flush=True)


if __name__ == "__main__":
    main()
