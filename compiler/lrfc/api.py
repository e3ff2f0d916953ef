"""The Python API: what the command line does, as functions. The CLI is a thin layer over these.

    import lrfc
    result = lrfc.build("model.keras", "fashion-mnist", target="host", objective="flops", out="out")
    print(result.report["compressed"]["accuracy"], result.outputs["model.tflite"])

``model`` may be a path or a ``keras.Model``; ``data`` a ``--data`` string or
arrays: ``(x, y)``, ``(x, y, x_test, y_test)`` or a mapping with those keys
(images in their own value range; the model's input contract maps them, as
for files). Options are ``lrfc.options.BuildOptions`` fields, the CLI's flags
with underscores (``max_acc_drop=1.0``, ``input_range="0-255"``, ...).
Mistakes raise ``lrfc.errors.UserError``; an artifact that fails
verification raises ``lrfc.errors.VerificationError`` after the rest is
published, with the result attached (``exc.result``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lrfc.common.progress import stderr_line
from lrfc.errors import VerificationError


@dataclass(frozen=True)
class BuildResult:
    """What ``build`` produced: the plan, the report (report.json's content), the model, the published files."""

    plan: Any                      # lrfc.plan.Plan
    report: dict
    model: Any                     # the compressed keras.Model (in memory; also published as model.keras)
    artifacts: tuple               # lower.records.ArtifactRecord per file, failed ones included
    outputs: dict                  # file name -> published path

    @property
    def failed(self) -> list:
        """lrfc's files at the target's precision that failed verification (not published).

        A failed reference (``ArtifactRecord.deliverable``: the original's file, or
        either model at the other precision, timed beside lrfc's) is a warning in
        the report, not a failure.
        """
        return [a for a in self.artifacts if not a.passed and a.deliverable]

    @property
    def budget_met(self) -> bool:
        """Whether the top-1 drop stayed within ``max_acc_drop``."""
        return bool(self.report["accuracy_budget"]["met"])


def build(model, data, target: str = "host", *, out: str | Path = "lrfc-out", log=stderr_line, **options) -> BuildResult:
    """``lrfc build``: compress ``model`` for ``target``, publish verified artifacts and a report into ``out``.

    Args:
        model: a .keras/.h5 path, a SavedModel folder, or a ``keras.Model``.
        data: a ``--data`` string, or arrays (see the module doc).
        target: a profile name, ``jetson``, or a .toml path.
        out: the output folder (its results are replaced as one set at the end).
        log: where progress and warnings go (one line per call).
        **options: ``BuildOptions`` fields.

    Raises:
        UserError: a bad option, model or data (nothing is published).
        VerificationError: an artifact failed its gate; ``exc.result`` is the ``BuildResult``.
    """
    import dataclasses

    from lrfc.errors import UserError
    from lrfc.options import BuildOptions
    from lrfc.pipeline import run_build

    known = {f.name for f in dataclasses.fields(BuildOptions)} - {"model", "data", "target", "out"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UserError(f"unknown option {unknown[0]!r}; expected some of {', '.join(sorted(known))}")
    state = run_build(BuildOptions(model=model, data=data, target=target, out=str(out), **options), log=log)
    result = BuildResult(state.plan, state.report, state.compressed, tuple(state.artifacts),
                         {p.name: p for p in state.outputs.values()})
    if result.failed:
        error = VerificationError("; ".join(a.error for a in result.failed))
        error.result = result
        raise error
    return result


def export(model, target: str = "host", *, out: str | Path, formats=None, precision: str | None = None, data=None,
           calib_samples: int = 256, seed: int = 0, trust: bool = False, allow_low_accuracy: bool = False,
           log=stderr_line, class_names: tuple[str, ...] | None = None, opset: int | None = None,
           **contract) -> dict:
    """``lrfc export``: ``model`` as it is, lowered to verified artifacts and export.json in ``out``.

    ``contract`` takes ``input_range``, ``input_mean``, ``input_std``,
    ``channel_order`` (as strings, like the flags); ``class_names`` each output's class, in order (``--class-names``);
    ``opset`` the ONNX file's opset in place of the target's (``--opset``). Returns the export.json document.
    """
    from lrfc.lower.export import export_model

    return export_model(model, target, out, formats=formats, precision=precision, data=data,
                        calib_samples=calib_samples, trust=trust, seed=seed, contract=_contract(contract),
                        allow_low_accuracy=allow_low_accuracy, log=log, class_names=class_names, opset=opset)


def verify(artifact: str | Path, model, *, data=None, precision: str | None = None, seed: int = 0,
           trust: bool = False, allow_low_accuracy: bool = False, log=stderr_line,
           class_names: tuple[str, ...] | None = None, **contract):
    """``lrfc verify``: the verification gate on an existing artifact; returns its ``ArtifactRecord``."""
    from lrfc.lower.check import verify_artifact

    return verify_artifact(str(artifact), model, data=data, precision=precision, seed=seed, trust=trust,
                           contract=_contract(contract), allow_low_accuracy=allow_low_accuracy, log=log,
                           class_names=class_names)


def inspect(model, *, trust: bool = False, input_shape: tuple[int, ...] | None = None) -> dict:
    """``lrfc inspect --json``: every layer, its cost, the methods that apply, and the inferred input contract;
    for a ``.tflite``/``.onnx`` file what it takes, gives, carries and runs (``lower.artifact_info``)."""
    if isinstance(model, (str, Path)) and Path(model).suffix.lower() in (".tflite", ".onnx"):
        from lrfc.lower.artifact_info import artifact_info

        return artifact_info(model)
    from lrfc.frontend.inspect import inspect_model

    return inspect_model(model, trust=trust, input_shape=input_shape)


def bench(artifacts, *, device: str | None = None, **options) -> dict:
    """``lrfc bench``: time files (each in its runtime, alternating) here or on an ``ssh://`` device."""
    from runtime_bench.remote import run_bench

    return run_bench([str(a) for a in artifacts], device=device, **options)


def _contract(flags: dict):
    from lrfc.errors import UserError
    from lrfc.frontend.contract import given_contract

    unknown = sorted(set(flags) - {"input_range", "input_mean", "input_std", "channel_order"})
    if unknown:
        raise UserError(f"unknown option {unknown[0]!r}; expected input_range, input_mean, input_std or channel_order")
    return given_contract(flags.get("input_range"), flags.get("input_mean"), flags.get("input_std"),
                          flags.get("channel_order"))
