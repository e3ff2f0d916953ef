"""Lower a Keras model to a TFLite (LiteRT) flatbuffer.

Two ways in, the same model out (measured once, 2026-12-02: the same
operators, signature and outputs, equal to the bit, at fp32, fp16 and int8
on the demo, VGG-style and golden tiny models; the same operators and the
same largest difference from Keras at fp32 on ResNet50 at 64x64, original
and factorized; only the tensors' own names differ):

* **a frozen graph** (``from_concrete_functions`` on the model traced in
  inference mode, its variables frozen to constants first: unfrozen, the
  dependency notes saw NaNs) for models whose weights are at most
  ``FROZEN_GRAPH_MAX_BYTES``. It skips the SavedModel that
  ``from_keras_model`` writes, re-reads and restores, whose cost grows with
  the layer count: a factorized ResNet50 at 64x64 (1.7 MiB of weights, ~170
  layers) converted in 4.9 s against 15.6, the demo model in 0.2 against
  0.8. The converter then writes no SignatureDef, so ``serving_default`` is
  added to the flatbuffer as ``from_keras_model`` names it (the Keras input
  names; ``output_0``...): LiteRT's signature runner finds what it would
  have.
* **``tf.lite.TFLiteConverter.from_keras_model``** (through a SavedModel) for
  bigger models: the frozen graph peaks about 25 times the weights above the
  loaded model, against about 11 here (ResNet50's 94 MB: +2.27 against +1.06
  GiB, 8.9 against 13.4 s), and ``frontend.memory_plan`` budgets the lower
  stage at 17 times (plus 192 MiB, which small models stay far inside either
  way: the VGG-style baseline, 3.4 MiB of weights, +11 MiB frozen against
  +21, after a first conversion); and for any model whose graph will not
  freeze or whose frozen graph fails to convert (the SavedModel way is then
  tried as well).

Only builtin ops are allowed (the converter's default), so a model that would
need Flex/select TF ops fails here instead of on the device.

Precisions: ``fp32`` as trained; ``fp16`` float16 weights (float32 compute
on CPUs, half on GPU delegates); ``int8`` full-integer quantization
calibrated on a representative dataset (each activation's range its min and
max there, or with ``ranges="percentile"`` a percentile of the per-sample
extremes: ``int8_ranges``), with int8 input and output tensors
and only int8 builtin kernels allowed, so the file runs on integer-only
accelerators (Coral Edge TPU, after ``edgetpu_compiler``). A model with an op
that has no int8 kernel fails the conversion instead of falling back to float
(the converter may still keep an operator in float between a DEQUANTIZE and a
QUANTIZE, as the ``NEG`` of a ``LayerNormalization``: ``lrfc inspect`` lists
them). An int8 ``RELU`` left unfused and a ``HARD_SWISH``, which LiteRT's
XNNPACK delegate leaves out, are then rewritten as operators it takes
(``xnnpack_int8``).
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
RANGES = ("minmax", "percentile")  # int8 activation ranges (int8_ranges)
FROZEN_GRAPH_MAX_BYTES = 16 * 2**20  # the frozen graph's extra ~25x stays under memory_plan's 17x + 192 MiB
SERVING = "serving_default"
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


def export_tflite(model, path: str | Path, precision: str = "fp32", representative=None, xnnpack: bool = True,
                  ranges: str = "minmax") -> Path:
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
        xnnpack: lower into operators LiteRT's XNNPACK delegate takes where
            it would leave one out (``twin.TFLITE_REWRITES``; at int8
            ``TFLITE_INT8_REWRITES`` and ``xnnpack_int8``); False for a
            device with other kernels (the Edge TPU).
        ranges: at int8, each activation's range from the representative
            samples: ``"minmax"`` (the converter's own) or ``"percentile"``
            (``int8_ranges``: a percentile of the per-sample extremes, so
            one outlier sample does not set the step for all).

    Returns:
        ``path``.

    Raises:
        ValueError: an unknown precision, or int8 without samples.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, received {precision!r}")
    if ranges not in RANGES:
        raise ValueError(f"ranges must be one of {', '.join(RANGES)}, received {ranges!r}")
    if precision == "int8" and (representative is None or len(representative) == 0):
        received = "None" if representative is None else "an empty array"
        raise ValueError("int8 needs representative samples shaped like the model input (calibration data); "
                         f"received 'int8' with representative={received}")
    from lrfc.common.quiet import import_keras

    import_keras()
    import tensorflow as tf

    from lrfc.lower.twin import REWRITES, TFLITE_INT8_REWRITES, TFLITE_REWRITES, converter_twin

    twin = converter_twin(model, REWRITES if not xnnpack else
                          TFLITE_INT8_REWRITES if precision == "int8" else TFLITE_REWRITES)
    if representative is not None:  # a model with a uint8 input (raw pixels) is calibrated on uint8 samples
        from runtime_bench.run import cast_input

        representative = cast_input(np.asarray(representative, dtype=np.float32), np.dtype(twin.inputs[0].dtype))
    flatbuffer = None
    if weight_bytes(twin) <= FROZEN_GRAPH_MAX_BYTES:
        try:
            frozen = _frozen_inference_function(tf, twin)
            flatbuffer = _convert(tf.lite.TFLiteConverter.from_concrete_functions([frozen]), tf, precision,
                                  representative, replay=False, ranges=ranges)
            flatbuffer = with_serving_signature(flatbuffer, [t.name for t in twin.inputs], len(twin.outputs))
        except Exception:  # noqa: BLE001 - a graph that will not freeze or convert frozen goes the SavedModel way
            flatbuffer = None
    if flatbuffer is None:
        flatbuffer = _convert(tf.lite.TFLiteConverter.from_keras_model(twin), tf, precision, representative,
                              ranges=ranges)
    if precision == "int8" and xnnpack:  # operators XNNPACK would leave out, as ones it takes (the gate judges)
        from lrfc.lower.xnnpack_int8 import xnnpack_int8

        flatbuffer, _ = xnnpack_int8(flatbuffer)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(flatbuffer)
    return path


def weight_bytes(model) -> int:
    """The bytes of ``model``'s variables, trainable or not."""
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.weights)


