"""Quantization-aware fine-tuning against post-training quantization, on one plan (issue 14).

Two real ``lrfc build --target host-int8 --plan PLAN`` builds of a ``make
baselines`` model: the same plan and the same fine-tuning round, one with
``--qat``. Each published int8 ``model.tflite`` (and the int8 original,
lowered the same way) is then scored on all 10,000 Fashion-MNIST test images
in LiteRT, beside the float Keras model, so the comparison is the int8 file
a user deploys, not the float model the budget judges.

``--model mobilenetv3small`` takes bench.foreign's MobileNetV3Small (trained
there, or here once with the same seed) on its npz of 32x32 images, with the
plan of its ``mobilenetv3small/npz`` row: a model whose int8 files fail the
verification gate after post-training quantization. A build whose int8
files fail the gate exits 1 and publishes none, so for that model the bench
records each build's gate verdict from its report and scores int8 files it
exports itself from the published ``model.keras`` and the original (same
converter, 500 calibration images of the npz's training part: not the
build's own draw), marked so in the table.

Results: ``bench/results/qat.json``; ``python -m bench.render`` writes them
into docs/BENCHMARKS.md.

    python -m bench.qat --plan bench/work/speed/vgg-int8/plan.json [--model vgg]
    python -m bench.qat --model mobilenetv3small [--plan bench/work/foreign/out/mobilenetv3small-npz/plan.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bench.machine import note_machine, stamp
from bench.quality import MODELS, run_build, run_lrfc
from bench.results_file import update_json

RESULTS = Path("bench/results/qat.json")
WORK = Path("bench/work/qat")
FOREIGN = {"mobilenetv3small": "bench/work/foreign/out/mobilenetv3small-npz/plan.json"}  # model: its row's plan
CALIBRATION = 500


def test_images():
    """All 10,000 Fashion-MNIST test images as the models read them (pixels in [0, 1]) and their labels."""
    from lrfc.frontend.data import read_fashion_mnist

    _, _, x, y = read_fashion_mnist()
    return x[..., None].astype(np.float32) / 255.0, y.astype(np.int64)


def accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    from runtime_bench.run import run_tflite

    logits = run_tflite(path, x, chunk=500)
    return float((logits.argmax(axis=1) == y).mean())


def foreign(name: str) -> tuple[str, str, np.ndarray, np.ndarray, np.ndarray]:
    """bench.foreign's model ``name`` and its npz: (model path, data path, test images, labels, calibration images)."""
    from bench.foreign import fashion_rgb32, preprocess, trained, write_data

    data = fashion_rgb32()
    path, _ = trained(name, data, retrain=False)
    x_train, _, x_test, y_test = data
    return (str(path), str(write_data("npz", data)), preprocess(name, x_test), y_test.astype(np.int64),
            preprocess(name, x_train[48000:48000 + CALIBRATION]))


def exported_int8(model_path: str | Path, calibration: np.ndarray, path: Path) -> Path:
    """``model_path`` as an int8 ``.tflite`` the way a build lowers it (no gate): for a build whose files failed it."""
    from lrfc.common.quiet import import_keras
    from lrfc.lower.artifacts import export_file

    keras = import_keras()
    model = keras.models.load_model(str(model_path), compile=False)
    return export_file(model, "tflite", path, "int8", calibration)


def gate_of(report: dict, role: str) -> dict:
    """The build's verification verdict on its int8 ``.tflite`` of ``role`` (compressed or original)."""
    a = next(a for a in report["artifacts"] if a.get("model") == role and a["format"] == "tflite" and not a.get("variant"))
    return {"passed": a["passed"], "top1_agreement": a.get("top1_agreement"), "error": a.get("error")}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", help="the plan both builds take (default for a bench.foreign model: its row's)")
    parser.add_argument("--model", default="vgg", choices=("vgg", "resnet", *FOREIGN))
    args = parser.parse_args(argv)
    plan = args.plan or FOREIGN.get(args.model)
    if plan is None:
        raise SystemExit(f"--plan: required for {args.model}")
    if args.model in FOREIGN:
        model, data, x, y, calibration = foreign(args.model)
    else:
        (x, y), model, data, calibration = test_images(), MODELS[args.model], "fashion-mnist", None
    for name, extra in (("ptq", []), ("qat", ["--qat"])):
        out = WORK / f"{args.model}-{name}"
        cli = ["build", model, "--data", data, "--target", "host-int8", "--plan", plan,
               "--bench-runs", "0", "--formats", "tflite", *extra, "--out", str(out), "--cache-dir",
               str(WORK / "cache"), "--json"]
        if calibration is None:
            report, wall, _ = run_build(cli)
            files, gates = (out / "model.tflite", out / "original.tflite"), None
        else:  # its int8 files may fail the gate: the build exits 1 and publishes the rest
            code, _, err, wall, _ = run_lrfc(cli)
            if code not in (0, 1) or not (out / "report.json").is_file():
                raise SystemExit(f"lrfc {' '.join(cli)} failed ({code}): {err.strip().splitlines()[-1:]}")
            report = json.loads((out / "report.json").read_text())
            gates = {role: gate_of(report, role) for role in ("compressed", "original")}
            files = (exported_int8(out / "model.keras", calibration, WORK / f"{args.model}-{name}.model.int8.tflite"),
                     exported_int8(model, calibration, WORK / f"{args.model}-{name}.original.int8.tflite"))
        row = {"model": args.model, "plan": plan, "command": "lrfc " + " ".join(cli), "wall_s": round(wall, 1),
               **stamp(),
               "float_validation": report["compressed"]["accuracy"],
               "original_validation": report["original"]["accuracy"],
               "int8_test": accuracy(files[0], x, y),
               "original_int8_test": accuracy(files[1], x, y),
               "test_images": int(len(x)),
               **({"int8_files": "exported by the bench", "gate": gates} if gates else {})}

        def change(results: dict, key=f"{args.model}/{name}", row=row) -> None:
            results.setdefault("runs", {})[key] = row
            note_machine(results)

        update_json(RESULTS, change)
        print(f"{args.model}/{name}: float validation {row['float_validation']:.4f}, int8 test {row['int8_test']:.4f} "
              f"(original int8 {row['original_int8_test']:.4f}), {wall:.0f} s", flush=True)


if __name__ == "__main__":
    main()
