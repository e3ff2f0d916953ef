"""The ``load`` stage: target profile, device link, model, catalogue, data splits, the original's accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lrfc.errors import UserError


def split(options, ds) -> dict:
    """Disjoint, seeded calibration / training / held-out splits of a ``Dataset``."""
    rng = np.random.default_rng(options.seed)
    perm = rng.permutation(len(ds.x))
    n_calib = min(options.calib_samples, len(ds.x))
    calib, rest = perm[:n_calib], perm[n_calib:]
    if ds.x_test is not None:
        x_val, y_val = ds.x_test, ds.y_test
    else:
        n_val = max(1, len(rest) // 5)
        val, rest = rest[:n_val], rest[n_val:]
        x_val, y_val = ds.x[val], ds.y[val]
    if options.finetune != "none" and len(rest) < 1:
        raise UserError(f"--data: {len(ds.x)} samples leave none to fine-tune on after {n_calib} calibration samples; "
                        "lower --calib-samples or pass more data")
    if options.train_samples is not None:
        rest = rest[: options.train_samples]
    return {"x_calib": ds.x[calib], "x_train": ds.x[rest], "y_train": ds.y[rest], "x_val": x_val, "y_val": y_val}


def load(state) -> None:
    """Model, target profile, data splits, catalogue, original accuracy."""
    from lrfc.cost.devices import link_for
    from lrfc.frontend.catalogue import describe_model
    from lrfc.frontend.data import load_data
    from lrfc.frontend.load import load_flat
    from lrfc.search.cache import Cache
    from lrfc.targets import load_profile
    from lrfc.train.finetune import evaluate

    opts = state.options
    state.profile = load_profile(opts.target)
    state.objective = opts.objective or state.profile.objective
    state.link = link_for(state.profile, opts.device, opts.device_python, opts.identity_file, opts.ssh_options)
    if state.link is not None and state.link.url is not None:
        state.link.describe(state.profile.runtimes[0])  # an unreachable device fails now, not after the search
    state.flat = load_flat(opts.model, opts.trust_model)
    state.rows = describe_model(state.flat)
    if len(state.flat.inputs) != 1 or len(state.flat.outputs) != 1:
        raise UserError(f"{opts.model}: lrfc build takes a single-input, single-output classifier")
    methods = set(opts.methods)
    state.targets = [r.name for r in state.rows if methods & set(r.methods)]
    if not state.targets:
        raise UserError(f"{opts.model}: nothing to factorize — no layer takes any of the methods {', '.join(opts.methods)}")
    num_classes = int(state.flat.outputs[0].shape[-1])
    ds = load_data(opts.data, tuple(state.flat.inputs[0].shape[1:]), num_classes)
    state.splits = split(opts, ds)
    state.accuracy["original"] = evaluate(state.flat, state.splits["x_val"], state.splits["y_val"])
    state.cache = Cache(Path(opts.cache_dir) if opts.cache_dir else None, enabled=opts.cache)
