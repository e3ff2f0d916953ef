"""What a lowered file takes and gives, and how 8-bit pixels become a quantized file's integers.

``artifact_io`` reads each input's and output's name, shape and dtype from
the file, and for a quantized tensor its scale and zero point. A fully
integer TFLite file (int8 in and out: what the Edge TPU and microcontroller
runtimes take, and every int8 ``.tflite`` lrfc writes) takes
``q = round(x / scale) + zero_point`` of the float input ``x`` its Keras model
takes, and gives logits ``scale * (q - zero_point)``; the two numbers come
from calibration, so they belong to that file (``ArtifactRecord.io``).

``pixel_rule`` goes one step further, for a deployment that reads 8-bit
camera frames: through the input contract (``frontend.contract``) a pixel
value ``p`` in 0..255 maps to ``q = round(a * p + b)``, and where ``a`` is 1
and ``b`` a whole number (a file calibrated on images spanning 0..255: Fashion-MNIST
at range 0-1 gives scale 1/255 and zero point -128) that is ``q = p - 128``:
no float arithmetic on the device at all.
"""

from __future__ import annotations

from pathlib import Path

EXACT = 1e-3  # |a - 1| and b's distance from a whole number below this: the integer rule is exact on 0..255


def artifact_io(path: str | Path, fmt: str) -> dict:
    """``{"inputs": [...], "outputs": [...]}`` of a ``.tflite`` or ``.onnx`` file, each ``{"name", "shape",
    "dtype"}``, plus ``"scale"`` and ``"zero_point"`` for a quantized TFLite tensor (per-tensor; a per-channel
    I/O tensor gives lists). ONNX files lrfc writes keep float I/O (their quantization is inside, QDQ)."""
    if fmt == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        from lrfc.lower.tflite import _captured_output

        with _captured_output(replay=False):
            interp = Interpreter(model_path=str(path))
        return {"inputs": [_tflite_tensor(d) for d in interp.get_input_details()],
                "outputs": [_tflite_tensor(d) for d in interp.get_output_details()]}
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    constants = {t.name for t in graph.initializer}
    return {"inputs": [_onnx_tensor(v) for v in graph.input if v.name not in constants],
            "outputs": [_onnx_tensor(v) for v in graph.output]}


def _tflite_tensor(detail: dict) -> dict:
    import numpy as np

    entry = {"name": detail["name"], "shape": [int(d) for d in detail["shape"]],
             "dtype": np.dtype(detail["dtype"]).name}
    params = detail.get("quantization_parameters") or {}
    scales, zeros = list(params.get("scales", [])), list(params.get("zero_points", []))
    if scales:
        one = len(scales) == 1
        entry["scale"] = float(scales[0]) if one else [float(s) for s in scales]
        entry["zero_point"] = int(zeros[0]) if one else [int(z) for z in zeros]
    return entry


def _onnx_tensor(value) -> dict:
    from onnx.helper import tensor_dtype_to_np_dtype

    kind = value.type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in kind.shape.dim]
    return {"name": value.name, "shape": shape, "dtype": tensor_dtype_to_np_dtype(kind.elem_type).name}


def pixel_affine(tensor: dict, contract) -> list[tuple[float, float]] | None:
    """Per channel of the contract's mean/std (one pair when neither is per channel), ``(a, b)`` with
    ``round(a * p + b)`` the quantized input for the 8-bit pixel value ``p`` (before clipping); None when the input
    is not quantized per tensor."""
    from lrfc.frontend.contract import RANGES

    scale, zero = tensor.get("scale"), tensor.get("zero_point")
    if not isinstance(scale, float) or not scale > 0:
        return None
    lo, hi = RANGES[contract.range]
    means, stds = contract.mean or (0.0,), contract.std or (1.0,)
    pairs = []
    for c in range(max(len(means), len(stds))):
        mean, std = means[c % len(means)], stds[c % len(stds)]
        pairs.append(((hi - lo) / (255.0 * std * scale), (lo - mean) / (std * scale) + zero))
    return pairs


def pixel_rule(tensor: dict, contract) -> str | None:
    """How 8-bit pixel values ``p`` (0..255, as stored) become a quantized input's integers under ``contract``
    (an ``InputContract``): ``q = p - 128`` when that is exact, else ``q = round(a * p + b)`` with its numbers
    (per channel when the contract's mean or std is). None for an input that is not quantized per tensor."""
    pairs = pixel_affine(tensor, contract)
    if pairs is None:
        return None
    info = {"int8": (-128, 127), "uint8": (0, 255)}.get(tensor.get("dtype"))
    clip = f", clipped to {info[0]}..{info[1]}" if info and any(
        round(a * p + b) < info[0] or round(a * p + b) > info[1] for a, b in pairs for p in (0, 255)) else ""
    order = "; reverse the channels to BGR first" if contract.channel_order == "bgr" else ""
    if all(abs(a - 1) < EXACT and abs(b - round(b)) < EXACT for a, b in pairs):
        offsets = [round(b) for _, b in pairs]
        if len(set(offsets)) == 1:
            return f"q = {_plus('p', offsets[0])}{clip}{order}"
        return f"q = p + offset per channel ({', '.join(f'{o:+d}' for o in offsets)}){clip}{order}"
    rules = [f"round({'p' if abs(a - 1) < EXACT else f'{a:.6g} * p'} {'-' if b < 0 else '+'} {abs(b):.6g})"
             for a, b in pairs]
    return (f"q = {rules[0]}" if len(rules) == 1 else f"per channel q = {'; '.join(rules)}") + clip + order


def _plus(name: str, offset: int) -> str:
    return name if offset == 0 else f"{name} {'-' if offset < 0 else '+'} {abs(offset)}"


def quantized_io_line(record: dict, contract) -> str | None:
    """One line for a file with quantized I/O: what it takes and gives, and the 8-bit pixel rule; None for
    float I/O. ``record`` is an ``ArtifactRecord``'s JSON; ``contract`` the ``InputContract`` it was made under
    (None: the pixel rule is left out)."""
    io = record.get("io") or {}
    inputs, outputs = io.get("inputs") or [], io.get("outputs") or []
    if not any("scale" in t for t in (*inputs, *outputs)):
        return None

    def tensor(t: dict, rule: str | None = None) -> str:
        if "scale" not in t:
            return t["dtype"]
        if isinstance(t["scale"], list):
            return f"{t['dtype']} (scales per channel)"
        return (f"{t['dtype']} (scale {t['scale']:.6g}, zero point {t['zero_point']}"
                + (f"; from 8-bit pixels p: {rule}" if rule else "") + ")")

    takes = [tensor(t, pixel_rule(t, contract) if contract is not None and len(inputs) == 1 else None)
             for t in inputs]
    return f"{Path(record['path']).name} takes {', '.join(takes)} and gives {', '.join(tensor(t) for t in outputs)}"
