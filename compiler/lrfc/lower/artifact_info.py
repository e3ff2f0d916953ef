"""`lrfc inspect FILE.tflite|.onnx`: what a lowered file takes, gives, says about itself and runs.

For a file in hand (lrfc's or anyone's): its inputs and outputs as the
runtime reads them (``io_spec``: an int8 file's scale and zero point, and
with a recorded input contract the rule from 8-bit pixels), what it carries
in its own metadata (``stamp``: the contract, class names, lrfc's version),
and its operators by type. For a quantized TFLite file the operators whose
outputs stay float32 are listed: the float islands of a partly quantized
file (dynamic-range or float-fallback quantization), each one a float
kernel and a conversion on either side. lrfc's own int8 files of
convolutional models have none (the converter is held to int8 builtins,
``lower.tflite``), though the converter keeps a ``LayerNormalization``'s
``NEG`` in float; the listing is what shows it. For a TFLite file, which
operators LiteRT's XNNPACK delegate takes (``runtime_bench.delegation``;
those it leaves out run on LiteRT's own kernels and split the graph: why an
int8 file can run slower than its fp32 twin). Reading needs the file's
format (LiteRT's flatbuffer schema, onnx) and, for the delegation, a LiteRT
interpreter that applies its delegate: no inference is run.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from lrfc.errors import UserError


def artifact_info(path: str | Path) -> dict:
    """``{"file", "format", "bytes", "sha256", "io", "stamp", "contract", "labels", "operators", "float_ops",
    "int8_weights_only", "delegation", "refused"}``; ``operators`` counts each operator type, ``float_ops`` (a quantized TFLite
    file; None for others) the ones whose outputs are float32; ``int8_weights_only``: a dynamic-range TFLite file
    (int8 weights, every activation float32); ``delegation``: a TFLite file's ``runtime_bench.delegation`` summary
    (None for ONNX, or without LiteRT); ``refused``: why a quantized TFLite file does not load and run once in a
    child process (``runtime_bench.sandbox``: LiteRT can abort on one), else None; ``onnx_versions``: an ONNX
    file's declared opset and IR version (None for TFLite)."""
    from lrfc.lower.check import artifact_format
    from lrfc.lower.io_spec import artifact_io
    from lrfc.lower.records import sha256_of
    from lrfc.lower.stamp import read_stamp

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file; expected a .tflite or .onnx file")
    fmt = artifact_format(path)
    try:
        io = artifact_io(path, fmt)
        operators, float_ops, quantized, int8_weights = _tflite_ops(path) if fmt == "tflite" else _onnx_ops(path)
    except Exception as exc:  # a damaged file: one line, as verify says it
        raise UserError(f"{path}: not a readable {fmt} file ({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})") from None
    stamp = read_stamp(path)
    delegation = refused = None
    if fmt == "tflite":  # None where LiteRT refuses the file: the listing above still stands
        from lrfc.lower.verify import first_run_refused
        from runtime_bench.delegation import litert_delegation

        refused = first_run_refused(path, fmt, "int8" if quantized else "fp32")
        delegation = None if refused else litert_delegation(path)
    contract = json.loads(stamp["lrfc.input"]) if "lrfc.input" in stamp else None
    versions = None
    if fmt == "onnx":  # what a runtime checks before anything else: an older one may refuse a newer opset
        from lrfc.lower.opset import declared

        opset, ir = declared(path)
        versions = {"opset": opset, "ir_version": ir}
    return {"file": str(path), "format": fmt, "onnx_versions": versions, "bytes": path.stat().st_size, "sha256": sha256_of(path), "io": io,
            "stamp": stamp, "contract": contract, "labels": json.loads(stamp["lrfc.labels"]) if "lrfc.labels" in stamp
            else None, "operators": dict(operators.most_common()),
            "float_ops": dict(float_ops.most_common()) if quantized else None,
            "int8_weights_only": int8_weights and not quantized, "delegation": delegation, "refused": refused}


