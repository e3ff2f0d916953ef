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
