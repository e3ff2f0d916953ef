"""Lower a model to verified artifacts: export each format, run the gate, publish only what passed.

``lower`` is the library entry point (a model and arrays in, records out);
``export_model`` is what ``lrfc export`` runs (files and names in, a
directory with the artifacts and ``export.json`` out).

Every artifact is written into a hidden staging folder inside the output
directory, verified there (``lrfc.lower.verify``), and moved to its final
name only when every artifact of the call has passed, so a failed gate
leaves no file that looks like a deliverable. The staging folder is removed
whatever happens.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from lrfc.errors import UserError, VerificationError

FORMATS = ("tflite", "onnx")
PRECISIONS = ("fp32", "fp16", "int8")
CALIBRATION_SAMPLES = 256  # at most this many feed the TFLite representative dataset / ORT calibration
VERIFY_SAMPLES = 512       # at most this many are run through the gate
RANDOM_VERIFY_SAMPLES = 64  # uniform [0, 1] inputs when no data is given (fp32/fp16 only)

_FORMAT_RUNTIME = {"tflite": "LiteRT (XNNPACK on, its default)", "onnx": "ONNX Runtime (CPU)"}

ONNX_FP16_NOTE = ("kept in fp32: ONNX Runtime's CPU provider has no fp16 speed path, and the TensorRT "
                  "execution provider converts to fp16 at run time (trt_fp16_enable)")


def format_of(runtime: str) -> str:
    """The artifact format a runtime runs (``tflite`` or ``onnx``), from runtime_bench's runner registry."""
    from runtime_bench.runners import get_runner

    return get_runner(runtime).suffix.lstrip(".")


def formats_for(profile) -> tuple[str, ...]:
    """The artifact formats a target runs, in the order of its runtimes, without repeats.

    ``litert`` runs ``tflite``; every ``onnxruntime-*`` runs ``onnx``.
    """
    out: list[str] = []
    for runtime in profile.runtimes:
        fmt = format_of(runtime)
        if fmt not in out:
            out.append(fmt)
    return tuple(out)


def lower(model, out_dir: str | Path, *, precision: str, formats, calibration: np.ndarray,
          verify_samples: np.ndarray | None = None, stem: str = "model") -> list[dict]:
    """Export ``model`` to each format at ``precision``, verify every artifact, publish them into ``out_dir``.

    Args:
        model: a built single-input Keras model.
        out_dir: the directory for ``{stem}.tflite`` / ``{stem}.onnx``.
        precision: ``fp32``, ``fp16`` or ``int8``. ONNX at fp16 stays an fp32
            file (its record says so in ``note``).
        formats: an iterable of names from ``FORMATS``.
        calibration: float32 samples shaped like the model input; the first
            ``CALIBRATION_SAMPLES`` calibrate int8 (required there, non-empty).
        verify_samples: samples for the gate (the first ``VERIFY_SAMPLES``);
            None: the calibration samples.
        stem: the artifacts' file name without suffix.

    Returns:
        One record per format: ``{"format", "path", "precision", "bytes",
        "max_abs_diff", "top1_agreement", "samples", "tolerance", "passed",
        "seconds"}`` (+ ``"note"``); ``seconds`` is the export time.

    Raises:
        VerificationError: an artifact failed the gate; no artifact of this
            call is published and the message carries every failure's numbers.
        ValueError: a bad precision, format or empty samples.
    """
    from lrfc.lower.verify import compare, failure_message, reference_outputs, run_artifact

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, received {precision!r}")
    formats = tuple(dict.fromkeys([formats] if isinstance(formats, str) else formats))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"formats must be a non-empty selection of {', '.join(FORMATS)}, received {list(formats)}")
    calibration = np.asarray(calibration, dtype=np.float32)[:CALIBRATION_SAMPLES]
    x_verify = calibration if verify_samples is None else np.asarray(verify_samples, dtype=np.float32)
    x_verify = x_verify[:VERIFY_SAMPLES]
    if not len(x_verify) or (precision == "int8" and not len(calibration)):
        raise ValueError(f"lower needs samples: received {len(calibration)} calibration and "
                         f"{len(x_verify)} verification samples")

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{stem}.staging-", dir=out_dir))
    try:
        reference = reference_outputs(model, x_verify)
        records, failures = [], []
        for fmt in formats:
            final = out_dir / f"{stem}.{fmt}"
            staged = staging / final.name
            start = time.perf_counter()
            artifact_precision, note = _EXPORTERS[fmt](model, staged, precision, calibration, staging)
            seconds = time.perf_counter() - start
            try:
                outputs = run_artifact(staged, fmt, x_verify)
            except (RuntimeError, ValueError) as exc:  # the runtime refuses the file: the gate fails
                why = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
                failures.append(f"{final.name} ({artifact_precision}) does not run in {_FORMAT_RUNTIME[fmt]}: {why}")
                continue
            result = compare(reference, outputs, artifact_precision)
            record = {"format": fmt, "path": str(final), "precision": artifact_precision,
                      "bytes": staged.stat().st_size, **result, "seconds": round(seconds, 3)}
            if note:
                record["note"] = note
            records.append((staged, record))
            if not result["passed"]:
                failures.append(failure_message(f"{final.name} ({artifact_precision})", result))
        if failures:
            raise VerificationError("; ".join(failures))
        for staged, record in records:
            os.replace(staged, record["path"])
        return [record for _, record in records]
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _export_tflite(model, path: Path, precision: str, calibration: np.ndarray, work: Path) -> tuple[str, str | None]:
    from lrfc.lower.tflite import export_tflite

    export_tflite(model, path, precision, representative=calibration if precision == "int8" else None)
    return precision, None


