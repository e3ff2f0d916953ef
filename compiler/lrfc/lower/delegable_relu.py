"""An int8 ``RELU`` that XNNPACK leaves out, rewritten as a ``LEAKY_RELU`` it takes, with the same output to the bit.

The converter fuses a ReLU into the operator that produces its input
(``CONV_2D``, ``ADD``, ...) unless that input feeds another layer too, as
after a residual ``Add`` whose sum is also the next block's shortcut
(Xception's and NASNet's blocks start ``relu(x)`` beside ``x``). Such a
``RELU`` stays a separate operator, and at int8 LiteRT's XNNPACK delegate
does not take it (this LiteRT, 2026-12-05): it runs on LiteRT's reference
kernel and splits the delegated graph there. XNNPACK does take an int8
``LEAKY_RELU``.

The rewrite is exact. A ReLU's output range starts at 0, so its int8 output
has zero point -128, the lowest int8 value: every negative value a
``LEAKY_RELU`` computes (any slope > 0) is clamped to -128, which is 0.0, and
a non-negative input is requantized by the same multiplier (the input's
scale over the output's) in both kernels. Only ``RELU`` operators whose
output is int8 with zero point -128 are rewritten; the slope is chosen so
that its own multiplier (slope x input scale / output scale) is 1/2, inside
what XNNPACK accepts. Measured (docs/LOG.md 2026-12-05): the same outputs,
bit for bit, from LiteRT's reference kernels before and after on
keras.applications Xception and NASNetMobile, and Xception's int8 file at
71x71 in 2.6 instead of 5.5 ms (12 XNNPACK partitions to 1).
"""

from __future__ import annotations

SLOPE_MULTIPLIER = 0.5  # slope x input scale / output scale: anything > 0 gives the same output


def relus_as_leaky(flatbuffer: bytes) -> tuple[bytes, int]:
    """``flatbuffer`` with each int8 ``RELU`` (output zero point -128) as a ``LEAKY_RELU``; and how many."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    op = schema.BuiltinOperator
    if op.RELU not in codes:
        return flatbuffer, 0
    leaky, changed = None, 0
    for graph in model.subgraphs:
        for node in graph.operators:
            if codes[node.opcodeIndex] != op.RELU:
                continue
            slope = _slope(graph.tensors[node.inputs[0]], graph.tensors[node.outputs[0]], schema)
            if slope is None:
                continue
            if leaky is None:
                leaky = _opcode(model, codes, op.LEAKY_RELU, schema)
            options = schema.LeakyReluOptionsT()
            options.alpha = slope
            node.opcodeIndex, node.builtinOptionsType = leaky, schema.BuiltinOptions.LeakyReluOptions
            node.builtinOptions = options
            changed += 1
    if not changed:
        return flatbuffer, 0
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), changed


def _slope(source, target, schema) -> float | None:
    """The slope that stands for this ReLU, or None where the rewrite would not be exact."""
    q_in, q_out = source.quantization, target.quantization
    if source.type != schema.TensorType.INT8 or target.type != schema.TensorType.INT8 or q_in is None or q_out is None:
        return None
    scales_in, scales_out = list(q_in.scale if q_in.scale is not None else ()), list(q_out.scale if q_out.scale is not None else ())
    zero_out = list(q_out.zeroPoint if q_out.zeroPoint is not None else ())
    if len(scales_in) != 1 or len(scales_out) != 1 or zero_out != [-128] or scales_in[0] <= 0:
        return None
    return SLOPE_MULTIPLIER * float(scales_out[0]) / float(scales_in[0])


def _opcode(model, codes: list, builtin: int, schema) -> int:
    """The index of ``builtin``'s operator code in ``model``, added (at the version with int8 kernels) if missing."""
    if builtin in codes:
        return codes.index(builtin)
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)  # the int8 field old readers use; LEAKY_RELU is 98
    code.version = 2  # LEAKY_RELU's int8 kernel came at version 2
    model.operatorCodes.append(code)
    codes.append(builtin)
    return len(codes) - 1
