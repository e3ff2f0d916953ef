"""int8 operators LiteRT's XNNPACK delegate leaves out, rewritten in the flatbuffer as ones it takes.

An operator XNNPACK does not take runs on LiteRT's reference kernel and
splits the delegated graph there (``runtime_bench.delegation``). At int8,
in this LiteRT (2026-12-05), it leaves out two that vision models are full
of, and each has a form it takes:

* **RELU not fused into its producer.** The converter fuses a ReLU into
  the operator that produces its input (``CONV_2D``, ``ADD``, ...) unless
  that input feeds another layer too, as after a residual ``Add`` whose sum
  is also the next block's shortcut (Xception's and NASNet's blocks start
  ``relu(x)`` beside ``x``). ``relus_as_leaky`` makes each a
  ``LEAKY_RELU``, exactly: a ReLU's output range starts at 0, so its int8
  output has zero point -128, the lowest int8 value; every negative value a
  ``LEAKY_RELU`` computes (any slope > 0) is clamped to -128, which is 0.0,
  and a non-negative input is requantized by the same multiplier (the
  input's scale over the output's) in both kernels. Only a RELU whose output
  has zero point -128 is rewritten; the slope makes its own multiplier
  (slope x input scale / output scale) 1/2, inside what XNNPACK accepts.
  Measured: the same integers from LiteRT's reference kernels before and
  after on keras.applications Xception and NASNetMobile; Xception's int8
  file at 71x71 in 1.9 instead of 4.6 ms (12 XNNPACK parts to 1).
* **HARD_SWISH** (MobileNetV3: 19 of them; its int8 file at 224x224 ran
  4.1-4.9x slower than its fp32 one). ``hard_swish_as_add_mul`` writes
  ``x * relu6(x + 3) / 6`` as ``ADD`` (with the constant 3, its output
  fused to RELU6 on the grid [0, 6] / 255: the int8 range is the clamp),
  ``MUL`` by ``x`` (its output on six times the HARD_SWISH output's grid,
  the same zero point) and ``MUL`` by the constant 1/6 (back to the
  output's own scale and zero point, one integer for one), where its
  input's scale lets XNNPACK take that ADD (``ADD_SCALE_RATIO``; an
  untrained MobileNetV3's vanishing activations do not). Not exact: the
  hard sigmoid ``relu6(x + 3)`` is rounded to 256 levels before the
  product, where the HARD_SWISH kernel keeps more bits; the verification
  gate judges the file as it judges every int8 file.

Each rewrite keeps the operator's input and output tensors, so every other
operator reads what it read.
"""

from __future__ import annotations

import numpy as np

SLOPE_MULTIPLIER = 0.5  # slope x input scale / output scale: anything > 0 gives the same output
HARD_SIGMOID_SCALE = 6.0 / 255.0  # relu6(x + 3) on the int8 grid: [0, 6] over 256 levels, zero point -128
# XNNPACK leaves out an int8 ADD whose input's scale over its output's is outside [2^-10, 2^8) (measured on the
# ADD a HARD_SWISH becomes, its input's range scaled from 1e-4 to 1e3 times: taken from 2^-8.9 to 2^6.8, left out
# from 2^8.4 up and below 2^-10): a HARD_SWISH whose input's scale would put its ADD outside is kept.
ADD_SCALE_RATIO = (2.0 ** -10, 2.0 ** 8)


