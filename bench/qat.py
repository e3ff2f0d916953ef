"""Quantization-aware fine-tuning against post-training quantization, on one plan (issue 14).

Two real ``lrfc build --target host-int8 --plan PLAN`` builds of a ``make
baselines`` model: the same plan and the same fine-tuning round, one with
``--qat``. Each published int8 ``model.tflite`` (and the int8 original,
lowered the same way) is then scored on all 10,000 Fashion-MNIST test images
in LiteRT, beside the float Keras model, so the comparison is the int8 file
a user deploys, not the float model the budget judges.

Results: ``bench/results/qat.json``; ``python -m bench.render`` writes them
into docs/BENCHMARKS.md.

    python -m bench.qat --plan bench/work/speed/vgg-int8/plan.json [--model vgg]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.decompose_time import machine
from bench.quality import MODELS, run_build
from bench.results_file import update_json

RESULTS = Path("bench/results/qat.json")
WORK = Path("bench/work/qat")


def test_images():
    """All 10,000 Fashion-MNIST test images as the models read them (pixels in [0, 1]) and their labels."""
    from lrfc.frontend.data import read_fashion_mnist

    _, _, x, y = read_fashion_mnist()
    return x[..., None].astype(np.float32) / 255.0, y.astype(np.int64)


def accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    from runtime_bench.run import run_tflite

    logits = np.concatenate([run_tflite(path, x[i:i + 500]) for i in range(0, len(x), 500)])
    return float((logits.argmax(axis=1) == y).mean())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", required=True)
    parser.add_argument("--model", default="vgg", choices=("vgg", "resnet"))
    args = parser.parse_args(argv)
    x, y = test_images()
    for name, extra in (("ptq", []), ("qat", ["--qat"])):
        out = WORK / f"{args.model}-{name}"
        cli = ["build", MODELS[args.model], "--data", "fashion-mnist", "--target", "host-int8", "--plan", args.plan,
               "--bench-runs", "0", "--formats", "tflite", *extra, "--out", str(out), "--cache-dir",
               str(WORK / "cache"), "--json"]
        report, wall, _ = run_build(cli)
        row = {"model": args.model, "plan": args.plan, "command": "lrfc " + " ".join(cli), "wall_s": round(wall, 1),
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "float_validation": report["compressed"]["accuracy"],
               "original_validation": report["original"]["accuracy"],
               "int8_test": accuracy(out / "model.tflite", x, y),
               "original_int8_test": accuracy(out / "original.tflite", x, y),
               "test_images": int(len(x))}

        def change(results: dict, key=f"{args.model}/{name}", row=row) -> None:
            results.setdefault("runs", {})[key] = row
            results["machine"] = machine()

        update_json(RESULTS, change)
        print(f"{args.model}/{name}: float validation {row['float_validation']:.4f}, int8 test {row['int8_test']:.4f} "
              f"(original int8 {row['original_int8_test']:.4f}), {wall:.0f} s", flush=True)


if __name__ == "__main__":
    main()
