"""Run an exported model on a batch in LiteRT or ONNX Runtime.

Imports only numpy and the runtime it is asked for (each inside its
function), so it works on a device that has one runtime and no TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def run_tflite(path: str | Path, x: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Outputs of a ``.tflite`` model's first output for the batch ``x``.

    The input is resized to the batch; a model that refuses the resize is
    run one sample at a time and the outputs are stacked.

    Args:
        path: the ``.tflite`` file.
        x: the batch, leading axis = samples; cast to the model's input dtype.
        threads: interpreter threads (None: the runtime's default).
    """
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=threads)
    inp = interp.get_input_details()[0]
    x = np.asarray(x, dtype=inp["dtype"])
    try:
        interp.resize_tensor_input(inp["index"], list(x.shape), strict=False)
        interp.allocate_tensors()
        return _invoke(interp, x)
    except (RuntimeError, ValueError):
        interp = Interpreter(model_path=str(path), num_threads=threads)
        interp.allocate_tensors()
        return np.concatenate([_invoke(interp, x[i:i + 1]) for i in range(len(x))])


def _invoke(interp, x: np.ndarray) -> np.ndarray:
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"]).copy()


def run_onnx(path: str | Path, x: np.ndarray, providers: list[str] | None = None) -> np.ndarray:
    """Outputs of an ``.onnx`` model's first output for the batch ``x`` (cast to float32).

    Args:
        path: the ``.onnx`` file.
        x: the batch, leading axis = samples.
        providers: ONNX Runtime execution providers (default: CPU).
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=providers or ["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: np.asarray(x, dtype=np.float32)})[0]
