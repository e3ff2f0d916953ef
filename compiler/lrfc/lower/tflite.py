"""Lower a Keras model to a TFLite (LiteRT) flatbuffer.

Uses ``tf.lite.TFLiteConverter.from_keras_model``, the path the dependency
notes found reliable (``from_concrete_functions`` on a wrapped Keras 3 model
gave NaNs). Only builtin ops are allowed (the converter's default), so a model
that would need Flex/select TF ops fails here instead of on the device.

Precisions: ``fp32`` as trained; ``fp16`` float16 weights (float32 compute
on CPUs, half on GPU delegates); ``int8`` full-integer quantization
calibrated on a representative dataset, with int8 input and output tensors
and only int8 builtin kernels allowed, so the file runs on integer-only
accelerators (Coral Edge TPU, after ``edgetpu_compiler``). A model with an op
that has no int8 kernel fails the conversion instead of falling back to float.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from lrfc.common.atomic import atomic_path

PRECISIONS = ("fp32", "fp16", "int8")
REPRESENTATIVE_BATCH = 1  # samples per calibration step: single samples, the form every TF release accepts


@contextlib.contextmanager
def _captured_output(replay: bool = True):
    """Capture fds 1 and 2 and Python's sys.stdout/sys.stderr inside the block; replay them if it raises.

    ``replay=False`` drops them even then, for callers whose exception says it all.

    The converter prints artifact lists (Python, stdout) and MLIR/absl lines
    (C++, stderr) on every call; LiteRT logs its delegate. They only matter
    when the call fails. Python's streams are redirected too because they are
    not always fds 1 and 2 (pytest's capture, a caller's redirect_stdout).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    text = io.StringIO()
    with tempfile.TemporaryFile(mode="w+b") as log:
        try:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
                yield
        except BaseException:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            if replay:
                log.seek(0)
                sys.stderr.write(log.read().decode(errors="replace") + text.getvalue())
            raise
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def export_tflite(model, path: str | Path, precision: str = "fp32", representative=None) -> Path:
    """Convert ``model`` to a ``.tflite`` file, written atomically.

    Args:
        model: a built Keras 3 model.
        path: the file to write; its directory is created if needed.
        precision: ``"fp32"`` (as trained), ``"fp16"`` (float16 weights,
            float32 inputs and outputs) or ``"int8"`` (full-integer: int8
            weights, activations, input and output).
        representative: for ``"int8"`` only and required there: float32
            samples already shaped like the model input (N, ...); every
            sample is fed once to calibrate the activation ranges.

    Returns:
        ``path``.

    Raises:
        ValueError: an unknown precision, or int8 without samples.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, received {precision!r}")
    if precision == "int8" and (representative is None or len(representative) == 0):
        received = "None" if representative is None else "an empty array"
        raise ValueError("int8 needs representative samples shaped like the model input (calibration data); "
                         f"received 'int8' with representative={received}")
    from lrfc.common.quiet import import_keras

    import_keras()
    import tensorflow as tf

    from lrfc.lower.static_shapes import with_static_shapes

    converter = tf.lite.TFLiteConverter.from_keras_model(with_static_shapes(model))
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        samples = np.asarray(representative, dtype=np.float32)

        def dataset():
            for i in range(0, len(samples), REPRESENTATIVE_BATCH):
                yield [samples[i:i + REPRESENTATIVE_BATCH]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    with _captured_output(), warnings.catch_warnings():
        # int8 I/O: the input's scale and zero point come from the representative data, as intended
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        flatbuffer = converter.convert()
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(flatbuffer)
    return path
