"""keras.applications models on LiteRT: which operators XNNPACK takes, before and after lrfc's XNNPACK forms.

LiteRT runs the operators its XNNPACK delegate leaves out on its reference kernels, splitting the graph; at int8
several common ones are left out (``runtime_bench.delegation``), and an int8 file can run slower than its fp32 twin.
``lower.tflite.export_tflite`` puts them in forms XNNPACK takes (``lower.xnnpack_forms``: a concatenation of more
than five tensors, average pooling; ``lower.xnnpack_int8``: an int8 ReLU not fused into its producer, HARD_SWISH). This
lowers each model at fp32 and int8 the way lrfc did before them (``xnnpack=False``, what the Edge TPU target still
gets) and with them, and reports per file: operators, XNNPACK parts, what is left out, LiteRT p50 latency (2 threads,
batch 1; the four files of a model timed in one runtime_bench run, alternating) and the outputs against Keras
(mean absolute difference over the Keras logits' standard deviation; top-1 agreement) on 64 inputs the
calibration (32 others) did not see.

Models: keras.applications at ``weights=None`` (seeded; which kernels run does not depend on the weights' values),
10 logits, no softmax head; inputs uniform over the range each model's own preprocessing expects (0-255 where the
model rescales inside; [-1, 1] otherwise). An untrained model's activations can vanish or explode, which moves
int8 scales to where XNNPACK refuses an operator it takes in a trained one, and its logits sit close together, so
its error says little about int8 on a real model: ``mobilenetv3small-fashion`` is bench.foreign's MobileNetV3Small
trained on Fashion-MNIST at 32x32 (trained there once, kept in bench/work/foreign), measured on 500 test images
(accuracy per file) at 32x32 and, with the same weights, at 224x224 on the images scaled up 7x (nearest; no
accuracy there: the weights never saw that scale, so only the error and agreement against Keras are compared).
Results: ``bench/results/delegation.json``.

    python -m bench.delegation [--models xception,nasnetmobile,densenet121,mobilenetv3small,convnexttiny,
                                         mobilenetv3small-fashion32,mobilenetv3small-fashion224]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.machine import note_machine, stamp
from bench.results_file import put_row, update_json

RESULTS = Path("bench/results/delegation.json")
# name: (keras.applications constructor, input side, input range, trained on Fashion-MNIST)
MODELS = {
    "xception": ("Xception", 71, (-1.0, 1.0), False),
    "nasnetmobile": ("NASNetMobile", 32, (-1.0, 1.0), False),
    "densenet121": ("DenseNet121", 32, (-1.0, 1.0), False),
    "mobilenetv3small": ("MobileNetV3Small", 32, (0.0, 255.0), False),
    "convnexttiny": ("ConvNeXtTiny", 32, (0.0, 255.0), False),
    "mobilenetv3small-fashion32": ("MobileNetV3Small", 32, (0.0, 255.0), True),
    "mobilenetv3small-fashion224": ("MobileNetV3Small", 224, (0.0, 255.0), True),
}
CALIBRATION, EVALUATION, LABELLED = 32, 64, 500


def build_model(name: str):
    from lrfc.common.quiet import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(0)
    constructor, side, _, _ = MODELS[name]
    return getattr(keras.applications, constructor)(weights=None, input_shape=(side, side, 3), classes=10,
                                                    classifier_activation=None)


def trained_model(name: str):
    """bench.foreign's MobileNetV3Small trained on Fashion-MNIST at 32x32 (softmax head), at this row's side; and
    labelled data at that side: (calibration, test images, test labels)."""
    from bench.foreign import fashion_rgb32, trained
    from lrfc.common.quiet import import_keras

    keras = import_keras()
    data = fashion_rgb32()
    path, _ = trained("mobilenetv3small", data, retrain=False)
    model = keras.models.load_model(path)
    side = MODELS[name][1]
    factor = side // 32
    if factor > 1:  # the same weights (the network is convolutional up to its pooling) at the larger input
        wide = keras.applications.MobileNetV3Small(input_shape=(side, side, 3), weights=None, classes=10)
        wide.set_weights(model.get_weights())
        model = wide

    def scaled(a):
        return np.repeat(np.repeat(a, factor, axis=1), factor, axis=2).astype(np.float32)

    x, _, xt, yt = data  # labels at 32x32 only: scaled up 7x, the images are not what the weights learned
    return model, (scaled(x[-CALIBRATION:]), scaled(xt[:LABELLED]), yt[:LABELLED] if factor == 1 else None)


def measure_model(name: str, runs: int = 100) -> dict:
    """One results row for a model of ``MODELS``."""
    start = time.perf_counter()
    model, data = trained_model(name) if MODELS[name][3] else (build_model(name), None)
    row = measure(model, MODELS[name][2], runs, data)
    return {"model": MODELS[name][0], "trained": MODELS[name][3], **row, "seconds": round(time.perf_counter() - start, 1),
            "command": f"python -m bench.delegation --models {name}", **stamp()}


def measure(model, input_range: tuple[float, float], runs: int = 100, data=None) -> dict:
    """``model``'s four files (fp32, int8; before, with the XNNPACK forms): delegation, error, p50 side by side.

    ``data``: (calibration, images, labels) to use instead of uniform random inputs; each file's top-1
    accuracy on them is added.
    """
    from lrfc.lower.tflite import export_tflite
    from runtime_bench.delegation import litert_delegation
    from runtime_bench.measure import bench
    from runtime_bench.run import run_tflite

    name = model.name
    low, high = input_range
    rng = np.random.default_rng(0)
    if data is None:
        x = rng.uniform(low, high, (CALIBRATION + EVALUATION, *model.input_shape[1:])).astype(np.float32)
        calibration, evaluation, labels = x[:CALIBRATION], x[CALIBRATION:], None
    else:
        calibration, evaluation, labels = data
    reference = np.asarray(model.predict(evaluation, verbose=0))
    files = {}
    with tempfile.TemporaryDirectory(prefix="lrfc-delegation-") as work:
        paths = {}
        for precision in ("fp32", "int8"):
            for lowering, xnnpack in (("before", False), ("xnnpack forms", True)):
                path = Path(work) / f"{name}.{precision}.{'after' if xnnpack else 'before'}.tflite"
                t = time.perf_counter()
                export_tflite(model, path, precision, representative=calibration, xnnpack=xnnpack)
                out = run_tflite(path, evaluation, threads=2)
                key = f"{precision} {lowering}"
                files[key] = {
                    "precision": precision, "lowering": lowering, "convert_s": round(time.perf_counter() - t, 1),
                    "bytes": path.stat().st_size, "delegation": litert_delegation(path),
                    "error": round(float(np.mean(np.abs(out - reference)) / (np.std(reference) or 1.0)), 5),
                    "top1_agreement": round(float(np.mean(out.argmax(1) == reference.argmax(1))), 4)}
                if labels is not None:
                    files[key]["accuracy"] = round(float(np.mean(out.argmax(1) == labels)), 4)
                paths[key] = path
        timed = bench(list(paths.values()), runtime="litert", threads=2, runs=runs, rounds=min(5, runs), memory=False)
        for key, result in zip(paths, timed["results"]):
            files[key]["p50_ms"] = result["p50_ms"]
    row = {"input": [int(d) for d in model.input_shape[1:]], "input_range": [low, high],
           "params": int(model.count_params()), "files": files, "evaluation_samples": len(evaluation)}
    if labels is not None:
        row["keras_accuracy"] = round(float(np.mean(reference.argmax(1) == labels)), 4)
    return row


def main(argv=None) -> None:
    from lrfc.common.quiet import import_keras

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args(argv)
    names = args.models.split(",")
    if set(names) - set(MODELS):
        raise SystemExit(f"--models: unknown {', '.join(sorted(set(names) - set(MODELS)))}; "
                         f"choose from {', '.join(MODELS)}")
    import_keras()
    for name in names:
        row = measure_model(name, args.runs)
        f = row["files"]
        print(f"{name}: int8 {f['int8 before']['p50_ms']:.3f} -> {f['int8 xnnpack forms']['p50_ms']:.3f} ms, "
              f"fp32 {f['fp32 before']['p50_ms']:.3f} -> {f['fp32 xnnpack forms']['p50_ms']:.3f} ms "
              f"({row['seconds']} s)", flush=True)
        update_json(RESULTS, lambda doc: (put_row(doc.setdefault("runs", {}), name, row), note_machine(doc)))


if __name__ == "__main__":
    main()
