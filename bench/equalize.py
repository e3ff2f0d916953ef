"""int8 of factorized chains: as factorized, equalized, and CP's depthwise pair as one operator (issue 14).

For each model, one real ``lrfc build MODEL --data fashion-mnist --finetune
none --max-acc-drop D --bench-runs 0 --formats tflite`` chooses a plan
(without a benchmark it writes no int8 file, so its ``model.keras`` holds the
chains as factorized, not equalized). This script then lowers that model to
int8 with the same converters a build uses (TFLite full-integer, ONNX
Runtime's static U8S8 QDQ) on 500 calibration images (the first of
Fashion-MNIST's training split): as it is, equalized (``factorize.equalize``),
and equalized with CP's depthwise kh x 1 and 1 x kw stages kept as two
operators (the converter twin's pair rewrite, ``lower.separable_depthwise``,
switched off here only: what builds lowered before 2026-12-05 09:00 UTC);
the original at int8 beside them. Every int8 file runs all 10,000 test images
in its runtime (LiteRT, ONNX Runtime CPU) against its float Keras model:
top-1 accuracy, top-1 agreement with the float model, and the mean and 99th
percentile over images of the largest output difference (the verification
gate's measure). Then the equalized model's fp32 and int8 files, with the
pair as one operator and as two, and the original's, are timed side by side
in one runtime_bench run per runtime (2 threads, batch 1, alternating, two
sets of fresh workers).
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
import contextlib
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
TIMED_RUNS = 300


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


@contextlib.contextmanager
def pairs_kept():
    """Inside: the converter twin leaves CP's depthwise pairs as two operators (``lower.separable_depthwise``)."""
    from lrfc.lower import twin

    merged_pairs = twin.merged_pairs
    twin.merged_pairs = lambda model: {}
    try:
        yield
    finally:
        twin.merged_pairs = merged_pairs


def exported(model, calibration: np.ndarray, folder: Path, precisions=("int8",)) -> dict:
    """``{(format, precision): path}``: ``model`` lowered by a build's converters into ``folder``."""
    from lrfc.lower.artifacts import export_file

    folder.mkdir(parents=True, exist_ok=True)
    return {(fmt, p): export_file(model, fmt, folder / f"{p}.{fmt}", p, calibration)
            for fmt in FORMATS for p in precisions}


def int8_scores(model, files: dict, x: np.ndarray, y: np.ndarray) -> dict:
    """``model``'s int8 ``files`` run on ``x``: their scores against ``y`` and the float model."""
    from lrfc.lower.verify import run_artifact

    reference = np.concatenate([np.asarray(model(x[i:i + 500], training=False)) for i in range(0, len(x), 500)])
    scores = {}
    for fmt, runtime in FORMATS.items():
        out = run_artifact(files[(fmt, "int8")], fmt, x, chunk=500).reshape(reference.shape)
        diff = np.abs(out - reference).max(axis=1)
        scores[runtime] = {"accuracy": round(float((out.argmax(1) == y).mean()), 6),
                           "agreement": round(float((out.argmax(1) == reference.argmax(1)).mean()), 6),
                           "mean_diff": round(float(diff.mean()), 5),
                           "p99_diff": round(float(np.percentile(diff, 99)), 5)}
    return {"float_accuracy": round(float((reference.argmax(1) == y).mean()), 6), "int8": scores}


def timed_together(files: dict) -> dict:
    """``{name: {(format, precision): path}}`` timed in one runtime_bench run per runtime: p50 ms per file."""
    from bench.speed import p50_side_by_side

    out = {}
    for fmt, runtime in FORMATS.items():
        paths = {f"{name} {p}": f[(fmt, p)] for name, f in files.items() for p in ("fp32", "int8") if (fmt, p) in f}
        command, p50 = p50_side_by_side(paths, runtime, TIMED_RUNS)
        out[runtime] = {"command": command, "p50_ms": p50}
    return out


def run_model(name: str, max_drop: float) -> dict:
    """The model's plan (one build), then its model and the original at int8: as factorized, equalized, with
    CP's depthwise pairs as two operators; the equalized files and the original's timed side by side."""
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
    files = WORK / f"{name}-files"
    model = keras.models.load_model(out / "model.keras", compile=False)
    plain = int8_scores(model, exported(model, calibration, files / "factorized"), x, y)
    done = equalize_chains(model, calibration)
    both = ("fp32", "int8")
    lowered = {"lrfc": exported(model, calibration, files / "equalized", both)}
    with pairs_kept():
        lowered["lrfc, pairs as two operators"] = exported(model, calibration, files / "pairs", both)
    equalized = int8_scores(model, lowered["lrfc"], x, y)
    pairs = int8_scores(model, lowered["lrfc, pairs as two operators"], x, y)
    original_model = keras.models.load_model(model_path, compile=False)
    lowered["original"] = exported(original_model, calibration, files / "original", both)
    original = int8_scores(original_model, lowered["original"], x, y)
    compared = time.perf_counter() - start
    timed = timed_together(lowered)
    layers = report["layers"]
    return {"model": name, "command": "lrfc " + " ".join(cli), **stamp(), "build_s": round(wall, 1),
            "compare_s": round(compared, 1),
            "macs_removed_pct": round(100 * (1 - report["compressed"]["macs"] / report["original"]["macs"]), 2),
            "drop_points": report["accuracy_budget"]["drop"],
            "methods": {m: sum(1 for l in layers if l.get("method") == m) for m in
                        sorted({l["method"] for l in layers if l.get("method")})},
            "equalization": done.to_json(), "factorized": plain, "equalized": equalized,
            "equalized_pairs_kept": pairs, "original": original, "timed": timed}


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
        before, pairs, after = (row[k]["int8"] for k in ("factorized", "equalized_pairs_kept", "equalized"))
        print(f"{name}: " + "; ".join(f"{rt} mean diff {before[rt]['mean_diff']} -> {pairs[rt]['mean_diff']} -> "
                                      f"{after[rt]['mean_diff']}, agreement {before[rt]['agreement']} -> "
                                      f"{pairs[rt]['agreement']} -> {after[rt]['agreement']}; p50 ms "
                                      f"{row['timed'][rt]['p50_ms']}" for rt in before), flush=True)


if __name__ == "__main__":
    main()
