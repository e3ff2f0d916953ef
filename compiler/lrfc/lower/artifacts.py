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

import functools
import tempfile
import time
from pathlib import Path

import numpy as np

from lrfc.errors import VerificationError, first_line
from lrfc.lower.opset import DEFAULT as DEFAULT_OPSET
from lrfc.lower.records import ArtifactRecord

PRECISIONS = ("fp32", "fp16", "int8")
CALIBRATION_SAMPLES = 256  # at most this many feed the TFLite representative dataset / ORT calibration
VERIFY_SAMPLES = 512       # at most this many are run through the gate
RANDOM_VERIFY_SAMPLES = 64  # uniform [0, 1] inputs when no data is given (fp32/fp16 only)

ONNX_FP16_NOTE = ("kept in fp32: ONNX Runtime's CPU provider has no fp16 speed path, and the TensorRT "
                  "execution provider converts to fp16 at run time (trt_fp16_enable)")
ONNX_7_BITS_NOTE = ("weights on 7 bits: the target's CPU is x86 without VNNI, where ONNX Runtime's int8 kernels "
                    "saturate 8-bit products")
ONNX_SYMMETRIC_NOTE = ("int8 for TensorRT: activations int8 and symmetric (zero point 0), the only int8 TensorRT "
                       "builds from Q/DQ; ONNX Runtime's CPU provider runs it, but leaves a residual Add in float")


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


def onnx_int8_scheme(runtimes) -> str:
    """How an int8 ONNX file for ``runtimes`` (a target's, in order) quantizes activations
    (``lower.onnx.INT8_SCHEMES``): ``symmetric`` (int8, zero point 0) when the first ONNX runtime among them is
    TensorRT, which takes nothing else; else ``u8s8``, what ONNX Runtime's CPU kernels run integer throughout."""
    onnx_runtimes = [r for r in runtimes if format_of(r) == "onnx"]
    return "symmetric" if onnx_runtimes[:1] == ["onnxruntime-tensorrt"] else "u8s8"


X86_MACHINES = ("x86_64", "amd64", "i386", "i686")


def saturates_int8(device: dict | None) -> bool:
    """Whether ONNX Runtime's 8-bit integer products saturate on ``device`` (a runtime_bench fingerprint).

    On x86 without VNNI, ONNX Runtime's u8 x s8 kernels multiply and add
    pairs into int16 (VPMADDUBSW), which saturates when both products of a
    pair are large; weights on 7 bits (``reduce_range``) keep every pair in
    range. A one-off probe on an AVX2-only AMD EPYC (ONNX Runtime 1.32,
    2026-12-03) of ``tests/test_lower.py``'s digits CNNs, 256 samples: the
    sequential CNN's 8-bit file kept the class of 92.2 % of them (abs diff
    0.358 at the 99th-percentile sample, 0.008 over the gate's bound: the
    gate caught it by that much), its 7-bit file 100 % (0.034); the residual
    CNN 58.6 % at 8 bits, 94.1 % at 7. ARM and x86 with AVX-512 VNNI or
    AVX-VNNI (runtime_bench's ``isa_from_flags``) do not saturate.
    """
    if not device:
        return False
    return str(device.get("machine", "")).lower() in X86_MACHINES and "VNNI" not in str(device.get("isa", ""))


def onnx_weight_bits(profile, links) -> int:
    """The bits of an int8 ONNX file's weights for ``profile``'s devices: 7 when one saturates 8-bit products.

    Only a target whose ONNX files are for ONNX Runtime's CPU provider (its
    first ONNX runtime) is concerned. ``links`` are the devices the files are
    built for (a farm: each); a device out of reach (no link) counts as not
    saturating: the gate, on this machine, still catches a saturated file and
    ``lower`` quantizes it again on 7 bits (``_onnx_int8_on_7_bits``).
    """
    if [r for r in profile.runtimes if format_of(r) == "onnx"][:1] != ["onnxruntime-cpu"]:
        return 8
    for link in links:
        runtime = next((r for r in profile.runtimes if link.runtime_reason(r) is None), None)
        if runtime is not None and saturates_int8(link.fingerprint(runtime)):
            return 7
    return 8


