"""int8 of factorized chains as factorized and equalized (``factorize.equalize``), one plan per model (issue 14).

For each model, one real ``lrfc build MODEL --data fashion-mnist --finetune
none --max-acc-drop D --bench-runs 0 --formats tflite`` chooses a plan
(without a benchmark it writes no int8 file, so its ``model.keras`` holds the
chains as factorized, not equalized). This script then lowers that model to
int8 twice, as it is and equalized, with the same converters a build uses
(TFLite full-integer, ONNX Runtime's static U8S8 QDQ) on 500 calibration
images (the first of Fashion-MNIST's training split), and the original at
int8 beside them. Every file runs all 10,000 test images in its runtime
(LiteRT, ONNX Runtime CPU) against its float Keras model: top-1 accuracy,
top-1 agreement with the float model, and the mean and 99th percentile over
images of the largest output difference (the verification gate's measure).
``resnet50-caffe`` is bench.foreign's ResNet50 trained on Caffe preprocessing
(trained there, or here once with the same seed), built on its npz with its
row's flags; its calibration images are 500 unused training images of that
npz's part, its test images the 10,000, both preprocessed as it was trained
(its int8 files failed the verification gate in that row of 2026-12-03).

Results: ``bench/results/equalize.json``; ``python -m bench.render``.

    python -m bench.equalize [--models vgg,resnet,resnet50-caffe] [--max-acc-drop 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.foreign import CAFFE
from bench.machine import note_machine, stamp
from bench.quality import MODELS, run_build
from bench.results_file import update_json

RESULTS = Path("bench/results/equalize.json")
WORK = Path("bench/work/equalize")
CALIBRATION = 500
FORMATS = {"tflite": "litert", "onnx": "onnxruntime-cpu"}


FOREIGN = {"resnet50-caffe": CAFFE}  # bench.foreign's model: its row's flags


def images() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Calibration images, the 10,000 test images (pixels in [0, 1], NHWC) and the test labels."""
    from lrfc.frontend.data import read_fashion_mnist

    x, _, xt, yt = read_fashion_mnist()
    return (x[:CALIBRATION, ..., None].astype(np.float32) / 255.0, xt[..., None].astype(np.float32) / 255.0,
            yt.astype(np.int64))


def model_and_data(name: str) -> tuple[str, list[str], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The model file, the build's data flags, and (calibration, test images, labels) in the model's own units."""
    if name not in FOREIGN:
        return MODELS[name], ["--data", "fashion-mnist"], images()
    from bench.foreign import fashion_rgb32, preprocess, trained, write_data

    data = fashion_rgb32()
    path, _ = trained(name, data, retrain=False)
    x_train, _, x_test, y_test = data
    return (str(path), ["--data", str(write_data("npz", data)), *FOREIGN[name]],
            (preprocess(name, x_train[48000:48000 + CALIBRATION]), preprocess(name, x_test), y_test.astype(np.int64)))


def int8_scores(model, calibration: np.ndarray, x: np.ndarray, y: np.ndarray) -> dict:
    """``model`` lowered to int8 in each format and run on ``x``: its scores against ``y`` and the float model."""
    from lrfc.lower.artifacts import export_file
    from lrfc.lower.verify import run_artifact

    reference = np.concatenate([np.asarray(model(x[i:i + 500], training=False)) for i in range(0, len(x), 500)])
    scores = {}
    with tempfile.TemporaryDirectory(prefix="lrfc-equalize-") as work:
        for fmt, runtime in FORMATS.items():
            path = export_file(model, fmt, Path(work) / f"int8.{fmt}", "int8", calibration)
            out = run_artifact(path, fmt, x, chunk=500).reshape(reference.shape)
            diff = np.abs(out - reference).max(axis=1)
            scores[runtime] = {"accuracy": round(float((out.argmax(1) == y).mean()), 6),
                               "agreement": round(float((out.argmax(1) == reference.argmax(1)).mean()), 6),
                               "mean_diff": round(float(diff.mean()), 5),
                               "p99_diff": round(float(np.percentile(diff, 99)), 5)}
    return {"float_accuracy": round(float((reference.argmax(1) == y).mean()), 6), "int8": scores}


def run_model(name: str, max_drop: float) -> dict:
    """The model's plan (one build), then its model and the original at int8: as factorized, equalized."""
    from lrfc.common.quiet import import_keras
    from lrfc.factorize.equalize import equalize_chains

    keras = import_keras()
    model_path, data_flags, (calibration, x, y) = model_and_data(name)
    out = WORK / name
    cli = ["build", model_path, *data_flags, "--target", "host", "--finetune", "none",
           "--max-acc-drop", f"{max_drop:g}", "--bench-runs", "0", "--formats", "tflite", "--out", str(out),
           "--cache-dir", str(WORK / f"cache-{name}"), "--json"]
    report, wall, _ = run_build(cli)
    start = time.perf_counter()
    model = keras.models.load_model(out / "model.keras", compile=False)
    plain = int8_scores(model, calibration, x, y)
    done = equalize_chains(model, calibration)
    equalized = int8_scores(model, calibration, x, y)
    original = int8_scores(keras.models.load_model(model_path, compile=False), calibration, x, y)
    layers = report["layers"]
    return {"model": name, "command": "lrfc " + " ".join(cli), **stamp(), "build_s": round(wall, 1),
            "compare_s": round(time.perf_counter() - start, 1),
            "macs_removed_pct": round(100 * (1 - report["compressed"]["macs"] / report["original"]["macs"]), 2),
            "drop_points": report["accuracy_budget"]["drop"],
            "methods": {m: sum(1 for l in layers if l.get("method") == m) for m in
                        sorted({l["method"] for l in layers if l.get("method")})},
            "equalization": done.to_json(), "factorized": plain, "equalized": equalized, "original": original}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="vgg")
    parser.add_argument("--max-acc-drop", type=float, default=3.0,
                        help="the plan's budget, no fine-tuning (default 3: a deep plan without a fine-tuning round)")
    args = parser.parse_args(argv)
    names, known = args.models.split(","), [*MODELS, *FOREIGN]
    if set(names) - set(known):
        raise SystemExit(f"--models: unknown {', '.join(sorted(set(names) - set(known)))}; choose from "
                         f"{', '.join(known)}")
    for name in names:
        row = run_model(name, args.max_acc_drop)

        def change(results: dict, name=name, row=row) -> None:
            results.setdefault("runs", {})[name] = row
            note_machine(results)

        update_json(RESULTS, change)
        before, after = row["factorized"]["int8"], row["equalized"]["int8"]
        print(f"{name}: " + "; ".join(f"{rt} mean diff {before[rt]['mean_diff']} -> {after[rt]['mean_diff']}, "
                                      f"agreement {before[rt]['agreement']} -> {after[rt]['agreement']}"
                                      for rt in before), flush=True)


if __name__ == "__main__":
    main()