def _export_onnx(model, path: Path, precision: str, calibration: np.ndarray, work: Path) -> tuple[str, str | None]:
    from lrfc.lower.onnx import export_onnx, quantize_onnx_int8

    if precision != "int8":
        export_onnx(model, path)
        return "fp32", ONNX_FP16_NOTE if precision == "fp16" else None
    fp32 = export_onnx(model, work / f"fp32.{path.name}")
    quantize_onnx_int8(fp32, path, calibration)
    fp32.unlink()
    return "int8", None


_EXPORTERS = {"tflite": _export_tflite, "onnx": _export_onnx}


# ------------------------------------------------------------------ lrfc export


def export_model(model_path: str, target: str, out: str | Path, *, formats: tuple[str, ...] | None = None,
                 precision: str | None = None, data: str | None = None,
                 calib_samples: int = CALIBRATION_SAMPLES, trust: bool = False, seed: int = 0) -> dict:
    """``lrfc export``: lower a model file, uncompressed, to verified artifacts and ``export.json`` in ``out``.

    Args:
        model_path: a .keras, .h5/.hdf5 file or a SavedModel directory.
        target: a profile name, alias or ``.toml`` path.
        out: the output directory.
        formats: subset of ``FORMATS``; None: the target's (``formats_for``).
        precision: ``fp32``, ``fp16`` or ``int8``; None: the target's.
        data: a ``--data`` spec (see ``lrfc.frontend.data``); required for int8.
            Without it the gate runs on ``RANDOM_VERIFY_SAMPLES`` seeded
            uniform [0, 1] inputs.
        calib_samples: calibration samples drawn from ``data``
            (1..``CALIBRATION_SAMPLES``).
        trust: allow layers whose loading runs code stored in the file.
        seed: seed of the sample draws.

    Returns:
        The ``export.json`` document: ``{"model", "target", "precision",
        "formats", "calibration_samples", "verification_data", "artifacts"}``
        (+ ``"notes"``).

    Raises:
        UserError: bad options, model, profile or data.
        VerificationError: an artifact failed the gate (nothing published).
    """
    from lrfc.common.atomic import write_text
    from lrfc.targets import load_profile

    profile = load_profile(target)
    precision = precision or profile.precision
    if precision not in PRECISIONS:
        raise UserError(f"--precision: received {precision!r}; expected one of {', '.join(PRECISIONS)}")
    formats = _check_formats(formats, profile)
    if profile.requires_full_int8 and (precision != "int8" or formats != ("tflite",)):
        raise UserError(f"target {profile.name} runs fully int8 TFLite models only (requires_full_int8); "
                        f"received --precision {precision} --formats {','.join(formats)}, expected int8 and tflite")
    if not 1 <= calib_samples <= CALIBRATION_SAMPLES:
        raise UserError(f"--calib-samples: received {calib_samples}; expected 1..{CALIBRATION_SAMPLES}")
    if precision == "int8" and data is None:
        raise UserError("--data is required for int8 (calibration samples)")

    model = _load_model(model_path, trust)
    input_shape = tuple(model.inputs[0].shape[1:])
    rng = np.random.default_rng(seed)
    if data is None:
        calibration = rng.uniform(0.0, 1.0, (RANDOM_VERIFY_SAMPLES, *input_shape)).astype(np.float32)
        x_verify, described, n_calib = calibration, f"random uniform [0,1], {RANDOM_VERIFY_SAMPLES} samples", 0
    else:
        calibration, x_verify, described = _draw(data, model, calib_samples, rng)
        n_calib = len(calibration) if precision == "int8" else 0

    artifacts = lower(model, out, precision=precision, formats=formats, calibration=calibration,
                      verify_samples=x_verify)
    doc = {"model": str(model_path), "target": profile.name, "precision": precision, "formats": list(formats),
           "calibration_samples": n_calib, "verification_data": described, "artifacts": artifacts}
    if profile.requires_full_int8:
        doc["notes"] = [f"{profile.name}: compile model.tflite with edgetpu_compiler to run it on the Edge TPU "
                        "(lrfc does not run it)"]
    write_text(Path(out) / "export.json", json.dumps(doc, indent=2) + "\n")
    return doc