def lower(model, out_dir: str | Path, *, precision: str, formats, calibration: np.ndarray,
          verify_samples: np.ndarray | None = None, verify_labels: np.ndarray | None = None, stem: str = "model",
          final_dir: str | Path | None = None, onnx_int8: str = "u8s8", keep_failed: bool = False,
          onnx_bits: int = 8, stamp: dict[str, str] | None = None, xnnpack: bool = True,
          binary: str | None = None, onnx_opset: int = DEFAULT_OPSET) -> list[ArtifactRecord]:
    """Export ``model`` to each format at ``precision`` into ``out_dir`` and run each file through the gate.

    A file that fails the gate (or whose export fails, or that its runtime
    refuses) is deleted and its record says why; the others stay. Formats are
    independent: one failing does not take another down. The caller publishes
    what passed (``common.outputs``) and decides what a failure means.

    Args:
        model: a built single-input Keras model.
        out_dir: the directory to write ``{stem}.tflite`` / ``{stem}.onnx`` into
            (a staging folder).
        precision: ``fp32``, ``fp16`` or ``int8``. ONNX at fp16 stays an fp32
            file (its record says so in ``note``).
        formats: an iterable of names from ``FORMATS``.
        calibration: float32 samples shaped like the model input; the first
            ``CALIBRATION_SAMPLES`` calibrate int8 (required there, non-empty).
        verify_samples: samples for the gate (the first ``VERIFY_SAMPLES``);
            None: the calibration samples.
        verify_labels: their labels, for the artifact's own top-1 (optional).
        stem: the artifacts' file name without suffix.
        final_dir: where the files will be published (the records' ``path``);
            default ``out_dir``.
        onnx_int8: how an int8 ONNX file quantizes activations (``onnx_int8_scheme``).
        onnx_bits: the bits of an int8 ONNX file's weights (``onnx_weight_bits``): 8, or 7 for a CPU that
            saturates 8-bit products. At 8, a file that fails the gate is quantized again on 7.
        xnnpack: a TFLite file uses operators LiteRT's XNNPACK delegate takes in place of ones it would
            leave out (``tflite.export_tflite``: the same function, an int8 HARD_SWISH one rounding more);
            False for a device that runs other kernels (the Edge TPU, ``requires_full_int8``).
        keep_failed: leave a file that failed the gate in ``out_dir`` (a reference to time, never to publish:
            the caller removes it, ``lower.stage.discard_failed_references``), if it ran: one its runtime refused
            or crashed on (``verify.first_run_refused``) would take the benchmark's worker down with it.
        stamp: text entries written into each file before its gate (``lower.stamp``: the input contract,
            the class names), so the verified file is the one that carries them.
        binary: ``"sigmoid"`` or ``"logit"`` for a binary classifier's one output unit (``frontend.binary``):
            the gate reads its top-1 at the unit's threshold.
        onnx_opset: the opset of an ONNX file (``lower.opset``: the target's ``onnx_opset`` or ``--opset``).

    Returns:
        One ``ArtifactRecord`` per format, in order.

    Raises:
        ValueError: a bad precision, format or empty samples.
    """
    from lrfc.lower.verify import float_sensitivity, reference_outputs

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, received {precision!r}")
    formats = tuple(dict.fromkeys([formats] if isinstance(formats, str) else formats))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"formats must be a non-empty selection of {', '.join(FORMATS)}, received {list(formats)}")
    calibration = np.asarray(calibration, dtype=np.float32)[:CALIBRATION_SAMPLES]
    x_verify = calibration if verify_samples is None else np.asarray(verify_samples[:VERIFY_SAMPLES], dtype=np.float32)
    y_verify = None if verify_labels is None else np.asarray(verify_labels)[:VERIFY_SAMPLES]
    if not len(x_verify) or (precision == "int8" and not len(calibration)):
        raise ValueError(f"lower needs samples: received {len(calibration)} calibration and "
                         f"{len(x_verify)} verification samples")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final_dir = Path(final_dir) if final_dir is not None else out_dir
    reference = reference_outputs(model, x_verify)
    sensitivity = functools.cache(lambda: float_sensitivity(model, x_verify, reference))  # one model's files share it
    records = []
    for fmt in formats:
        with tempfile.TemporaryDirectory(prefix=".work-", dir=out_dir) as work:
            records.append(_lower_one(model, fmt, out_dir / f"{stem}.{fmt}", final_dir / f"{stem}.{fmt}", precision,
                                      calibration, Path(work), x_verify, reference, y_verify, onnx_int8,
                                      keep_failed, sensitivity, onnx_bits, stamp, xnnpack, binary, onnx_opset))
    return records


