"""`lrfc verify`: the build's verification gate on any existing file, and the files of a report by their sha256.

* ``verify_artifact``: run an artifact in its runtime against its Keras model,
  on ``--data`` (through the model's input contract and the sanity gate, as a
  build does) or on random pixel inputs, at the tolerance of its precision
  (read from the file unless given). Exit 0 or 1 with the numbers.
* ``check_report_files``: every artifact a ``report.json``/``export.json``
  lists must still be the file that was verified: same SHA-256. A file that
  was edited in place, even to the same size, fails.
* ``stale_artifacts``: what ``lrfc bench`` warns about: a file whose report
  beside it records another hash.
"""

from __future__ import annotations

import json
from pathlib import Path

from lrfc.errors import UserError
from lrfc.frontend.recorded import REPORT_NAMES, listed_files
from lrfc.lower.records import ArtifactRecord, sha256_of


def artifact_format(path: str | Path) -> str:
    """``tflite`` or ``onnx`` from the suffix; a ``UserError`` otherwise."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in ("tflite", "onnx"):
        raise UserError(f"{path}: expected a .tflite or .onnx file, received {Path(path).suffix or 'no suffix'!r}")
    return suffix


def detect_precision(path: str | Path, fmt: str) -> str:
    """The precision a lowered file was written at: int8 (quantized), fp16 (float16 weights) or fp32."""
    if fmt == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        try:
            details = Interpreter(model_path=str(path)).get_tensor_details()
        except (RuntimeError, ValueError) as exc:
            raise UserError(f"{path}: LiteRT cannot read it ({str(exc).strip().splitlines()[0]})") from None
        kinds = {str(d["dtype"]) for d in details}
        if any("int8" in k for k in kinds):
            return "int8"
        return "fp16" if any("float16" in k for k in kinds) else "fp32"
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others for a damaged file
        raise UserError(f"{path}: not a readable ONNX model ({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})") from None
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") or n.op_type.startswith("QLinear") for n in proto.graph.node):
        return "int8"
    return "fp16" if any(i.data_type == onnx.TensorProto.FLOAT16 for i in proto.graph.initializer) else "fp32"


def verify_artifact(artifact: str, model_path: str, *, data: str | None = None, precision: str | None = None,
                    seed: int = 0, trust: bool = False, contract=None, allow_low_accuracy: bool = False,
                    log=None, class_names: tuple[str, ...] | None = None) -> ArtifactRecord:
    """The verification gate on an existing file; see the module doc. Never raises on a mismatch."""
    from lrfc.frontend.binary import binary_kind
    from lrfc.frontend.contract import resolve
    from lrfc.frontend.recorded import with_recorded
    from lrfc.lower.artifacts import CALIBRATION_SAMPLES, PRECISIONS
    from lrfc.lower.export import draw_samples, load_single_io
    from lrfc.lower.io_spec import quantized_io_line
    from lrfc.lower.verify import float_sensitivity, gate, reference_outputs
    from lrfc.options import check_data_spec
    from runtime_bench.delegation import delegation_line

    path = Path(artifact)
    if not path.is_file():
        raise UserError(f"{artifact}: no such file; expected a .tflite or .onnx file")
    fmt = artifact_format(path)
    if precision is not None and precision not in PRECISIONS:
        raise UserError(f"--precision: received {precision!r}; expected one of {', '.join(PRECISIONS)}")
    if isinstance(model_path, (str, Path)) and not Path(model_path).exists():
        raise UserError(f"model not found: {model_path}")
    if data is not None:
        check_data_spec(data)
    precision = precision or detect_precision(path, fmt)
    if precision == "int8" and data is None:
        raise UserError(f"{artifact} is int8: its input scale was calibrated on real data, so verifying it needs --data")
    contract = with_recorded(contract, [path] + ([Path(model_path)] if isinstance(model_path, (str, Path)) else []),
                             log)  # a build's or an export's file: the contract it was made under
    model = load_single_io(model_path, trust, "verify")
    contract = resolve(model, contract)
    samples = draw_samples(model, contract, data, CALIBRATION_SAMPLES, seed, allow_low_accuracy=allow_low_accuracy,
                           log=log, class_names=class_names)
    reference = reference_outputs(model, samples.verify)
    record = gate(path, fmt, precision, samples.verify, reference, samples.labels,
                  lambda: float_sensitivity(model, samples.verify, reference), binary_kind(model))
    quantized = quantized_io_line(record.to_json(), contract)
    delegated = delegation_line(record.to_json())
    record.note = "; ".join(n for n in (f"verified on {samples.described}; input {contract.describe()}", record.note,
                                        quantized and f"int8 I/O: {quantized}",
                                        delegated and f"LiteRT: {delegated}") if n)
    return record


def render_record(record: ArtifactRecord) -> str:
    """What ``lrfc verify ARTIFACT`` prints."""
    from lrfc.lower.verify import percentile_sample

    if record.max_abs_diff is None:
        return f"{record.name} ({record.precision}): FAILED: {record.error}"
    tol = record.tolerance
    bound = f"bound {tol['max_abs_diff']:.3g}" + (f", up to {tol['float_sensitivity']:.3g} on float-sensitive samples"
                                                  if "float_sensitivity" in tol else "")
    if record.quantile_abs_diff is not None:
        diff = (f"abs diff {record.quantile_abs_diff:.3g} at the {percentile_sample(tol['quantile'])} "
                f"({bound}; max {record.max_abs_diff:.3g})")
    else:
        diff = f"max_abs_diff {record.max_abs_diff:.3g} ({bound})"
    lines = [f"{record.name} ({record.precision}): {'passed' if record.passed else 'FAILED'}: "
             f"{diff}, top-1 agreement "
             f"{100 * record.top1_agreement:.2f}% (at least {100 * tol['top1_agreement']:.0f}%) on {record.samples} samples"]
    if record.accuracy is not None:
        lines.append(f"accuracy: artifact {100 * record.accuracy:.2f}%, Keras model {100 * record.reference_accuracy:.2f}% top-1")
    lines.append(f"sha256 {record.sha256}")
    if record.note:
        lines.append(record.note)
    return "\n".join(lines)


def _load_report(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"--report {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"--report {path}: not readable JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("artifacts"), list):
        raise UserError(f"--report {path}: no 'artifacts' list; expected a report.json or export.json written by lrfc")
    return doc


def _located(record: dict, report_dir: Path) -> Path:
    """The file a record names: beside the report first (the folder may have moved), else its recorded path."""
    beside = report_dir / Path(record["path"]).name
    return beside if beside.exists() else Path(record["path"])


def check_report_files(report: str | Path) -> list[dict]:
    """Per published file of a report (artifacts, a build's model.keras): ``{"name", "path", "status", "sha256",
    "expected"}``.

    ``status`` is ``match``, ``changed`` (another SHA-256), ``missing`` or
    ``unrecorded`` (a report written before lrfc recorded hashes).
    """
    report = Path(report)
    doc = _load_report(report)
    checks = []
    for record in listed_files(doc):
        if "path" not in record:
            continue
        path = _located(record, report.parent)
        expected = record.get("sha256")
        if not path.is_file():
            status, actual = "missing", None
        else:
            actual = sha256_of(path)
            status = "unrecorded" if expected is None else ("match" if actual == expected else "changed")
        checks.append({"name": path.name, "path": str(path), "status": status, "sha256": actual, "expected": expected})
    if not checks:
        raise UserError(f"--report {report}: lists no published artifact")
    return checks


def render_checks(checks: list[dict]) -> str:
    """What ``lrfc verify --report`` prints: one line per file."""
    width = max(len(c["name"]) for c in checks)
    return "\n".join(f"{c['name']:<{width}}  {c['status']}" + (f"  (recorded {c['expected'][:16]}..., now "
                                                                  f"{c['sha256'][:16]}...)" if c["status"] == "changed" else "")
                     for c in checks)


def stale_artifacts(paths) -> list[str]:
    """Warnings for files whose report beside them (report.json or export.json) records another SHA-256."""
    warnings = []
    for p in map(Path, paths):
        for name in REPORT_NAMES:
            report = p.parent / name
            if not report.is_file():
                continue
            try:
                records = json.loads(report.read_text()).get("artifacts") or []
            except (OSError, ValueError, AttributeError):
                continue
            for record in records:
                if Path(record.get("path", "")).name == p.name and record.get("sha256"):
                    if sha256_of(p) != record["sha256"]:
                        warnings.append(f"{p}: differs from the file {report} describes (sha256 changed since it was "
                                        "verified); these timings are not of that artifact")
    return warnings
