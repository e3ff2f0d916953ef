"""`lrfc export`: lower a model as it is (no compression) to verified artifacts and export.json.

The model's input contract (``frontend.contract``) decides what the
verification and int8 calibration samples look like, with ``--data`` or
without: random inputs are drawn as unit pixel values and mapped by the
contract, so a model that expects [-1, 1] is never verified on [0, 1] noise.
With ``--data`` the original must pass the sanity gate first
(``frontend.sanity``): an int8 file calibrated on data the model cannot read
would "pass" while predicting one class for everything. Formats are
independent: one that fails the gate is not published, the others are, and
the command exits 1 naming the failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lrfc.errors import UserError
from lrfc.lower.artifacts import CALIBRATION_SAMPLES, FORMATS, PRECISIONS, VERIFY_SAMPLES, formats_for

RANDOM_VERIFY_SAMPLES = 64  # random unit-pixel inputs when no data is given (fp32/fp16 only)


@dataclass(frozen=True)
class ExportSamples:
    """Calibration and verification samples (model units), verification labels if known, and what they are."""

    calibration: np.ndarray
    verify: np.ndarray
    labels: np.ndarray | None
    described: str
    classes: tuple[str, ...] | None = None  # the class names by label, when the data named them


def check_formats(formats, profile) -> tuple[str, ...]:
    """``--formats`` as a tuple of ``FORMATS``; None: the target's."""
    if formats is None:
        return formats_for(profile)
    formats = tuple(dict.fromkeys(f.strip() for f in formats if f.strip()))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise UserError(f"--formats: received {','.join(formats) or 'nothing'!r}; "
                        f"expected a comma list of {', '.join(FORMATS)}")
    return formats


def load_single_io(model_path: str, trust: bool, command: str):
    """Load and flatten a model that has one input of fixed shape and one output."""
    from lrfc.frontend.load import load_flat

    model = load_flat(model_path, trust)
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UserError(f"{model_path}: lrfc {command} takes a single-input, single-output model; this one has "
                        f"{len(model.inputs)} inputs and {len(model.outputs)} outputs")
    shape = tuple(model.inputs[0].shape[1:])
    if None in shape:
        raise UserError(f"{model_path}: the input shape {shape} has undefined dimensions; "
                        f"lrfc {command} needs a fixed input shape (batch aside)")
    return model


def draw_samples(model, contract, data: str | None, calib_samples: int, seed: int, *,
                 allow_low_accuracy: bool = False, log=None, class_names: tuple[str, ...] | None = None) -> ExportSamples:
    """Seeded calibration samples and disjoint verification samples, in the model's units.

    Without ``data``: ``RANDOM_VERIFY_SAMPLES`` uniform unit-pixel inputs
    mapped by the contract (no labels). With it: verification uses the data's
    test split when it has one, else the samples left after calibration, else
    (tiny data) the calibration samples; the original must pass the sanity
    gate on them (a binary classifier's one unit scored as two classes,
    ``frontend.binary``). Unlabelled data (an npz without ``y``, a folder of images
    without class subfolders: what TFLite calls a representative dataset)
    calibrates and verifies the same way, but nothing can score the original
    on it, so the sanity gate is skipped and ``log`` says so: a wrong input
    range is not caught there.
    """
    from lrfc.frontend.binary import as_two_class, binary_kind
    from lrfc.frontend.data import load_data
    from lrfc.frontend.sanity import check_original

    binary = binary_kind(model)
    if binary is not None:  # one sigmoid unit or logit: scored as two classes, as a build does (frontend.binary)
        model = as_two_class(model, binary)
    rng = np.random.default_rng(seed)
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    if data is None:
        x = contract.apply(rng.uniform(0.0, 1.0, (RANDOM_VERIFY_SAMPLES, *shape)).astype(np.float32))
        return ExportSamples(x, x, None, f"random pixel values mapped as {contract.range}, {RANDOM_VERIFY_SAMPLES} samples")
    out_shape = model.outputs[0].shape
    num_classes = int(out_shape[-1]) if len(out_shape) == 2 and out_shape[-1] else None
    ds = load_data(data, shape, num_classes, contract, labels=False, class_names=class_names)
    perm = rng.permutation(len(ds.x))
    calibration = ds.x[perm[:calib_samples]]
    if ds.x_test is not None and len(ds.x_test):
        pick = np.sort(rng.permutation(len(ds.x_test))[:VERIFY_SAMPLES])
        x, y, described = ds.x_test[pick], _at(ds.y_test, pick), f"{data} test split, {len(pick)} samples"
    elif len(perm) > calib_samples:
        rest = np.sort(perm[calib_samples:calib_samples + VERIFY_SAMPLES])
        x, y, described = ds.x[rest], _at(ds.y, rest), f"{data}, {len(rest)} samples disjoint from calibration"
    else:
        x, y = calibration, _at(ds.y, perm[:calib_samples])
        described = f"{data}, the {len(calibration)} calibration samples (no others left)"
    if y is None:
        described += ", unlabelled"
        if log is not None:
            log(f"{data} has no labels: the original's accuracy is not checked, so neither is the input range it "
                f"assumes (pixel values {contract.range}, {contract.source}); the gate compares the files' outputs "
                "with Keras only")
    elif num_classes is not None:
        check_original(model, x, y, contract, passthrough=ds.values.startswith("as given"),
                       allow_low=allow_low_accuracy, where=described.split(",")[0], log=log, class_names=ds.classes)
    return ExportSamples(calibration, x, y, described, ds.classes)