def _tflite_ops(path: Path) -> tuple[Counter, Counter, bool, bool]:
    """Operators by type, those among them whose outputs are float32 (a ``DEQUANTIZE`` aside: leaving int8 is
    its job), whether any operator outputs int8 or uint8 (a quantized file), and whether any reads int8 constants
    (weights)."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(bytearray(path.read_bytes()), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        custom = code.CustomCode()
        codes.append(custom.decode() if builtin == schema.BuiltinOperator.CUSTOM and custom else names.get(builtin, str(builtin)))
    ops, floats, quantized, weights = Counter(), Counter(), False, False
    integer = (schema.TensorType.INT8, schema.TensorType.UINT8)
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            name = codes[op.OpcodeIndex()]
            ops[name] += 1
            outs = [graph.Tensors(op.Outputs(k)) for k in range(op.OutputsLength()) if op.Outputs(k) >= 0]
            if name != "DEQUANTIZE" and any(t.Type() == schema.TensorType.FLOAT32 for t in outs):
                floats[name] += 1
            quantized = quantized or any(t.Type() in integer for t in outs)
            ins = [graph.Tensors(op.Inputs(k)) for k in range(op.InputsLength()) if op.Inputs(k) >= 0]
            weights = weights or any(t.Type() == schema.TensorType.INT8 and t.Buffer() > 0
                                     and model.Buffers(t.Buffer()).DataLength() > 0 for t in ins)
    return ops, floats, quantized, weights


def _onnx_ops(path: Path) -> tuple[Counter, Counter, bool, bool]:
    """Operators by type; an ONNX file's quantization is QDQ around float operators, so no float listing."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return Counter(n.op_type for n in graph.node), Counter(), False, False


def render_artifact_info(info: dict) -> str:
    """What ``lrfc inspect FILE`` prints."""
    from lrfc.frontend.contract import from_record
    from lrfc.lower.io_spec import pixel_rule

    contract = from_record(info["contract"], "the file") if info["contract"] else None
    lines = [f"{Path(info['file']).name}: {info['format']}, {info['bytes']:,} bytes, sha256 {info['sha256']}"]
    if info.get("onnx_versions"):
        lines.append(f"onnx      opset {info['onnx_versions']['opset']}, IR version {info['onnx_versions']['ir_version']}")
    inputs = info["io"]["inputs"]
    for role, tensors in (("input", inputs), ("output", info["io"]["outputs"])):
        for t in tensors:
            q = ""
            if "scale" in t and not isinstance(t["scale"], list):
                rule = pixel_rule(t, contract) if role == "input" and contract is not None and len(inputs) == 1 else None
                q = f", scale {t['scale']:.6g}, zero point {t['zero_point']}" + (f" (8-bit pixels p: {rule})"
                                                                                    if rule else "")
            elif "scale" in t:
                q = ", scales per channel"
            lines.append(f"{role:<10}{t['name']}: {t['dtype']} {t['shape']}{q}")
    if contract is not None:
        lines.append(f"contract  pixel values {info['contract']['range']} ({info['contract'].get('source', 'given')}): "
                     f"{info['contract'].get('flags') or contract.flags()}")
    else:
        lines.append("contract  none recorded in the file (not written by lrfc, or before it stamped its files)")
    if info["labels"]:
        lines.append(f"labels    {len(info['labels'])}: {', '.join(info['labels'])}")
    if "lrfc.version" in info["stamp"]:
        lines.append(f"written   by lrfc {info['stamp']['lrfc.version']}")
    ops = info["operators"]
    lines.append(f"operators {sum(ops.values())}: " + ", ".join(f"{k} x{v}" if v > 1 else k for k, v in ops.items()))
    if info["float_ops"] is not None:
        floats = info["float_ops"]
        n = sum(floats.values())
        lines.append("float     none: every operator's output is quantized" if not floats else
                     f"float     {n} operator{'s' * (n != 1)} output{'s' * (n == 1)} float32 in this quantized file: "
                     + ", ".join(f"{k} x{v}" if v > 1 else k for k, v in floats.items()))
    elif info.get("int8_weights_only"):
        lines.append("float     int8 weights only (dynamic-range quantization): every activation stays float32")
    if info.get("refused"):
        lines.append(f"LiteRT    cannot run it: {info['refused']}")
    delegation = info.get("delegation")
    if delegation:
        from runtime_bench.delegation import left_out

        parts = delegation["partitions"]
        lines.append(f"XNNPACK   all {delegation['operators']} operators, in one part" if not left_out(delegation) else
                     f"XNNPACK   {delegation['delegated']} of {delegation['operators']} operators, in {parts} "
                     f"part{'s' * (parts != 1)}; on LiteRT's own kernels: {left_out(delegation)}")
    return "\n".join(lines)
