"""The ``load`` stage: target profile, device link, model, input contract, data splits, and the sanity gate.

Everything a user can get wrong is found here, before any heavy work: the
model, the data and how its values reach the model (``frontend.contract``),
and whether the original model actually works on that data
(``frontend.sanity``).
"""

from __future__ import annotations

from pathlib import Path

from lrfc.errors import UserError


def load_inputs(options, model, log, rows, targets, progress=None):
    """The input contract, the dataset in the model's units, its splits, the memory plan, whether the original
    gets each validation sample right (its top-1 is their mean; the budget's paired drops need each one), its
    outputs on the training split when that has no labels (None otherwise), and where the labels came from
    (``BuildState.labels``: "data", or ``frontend.unlabelled``'s ``SOURCE`` or ``HELD_OUT``).

    Data without labels is labelled with the original's answers
    (``frontend.unlabelled``): the original is then right on every sample by
    construction, and the sanity gate can check only that its answers vary.

    ``log`` gets the lines a user should see (the contract, the split, the
    memory plan, warnings). The memory plan (``frontend.memory_plan``) caps
    every inference batch from here on, the sanity gate's included.
    ``progress(label, total, transient)`` (``BuildState.progress``) shows the
    original's pass over the validation split on a terminal while it runs,
    minutes for a large model at 224x224 (VGG16 on 5,000 samples: 8 on this
    2-core machine); it leaves no line, so a refusal stays one line.
    """
    import contextlib

    import math

    import numpy as np

    from lrfc.frontend.contract import resolve
    from lrfc.frontend.data import load_data
    from lrfc.frontend.memory_plan import plan_memory
    from lrfc.frontend.recorded import with_recorded
    from lrfc.frontend.samples import cap_batches, source_bytes
    from lrfc.frontend.sanity import (check_original, check_unlabelled, predict, samples_to_resolve,
                                      validation_resolution)
    from lrfc.frontend.splits import make_splits
    from lrfc.frontend.unlabelled import HELD_OUT, SOURCE, label_with_original
    from lrfc.search.calibrate import DEFAULT_BUDGET_BYTES
    from lrfc.train.paired import DISAGREE_GUESS, error_guess, samples_for_margin, z_of

    given = options.given_contract()
    if isinstance(options.model, (str, Path)):  # an lrfc model.keras: the contract it was built under
        given = with_recorded(given, [Path(options.model)], log)
    contract = resolve(model, given)
    num_classes = int(model.outputs[0].shape[-1])
    shape = tuple(model.inputs[0].shape[1:])
    ds = load_data(options.data, shape, num_classes, contract, labels=False, progress=progress,
                   class_names=options.class_names)
    splits = make_splits(ds, options.calib_samples, options.seed, options.finetune != "none", options.train_samples)
    memory = plan_memory(model, rows, targets, source_bytes(ds.x) + source_bytes(ds.x_test), 4 * math.prod(shape),
                         len(splits.x_calib), options.memory_bytes(), DEFAULT_BUDGET_BYTES)
    cap_batches(memory.predict_batch)
    passthrough = ds.values.startswith("as given")
    tuned = options.finetune != "none" and options.epochs > 0
    labels = SOURCE if splits.y_val is None else "data" if ds.y is not None else HELD_OUT
    if splits.y_val is None:  # no labels where the budget is judged: the original's answers are (frontend.unlabelled)
        splits, outputs, train_outputs = label_with_original(model, splits, progress, train=tuned)
        check_unlabelled(model, splits.x_val, outputs, contract, passthrough=passthrough,
                         allow_low=options.allow_low_accuracy, log=log, fit=ds.fit)
        accuracy, scored = 1.0, ("no labels: the original's answers are the labels, so --max-acc-drop holds the "
                                 "share of answers that change, which bounds the top-1 drop on such data")
    else:
        with (progress("original on validation", len(splits.x_val), transient=True) if progress
              else contextlib.nullcontext()) as bar:
            outputs = predict(model, splits.x_val, progress=bar.update if bar is not None else None)
        accuracy = check_original(model, splits.x_val, splits.y_val, contract, passthrough=passthrough,
                                  allow_low=options.allow_low_accuracy, log=log, fit=ds.fit, outputs=outputs,
                                  class_names=ds.classes)
        scored = f"the original scores {100 * accuracy:.2f}% on validation"
        train_outputs = None
        if labels == HELD_OUT:  # labelled held-out images, unlabelled training ones: those take the original's answers
            splits, _, train_outputs = label_with_original(model, splits, progress, train=tuned)
            scored += ("; the training samples have no labels: the original's answers are theirs (fine-tuning "
                       "distils it), and validation's labels hold the budget")
    right = outputs.reshape(len(outputs), -1).argmax(-1) == np.asarray(splits.y_val).reshape(-1)
    del outputs
    log(f"input: {ds.values}" + (f"; the model's input contract ({contract.describe()}) is not applied to it"
                                  if passthrough else f" -> {contract.describe()}") + (f"; {ds.fit}" if ds.fit else ""))
    log(f"data: {options.data_name}: {splits.describe()}; {scored}")
    if labels == SOURCE:
        log(f"lrfc: warning: {options.data_name} has no labels{' on its held-out split' if ds.y is not None else ''}, "
            "so lrfc cannot check that the original works on the values it is fed (a wrong input range leaves a "
            "model answering, wrongly) and every accuracy below is agreement with its answers; labels (class "
            "subfolders, an npz 'y', a CSV of files and labels; on the held-out split alone: 'y_test', DIR/val/<class>/) let lrfc check both")
    log(memory.describe())
    for note in (*ds.notes, *splits.notes, *filter(None, [memory.lowering_warning()])):
        log(f"lrfc: warning: {note}")
    error = validation_resolution(accuracy, len(splits.x_val))
    if options.finetune != "none" and error > options.max_acc_drop:
        need = samples_to_resolve(accuracy, options.max_acc_drop)
        log(f"lrfc: warning: the validation split has {len(splits.x_val):,} samples, so its top-1 is uncertain by "
            f"about {error:.1f} points (one standard error), more than --max-acc-drop {options.max_acc_drop:g}; "
            f"about {need:,} samples resolve it")
    if options.confidence is not None:
        margin = z_of(options.confidence) * error_guess(len(splits.x_val))
        if margin >= options.max_acc_drop / 2:
            log(f"lrfc: warning: --confidence {options.confidence:g} on {len(splits.x_val):,} validation samples adds "
                f"about {margin:.2f} points to a drop for its bound (at {DISAGREE_GUESS:.0%} of them answered "
                f"differently from the original), {'all' if margin >= options.max_acc_drop else 'half or more'} of "
                f"--max-acc-drop {options.max_acc_drop:g}; about "
                f"{samples_for_margin(options.confidence, options.max_acc_drop / 2):,} samples bring it to half")
    return contract, ds, splits, memory, right, train_outputs, labels