def _check_formats(formats, profile) -> tuple[str, ...]:
    if formats is None:
        return formats_for(profile)
    formats = tuple(dict.fromkeys(f.strip() for f in formats if f.strip()))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise UserError(f"--formats: received {','.join(formats) or 'nothing'!r}; "
                        f"expected a comma list of {', '.join(FORMATS)}")
    return formats


def _load_model(model_path: str, trust: bool):
    from lrfc.frontend.load import load_flat

    model = load_flat(model_path, trust)
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UserError(f"{model_path}: lrfc export takes a single-input, single-output model; this one has "
                        f"{len(model.inputs)} inputs and {len(model.outputs)} outputs")
    shape = tuple(model.inputs[0].shape[1:])
    if None in shape:
        raise UserError(f"{model_path}: the input shape {shape} has undefined dimensions; "
                        "lrfc export needs a fixed input shape (batch aside)")
    return model


def _draw(data: str, model, calib_samples: int, rng) -> tuple[np.ndarray, np.ndarray, str]:
    """Seeded calibration samples and disjoint verification samples from ``--data``.

    Verification uses the data's test split when it has one, else the
    samples left after calibration, else (tiny data) the calibration samples.
    """
    from lrfc.frontend.data import load_data

    out_shape = model.outputs[0].shape
    num_classes = int(out_shape[-1]) if len(out_shape) == 2 and out_shape[-1] else None
    ds = load_data(data, tuple(model.inputs[0].shape[1:]), num_classes)
    perm = rng.permutation(len(ds.x))
    calibration = ds.x[perm[:calib_samples]]
    if ds.x_test is not None and len(ds.x_test):
        pick = rng.permutation(len(ds.x_test))[:VERIFY_SAMPLES]
        return calibration, ds.x_test[np.sort(pick)], f"{data} test split, {len(pick)} samples"
    rest = perm[calib_samples:calib_samples + VERIFY_SAMPLES]
    if len(rest):
        return calibration, ds.x[np.sort(rest)], f"{data}, {len(rest)} samples disjoint from calibration"
    return calibration, calibration, f"{data}, the {len(calibration)} calibration samples (no others left)"


def render_table(doc: dict) -> str:
    """The short table ``lrfc export`` prints: one line per artifact, then what was verified on."""
    head = ("format", "precision", "size", "max_abs_diff", "top1_agreement", "passed")
    rows = [(a["format"], a["precision"], f"{a['bytes'] / 1024:,.1f} KiB", f"{a['max_abs_diff']:.3g}",
             f"{a['top1_agreement']:.4f}", "yes" if a["passed"] else "no") for a in doc["artifacts"]]
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in (head, *rows)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"verified on {doc['verification_data']}")
    lines += [f"note: {a['format']}: {a['note']}" for a in doc["artifacts"] if "note" in a]
    lines += [f"note: {n}" for n in doc.get("notes", [])]
    return "\n".join(lines)