def _lower_one(model, fmt, staged: Path, final: Path, precision, calibration, work, x_verify, reference,
               y_verify, onnx_int8: str = "u8s8", keep_failed: bool = False, sensitivity=None,
               onnx_bits: int = 8, entries: dict[str, str] | None = None, xnnpack: bool = True,
               binary: str | None = None, opset: int = DEFAULT_OPSET) -> ArtifactRecord:
    """Export one format, stamp it with ``entries`` and gate it; a failed file is removed and its record says why."""
    from lrfc.common.memory import release
    from lrfc.lower.stamp import stamp
    from lrfc.lower.verify import gate as gate_any

    gate = functools.partial(gate_any, binary=binary)  # the retries below gate their files the same way

    start = time.perf_counter()
    try:
        artifact_precision, note = _EXPORTERS[fmt](model, staged, precision, calibration, work, onnx_int8=onnx_int8,
                                                   reduce_range=onnx_bits == 7, xnnpack=xnnpack, opset=opset)
        if entries:
            stamp(staged, fmt, entries)
    except Exception as exc:  # a converter that gives up: this format fails, the others go on
        why = first_line(exc)
        staged.unlink(missing_ok=True)
        return ArtifactRecord(fmt, str(final), precision, False, seconds=round(time.perf_counter() - start, 3),
                              error=f"{final.name}: conversion to {fmt} failed: {why}")
    finally:
        release()  # the converter's graphs: garbage in cycles, gone before the next conversion
    record = gate(staged, fmt, artifact_precision, x_verify, reference, y_verify, sensitivity)
    if not record.passed and (fmt, artifact_precision) == ("onnx", "int8") and onnx_bits == 8:
        record, again = _onnx_int8_on_7_bits(model, staged, calibration, work, x_verify, reference, y_verify, record,
                                             onnx_int8, entries, gate, opset)
        note = "; ".join(n for n in (note, again) if n) or None  # the exporter's note (TensorRT's scheme) stays
    if not record.passed and artifact_precision == "int8" and record.top1_agreement is not None:
        record, again = _int8_percentile_ranges(model, fmt, staged, calibration, work, x_verify, reference, y_verify,
                                                record, entries, xnnpack, onnx_int8, onnx_bits == 7 or saturates_here(),
                                                gate, opset)
        note = "; ".join(n for n in (note, again) if n) or None
    record.path, record.seconds = str(final), round(time.perf_counter() - start, 3)
    record.note = "; ".join(n for n in (note, record.note) if n) or None
    if record.error:
        record.error = record.error.replace(staged.name, final.name, 1)
    if not record.passed and (not keep_failed or record.top1_agreement is None):  # kept to be timed only if it ran
        staged.unlink(missing_ok=True)
    return record


def saturates_here() -> bool:
    """Whether this CPU lacks VNNI, so ONNX Runtime's 8-bit int8 products may saturate (``_onnx_int8_on_7_bits``)."""
    from runtime_bench.device import vector_isa

    return "VNNI" not in vector_isa()


def _int8_percentile_ranges(model, fmt: str, staged: Path, calibration, work: Path, x_verify, reference, y_verify,
                            first, entries: dict[str, str] | None = None, xnnpack: bool = True,
                            onnx_int8: str = "u8s8", reduce_range: bool = False, gate=None,
                            opset: int = DEFAULT_OPSET):
    """An int8 file that ran but failed the gate, its activation ranges set again to a percentile of the
    calibration samples' per-sample extremes (``int8_ranges``), and gated again: ``(record, note)``.

    One outlier image sets a min/max range's step for every other image:
    bench.foreign's MobileNetV3Small failed at top-1 agreement 0.715 on one
    draw of 256 calibration images and passed on another (the module doc of
    ``int8_ranges``). The second file replaces the first only if it passes;
    else the first failure is what the build reports, and its file stays.
    """
    from lrfc.common.memory import release
    from lrfc.lower.int8_ranges import PERCENTILE
    from lrfc.lower.stamp import stamp
    from lrfc.lower.verify import gate as gate_any

    gate = gate or gate_any

    second = work / f"percentile.{staged.name}"
    try:
        _, exporter_note = _EXPORTERS[fmt](model, second, "int8", calibration, work, reduce_range=reduce_range,
                                           onnx_int8=onnx_int8, xnnpack=xnnpack, ranges="percentile", opset=opset)
        if entries:
            stamp(second, fmt, entries)
    except Exception:  # noqa: BLE001 - the first failure stands
        return first, None
    finally:
        release()
    record = gate(second, fmt, "int8", x_verify, reference, y_verify)
    if not record.passed:
        return first, None
    second.replace(staged)
    record.path = str(staged)
    ranged = (f"activation ranges at the {PERCENTILE:g}th percentile of the {len(calibration)} calibration "
              f"samples' extremes: with the quantizer's min/max ranges it failed the gate ({first.error})")
    return record, "; ".join(n for n in (exporter_note, ranged) if n)


