"""Memory and time against model size (issue 15): one real build per model, its per-phase peaks and seconds.

Every row is ``lrfc build MODEL --data fashion-mnist --target host --finetune none --objective flops
--bench-runs 0 --calib-samples 256 --allow-low-accuracy`` (the CLI in a child process, a fresh score cache
per row so nothing is reused), read back from its report.json: seconds and peak resident memory per stage
(``timings``, ``peak_rss_mb``; ``run_peak_mb`` is the largest), the memory plan (``memory``) and the whole
run's wall time. Models, smallest first:

* ``demo``         the committed demo CNN (demo/demo.keras, Fashion-MNIST 28x28x1);
* ``vgg``, ``resnet`` the ``make baselines`` Fashion-MNIST models (models/);
* ``mobilenetv2``  keras.applications MobileNetV2, weights=None, 224x224x3, 10 classes;
* ``resnet50-64``, ``resnet50-224`` keras.applications ResNet50, weights=None, 64x64x3 / 224x224x3;
* ``resnet101-224`` keras.applications ResNet101, weights=None, 224x224x3 (42.7 M params with 10 classes, 1.8x ResNet50's);
* ``vgg16-224``    keras.applications VGG16 with its top, weights=None, 224x224x3 (134 M params, 102.8 M of them in
                   ``fc1``: a Dense after a Flatten with 25,088 inputs, which sees 256 calibration vectors).

The keras.applications models have random weights (no pretrained weights offline): their accuracy is at
chance (hence ``--allow-low-accuracy``) and their layers need high ranks, the search's worst case.
Results: ``bench/results/scale.json``; ``python -m bench.render`` writes the table and docs/scale.png.

    python -m bench.scale [--models demo,vgg,resnet,mobilenetv2,resnet50-64,resnet50-224,resnet101-224,vgg16-224]
                          [--calib-samples 256]
                          [--until score]

``--until STAGE`` runs the build's stages up to STAGE only (``lrfc.pipeline.STAGES``, in a child process
through ``run_build``; nothing is published) and records those stages: the score phase of a model whose whole
build would not fit the session.
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
from bench.results_file import put_row, update_json

RESULTS = Path("bench/results/scale.json")
WORK = Path("bench/work/scale")
MODELS = ("demo", "vgg", "resnet", "mobilenetv2", "resnet50-64", "resnet50-224", "resnet101-224", "vgg16-224")
APPS = {"mobilenetv2": ("MobileNetV2", 224), "resnet50-64": ("ResNet50", 64), "resnet50-224": ("ResNet50", 224),
        "resnet101-224": ("ResNet101", 224), "vgg16-224": ("VGG16", 224)}


def model_path(name: str) -> Path:
    """The model file of one row, made once for the keras.applications ones."""
    if name == "demo":
        return Path("demo/demo.keras")
    if name in ("vgg", "resnet"):
        path = Path("models") / f"{name}.keras"
        if not path.exists():
            raise SystemExit(f"{path} is missing: run `make baselines` first")
        return path
    path = WORK / f"{name}.keras"
    if not path.exists():
        from lrfc.common.quiet import import_keras

        keras = import_keras()
        ctor, size = APPS[name]
        WORK.mkdir(parents=True, exist_ok=True)
        getattr(keras.applications, ctor)(weights=None, input_shape=(size, size, 3), classes=10).save(path)
    return path


def command(name: str, calib: int, extra: list[str]) -> list[str]:
    out = WORK / "out" / name
    return [sys.executable, "-m", "lrfc.cli", "build", str(model_path(name)), "--data", "fashion-mnist",
            "--target", "host", "--finetune", "none", "--objective", "flops", "--bench-runs", "0",
            "--calib-samples", str(calib), "--allow-low-accuracy", "--out", str(out),
            "--cache-dir", str(WORK / "cache" / name), "--json", *extra]


def run_row(name: str, calib: int, extra: list[str], until: str | None = None) -> dict:
    cmd = command(name, calib, extra)
    shown = " ".join(cmd[4:]) + (f" (stages up to {until}: python -m bench.scale --until {until})" if until else "")
    if until:
        cmd = [sys.executable, "-m", "bench.scale", "--child", until, "--", *cmd[4:]]
    shutil.rmtree(WORK / "cache" / name, ignore_errors=True)  # a fresh cache: every score computed
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if res.returncode != 0:
        last = [line for line in res.stderr.splitlines() if line.strip()][-1:] or [f"exit {res.returncode}"]
        return {"command": f"lrfc build {shown}", "error": last[0], "wall_s": round(wall, 1)}
    report = json.loads(res.stdout if not until else res.stdout.strip().splitlines()[-1])  # the CLI's --json is indented
    return row_from(report, name, shown, wall)


def row_from(report: dict, name: str, shown: str, wall: float) -> dict:
    """The results row of one build from its report (report.json, or the cut-short build's summary)."""
    plan = report.get("memory") or {}
    return {
        "command": f"lrfc build {shown}",
        "params": report["original"]["params"], "macs": report["original"]["macs"],
        "input_shape": f"{APPS[name][1]}x{APPS[name][1]}x3" if name in APPS else "28x28x1",
        "layers": len(report["layers"]),
        "timings": report["timings"], "peak_rss_mb": report["peak_rss_mb"], "memory": plan,
        "run_peak_mb": max((v for v in report["peak_rss_mb"].values() if v is not None), default=None),
        "wall_s": round(wall, 1),
        "executor": report.get("executor"),
    }


def state_until(until: str, argv: list[str]):
    """The build state of ``lrfc build ARGV`` run through the stages up to ``until`` (in this process)."""
    import lrfc.pipeline as pipeline
    from lrfc import cli

    names = [n for n, _ in pipeline.STAGES]
    stages, real = pipeline.STAGES, pipeline.run_build
    pipeline.STAGES = pipeline.STAGES[: names.index(until) + 1]
    captured = {}

    class Done(Exception):
        pass

    def run_build(options, *args, **kwargs):
        captured.update(state=real(options, *args, **kwargs))
        raise Done  # the CLI would go on to print a report the cut-short build has not made

    pipeline.run_build = run_build
    try:
        code = cli.main(["build", *argv])
    except Done:
        code = 0
    finally:
        pipeline.STAGES, pipeline.run_build = stages, real
    if "state" not in captured:
        raise SystemExit(code or 1)
    return captured["state"]


def child(until: str, argv: list[str]) -> None:
    """Run ``lrfc build ARGV`` through the stages up to ``until``; print what the report would say of them."""
    state = state_until(until, argv)
    print(json.dumps({
        "original": {"params": int(state.flat.count_params()), "macs": sum(r.macs for r in state.rows)},
        "layers": [n for n in state.targets], "timings": {k: round(v, 3) for k, v in state.timer.snapshot().items()},
        "peak_rss_mb": dict(state.peak_rss_mb), "memory": state.memory.to_json(), "executor": state.executor.to_json(),
        "until": until}))


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        return child(argv[1], argv[3:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--calib-samples", type=int, default=256)
    parser.add_argument("--tag", default="", help="suffix of the row names (e.g. -ray2 with --extra)")
    parser.add_argument("--extra", default="", help="more build flags, space-separated (e.g. '--executor ray')")
    parser.add_argument("--until", default=None, help="run the stages up to this one only (e.g. score)")
    args = parser.parse_args(argv)
    models = args.models.split(",")
    if set(models) - set(MODELS):
        raise SystemExit(f"--models: unknown {', '.join(sorted(set(models) - set(MODELS)))}; choose from {', '.join(MODELS)}")
    for name in models:
        row = run_row(name, args.calib_samples, args.extra.split(), args.until)
        row["until"] = args.until
        row.update(stamp("measured_at"))
        print(f"{name}{args.tag}: {json.dumps({k: row.get(k) for k in ('wall_s', 'run_peak_mb', 'error')})}", flush=True)
        update_json(RESULTS, lambda doc: (put_row(doc.setdefault("rows", {}), name + args.tag, row),
                                          note_machine(doc)))


if __name__ == "__main__":
    main()
