"""Lower a Keras model to ONNX with tf2onnx; quantize it to int8 with ONNX Runtime.

``tf2onnx.convert.from_function`` on ``model(t, training=False)`` worked on
every model the dependency notes tried (``from_keras`` fails on Sequential
models). The graph is then given stable names: the input ``input``, the
output ``output`` (``output_<i>`` for several), and the batch dimension
``batch`` on the input and the outputs (tf2onnx generates ``unk__NN``);
constants the traced model captured are folded into initializers (tf2onnx
leaves them as unfed inputs: keras.applications EfficientNet's
``Normalization``); Reshapes that keep their input's shape are removed
(``_drop_identity_reshapes``). The
written file passes ``onnx.checker`` with ``full_check`` (shape inference
included) before it is moved into place.

Memory: by default tf2onnx deep-copies the whole graph, weights included,
before each of its dozen ONNX optimizers and each pass over them, so that a
failing optimizer can be skipped; the copies sit in reference cycles until a
full collection. ``python -m bench.lower_memory`` on ResNet50 (90 MB of
weights): +4.18 GiB above the loaded model in 8.1 s that way; without the
copies (tf2onnx's ``TF2ONNX_CATCH_ERRORS`` switch): +3.85 GiB in 7.2 s
(MobileNetV2: +0.70 -> +0.44 GiB). lrfc converts without them, and through
``lower.onnx_convert``, which also keeps tf2onnx's optimizer passes from
copying every weight into each node proto again and frees the frozen
function before grappler runs (the same graph in a fraction of the memory;
numbers there and in ``bench.lower_memory``). If anything fails that way, it converts
once more tf2onnx's default way, so the result is what tf2onnx gives.

int8 is ONNX Runtime static quantization in the QDQ format (QuantizeLinear /
DequantizeLinear pairs around int8 weights, per output channel, and int8
activations calibrated by min/max on samples): the form ORT's CPU kernels and
the TensorRT execution provider both run as int8. Pre-processing runs ORT's
graph optimizer and ONNX shape inference but not symbolic shape inference,
which needs sympy (not a dependency).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

from lrfc.common.atomic import atomic_path

from lrfc.lower.opset import DEFAULT as DEFAULT_OPSET, drop_unused_domains, problem as opset_problem
INPUT_NAME = "input"
OUTPUT_NAME = "output"
BATCH_DIM = "batch"
CALIBRATION_BATCH = 16  # samples per calibration run; the batch axis is dynamic
INT8_SCHEMES = ("u8s8", "symmetric")  # activations uint8 (ONNX Runtime CPU); int8 with zero point 0 (TensorRT)
SMALL_CONSTANT = 64    # initializers up to this many elements (shape vectors) keep their values in shape inference
SNAPSHOT_SWITCH = "TF2ONNX_CATCH_ERRORS"  # set (to anything): tf2onnx's optimizers run without graph snapshots


def export_onnx(model, path: str | Path, opset: int = DEFAULT_OPSET) -> Path:
    """Convert a single-input Keras model to a checked ``.onnx`` file, written atomically.

    Args:
        model: a built Keras 3 model with one input.
        path: the file to write; its directory is created if needed.
        opset: the ONNX opset (``lower.opset``: 13 to 18).

    Returns:
        ``path``.
    """
    if opset_problem(opset):
        raise ValueError(f"opset: {opset_problem(opset)}")
    if len(model.inputs) != 1:
        raise ValueError(f"export_onnx takes a model with one input, received {len(model.inputs)} inputs")
    from lrfc.common.quiet import import_keras, silenced_stderr

    import_keras()
    import onnx
    import tensorflow as tf

    with silenced_stderr():
        import tf2onnx

        from lrfc.lower.onnx_convert import convert as lean_convert
    from lrfc.lower.twin import converter_twin

    model = converter_twin(model)
    inp = model.inputs[0]
    spec = tf.TensorSpec((None, *inp.shape[1:]), inp.dtype, name=INPUT_NAME)
    # autograph off, as Keras traces its own functions: nothing in the lambda to convert (Keras is never converted),
    # and converting it writes a /tmp/__autograph_generated_file*.py that only a clean exit deletes
    fn = tf.function(lambda t: model(t, training=False), autograph=False)
    captured = _captured_constants(fn.get_concrete_function(spec))
    try:
        with _without_optimizer_snapshots():
            proto = lean_convert(fn, spec, opset)
    except Exception:  # e.g. an optimizer failed, which tf2onnx's default skips (from its snapshot): convert that way
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=(spec,), opset=opset)
    _fold_captured_constants(proto.graph, captured)
    _drop_identity_reshapes(proto)
    _fold_scale_and_shift(proto.graph)
    _name_outputs(proto.graph)
    _name_batch_dim(proto.graph)
    drop_unused_domains(proto)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(proto.SerializeToString())
        onnx.checker.check_model(str(tmp), full_check=True)
    return path


_SWITCH_LOCK = threading.Lock()
_switch = {"inside": 0, "user_set": False}  # threads inside the block; whether the variable was set before


@contextlib.contextmanager
def _without_optimizer_snapshots():
    """Inside the block, tf2onnx runs its optimizers on the graph itself, not on a deep copy each.

    The switch is an environment variable tf2onnx reads at each conversion;
    it is set while any thread is inside the block and removed after the
    last one leaves (pricing lowers chains from several threads). A value
    the user set is left alone.
    """
    with _SWITCH_LOCK:
        if _switch["inside"] == 0:
            _switch["user_set"] = SNAPSHOT_SWITCH in os.environ
            os.environ.setdefault(SNAPSHOT_SWITCH, "FALSE")
        _switch["inside"] += 1
    try:
        yield
    finally:
        with _SWITCH_LOCK:
            _switch["inside"] -= 1
            if _switch["inside"] == 0 and not _switch["user_set"]:
                os.environ.pop(SNAPSHOT_SWITCH, None)


def quantize_onnx_int8(fp32_path: str | Path, out_path: str | Path, calibration: np.ndarray,
                       reduce_range: bool = False, scheme: str = "u8s8", ranges: str = "minmax") -> Path:
    """Statically quantize an fp32 ``.onnx`` file to int8 (QDQ, per-channel weights), written atomically.

    Activations are uint8 (per tensor), weights int8 and symmetric per output
    channel (U8S8). ONNX Runtime's CPU provider fused the QDQ residual ``Add``
    into ``QLinearAdd`` only for uint8 activations: with int8 ones (S8S8, the
    quantizer's default) it left the ResNet-style baseline's ``Add`` and the
    convolutions next to them in float between QuantizeLinear/DequantizeLinear
    pairs, and its int8 file ran slower than its fp32 one (0.906 against
    0.478 ms); with U8S8 it runs in 0.299 ms (``python -m bench.speed
    --models resnet --rows latency``, ONNX Runtime 1.32 on the Xeon,
    2026-12-03 01:08 UTC at commit 13d1dcd, and 07:08 UTC). The VGG-style
    model, with no ``Add``, ran the same both ways (0.179 / 0.178 ms,
    ``--models vgg``, 00:16 and 06:44 UTC).
    ``tests/test_lower.py`` checks the graph ONNX Runtime runs: integer from
    the one QuantizeLinear at the input to the one DequantizeLinear at the
    output. That file is built for ONNX Runtime's CPU provider. TensorRT
    builds int8 from Q/DQ only when every zero point is 0 ("TRT only supports
    symmetric quantization"): ``scheme="symmetric"`` quantizes activations to
    int8 with zero point 0 and weights to int8 in [-127, 127], the file for a
    target whose ONNX runtime is TensorRT (``lower.artifacts.onnx_int8_scheme``;
    checked here by reading its zero points, no GPU in this project to run it).

    Args:
        fp32_path: an fp32 model written by ``export_onnx``; left untouched.
        out_path: the file to write; its directory is created if needed.
        calibration: float32 samples shaped like the model input (N, ...);
            every sample is run once to collect activation ranges.
        reduce_range: weights on 7 bits instead of 8 (``lower.artifacts._onnx_int8_on_7_bits``: x86 CPUs
            without VNNI saturate 8-bit products).
        scheme: ``u8s8`` (ONNX Runtime CPU) or ``symmetric`` (TensorRT), one of ``INT8_SCHEMES``.
        ranges: each activation's range: ``"minmax"`` over the samples (the quantizer's own) or
            ``"percentile"`` (``int8_ranges.onnx_overrides``: a percentile of the per-sample extremes).

    Returns:
        ``out_path``.

    Raises:
        ValueError: no calibration samples, or an unknown scheme.
    """
    if scheme not in INT8_SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(INT8_SCHEMES)}, received {scheme!r}")
    if calibration is None or len(calibration) == 0:
        received = "None" if calibration is None else "an empty array"
        raise ValueError(f"int8 quantization needs calibration samples shaped like the model input; received {received}")
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from runtime_bench.run import cast_input

    graph_input = onnx.load(str(fp32_path), load_external_data=False).graph.input[0]
    input_name = graph_input.name
    # a model with a uint8 input (raw pixels) is calibrated on uint8 samples
    samples = cast_input(np.asarray(calibration, dtype=np.float32),
                         onnx.helper.tensor_dtype_to_np_dtype(graph_input.type.tensor_type.elem_type))

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = iter(range(0, len(samples), CALIBRATION_BATCH))

        def get_next(self):
            start = next(self._batches, None)
            return None if start is None else {input_name: samples[start:start + CALIBRATION_BATCH]}

    out_path = Path(out_path)
    with atomic_path(out_path) as tmp, tempfile.TemporaryDirectory(prefix=".quant-", dir=out_path.parent) as work:
        prepared = Path(work) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        symmetric = scheme == "symmetric"
        options = {"ActivationSymmetric": True, "WeightSymmetric": True} if symmetric else {}
        if ranges == "percentile":
            from lrfc.lower.int8_ranges import onnx_overrides

            options["TensorQuantOverrides"] = onnx_overrides(prepared, samples)
        quantize_static(str(prepared), str(tmp), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                        weight_type=QuantType.QInt8, reduce_range=reduce_range, extra_options=options or None)
        quantized = onnx.load(str(tmp), load_external_data=False)
        if drop_unused_domains(quantized):  # the quantizer declares every domain its build knows
            onnx.save(quantized, str(tmp))
        onnx.checker.check_model(str(tmp), full_check=True)
    return out_path


def _captured_constants(concrete) -> dict:
    """``{placeholder name: array}`` for the constant tensors a traced model captured (not its variables).

    Keras keeps some values as plain tensors rather than variables (a
    ``Normalization`` layer's mean and variance, as in keras.applications
    EfficientNet); tf2onnx freezes variables but leaves such captures as
    graph inputs that nothing feeds.
    """
    import tensorflow as tf

    out = {}
    for external, internal in concrete.graph.captures:
        if isinstance(external, tf.Tensor) and external.dtype != tf.resource and hasattr(external, "numpy"):
            out[internal.name] = external.numpy()
    return out


def _fold_captured_constants(graph, captured: dict) -> None:
    """Turn graph inputs that are captured constants into initializers holding their values."""
    from onnx import numpy_helper

    used = {name for node in graph.node for name in node.input}
    for info in list(graph.input):
        if info.name in captured:
            graph.input.remove(info)
            if info.name in used:  # tf2onnx may already have folded the op that read it
                graph.initializer.append(numpy_helper.from_array(captured[info.name], info.name))


def _inferred_shapes(model) -> dict[str, list[int | None]]:
    """Each tensor's inferred shape (``None`` for a dimension not known statically), without copying the weights:
    shape inference runs on a copy in which every initializer of more than ``SMALL_CONSTANT`` elements is a
    graph input of its shape (the small ones, shape vectors among them, keep their values)."""
    from onnx import helper, shape_inference

    graph = model.graph
    small = [t for t in graph.initializer if np.prod(t.dims, dtype=np.int64) <= SMALL_CONSTANT]
    big = [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in graph.initializer
           if np.prod(t.dims, dtype=np.int64) > SMALL_CONSTANT]
    light = helper.make_model(helper.make_graph(graph.node, graph.name, [*graph.input, *big], graph.output, small),
                              opset_imports=model.opset_import, ir_version=model.ir_version)
    try:
        inferred = shape_inference.infer_shapes(light).graph
    except Exception:  # a graph ONNX's inference cannot follow: no shapes, so nothing is dropped (the file is valid)
        return {}
    return {v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
            for v in (*inferred.value_info, *inferred.input, *inferred.output)
            if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape")}


def _drop_identity_reshapes(model) -> int:
    """Remove every Reshape that gives its input the shape it has, alone or with the Transpose that reads it;
    returns how many Reshapes went.

    tf2onnx writes one where a layout transpose of a 1x1 feature map became a
    Reshape (``[N, C, 1, 1] -> [-1, C, 1, 1]``, between two convolutions). It
    computes nothing, and each one stops ONNX Runtime's layout passes at it
    (Transposes around each in the int8 graph it runs, layout reorders in the
    fp32 one): a keras.applications MobileNetV2 at 32x32 input ran faster on
    ONNX Runtime CPU without them, fp32 and int8 (a one-off measurement, in
    the notes). Now and then its optimizer leaves the same round trip as two
    nodes instead, ``Reshape([-1, 1, 1, C])`` then ``Transpose(0, 3, 1, 2)``
    (``tests/test_lower.py`` met it about once in 25 runs): on a tensor with
    one axis other than the batch's longer than 1, any such pair that ends at
    its input's shape moves no value, so both go. The same holds for the pair
    in the other order, ``Transpose(0, 2, 3, 1)`` then ``Reshape([-1, C, 1,
    1])`` (a clean clone's suite met it once, 2026-12-06 07:40 UTC).
    ``tests/test_lower.py`` checks they are gone.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {t.name: t for t in graph.initializer if np.prod(t.dims, dtype=np.int64) <= SMALL_CONSTANT}
    outputs = {o.name for o in graph.output}
    candidates = [n for n in graph.node if n.op_type == "Reshape" and len(n.input) == 2 and n.input[1] in constants
                  and n.output[0] not in outputs]
    if not candidates:
        return 0
    shapes = _inferred_shapes(model)
    readers: dict[str, list] = {}
    for node in graph.node:
        for t in node.input:
            readers.setdefault(t, []).append(node)
    writers = {o: node for node in graph.node for o in node.output}
    dropped, rename = [], {}

    def moves_nothing(shape, target, perm) -> bool:
        """Whether a Reshape to ``target`` and a Transpose by ``perm`` (the batch first) of a tensor of ``shape``
        (known but for the batch) can move no value: one axis other than the batch's longer than 1. Each caller
        checks that its pair ends at the shape it started from."""
        return (bool(shape) and None not in shape[1:] and len(target) == len(shape) and -1 not in target[1:]
                and target[0] in (-1, shape[0]) and sum(d != 1 for d in shape[1:]) <= 1
                and bool(perm) and perm[0] == 0 and sorted(perm) == list(range(len(shape))))

    def perm_of(transpose):
        return next((list(helper.get_attribute_value(a)) for a in transpose.attribute if a.name == "perm"), None)

    for node in candidates:
        target = numpy_helper.to_array(constants[node.input[1]]).tolist()
        before = writers.get(node.input[0])
        if (before is not None and before.op_type == "Transpose" and before not in dropped
                and len(readers.get(before.output[0], [])) == 1 and before.output[0] not in outputs):
            origin = shapes.get(before.input[0])
            if moves_nothing(origin, target, perm_of(before)) and target[1:] == origin[1:]:
                dropped += [before, node]  # Transpose then Reshape back to the Transpose's input shape
                rename[node.output[0]] = rename.get(before.input[0], before.input[0])
                continue
        source = shapes.get(node.input[0])
        if not source or None in source[1:] or target[0] not in (-1, source[0]):
            continue
        if len(source) == len(target) and target[1:] == source[1:]:
            dropped.append(node)
            rename[node.output[0]] = rename.get(node.input[0], node.input[0])
            continue
        after = readers.get(node.output[0], [])
        if len(after) != 1 or after[0].op_type != "Transpose" or after[0].output[0] in outputs:
            continue
        perm = perm_of(after[0])
        if moves_nothing(source, target, perm) and [target[k] for k in perm[1:]] == source[1:]:
            dropped += [node, after[0]]
            rename[after[0].output[0]] = rename.get(node.input[0], node.input[0])
    for node in dropped:
        graph.node.remove(node)
    for node in graph.node:
        node.input[:] = [rename.get(t, t) for t in node.input]
    used = {t for node in graph.node for t in node.input}
    for t in [t for t in graph.initializer if t.name in {n.input[1] for n in dropped if n.op_type == "Reshape"}
              and t.name not in used]:
        graph.initializer.remove(t)
    gone = {o for n in dropped for o in n.output}
    for info in [v for v in graph.value_info if v.name in gone]:
        graph.value_info.remove(info)
    return sum(n.op_type == "Reshape" for n in dropped)


def _fold_scale_and_shift(graph) -> int:
    """Fold a per-channel constant ``Mul`` and ``Add`` that follow a 2-D ``Conv`` into its weights and bias;
    returns how many were folded.

    Keras 3 runs an inference BatchNormalization as a multiply and an add, and tf2onnx folds them into the
    convolution before it only when that convolution has no bias: after a ``Conv2D(use_bias=True)`` (every
    convolution of keras.applications ResNet50, and the last factor of each chain lrfc puts in its place) they
    stayed in the file as two more operators per layer, 47 Mul and 48 Add in ResNet50's quarter-rank plan.
    ONNX Runtime fuses them at load, but the file is what a user opens, counts and hands to other runtimes,
    and the int8 quantizer sees the float ops. Folded only where the Conv's output feeds the one Mul or Add
    alone and the constant is one value per output channel (shape ``[1, C, 1, 1]``, ``[C, 1, 1]`` or a
    scalar): then ``w * s`` and ``b * s + t`` are the same function.
    """
    from onnx import numpy_helper

    inits = {t.name: t for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    folded, changed, replaced = 0, True, set()
    while changed:
        changed = False
        readers: dict[str, list] = {}
        for node in graph.node:
            for name in node.input:
                readers.setdefault(name, []).append(node)
        for conv in graph.node:
            if conv.op_type != "Conv" or conv.input[1] not in inits or len(inits[conv.input[1]].dims) != 4:
                continue
            if len(conv.input) > 2 and conv.input[2] and conv.input[2] not in inits:
                continue
            after = readers.get(conv.output[0], [])
            if len(after) != 1 or conv.output[0] in outputs or after[0].op_type not in ("Mul", "Add"):
                continue
            op = after[0]
            other = [name for name in op.input if name != conv.output[0]]
            weight = numpy_helper.to_array(inits[conv.input[1]])
            if len(op.input) != 2 or len(other) != 1 or other[0] not in inits:
                continue
            per_channel = _per_channel(numpy_helper.to_array(inits[other[0]]), weight.shape[0])
            if per_channel is None or per_channel.dtype != weight.dtype:
                continue
            bias = (numpy_helper.to_array(inits[conv.input[2]]) if len(conv.input) > 2 and conv.input[2]
                    else np.zeros(weight.shape[0], weight.dtype))
            if op.op_type == "Mul":
                weight, bias = weight * per_channel[:, None, None, None], bias * per_channel
            else:
                bias = bias + per_channel
            for name, value, slot in ((conv.name + "_folded_w", weight, 1), (conv.name + "_folded_b", bias, 2)):
                graph.initializer.append(numpy_helper.from_array(value.astype(weight.dtype), _fresh(name, inits)))
                inits[graph.initializer[-1].name] = graph.initializer[-1]
                while len(conv.input) <= slot:
                    conv.input.append("")
                replaced.add(conv.input[slot])
                conv.input[slot] = graph.initializer[-1].name
            conv.output[0] = op.output[0]  # the Conv now writes what the Mul or Add wrote
            graph.node.remove(op)
            replaced.add(other[0])
            folded += 1
            changed = True
            break
    used = {name for node in graph.node for name in node.input} | outputs
    for tensor in [t for t in graph.initializer if t.name in replaced and t.name not in used]:
        graph.initializer.remove(tensor)  # only what this pass replaced: other initializers are not its business
    if folded:
        produced = {name for node in graph.node for name in node.output}
        for info in [v for v in graph.value_info if v.name not in produced]:
            graph.value_info.remove(info)
    return folded


def _per_channel(value: np.ndarray, channels: int) -> np.ndarray | None:
    """``value`` as one number per output channel of an NCHW map, or None when it broadcasts otherwise."""
    if value.ndim > 4 or value.size not in (1, channels):
        return None
    full = value.reshape((1,) * (4 - value.ndim) + value.shape)
    if full.shape[0] != 1 or full.shape[2:] != (1, 1):
        return None
    return np.broadcast_to(full.reshape(-1), (channels,)).copy()


def _fresh(name: str, taken) -> str:
    """``name``, or ``name`` with a number, not in ``taken``."""
    candidate, i = name, 1
    while candidate in taken:
        candidate, i = f"{name}_{i}", i + 1
    return candidate


def _name_outputs(graph) -> None:
    """Rename the graph outputs to ``output`` (``output_<i>`` for several), with every reference to them.

    A name already used by another tensor is left alone: renaming would merge
    two tensors.
    """
    olds = [o.name for o in graph.output]
    news = [OUTPUT_NAME] if len(olds) == 1 else [f"{OUTPUT_NAME}_{i}" for i in range(len(olds))]
    taken = {t for node in graph.node for t in (*node.input, *node.output)}
    taken |= {t.name for t in (*graph.input, *graph.initializer, *graph.value_info)}
    mapping = {old: new for old, new in zip(olds, news) if old != new and new not in taken}
    if not mapping:
        return
    for node in graph.node:
        node.input[:] = [mapping.get(t, t) for t in node.input]
        node.output[:] = [mapping.get(t, t) for t in node.output]
    for info in (*graph.output, *graph.value_info):
        info.name = mapping.get(info.name, info.name)


def _name_batch_dim(graph) -> None:
    """Call the leading dimension ``batch`` on the input and outputs, and wherever its generated name appears."""
    generated = {info.type.tensor_type.shape.dim[0].dim_param
                 for info in (*graph.input, *graph.output) if info.type.tensor_type.shape.dim}
    generated.discard("")
    for info in (*graph.input, *graph.output, *graph.value_info):
        for dim in info.type.tensor_type.shape.dim:
            if dim.dim_param in generated:
                dim.dim_param = BATCH_DIM
