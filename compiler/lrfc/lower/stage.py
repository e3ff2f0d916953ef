"""The ``lower`` stage: the compressed and the original model lowered to the target's formats and verified.

It writes the compressed model as ``model.<fmt>`` and the original as
``original.<fmt>`` in the target's formats and precision (int8 calibrated on
the calibration samples); each file passes the verification gate
(``lrfc.lower.verify``) against its Keras model on held-out validation
samples, or the build fails with the numbers (exit status 1).
"""

from __future__ import annotations

from pathlib import Path


def lower(state) -> None:
    """Lower, verify and write the compressed and the original model in the target's formats."""
    from lrfc.lower.artifacts import formats_for, lower as lower_model

    opts = state.options
    formats = tuple(opts.formats) if opts.formats else formats_for(state.profile)
    out = Path(opts.out)
    calib, held_out = state.splits["x_calib"], state.splits["x_val"]
    state.artifacts = []
    for role, model, stem in (("compressed", state.compressed, "model"), ("original", state.flat, "original")):
        records = lower_model(model, out, precision=state.profile.precision, formats=formats, calibration=calib,
                              verify_samples=held_out, stem=stem)
        state.artifacts += [{**r, "model": role} for r in records]
    for r in state.artifacts:
        if r["model"] == "compressed":
            state.log(f"{Path(r['path']).name}: {r['bytes']:,} bytes, verified: max_abs_diff {r['max_abs_diff']:.3g}, "
                      f"top-1 agreement {100 * r['top1_agreement']:.2f}% on {r['samples']} samples")
