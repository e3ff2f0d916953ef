"""Lower a Keras model to a TFLite (LiteRT) flatbuffer.

Uses ``tf.lite.TFLiteConverter.from_keras_model``, the path the dependency
notes found reliable (``from_concrete_functions`` on a wrapped Keras 3 model
gave NaNs). Only builtin ops are allowed (the converter's default), so a model
that would need Flex/select TF ops fails here instead of on the device.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

from lrfc.atomic import atomic_path

PRECISIONS = ("fp32", "fp16")


@contextlib.contextmanager
def _captured_output():
    """Send fds 1 and 2 to a temporary file inside the block; replay it if the block raises.

    The converter prints artifact lists (stdout) and MLIR/absl lines (stderr,
    from C++) on every call; they only matter when the conversion fails.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as log:
        try:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            yield
        except BaseException:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def export_tflite(model, path: str | Path, precision: str = "fp32") -> Path:
    """Convert ``model`` to a ``.tflite`` file, written atomically.

    Args:
        model: a built Keras 3 model.
        path: the file to write; its directory is created if needed.
        precision: ``"fp32"`` (as trained) or ``"fp16"`` (float16 weights,
            float32 inputs and outputs).

    Returns:
        ``path``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} (int8 is not supported yet), "
                         f"received {precision!r}")
    from lrfc.quiet import import_keras

    import_keras()
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    with _captured_output():
        flatbuffer = converter.convert()
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(flatbuffer)
    return path
