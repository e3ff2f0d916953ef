"""keras.applications models on LiteRT: which operators XNNPACK takes, before and after lrfc's XNNPACK forms.

LiteRT runs the operators its XNNPACK delegate leaves out on its reference kernels, splitting the graph; at int8
several common ones are left out (``runtime_bench.delegation``), and an int8 file can run slower than its fp32 twin.
``lower.tflite.export_tflite`` puts them in forms XNNPACK takes (``lower.xnnpack_forms``: a concatenation of more
than five tensors, average pooling; ``lower.delegable_relu``: an int8 ReLU not fused into its producer). This
lowers each model at fp32 and int8 the way lrfc did before them (``xnnpack=False``, what the Edge TPU target still
gets) and with them, and reports per file: operators, XNNPACK parts, what is left out, LiteRT p50 latency (2 threads,
batch 1; the four files of a model timed in one runtime_bench run, alternating) and the outputs against Keras
(mean absolute difference over the Keras logits' standard deviation; top-1 agreement) on 64 inputs the
calibration (32 others) did not see.

Models: keras.applications at ``weights=None`` (seeded; the kernels that run do not depend on the weights' values),
10 logits, no softmax head; inputs uniform over the range each model's own preprocessing expects (0-255 where the
model rescales inside; [-1, 1] otherwise). Results: ``bench/results/delegation.json``.

    python -m bench.delegation [--models xception,nasnetmobile,densenet121,mobilenetv3small,convnexttiny]
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
# name: (keras.applications constructor, input side, input range)
MODELS = {
    "xception": ("Xception", 71, (-1.0, 1.0)),
    "nasnetmobile": ("NASNetMobile", 32, (-1.0, 1.0)),
    "densenet121": ("DenseNet121", 32, (-1.0, 1.0)),
    "mobilenetv3small": ("MobileNetV3Small", 32, (0.0, 255.0)),
    "convnexttiny": ("ConvNeXtTiny", 32, (0.0, 255.0)),
}
CALIBRATION, EVALUATION = 32, 64


def build_model(name: str):
    from lrfc.common.quiet import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(0)
    constructor, side, _ = MODELS[name]
    return getattr(keras.applications, constructor)(weights=None, input_shape=(side, side, 3), classes=10,
                                                    classifier_activation=None)


def outputs_of(path: Path, x: np.ndarray) -> np.ndarray:
    """The file's float outputs on ``x`` (an int8 file's input quantized and its output dequantized)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=2)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    rows = []
    for sample in x:
        feed = sample[None]
        if inp["dtype"] == np.int8:
            scale, zero = inp["quantization"]
            feed = np.clip(np.round(feed / scale + zero), -128, 127).astype(np.int8)
        interp.set_tensor(inp["index"], feed)
        interp.invoke()
        y = interp.get_tensor(out["index"]).astype(np.float32)
        if out["dtype"] == np.int8:
            scale, zero = out["quantization"]
            y = (y - zero) * scale
        rows.append(y[0])
    return np.stack(rows)


def measure_model(name: str, runs: int = 100) -> dict:
    """One results row for a model of ``MODELS``."""
    start = time.perf_counter()
    model = build_model(name)
    row = measure(model, MODELS[name][2], runs)
    return {"model": MODELS[name][0], **row, "seconds": round(time.perf_counter() - start, 1),
            "command": f"python -m bench.delegation --models {name}", **stamp()}


def measure(model, input_range: tuple[float, float], runs: int = 100) -> dict:
    """``model``'s four files (fp32, int8; before, with the XNNPACK forms): delegation, error, p50 side by side."""
    from lrfc.lower.tflite import export_tflite
    from runtime_bench.delegation import litert_delegation
    from runtime_bench.measure import bench

    name = model.name
    low, high = input_range
    rng = np.random.default_rng(0)
    x = rng.uniform(low, high, (CALIBRATION + EVALUATION, *model.input_shape[1:])).astype(np.float32)
    calibration, evaluation = x[:CALIBRATION], x[CALIBRATION:]
    reference = np.asarray(model.predict(evaluation, verbose=0))
    files = {}
    with tempfile.TemporaryDirectory(prefix="lrfc-delegation-") as work:
        paths = {}
        for precision in ("fp32", "int8"):
            for lowering, xnnpack in (("before", False), ("xnnpack forms", True)):
                path = Path(work) / f"{name}.{precision}.{'after' if xnnpack else 'before'}.tflite"
                t = time.perf_counter()
                export_tflite(model, path, precision, representative=calibration, xnnpack=xnnpack)
                out = outputs_of(path, evaluation)
                files[f"{precision} {lowering}"] = {
                    "precision": precision, "lowering": lowering, "convert_s": round(time.perf_counter() - t, 1),
                    "bytes": path.stat().st_size, "delegation": litert_delegation(path),
                    "error": round(float(np.mean(np.abs(out - reference)) / (np.std(reference) or 1.0)), 5),
                    "top1_agreement": round(float(np.mean(out.argmax(1) == reference.argmax(1))), 4)}
                paths[f"{precision} {lowering}"] = path
        timed = bench(list(paths.values()), runtime="litert", threads=2, runs=runs, rounds=min(5, runs), memory=False)
        for key, result in zip(paths, timed["results"]):
            files[key]["p50_ms"] = result["p50_ms"]
    return {"input": [int(d) for d in model.input_shape[1:]], "input_range": [low, high],
            "params": int(model.count_params()), "files": files, "evaluation_samples": EVALUATION}


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
