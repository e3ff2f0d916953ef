"""Lower a Keras model to ONNX with tf2onnx.

``tf2onnx.convert.from_function`` on ``model(t, training=False)`` worked on
every model the dependency notes tried (``from_keras`` fails on Sequential
models). The input is named ``input`` with a dynamic batch dimension; the
written file passes ``onnx.checker`` with ``full_check`` (shape inference
included) before it is moved into place.
"""

from __future__ import annotations

from pathlib import Path

from lrfc.atomic import atomic_path

MAX_OPSET = 18  # tf2onnx 1.17 refuses newer opsets


def export_onnx(model, path: str | Path, opset: int = 17) -> Path:
    """Convert a single-input Keras model to a checked ``.onnx`` file, written atomically.

    Args:
        model: a built Keras 3 model with one input.
        path: the file to write; its directory is created if needed.
        opset: the ONNX opset, at most ``MAX_OPSET``.

    Returns:
        ``path``.
    """
    if not 7 <= opset <= MAX_OPSET:
        raise ValueError(f"opset must be in 7..{MAX_OPSET} (the range tf2onnx 1.17 converts to), received {opset}")
    if len(model.inputs) != 1:
        raise ValueError(f"export_onnx takes a model with one input, received {len(model.inputs)} inputs")
    from lrfc.quiet import import_keras, silenced_stderr

    import_keras()
    import onnx
    import tensorflow as tf

    with silenced_stderr():
        import tf2onnx

    inp = model.inputs[0]
    spec = tf.TensorSpec((None, *inp.shape[1:]), inp.dtype, name="input")
    fn = tf.function(lambda t: model(t, training=False))
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=(spec,), opset=opset)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(proto.SerializeToString())
        onnx.checker.check_model(str(tmp), full_check=True)
    return path
