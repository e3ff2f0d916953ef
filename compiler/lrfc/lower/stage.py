"""The ``lower`` stage: the compressed and the original model lowered to the target's formats and verified.

It writes the compressed model as ``model.<fmt>`` and the original as
``original.<fmt>`` in the target's formats and precision (int8 calibrated on
the calibration samples) into the build's staging folder; each file goes
through the verification gate (``lrfc.lower.verify``) against its Keras model
on held-out validation samples. A file that fails is not published and the
build ends with exit status 1 naming it (``pipeline.run_build``); the formats
that passed are published and benchmarked all the same.

The int8 baseline: when the benchmark will run and the target's precision is
not int8, both models are also lowered to full int8 (post-training
quantization on the calibration samples: what an edge engineer would do
instead of lrfc) as ``model.int8.<fmt>`` and ``original.int8.<fmt>``, through
the same gate at int8's tolerance, so the benchmark times all four side by
side. A baseline that fails its gate is reported, not a build failure.
"""

from __future__ import annotations

from dataclasses import replace

INT8_BASELINE = "int8 baseline"


def wants_int8_baseline(state) -> bool:
    """Whether this build lowers and times both models at int8 beside the target's precision."""
    opts = state.options
    return (opts.int8_baseline and opts.bench_runs > 0 and state.link is not None
            and state.profile.precision != "int8")


def lower(state) -> None:
    """Lower, verify and stage the compressed and the original model in the target's formats."""
    from lrfc.lower.artifacts import formats_for, lower as lower_model

    opts = state.options
    formats = tuple(opts.formats) if opts.formats else formats_for(state.profile)
    s = state.splits
    state.artifacts = []
    runs = [(state.profile.precision, None, "")]
    if wants_int8_baseline(state):
        runs.append(("int8", INT8_BASELINE, ".int8"))
    for precision, variant, suffix in runs:
        for role, model, stem in (("compressed", state.compressed, "model"), ("original", state.flat, "original")):
            records = lower_model(model, state.output.staging, precision=precision, formats=formats,
                                  calibration=s.x_calib, verify_samples=s.x_val, verify_labels=s.y_val,
                                  stem=stem + suffix, final_dir=state.output.path)
            state.artifacts += [replace(r, model=role, variant=variant) for r in records]
    for r in state.artifacts:
        if not r.passed and r.variant is not None:
            state.log(f"lrfc: warning: {r.variant} {r.error}")
        elif not r.passed:
            state.log(f"lrfc: error: {r.error}")
        elif r.model == "compressed" and r.variant is None:
            state.log(f"{r.name}: {r.bytes:,} bytes, verified: max_abs_diff {r.max_abs_diff:.3g}, "
                      f"top-1 agreement {100 * r.top1_agreement:.2f}% on {r.samples} samples")
