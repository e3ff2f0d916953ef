"""Run an exported model on a batch in LiteRT or ONNX Runtime.

Imports only numpy and the runtime it is asked for (each inside its
function), so it works on a device that has one runtime and no TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def run_tflite(path: str | Path, x, threads: int | None = None, chunk: int | None = None) -> np.ndarray:
    """Outputs of a ``.tflite`` model's first output for the batch ``x``, as float32 when quantized.

    The input is resized to the batch; a model that refuses the resize is
    run one sample at a time and the outputs are stacked. A fully-integer
    model (int8/uint8 input with a scale and zero point, as the Edge TPU
    needs) takes float samples: they are quantized with the input tensor's
    parameters, and quantized outputs are dequantized, so callers compare
    float outputs whatever the model's I/O types.

    Args:
        path: the ``.tflite`` file.
        x: the batch, leading axis = samples (anything that slices and has a
            length); float data is quantized for a quantized input, anything
            else is cast to the input dtype.
        threads: interpreter threads (None: the runtime's default).
        chunk: at most this many samples per invoke (None: all at once); the
            model is loaded once for all of them.
    """
    from ai_edge_litert.interpreter import Interpreter

    def load():
        return Interpreter(model_path=str(path), num_threads=threads)

    interp = load()
    inp = interp.get_input_details()[0]
    outs, shape, resizable = [], None, True
    for batch in _chunks(x, chunk):
        batch = _to_input(batch, inp)
        if resizable:
            try:
                if batch.shape != shape:
                    interp.resize_tensor_input(inp["index"], list(batch.shape), strict=False)
                    interp.allocate_tensors()
                    shape = batch.shape
                outs.append(_invoke(interp, batch))
                continue
            except (RuntimeError, ValueError):
                resizable, interp = False, load()
                interp.allocate_tensors()
        outs.append(np.concatenate([_invoke(interp, batch[i:i + 1]) for i in range(len(batch))]))
    return np.concatenate(outs)


def _chunks(x, chunk: int | None):
    """``x`` in slices of at most ``chunk`` samples (all of it when None), each as an array; ValueError when empty."""
    n = len(x)
    if not n:
        raise ValueError("no samples to run")
    step = chunk or n
    for start in range(0, n, step):
        yield np.asarray(x[start:start + step])


def _quantization(details: dict) -> tuple[float, int] | None:
    """(scale, zero_point) of an integer tensor quantized per tensor, else None."""
    scale, zero_point = details.get("quantization", (0.0, 0))
    if np.issubdtype(details["dtype"], np.integer) and scale:
        return float(scale), int(zero_point)
    return None


def _to_input(x: np.ndarray, details: dict) -> np.ndarray:
    """Quantize float samples for a quantized input (round, clip to the dtype); cast otherwise."""
    dtype = np.dtype(details["dtype"])
    quant = _quantization(details)
    if quant is None or not np.issubdtype(x.dtype, np.floating):
        return cast_input(x, dtype)
    scale, zero_point = quant
    info = np.iinfo(dtype)
    q = np.round(x.astype(np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def _invoke(interp, x: np.ndarray) -> np.ndarray:
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    out = interp.get_output_details()[0]
    y = interp.get_tensor(out["index"]).copy()
    quant = _quantization(out)
    if quant is None:
        return y
    scale, zero_point = quant
    return ((y.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)).astype(np.float32)


def run_onnx(path: str | Path, x, providers: list[str] | None = None, chunk: int | None = None) -> np.ndarray:
    """Outputs of an ``.onnx`` model's first output for the batch ``x``, cast to the input's type (``cast_input``).

    Args:
        path: the ``.onnx`` file.
        x: the batch, leading axis = samples (anything that slices and has a length).
        providers: ONNX Runtime execution providers (default: CPU).
        chunk: at most this many samples per run (None: all at once); one session for all of them.
    """
    import onnxruntime as ort

    from runtime_bench.runners import ORT_DTYPES

    session = ort.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    dtype = np.dtype(ORT_DTYPES.get(inp.type, "float32"))  # a model with a uint8 input takes uint8 pixels
    return np.concatenate([session.run(None, {inp.name: cast_input(batch, dtype)})[0] for batch in _chunks(x, chunk)])


def cast_input(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``x`` as ``dtype``; float data going to an integer input is rounded and clipped to its range first."""
    if dtype.kind in "iu" and x.dtype.kind == "f":
        info = np.iinfo(dtype)
        x = np.clip(np.round(x), info.min, info.max)
    return x.astype(dtype, copy=False)
