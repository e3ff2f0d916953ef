"""Which ONNX opset lrfc writes: the default, the range it converts to, and a target's own limit.

An ONNX file declares the opset its operators are read at, and a runtime older than that opset may refuse the
file or read an operator by other rules: TensorRT 8.2 (JetPack 4.6, the Jetson Nano's last) "supports
operators up to Opset 13", TensorRT 8.5 (JetPack 5.1) up to 17 (onnx-tensorrt's docs/operators.md on its
release/8.2-GA and release/8.5-GA branches). A profile names its device's limit (``onnx_opset``, with its
source) and ``--opset`` overrides it; files of convolutional networks convert at 13 with the same operators
as at 17 (tf2onnx writes IR version 7 there, 8 at 17). No TensorFlow or numpy is imported here: profiles
read this.
"""

from __future__ import annotations

DEFAULT = 17
"""The opset a target without its own limit gets: what every runtime lrfc measures on reads."""

MIN = 13
"""The lowest lrfc writes: int8 files quantize weights per output channel (QuantizeLinear's ``axis``, opset 13)."""

MAX = 18
"""The highest tf2onnx 1.17 converts to."""


def problem(opset) -> str | None:
    """Why ``opset`` cannot be written (one clause), or None when it can."""
    if isinstance(opset, bool) or not isinstance(opset, int):
        return f"received {opset!r}, expected an integer from {MIN} to {MAX}"
    if not MIN <= opset <= MAX:
        return (f"received {opset}, expected {MIN} to {MAX} (int8 files need opset {MIN}'s per-channel "
                f"QuantizeLinear; tf2onnx 1.17 converts to at most {MAX})")
    return None


def declared(path) -> tuple[int | None, int]:
    """The default-domain opset an ``.onnx`` file declares and its IR version (what a runtime checks first)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return opset, int(model.ir_version)


def drop_unused_domains(model) -> list[str]:
    """Remove the opset imports of domains no node of ``model`` (an ``onnx.ModelProto``) uses; the names removed.

    ONNX Runtime's quantizer stamps every domain its own build registers
    (``com.microsoft``, ``com.microsoft.nchwc``, ``org.pytorch.aten``,
    ``ai.onnx.training``...; tf2onnx adds ``ai.onnx.ml``) on files of standard
    operators only. A runtime checks each declared domain's version when it
    loads a file, used or not: ONNX Runtime refuses one newer than it knows
    ("Opset 3 is under development ... Current official support for domain
    ai.onnx.ml is till opset 2", microsoft/onnxruntime-inference-examples#345),
    and a runtime built without contrib operators knows none of Microsoft's.
    The default domain is always kept.
    """
    used = {"", "ai.onnx"}

    def walk(graph):
        for node in graph.node:
            used.add(node.domain)
            for attr in node.attribute:
                for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    walk(sub)

    walk(model.graph)
    for function in model.functions:
        used.add(function.domain)
        used.update(node.domain for node in function.node)
    kept = [o for o in model.opset_import if o.domain in used]
    dropped = [o.domain for o in model.opset_import if o.domain not in used]
    if dropped:
        del model.opset_import[:]
        model.opset_import.extend(kept)
    return dropped