def _onnx_int8_on_7_bits(model, staged: Path, calibration, work: Path, x_verify, reference, y_verify, first,
                         onnx_int8: str = "u8s8", entries: dict[str, str] | None = None, gate=None,
                         opset: int = DEFAULT_OPSET):
    """An int8 ONNX file that failed the gate, quantized again with 7-bit weights and gated again: ``(record, note)``.

    ONNX Runtime runs int8 convolutions on x86 as u8 x s8 products summed in
    pairs into int16 (VPMADDUBSW), which saturates on CPUs without VNNI
    (ONNX Runtime's quantization docs); 7-bit weights (``reduce_range``) keep
    every pair in range. On an AVX2-only EPYC (ONNX Runtime 1.32) the test
    suite's sequential digits CNN failed the gate at 8 bits (relative max
    difference 0.44, top-1 agreement 0.92) and passed at 7 (0.04, 1.00),
    while the LiteRT int8 file of the same model differed by 0.02
    (``tests/test_lower.py``'s fixture quantized both ways by a one-off
    ``/tmp`` script, 2026-12-02 10:10 UTC). Where 8 bits passed, nothing
    changes; where 7 bits fail too, the first failure is what the build reports.
    A target whose device is known to saturate gets 7 bits from the start
    (``onnx_weight_bits``), and this retry never runs for it.
    The note names saturation only on a CPU without VNNI: with it an 8-bit
    failure is plain quantization error that 7 bits may still keep within the
    gate (``bench.foreign``'s EfficientNetB0 row of 2026-12-03 13:30 UTC: lrfc's
    int8 ONNX file on the Xeon, published at 7 bits; in the row's 18:28 UTC
    run, under the int8 bound at the 99th-percentile sample, 8 bits passed).
    """
    from lrfc.common.memory import release
    from lrfc.lower.stamp import stamp
    from lrfc.lower.verify import gate as gate_any

    gate = gate or gate_any
    try:
        _export_onnx(model, staged, "int8", calibration, work, reduce_range=True, onnx_int8=onnx_int8, opset=opset)
        if entries:
            stamp(staged, "onnx", entries)
    except Exception:  # the first failure stands
        return first, None
    finally:
        release()  # the converter's graphs, as after the first conversion
    record = gate(staged, "onnx", "int8", x_verify, reference, y_verify)
    if not record.passed:
        return first, None
    why = "" if not saturates_here() else " (int8 products saturate on x86 without VNNI)"
    return record, f"weights on 7 bits: at 8 bits ONNX Runtime on this CPU{why} failed the gate ({first.error})"


def failed(records) -> list[ArtifactRecord]:
    """The records that did not pass."""
    return [r for r in records if not r.passed]


def require_passed(records) -> None:
    """Raise ``VerificationError`` naming every failed artifact, in one line."""
    bad = failed(records)
    if bad:
        raise VerificationError("; ".join(r.error or f"{r.name} failed verification" for r in bad))


def _export_tflite(model, path: Path, precision: str, calibration: np.ndarray, work: Path,
                   reduce_range: bool = False, onnx_int8: str = "u8s8", xnnpack: bool = True,
                   ranges: str = "minmax", opset: int = DEFAULT_OPSET) -> tuple[str, str | None]:
    """``reduce_range``, ``onnx_int8`` and ``opset`` are ONNX's (``_EXPORTERS`` share one signature)."""
    from lrfc.lower.tflite import export_tflite

    export_tflite(model, path, precision, representative=calibration if precision == "int8" else None,
                  xnnpack=xnnpack, ranges=ranges)
    return precision, None


def _export_onnx(model, path: Path, precision: str, calibration: np.ndarray, work: Path,
                 reduce_range: bool = False, onnx_int8: str = "u8s8", xnnpack: bool = True,
                 ranges: str = "minmax", opset: int = DEFAULT_OPSET) -> tuple[str, str | None]:
    """``xnnpack`` is TFLite's (``_EXPORTERS`` share one signature)."""
    from lrfc.lower.onnx import export_onnx, quantize_onnx_int8

    if precision != "int8":
        export_onnx(model, path, opset)
        return "fp32", ONNX_FP16_NOTE if precision == "fp16" else None
    fp32 = export_onnx(model, work / f"fp32.{path.name}", opset)
    quantize_onnx_int8(fp32, path, calibration, reduce_range=reduce_range, scheme=onnx_int8, ranges=ranges)
    fp32.unlink()
    notes = [ONNX_SYMMETRIC_NOTE if onnx_int8 == "symmetric" else "", ONNX_7_BITS_NOTE if reduce_range else ""]
    return "int8", "; ".join(n for n in notes if n) or None


_EXPORTERS = {"tflite": _export_tflite, "onnx": _export_onnx}


def export_file(model, fmt: str, path: Path, precision: str, calibration: np.ndarray, onnx_int8: str = "u8s8",
                opset: int = DEFAULT_OPSET) -> Path:
    """Export ``model`` to ``path`` in ``fmt`` at ``precision``, with no gate: for timing, never for publishing."""
    with tempfile.TemporaryDirectory(prefix="lrfc-export-") as work:
        _EXPORTERS[fmt](model, Path(path), precision, calibration, Path(work), onnx_int8=onnx_int8, opset=opset)
    return Path(path)
FORMATS = tuple(_EXPORTERS)
"""The formats lrfc writes, one exporter each; which runtime runs a format is runtime_bench's registry's business."""


# ------------------------------------------------------------------ lrfc export