def _frozen_inference_function(tf, model):
    """``model`` traced in inference mode for its Keras input signature, its variables frozen to constants."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec(model.inputs[0].shape, model.inputs[0].dtype, name=model.inputs[0].name)
    traced = tf.function(lambda x: model(x, training=False), input_signature=[spec], autograph=False)  # as export_onnx
    return convert_variables_to_constants_v2(traced.get_concrete_function())


def _convert(converter, tf, precision: str, representative, replay: bool = True, ranges: str = "minmax") -> bytes:
    """``converter``'s flatbuffer at ``precision``; its log is replayed on failure if ``replay``.

    With ``ranges="percentile"`` the converter calibrates only, and ``int8_ranges`` narrows the ranges and quantizes.
    """
    percentile = precision == "int8" and ranges == "percentile"
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        samples = np.asarray(representative)

        def dataset():
            for i in range(0, len(samples), REPRESENTATIVE_BATCH):
                yield [samples[i:i + REPRESENTATIVE_BATCH]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        converter._experimental_calibrate_only = percentile  # noqa: SLF001 - the converter's own two-step path
    with _captured_output(replay), warnings.catch_warnings():
        # int8 I/O: the input's scale and zero point come from the representative data, as intended
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        flatbuffer = converter.convert()
        if percentile:
            from lrfc.lower.int8_ranges import quantized_int8, with_percentile_ranges

            flatbuffer = quantized_int8(with_percentile_ranges(flatbuffer, samples))
        return flatbuffer


def with_serving_signature(flatbuffer: bytes, input_names, n_outputs: int) -> bytes:
    """``flatbuffer`` with a ``serving_default`` SignatureDef over its one subgraph's inputs and outputs.

    Inputs are named ``input_names`` (the Keras inputs' names), outputs
    ``output_0``, ``output_1``...: what ``from_keras_model`` writes. A file
    that already has a SignatureDef is returned as it is.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    if model.signatureDefs or len(model.subgraphs) != 1:
        return flatbuffer
    graph = model.subgraphs[0]
    if len(graph.inputs) != len(input_names) or len(graph.outputs) != n_outputs:
        return flatbuffer

    def tensor_map(name: str, index: int):
        entry = schema.TensorMapT()
        entry.name, entry.tensorIndex = name, int(index)
        return entry

    signature = schema.SignatureDefT()
    signature.signatureKey, signature.subgraphIndex = SERVING, 0
    signature.inputs = [tensor_map(n, i) for n, i in zip(input_names, graph.inputs)]
    signature.outputs = [tensor_map(f"output_{k}", i) for k, i in enumerate(graph.outputs)]
    model.signatureDefs = [signature]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