def _given_plan(options, targets: dict):
    """``--plan``, checked against the model's factorizable layers before any heavy work."""
    from lrfc.factorize.rewrite import check_choice
    from lrfc.plan import Plan

    plan = Plan.load(options.plan)
    for choice in plan.choices:
        if choice.layer not in targets:
            raise UserError(f"{options.plan}: layer {choice.layer!r} is not a factorizable layer of {options.model_name} "
                            f"(with --methods {','.join(options.methods)})")
        check_choice(targets[choice.layer], choice)
    return plan


def load(state) -> None:
    """Model, target profile, data splits, catalogue, input contract, the original's accuracy (sanity-checked)."""
    from lrfc.cost.devices import links_for
    from lrfc.frontend.binary import as_two_class, binary_kind, describe, refusal
    from lrfc.frontend.catalogue import describe_model
    from lrfc.frontend.load import import_custom_objects, load_flat
    from lrfc.decompose import cp
    from lrfc.search.cache import Cache
    from lrfc.targets import build_profile

    opts = state.options
    state.profile = build_profile(opts)  # the one preflight checked
    state.objective = opts.objective or state.profile.objective
    state.links = links_for(state.profile, opts.devices, opts.device_python, opts.identity_file, opts.ssh_options)
    state.link = state.links[0] if state.links else None
    for link in state.links:
        if link.url is not None:
            link.describe(state.profile.runtimes[0])  # an unreachable device fails now, not after the search
    import_custom_objects(opts.custom_objects)
    state.flat = load_flat(opts.model, opts.trust_model, opts.input_shape, log=state.log)
    if len(state.flat.inputs) != 1 or len(state.flat.outputs) != 1:
        raise UserError(f"{opts.model_name}: lrfc build takes a single-input, single-output classifier; this one has "
                        f"{len(state.flat.inputs)} input{'s' if len(state.flat.inputs) != 1 else ''} and "
                        f"{len(state.flat.outputs)} output{'s' if len(state.flat.outputs) != 1 else ''}")
    shape = tuple(state.flat.inputs[0].shape)
    if None in shape[1:]:
        raise UserError(f"{opts.model_name}: its input shape {shape} leaves a size undefined; pass --input-shape with "
                        f"the size to compile it for, {_size_hint(shape[1:], opts.data)} (TFLite and ONNX files have "
                        "one)")
    state.rows = describe_model(state.flat)
    out_shape = tuple(state.flat.outputs[0].shape)
    if len(out_shape) != 2:
        raise UserError(f"{opts.model_name}: its output has shape {out_shape}; lrfc build takes a classifier with one "
                        "score per class for each input, shape (batch, classes) (a map per pixel or per position "
                        "has no top-1 accuracy for --max-acc-drop to keep)")
    units = out_shape[-1]
    if units is not None and int(units) < 2:
        state.binary = binary_kind(state.flat)
        if state.binary is None:
            raise UserError(refusal(opts.model_name, state.flat))
        state.flat = as_two_class(state.flat, state.binary)
    methods = set(opts.methods)
    state.targets = [r.name for r in state.rows if methods & set(r.methods)]
    if not state.targets:
        raise UserError(f"{opts.model_name}: nothing to factorize — no layer takes any of the methods {', '.join(opts.methods)}")
    if opts.plan is not None:
        state.given_plan = _given_plan(opts, {r.name: r for r in state.rows if r.name in state.targets})
    (state.contract, dataset, state.splits, state.memory, state.original_right, state.train_outputs,
     state.labels) = load_inputs(opts, state.flat, state.log, state.rows, state.targets, state.progress)
    state.original_accuracy = float(state.original_right.mean())
    if state.binary is not None:  # said once the data is known to fit it: a refusal before stays one line
        state.log(f"model: {describe(state.binary)}; lrfc scores it as two classes and publishes it with its one unit")
    state.data_values, state.data_fit, state.classes = dataset.values, dataset.fit, dataset.classes
    state.cache = Cache(Path(opts.cache_dir) if opts.cache_dir else None, enabled=opts.cache, log=state.log)
    cp.keep_fits_on_disk(state.cache.root / "fits" if state.cache.enabled else None)  # CP fits beside the scores


def _size_hint(shape: tuple, data) -> str:
    """The ``--input-shape`` to suggest for a model input with undefined sizes: ``--data``'s first sample's height
    and width, with the model's channels where it has them (the data's are converted to those)."""
    from lrfc.frontend.data import _channels_first
    from lrfc.frontend.peek import first_sample_shape

    sample = first_sample_shape(data)
    if len(shape) != 3 or sample is None or len(sample) not in (2, 3):
        return "e.g. --input-shape 224,224,3"
    if _channels_first(sample, tuple(shape)):  # stored (C, H, W), as the data loader reads it
        sample = (*sample[1:], sample[0])
    size = [sample[0] if shape[0] is None else shape[0], sample[1] if shape[1] is None else shape[1],
            shape[2] if shape[2] is not None else (sample[2] if len(sample) == 3 else 1)]
    return (f"e.g. --input-shape {','.join(map(str, size))} (--data's first sample is "
            f"{'x'.join(map(str, sample))})")