def xnnpack_int8(flatbuffer: bytes) -> tuple[bytes, dict[str, int]]:
    """``flatbuffer`` with both rewrites applied; how many operators each rewrote (by operator name)."""
    from tensorflow.lite.python import schema_py_generated as schema

    head = schema.Model.GetRootAs(flatbuffer, 0)  # the operator codes alone, read in place: most files have neither
    codes = {max(head.OperatorCodes(i).BuiltinCode(), head.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(head.OperatorCodesLength())}
    counts = {}
    if schema.BuiltinOperator.RELU in codes:
        flatbuffer, counts["RELU"] = relus_as_leaky(flatbuffer)
    if schema.BuiltinOperator.HARD_SWISH in codes:
        flatbuffer, counts["HARD_SWISH"] = hard_swish_as_add_mul(flatbuffer)
    return flatbuffer, {k: n for k, n in counts.items() if n}


def relus_as_leaky(flatbuffer: bytes) -> tuple[bytes, int]:
    """``flatbuffer`` with each int8 ``RELU`` (output zero point -128) as a ``LEAKY_RELU``; and how many."""
    schema, model, codes = _read(flatbuffer)
    op = schema.BuiltinOperator
    if op.RELU not in codes:
        return flatbuffer, 0
    leaky, changed = None, 0
    for graph in model.subgraphs:
        for node in graph.operators:
            if codes[node.opcodeIndex] != op.RELU:
                continue
            q_in, q_out = (_per_tensor(graph.tensors[node.inputs[0]], schema),
                           _per_tensor(graph.tensors[node.outputs[0]], schema))
            if q_in is None or q_out is None or q_out[1] != -128 or q_in[0] <= 0:
                continue
            if leaky is None:
                leaky = _opcode(model, codes, op.LEAKY_RELU, schema)
            options = schema.LeakyReluOptionsT()
            options.alpha = SLOPE_MULTIPLIER * q_out[0] / q_in[0]
            node.opcodeIndex, node.builtinOptionsType = leaky, schema.BuiltinOptions.LeakyReluOptions
            node.builtinOptions = options
            changed += 1
    return (_write(model), changed) if changed else (flatbuffer, 0)


def hard_swish_as_add_mul(flatbuffer: bytes) -> tuple[bytes, int]:
    """``flatbuffer`` with each int8 ``HARD_SWISH`` as ADD(+3, RELU6), MUL(x, .), MUL(., 1/6); and how many."""
    schema, model, codes = _read(flatbuffer)
    op = schema.BuiltinOperator
    if op.HARD_SWISH not in codes:
        return flatbuffer, 0
    changed = 0
    for graph in model.subgraphs:
        rewritten = []
        for node in graph.operators:
            if codes[node.opcodeIndex] != op.HARD_SWISH:
                rewritten.append(node)
                continue
            x, y = graph.tensors[node.inputs[0]], graph.tensors[node.outputs[0]]
            q_x, q_y = _per_tensor(x, schema), _per_tensor(y, schema)
            if q_x is None or q_y is None or not ADD_SCALE_RATIO[0] <= q_x[0] / HARD_SIGMOID_SCALE < ADD_SCALE_RATIO[1]:
                rewritten.append(node)
                continue
            add, mul = _opcode(model, codes, op.ADD, schema), _opcode(model, codes, op.MUL, schema)
            name = y.name.decode() if isinstance(y.name, bytes) else (y.name or "hard_swish")
            three = _constant(model, graph, schema, f"{name}/three", 3.0)
            sixth = _constant(model, graph, schema, f"{name}/sixth", 1.0 / 6.0)
            sigmoid = _tensor(graph, schema, f"{name}/relu6_x_plus_3", x, HARD_SIGMOID_SCALE, -128)
            product = _tensor(graph, schema, f"{name}/x_relu6", x, 6.0 * q_y[0], q_y[1])
            rewritten += [_node(schema, add, [node.inputs[0], three], [sigmoid], "Add",
                                schema.ActivationFunctionType.RELU6),
                          _node(schema, mul, [node.inputs[0], sigmoid], [product], "Mul"),
                          _node(schema, mul, [product, sixth], [node.outputs[0]], "Mul")]
            changed += 1
        graph.operators = rewritten
    return (_write(model), changed) if changed else (flatbuffer, 0)


def _read(flatbuffer: bytes):
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    return schema, model, [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]


def _write(model) -> bytes:
    from tensorflow.lite.tools import flatbuffer_utils

    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _per_tensor(tensor, schema) -> tuple[float, int] | None:
    """An int8 tensor's one scale and zero point; None for anything else."""
    q = tensor.quantization
    if tensor.type != schema.TensorType.INT8 or q is None or q.scale is None or q.zeroPoint is None:
        return None
    if len(q.scale) != 1 or len(q.zeroPoint) != 1:
        return None
    return float(q.scale[0]), int(q.zeroPoint[0])


def _opcode(model, codes: list, builtin: int, schema) -> int:
    """The index of ``builtin``'s operator code in ``model``, added (at version 2, int8 kernels) if missing."""
    if builtin in codes:
        return codes.index(builtin)
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)  # the int8 field old readers read; 127 says "see builtinCode"
    code.version = 2  # LEAKY_RELU's, ADD's and MUL's int8 kernels came at version 2
    model.operatorCodes.append(code)
    codes.append(builtin)
    return len(codes) - 1


def _tensor(graph, schema, name: str, like, scale: float, zero_point: int, buffer: int = 0) -> int:
    """A new int8 tensor in ``graph`` shaped as the tensor ``like`` (or, given a list, that shape); its index."""
    tensor = schema.TensorT()
    if isinstance(like, list):
        tensor.shape = like
    else:
        tensor.shape = list(like.shape)
        tensor.shapeSignature = None if like.shapeSignature is None else list(like.shapeSignature)
    tensor.type, tensor.buffer, tensor.name = schema.TensorType.INT8, buffer, name
    tensor.quantization = schema.QuantizationParametersT()
    tensor.quantization.scale, tensor.quantization.zeroPoint = [float(scale)], [int(zero_point)]
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _constant(model, graph, schema, name: str, value: float) -> int:
    """A one-element int8 constant holding ``value`` exactly: 127 on the scale value / 127."""
    buffer = schema.BufferT()
    buffer.data = bytearray(np.array([127], np.int8).tobytes())
    model.buffers.append(buffer)
    return _tensor(graph, schema, name, [1], value / 127.0, 0, buffer=len(model.buffers) - 1)


def _node(schema, opcode: int, inputs: list, outputs: list, kind: str, activation: int = 0):
    node = schema.OperatorT()
    node.opcodeIndex, node.inputs, node.outputs = opcode, list(inputs), list(outputs)
    options = getattr(schema, f"{kind}OptionsT")()
    options.fusedActivationFunction = activation
    node.builtinOptionsType, node.builtinOptions = getattr(schema.BuiltinOptions, f"{kind}Options"), options
    return node
