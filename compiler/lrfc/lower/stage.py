"""The ``lower`` stage: the compressed and the original model lowered to the target's formats and verified.

It writes the compressed model as ``model.<fmt>`` and the original as
``original.<fmt>`` in the target's formats and precision (int8 calibrated on
the calibration samples) into the build's staging folder; each file goes
through the verification gate (``lrfc.lower.verify``) against its Keras model
on held-out validation samples. A file that fails is not published and the
build ends with exit status 1 naming it (``pipeline.run_build``); the formats
that passed are published and benchmarked all the same.
"""

from __future__ import annotations

from dataclasses import replace


def lower(state) -> None:
    """Lower, verify and stage the compressed and the original model in the target's formats."""
    from lrfc.lower.artifacts import formats_for, lower as lower_model

    opts = state.options
    formats = tuple(opts.formats) if opts.formats else formats_for(state.profile)
    s = state.splits
    state.artifacts = []
    for role, model, stem in (("compressed", state.compressed, "model"), ("original", state.flat, "original")):
        records = lower_model(model, state.output.staging, precision=state.profile.precision, formats=formats,
                              calibration=s.x_calib, verify_samples=s.x_val, verify_labels=s.y_val, stem=stem,
                              final_dir=state.output.path)
        state.artifacts += [replace(r, model=role) for r in records]
    for r in state.artifacts:
        if not r.passed:
            state.log(f"lrfc: error: {r.error}")
        elif r.model == "compressed":
            state.log(f"{r.name}: {r.bytes:,} bytes, verified: max_abs_diff {r.max_abs_diff:.3g}, "
                      f"top-1 agreement {100 * r.top1_agreement:.2f}% on {r.samples} samples")