def _at(labels: np.ndarray | None, index) -> np.ndarray | None:
    return None if labels is None else labels[index]


def export_model(model_path: str, target: str, out: str | Path, *, formats: tuple[str, ...] | None = None,
                 precision: str | None = None, data: str | None = None, calib_samples: int = CALIBRATION_SAMPLES,
                 trust: bool = False, seed: int = 0, contract=None, allow_low_accuracy: bool = False,
                 log=None, class_names: tuple[str, ...] | None = None, opset: int | None = None) -> dict:
    """``lrfc export``: lower a model file, uncompressed, to verified artifacts and ``export.json`` in ``out``.

    Args:
        model_path: a .keras, .h5/.hdf5 file or a SavedModel directory.
        target: a profile name, alias or ``.toml`` path.
        out: the output directory (published as one unit, ``common.outputs``).
        formats: subset of ``FORMATS``; None: the target's (``formats_for``).
        precision: ``fp32``, ``fp16`` or ``int8``; None: the target's.
        data: a ``--data`` spec (see ``lrfc.frontend.data``); required for int8.
        calib_samples: calibration samples drawn from ``data``
            (1..``CALIBRATION_SAMPLES``).
        trust: allow layers whose loading runs code stored in the file.
        seed: seed of the sample draws.
        contract: the given ``InputContract``; None: inferred from the model.
        allow_low_accuracy: go on when the original scores at chance on ``data``.
        log: where warnings go.
        class_names: ``--class-names``, each output's class in order (numbers ``data``'s class folders).
        opset: ``--opset``, the ONNX file's opset in place of the target's ``onnx_opset`` (``lower.opset``).

    Returns:
        The ``export.json`` document: ``{"provenance", "model", "target", "precision",
        "formats", "input", "calibration_samples", "verification_data",
        "artifacts"}`` (+ ``"onnx_opset"`` with an ONNX file; + ``"notes"``; + ``"int8_equalization"`` when int8 equalized a factorized model's chains,
        ``factorize.equalize``).

    Raises:
        UserError: bad options, model, profile or data.
        VerificationError: an artifact failed the gate; the others and
            export.json are published, the failed one is not.
    """
    from lrfc.common.atomic import write_text
    from lrfc.common.outputs import OutputDir
    from lrfc.cost.devices import links_for
    from lrfc.frontend.binary import binary_kind
    from lrfc.frontend.contract import resolve
    from lrfc.frontend.recorded import with_recorded
    from lrfc.lower.artifacts import lower, onnx_int8_scheme, onnx_weight_bits, require_passed
    from lrfc.provenance import provenance
    from lrfc.lower.stamp import stamp_entries

    profile, precision, formats = _checked(model_path, target, formats, precision, data, calib_samples, opset)
    output = OutputDir(out)
    output.prepare(log)
    try:
        if isinstance(model_path, (str, Path)):  # a build's model.keras: the contract its report or it recorded
            contract = with_recorded(contract, [Path(model_path)], log)
        model = load_single_io(model_path, trust, "export")
        contract = resolve(model, contract)
        samples = draw_samples(model, contract, data, calib_samples, seed, allow_low_accuracy=allow_low_accuracy,
                               log=log, class_names=class_names)
        equalized = None
        if precision == "int8":  # a factorized model's chains (an lrfc model.keras): the same function, less rounding
            from lrfc.factorize.equalize import equalize_chains

            equalized = equalize_chains(model, samples.calibration)
        records = lower(model, output.staging, precision=precision, formats=formats, calibration=samples.calibration,
                        verify_samples=samples.verify, verify_labels=samples.labels, final_dir=output.path,
                        onnx_int8=onnx_int8_scheme(profile.runtimes),
                        onnx_bits=(onnx_weight_bits(profile, links_for(profile, None))
                                   if precision == "int8" and "onnx" in formats else 8),
                        stamp=stamp_entries(contract, samples.classes), xnnpack=not profile.requires_full_int8,
                        binary=binary_kind(model), onnx_opset=profile.onnx_opset)
        doc = {"provenance": provenance(), "model": str(model_path) if isinstance(model_path, (str, Path)) else model.name, "target": profile.name, "precision": precision, "formats": list(formats),
               **({"onnx_opset": profile.onnx_opset} if "onnx" in formats else {}),
               "input": contract.to_json(), "calibration_samples": len(samples.calibration) if precision == "int8" else 0,
               "verification_data": samples.described, "artifacts": [r.to_json() for r in records]}
        if equalized is not None and equalized.links:
            doc["int8_equalization"] = equalized.to_json()
        if profile.requires_full_int8:
            doc["notes"] = [f"{profile.name}: compile model.tflite with edgetpu_compiler to run it on the Edge TPU "
                            "(lrfc does not run it)"]
        write_text(output.staging / "export.json", json.dumps(doc, indent=2) + "\n")
        output.publish()
    finally:
        output.discard()
    require_passed(records)
    return doc


