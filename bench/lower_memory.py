"""What lowering and reconstruction cost on one model: the numbers docs/SCALING.md quotes (issue 15).

    python -m bench.lower_memory MODEL.keras [--samples 32]

Lowering: each export's peak resident memory above the loaded model (the
kernel's high-water mark, reset before the call) and its seconds, for the
TFLite converter, for tf2onnx's own ``from_function`` with and without its
per-optimizer graph snapshots (the switch ``lower.onnx`` sets), and for lrfc's
conversion (``lower.onnx_convert``), with whether its file is tf2onnx's. Reconstruction:
every factorizable layer's input on ``--samples`` random inputs, in one
forward pass cut before each layer (``factorize.reconstruct``) against one
prefix pass per layer, with the largest difference between the two.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import numpy as np


def _peak_above(fn, base_mb: float) -> tuple[float, float]:
    from lrfc.common import memory

    memory.release(force=True)
    memory.reset_peak()
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    peak = memory.peak_mb() - base_mb
    memory.release(force=True)
    return peak / 1024, seconds


def _same_graph(a: Path, b: Path) -> bool:
    import onnx
    from onnx import numpy_helper

    def canonical(path: Path):
        graph = onnx.load(str(path)).graph
        weights = sorted((w.shape, w.dtype.str, w.tobytes()) for w in map(numpy_helper.to_array, graph.initializer))
        return [n.op_type for n in graph.node], weights

    return canonical(a) == canonical(b)


def _ort_diff(a: Path, b: Path, model, samples: int) -> float:
    import onnxruntime as ort

    x = np.random.default_rng(1).random((samples, *model.inputs[0].shape[1:])).astype(np.float32)
    outs = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0] for p in (a, b)]
    return float(np.abs(outs[0] - outs[1]).max())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lower_memory")
    parser.add_argument("model")
    parser.add_argument("--samples", type=int, default=32)
    args = parser.parse_args(argv)
    from lrfc.common import memory
    from lrfc.common.quiet import import_keras

    keras = import_keras()
    import tf2onnx.convert  # imported before the first export's clock starts

    from lrfc.factorize import reconstruct as rec
    from lrfc.frontend.graph import layer_nodes
    from lrfc.lower import onnx as lower_onnx
    from lrfc.lower.tflite import export_tflite

    model = keras.models.load_model(args.model)
    memory.release(force=True)
    base = memory.resident_bytes() / 2**20
    weights_mb = 4 * model.count_params() / 2**20
    print(f"{args.model}: {weights_mb:.0f} MB of weights, {base / 1024:.2f} GiB resident once loaded")
    with tempfile.TemporaryDirectory() as work:
        from lrfc.lower import onnx_convert

        def plain(fn, spec, opset):  # tf2onnx's own from_function, as lrfc called it before lower.onnx_convert
            return tf2onnx.convert.from_function(fn, input_signature=(spec,), opset=opset)[0]

        lean, real = onnx_convert.convert, lower_onnx._without_optimizer_snapshots
        files = {}

        def onnx_run(name: str, snapshots: bool, convert):
            files[name] = Path(work) / f"{len(files)}.onnx"
            onnx_convert.convert = convert
            lower_onnx._without_optimizer_snapshots = contextlib.nullcontext if snapshots else real
            try:
                return lower_onnx.export_onnx(model, files[name])
            finally:
                onnx_convert.convert, lower_onnx._without_optimizer_snapshots = lean, real

        # tf2onnx's ways first: the lean conversion fixes a tf2onnx method for the rest of the process
        runs = {"tflite": lambda: export_tflite(model, Path(work) / "m.tflite"),
                "onnx (tf2onnx's default, snapshots)": lambda: onnx_run("snapshots", True, plain),
                "onnx (tf2onnx, no snapshots: lrfc before 2026-12-01)": lambda: onnx_run("plain", False, plain),
                "onnx (lrfc: no snapshots, lower.onnx_convert)": lambda: onnx_run("lean", False, lean)}
        for name, fn in runs.items():
            peak, seconds = _peak_above(fn, base)
            print(f"  {name}: +{peak:.2f} GiB above the loaded model ({1024 * peak / weights_mb:.0f} x weights), "
                  f"{seconds:.1f} s")
        print(f"  lrfc's graph is tf2onnx's (no snapshots): same operators in order and same weights "
              f"{_same_graph(files['lean'], files['plain'])}, byte for byte "
              f"{files['lean'].read_bytes() == files['plain'].read_bytes()} (tf2onnx numbers the names it makes "
              f"per process); largest output difference on {args.samples} random inputs (ONNX Runtime): "
              f"{_ort_diff(files['lean'], files['plain'], model, args.samples):.3g}")
    stops = [model.get_layer(n) for n in layer_nodes(model)
             if isinstance(model.get_layer(n), (keras.layers.Conv2D, keras.layers.Dense))
             and not isinstance(model.get_layer(n), keras.layers.DepthwiseConv2D)]
    x = np.random.default_rng(0).random((args.samples, *model.inputs[0].shape[1:])).astype(np.float32)
    start = time.perf_counter()
    walk = rec._segments(model, stops, len(x))
    walked = list(walk(x)) if walk is not None else None
    one_pass = time.perf_counter() - start
    start = time.perf_counter()
    tapped = [rec._inputs_of(model, s, x) for s in stops]
    per_layer = time.perf_counter() - start
    diff = max(float(np.abs(a - b).max()) for a, b in zip(walked, tapped)) if walked else float("nan")
    print(f"  reconstruction inputs of {len(stops)} layers on {len(x)} samples: one pass {one_pass:.1f} s, "
          f"one prefix pass per layer {per_layer:.1f} s, largest difference {diff:.3g}")


if __name__ == "__main__":
    main()
