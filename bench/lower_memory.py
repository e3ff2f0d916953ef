"""What lowering and reconstruction cost on one model: the numbers docs/SCALING.md quotes (issue 15).

    python -m bench.lower_memory MODEL.keras [--samples 32]

Lowering: each export's peak resident memory above the loaded model (the
kernel's high-water mark, reset before the call) and its seconds, for the
TFLite converter and for tf2onnx with and without its per-optimizer graph
snapshots (``lower.onnx``'s switch off: tf2onnx's default). Reconstruction:
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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lower_memory")
    parser.add_argument("model")
    parser.add_argument("--samples", type=int, default=32)
    args = parser.parse_args(argv)
    from lrfc.common import memory
    from lrfc.common.quiet import import_keras

    keras = import_keras()
    import tf2onnx.convert  # noqa: F401  (imported before the first export's clock starts)

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
        runs = {"tflite": lambda: export_tflite(model, Path(work) / "m.tflite"),
                "onnx (lrfc: no snapshots)": lambda: lower_onnx.export_onnx(model, Path(work) / "m.onnx")}
        real = lower_onnx._without_optimizer_snapshots
        for name, fn in runs.items():
            peak, seconds = _peak_above(fn, base)
            print(f"  {name}: +{peak:.2f} GiB above the loaded model ({1024 * peak / weights_mb:.0f} x weights), "
                  f"{seconds:.1f} s")
        lower_onnx._without_optimizer_snapshots = contextlib.nullcontext  # tf2onnx's default
        try:
            peak, seconds = _peak_above(lambda: lower_onnx.export_onnx(model, Path(work) / "d.onnx"), base)
        finally:
            lower_onnx._without_optimizer_snapshots = real
        print(f"  onnx (tf2onnx's default, snapshots): +{peak:.2f} GiB ({1024 * peak / weights_mb:.0f} x weights), "
              f"{seconds:.1f} s")
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