def _checked(model_path, target: str, formats, precision, data, calib_samples: int, opset: int | None = None):
    """The profile, precision and formats of an export, every option checked before anything loads."""
    from lrfc.options import check_data_spec
    from lrfc.targets import load_profile, with_opset

    profile = with_opset(load_profile(target), opset)
    precision = precision or profile.precision
    if precision not in PRECISIONS:
        raise UserError(f"--precision: received {precision!r}; expected one of {', '.join(PRECISIONS)}")
    formats = check_formats(formats, profile)
    if profile.requires_full_int8 and (precision != "int8" or formats != ("tflite",)):
        raise UserError(f"target {profile.name} runs fully int8 TFLite models only (requires_full_int8); "
                        f"received --precision {precision} --formats {','.join(formats)}, expected int8 and tflite")
    if not 1 <= calib_samples <= CALIBRATION_SAMPLES:
        raise UserError(f"--calib-samples: received {calib_samples}; expected 1..{CALIBRATION_SAMPLES}")
    if precision == "int8" and data is None:
        raise UserError("--data is required for int8 (calibration samples)")
    if data is not None:
        check_data_spec(data)
    if isinstance(model_path, (str, Path)) and not Path(model_path).exists():
        raise UserError(f"model not found: {model_path}")
    return profile, precision, formats


def render_table(doc: dict) -> str:
    """The short table ``lrfc export`` prints: one line per artifact, then what was verified on."""
    from lrfc.frontend.contract import from_record
    from lrfc.lower.io_spec import quantized_io_line
    from runtime_bench.delegation import delegation_line
    from runtime_bench.measure import size_text

    head = ("format", "precision", "size", "max_abs_diff", "top1_agreement", "passed")
    rows = [(a["format"], a["precision"], size_text(a.get("bytes", 0)),
             "-" if a.get("max_abs_diff") is None else f"{a['max_abs_diff']:.3g}",
             "-" if a.get("top1_agreement") is None else f"{a['top1_agreement']:.4f}",
             "yes" if a["passed"] else "no") for a in doc["artifacts"]]
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in (head, *rows)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"input: {doc['input']['range']} pixel values ({doc['input']['source']})")
    contract = from_record(doc["input"], "export.json")
    lines += [f"int8 I/O: {line}" for line in (quantized_io_line(a, contract) for a in doc["artifacts"]) if line]
    lines += [f"LiteRT: {line}" for line in (delegation_line(a) for a in doc["artifacts"]) if line]
    lines.append(f"verified on {doc['verification_data']}")
    for a in doc["artifacts"]:
        if a.get("accuracy") is not None:
            lines.append(f"accuracy: {a['format']}: {100 * a['accuracy']:.2f}% top-1 (Keras model "
                         f"{100 * a['reference_accuracy']:.2f}%) on the verification samples")
    lines += [f"note: {a['format']}: {a['note']}" for a in doc["artifacts"] if a.get("note")]
    lines += [f"failed: {a['error']}" for a in doc["artifacts"] if a.get("error")]
    lines += [f"note: {n}" for n in doc.get("notes", [])]
    return "\n".join(lines)
