"""The sanity gate: the original model must work on the data it is given before anything is measured against it.

A number that looks too good is a bug until proven otherwise: an original
model scored at chance (input values scaled twice, channels swapped, labels
shifted) makes every later number meaningless, and a "drop of 0.00 points" at
99 % compression is what it produces. So the original is evaluated on the
validation split first; if its top-1 is within ``CHANCE_MARGIN`` of chance
(1 / classes; on imbalanced labels the most common class's share, as a model
answering that class for everything scores: ``chance_level``, ``at_chance``)
the run stops with exit status 2 and one line naming the likely cause and the
flag that fixes it, found by trying the alternatives on
``PROBE_SAMPLES`` samples (always: a network may score well above chance on
wrong values, as the VGG-style baseline does on values 255x too large, 30 %
against 94 %; above chance, an alternative ``CLEAR_GAIN`` better stops the run
as chance does, and one ``BETTER_ELSEWHERE`` better is a warning):

* other input contracts (each range, BGR order, the Caffe and torchvision
  ImageNet conventions for 3-channel inputs);
* a one-to-one relabelling (Hungarian assignment on the confusion matrix,
  found on half the samples and scored on the other): a model that is right
  under another class order has its labels mapped wrongly (above chance too,
  ``_check_label_order``: class folders sorted by name);
* BatchNormalization on each batch's own statistics (training mode, the
  model's variables restored after): a model that is right that way but at
  chance in inference mode has moving statistics that never caught up with
  its training (keras.applications builds its BatchNorm with momentum 0.999,
  so a short training leaves them near their initial values).

Data without labels (``frontend.unlabelled``) has no top-1 to check; there
the gate stops an original that answers one class for nearly everything
(``check_unlabelled``), and the build says it could check no more.

``--allow-low-accuracy`` turns the stop into a warning.
"""

from __future__ import annotations

import math

import numpy as np

from lrfc.errors import UserError
from lrfc.frontend.contract import RANGES, InputContract
from lrfc.frontend.samples import value_span

CHANCE_MARGIN = 0.05   # top-1 below chance + 5 points is "at chance" (scaled to the headroom: ``at_chance``)
IMBALANCED = 1.5       # a class this many times as common as 1/classes sets chance (``chance_level``)
CLEAR_GAIN = 0.20      # an alternative must beat the data as given by 20 points to be named as the cause
RELABEL_GAIN = 0.10    # above chance, another class order this much better stops the run (``_check_label_order``)
BETTER_ELSEWHERE = 0.15  # above chance, an alternative this much better on the probe is worth a warning
PROBE_TIE = 0.05         # the model's inferred contract this close to the best alternative is the one named
PROBE_SAMPLES = 128
COLLAPSED = 0.75         # unlabelled data: an original answering one class this often is stopped (3+ classes)
COLLAPSED_BINARY = 0.99  # ... two classes (a 95 % majority is real data)
VARIED = 0.50            # ... and an input contract under which no class takes more is named as the fix
MIN_DIAGNOSIS_SAMPLES = 50  # fewer validation samples cannot tell one cause from another
PREDICT_BATCH = 256

IMAGENET = {
    "caffe": InputContract("0-255", (103.939, 116.779, 123.68), None, "bgr", "inferred", "Caffe-style ImageNet"),
    "torch": InputContract("0-1", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "rgb", "inferred",
                           "torchvision-style ImageNet"),
}


def predict(model, x, batch_size: int = PREDICT_BATCH, progress=None) -> np.ndarray:
    """The model's outputs on ``x`` (an array or ``Samples``; inference mode), float32, in batches (``progress``:
    ``samples.predict``'s)."""
    from lrfc.frontend import samples

    return samples.predict(model, x, batch_size, progress)


def validation_resolution(accuracy: float, samples: int) -> float:
    """One standard error of a top-1 accuracy measured on ``samples`` samples, in points."""
    p = min(max(accuracy, 0.05), 0.95)  # a floor, so a perfect score does not claim infinite precision
    return 100.0 * math.sqrt(p * (1 - p) / max(1, samples))


def samples_to_resolve(accuracy: float, points: float) -> int:
    """Validation samples whose standard error is ``points`` at this accuracy."""
    p = min(max(accuracy, 0.05), 0.95)
    return math.ceil(p * (1 - p) / (points / 100.0) ** 2) if points > 0 else 0


def _alternatives(contract: InputContract, channels: int | None) -> list[InputContract]:
    orders = ("rgb", "bgr") if channels == 3 else ("rgb",)
    out = [InputContract(r, None, None, o, "inferred", "") for r in RANGES for o in orders]
    if channels == 3:
        out += list(IMAGENET.values())
    same = (contract.range, contract.mean, contract.std, contract.channel_order)
    return [c for c in out if (c.range, c.mean, c.std, c.channel_order) != same]


def _relabelling(y: np.ndarray, pred: np.ndarray, classes: int) -> np.ndarray:
    """The one-to-one class mapping that agrees most with the labels: the output index each label matches."""
    from scipy.optimize import linear_sum_assignment

    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (np.asarray(y, dtype=np.int64).reshape(-1), np.clip(pred, 0, classes - 1)), 1)
    rows, cols = linear_sum_assignment(-confusion)
    output_of = np.arange(classes)
    output_of[rows] = cols
    return output_of


def _best_relabelling(y: np.ndarray, pred: np.ndarray, classes: int, balanced: bool = False) -> float:
    """Top-1 (``balanced``: balanced accuracy) under the one-to-one class mapping that agrees most with the labels,
    found on one half of the samples and scored on the other (both ways, averaged). Found and scored on the same
    samples, a mapping gains by chance where classes have few samples each: a simulated 60 % model over 1,000
    classes, rightly labelled, scored 80 % that way on 500 samples, and under 10 % held out."""
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    even = np.arange(len(y)) % 2 == 0
    scores = []
    for fit, test in ((even, ~even), (~even, even)):
        output_of = _relabelling(y[fit], pred[fit], classes)
        scores.append(_score(pred[test], output_of[y[test]], balanced))
    return float(np.mean(scores))


def _score(pred: np.ndarray, y: np.ndarray, balanced: bool) -> float:
    return balanced_accuracy(pred, y) if balanced else float(np.mean(pred == np.asarray(y).reshape(-1)))


def balanced_accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    """The mean over the classes in ``y`` of the share of each class's samples answered right: a model that
    answers one class for everything scores 1 / (classes present), however common that class is."""
    y = np.asarray(y).reshape(-1)
    return float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)])) if len(y) else 0.0


def probe_contracts(model, x: np.ndarray, y: np.ndarray, contract: InputContract,
                    balanced: bool = False) -> tuple[float, list]:
    """Top-1 on a few hundred samples as fed, and under each other plausible contract (best first); ``balanced``
    (imbalanced labels): balanced accuracy instead, so a contract that makes the model answer the common class
    for everything (all-black inputs) does not look better."""
    shape = tuple(model.inputs[0].shape[1:])
    channels = int(shape[-1]) if len(shape) == 3 else None
    pick = np.random.default_rng(0).permutation(len(x))[:PROBE_SAMPLES]
    unit = contract.unapply(x[pick])

    def score(c: InputContract) -> float:
        return _score(predict(model, c.apply(unit)).argmax(-1), y[pick], balanced)

    tried = sorted(((score(alt), alt) for alt in _alternatives(contract, channels)), key=lambda t: -t[0])
    return score(contract), tried


def batch_statistics_score(model, x, y: np.ndarray, balanced: bool = False) -> tuple[float, tuple[float, ...]] | None:
    """Top-1 (``balanced``: balanced accuracy) on ``PROBE_SAMPLES`` samples with BatchNorm on each batch's own
    statistics, and the momenta.

    Training mode, with augmentation, dropout and noise passing their input
    through (``common.training_only``); the moving statistics it updates are
    put back. The samples go through in batches under the memory plan's cap
    (``samples.batch_for``): a training-mode call holds every layer's output
    until it returns, and 128 samples in one call took keras.applications
    ResNet101 at 224x224 past 24 GB (about 230 MB a sample) before the build
    had scored anything. None when the model has no BatchNormalization or
    cannot run so.
    """
    import keras

    from lrfc.common.training_only import inference_only, leaf_layers
    from lrfc.frontend.samples import batch_for

    layers = [layer for layer in leaf_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        return None
    pick = np.random.default_rng(0).permutation(len(x))[:PROBE_SAMPLES]
    batch = batch_for(len(pick))
    saved = [(v, np.array(v)) for v in model.non_trainable_variables]
    try:
        with inference_only(model):
            out = np.concatenate([np.asarray(model(np.asarray(x[pick[i:i + batch]], np.float32), training=True))
                                  for i in range(0, len(pick), batch)])
    except Exception:  # noqa: BLE001 - a diagnosis, not a requirement
        return None
    finally:
        for variable, value in saved:
            variable.assign(value)
    accuracy = _score(out.reshape(len(out), -1).argmax(-1), y[pick], balanced)
    return accuracy, tuple(sorted({float(bn.momentum) for bn in layers}))


def chance_level(y: np.ndarray, classes: int) -> tuple[float, str]:
    """What a model that tells nothing apart scores on labels ``y``, and how the message says it: ``1 / classes``,
    or, on labels where one class is at least 1.5 times as common as that, that class's share (a model that
    always answers it scores so: on 95 % negatives, 95 %)."""
    counts = np.bincount(np.asarray(y, dtype=np.int64).reshape(-1), minlength=classes)
    share = float(counts.max()) / max(1, int(counts.sum()))
    if share >= IMBALANCED / classes:
        return share, f"{100 * share:.1f}%, the share of class {int(counts.argmax())}, the most common"
    return 1.0 / classes, f"{100 / classes:.1f}%"


def at_chance(accuracy: float, chance: float, classes: int, pred: np.ndarray) -> bool:
    """Within ``CHANCE_MARGIN`` of chance, the margin scaled to the headroom above it (5 points for balanced
    labels; a quarter of a point above a 95 % majority class). Above ``1 / classes`` (imbalanced labels) the
    model must also answer one class at least as often as the most common class occurs: a model that tells the
    classes apart but errs more than the constant answer is weak, not broken (and says so by varying)."""
    if accuracy >= chance + CHANCE_MARGIN * (1.0 - chance) / (1.0 - 1.0 / classes):
        return False
    if chance <= 1.0 / classes:
        return True
    top = np.bincount(np.asarray(pred, dtype=np.int64), minlength=classes).max() / max(1, len(pred))
    return bool(top >= chance)


def _diagnose(y: np.ndarray, pred: np.ndarray, accuracy: float, classes: int, contract: InputContract,
              tried: list | None, batch_stats: tuple[float, tuple[float, ...]] | None = None,
              balanced: bool = False, class_names: tuple[str, ...] | None = None) -> str:
    """The likely cause of a chance-level score, and the flag (or the training fix) that fixes it. ``balanced``
    (imbalanced labels): every score here is a balanced accuracy, whose chance is 1 / classes."""
    chance = 1.0 / classes
    of = " balanced accuracy" if balanced else ""
    if len(y) < MIN_DIAGNOSIS_SAMPLES:
        return (f"with {len(y)} validation samples lrfc cannot tell why; check the input range (--input-range, "
                "--input-mean/--input-std), the channel order (--channel-order) and the label mapping, or pass more data")
    best = tried[0] if tried else None
    if best and best[0] >= chance + CLEAR_GAIN and best[0] >= accuracy + CLEAR_GAIN:
        return (f"the input values look wrong: lrfc fed {contract.describe()}; with {best[1].flags()} the model "
                f"scores {100 * best[0]:.1f}%{of} on {PROBE_SAMPLES} samples. Pass {best[1].flags()}")
    relabelled = _best_relabelling(y, pred, classes, balanced)
    if relabelled >= chance + CLEAR_GAIN and relabelled >= accuracy + CLEAR_GAIN:
        return (f"the predictions match the labels under another class order ({100 * relabelled:.1f}%{of} with the "
                f"best one-to-one relabelling): the label mapping looks wrong; {_order_fix(y, pred, classes, class_names)}")
    counts = np.bincount(pred, minlength=classes)
    top = int(np.argmax(counts))
    if batch_stats and batch_stats[0] >= chance + CLEAR_GAIN and batch_stats[0] >= accuracy + CLEAR_GAIN:
        momenta = "/".join(f"{m:g}" for m in batch_stats[1])
        return (f"the model predicts class {top} for {100 * counts[top] / max(1, len(pred)):.0f}% of samples, yet with "
                "BatchNormalization on each batch's own statistics (training mode) it scores "
                f"{100 * batch_stats[0]:.1f}%{of} "
                f"on {PROBE_SAMPLES} samples: its BatchNorm moving statistics do not match its weights, as after too "
                f"few training steps for their momentum ({momenta}). Train it longer or with a lower BatchNorm "
                "momentum (e.g. 0.9), or re-estimate the moving statistics on your data, then build again")
    tried_text = (f"no other input range helps (best {100 * best[0]:.1f}%{of} with {best[1].flags()})" if best
                  else "the data is already normalised, so lrfc could not try other input ranges")
    return (f"{tried_text}, nor does relabelling; the model predicts class {top} for "
            f"{100 * counts[top] / max(1, len(pred)):.0f}% of samples. Check that the model is trained and that "
            "the data matches it: input range (--input-range, --input-mean/--input-std), channel order "
            "(--channel-order) and label mapping")


def _check_finite(out: np.ndarray, x, where: str) -> None:
    bad = ~np.isfinite(out).all(axis=tuple(range(1, out.ndim)))
    if bad.any():
        lo, hi = value_span(x)
        raise UserError(f"the original model's outputs are not finite on {int(bad.sum())} of {len(x)} samples of "
                        f"{where} (input values span {lo:.3g}..{hi:.3g}): its layers "
                        "overflow on this data; check the input range (--input-range, --input-mean/--input-std)")


def check_original(model, x: np.ndarray, y: np.ndarray, contract: InputContract, *, passthrough: bool = False,
                   allow_low: bool = False, where: str = "the validation split", log=None,
                   fit: str | None = None, outputs: np.ndarray | None = None,
                   class_names: tuple[str, ...] | None = None) -> float:
    """The original's top-1 on ``(x, y)``; a ``UserError`` when it is at chance (see the module doc).

    Args:
        model: the original model (single output, one score per class).
        x: samples in the model's units; y: integer labels.
        contract: the input contract the samples were mapped with.
        passthrough: the data was already normalised (the contract was not applied).
        allow_low: warn through ``log`` instead of stopping.
        where: names the samples in the message.
        log: where a warning goes.
        fit: how the data's shape was fitted to the input (``frontend.data.describe_fit``), said at chance: a
            wrong size or channel count is a cause as likely as a wrong range.
        class_names: the name of each label (an image folder's class folders, an npz's class names), to say
            which output each matches when the labels are numbered in another order than the model's outputs.

    Raises:
        UserError: the outputs are not finite, or the score is at chance and ``allow_low`` is False.
    """
    if len(x) == 0:
        raise UserError(f"{where}: no samples to evaluate the original model on")
    out = predict(model, x) if outputs is None else outputs
    _check_finite(out, x, where)
    classes = int(out.shape[-1])
    pred = out.reshape(len(out), -1).argmax(-1)
    accuracy = float(np.mean(pred == y))
    if classes < 2:
        return accuracy
    chance, said = chance_level(y, classes)
    balanced = chance > 1.0 / classes  # imbalanced labels: the probes compare balanced accuracies
    fed, tried = probe_contracts(model, x, y, contract, balanced) if not passthrough else (accuracy, None)
    tried = _inferred_first(model, tried)
    if not at_chance(accuracy, chance, classes, pred):
        if tried and tried[0][0] >= fed + BETTER_ELSEWHERE:
            of, flags = " balanced accuracy" if balanced else "", tried[0][1].flags()
            message = (f"the original model scores {100 * accuracy:.1f}% top-1 on {where} ({len(x):,} samples) and "
                       f"{100 * fed:.1f}%{of} on {PROBE_SAMPLES} of them as fed ({contract.describe()}), but "
                       f"{100 * tried[0][0]:.1f}%{of} with {flags}")
            if tried[0][0] >= fed + CLEAR_GAIN:  # above chance, as wrong as a score at chance: the same stop
                _refuse(f"{message}: the input values look wrong. Pass {flags}", allow_low, log)
            elif log is not None:
                log(f"lrfc: warning: {message}: if the model was trained that way, pass {flags}")
        _check_label_order(y, pred, classes, balanced, where, class_names, allow_low, log)
        return accuracy
    batch_stats = batch_statistics_score(model, x, y, balanced) if len(y) >= MIN_DIAGNOSIS_SAMPLES else None
    cause = _diagnose(y, pred, _score(pred, y, balanced), classes, contract, tried, batch_stats, balanced, class_names)
    _refuse(f"the original model scores {100 * accuracy:.1f}% top-1 on {where} ({len(x):,} samples; chance is "
            f"{said}): {cause}" + (f"; and the data was reshaped: {fit}" if fit else ""), allow_low, log)
    return accuracy


def _inferred_first(model, tried: list | None) -> list | None:
    """``tried`` (best first) with the model's inferred contract first where it scores within ``PROBE_TIE`` of the
    best: a ReLU network without normalisation scores 0-1 and 0-255 alike, and the graph says which it was built
    for (the tiny baseline, trained on 0-1 and fed -1..1, was told 0-255: 66.4 % against 0-1's 64.8 % on 128
    samples)."""
    if not tried:
        return tried
    from lrfc.frontend.contract import infer_contract

    try:
        inferred = infer_contract(model)
    except Exception:  # noqa: BLE001 - a preference among ties, not a requirement
        return tried
    same = [t for t in tried if (t[1].range, t[1].mean, t[1].std, t[1].channel_order) ==
            (inferred.range, inferred.mean, inferred.std, inferred.channel_order) and t[0] >= tried[0][0] - PROBE_TIE]
    return same + [t for t in tried if t not in same] if same else tried


def _refuse(message: str, allow_low: bool, log) -> None:
    """The gate's stop (a ``UserError``), or with ``--allow-low-accuracy`` a warning and on."""
    if not allow_low:
        raise UserError(f"{message}; or pass --allow-low-accuracy to go on anyway")
    if log is not None:
        log(f"lrfc: warning: {message}; going on (--allow-low-accuracy)")


def _order_fix(y: np.ndarray, pred: np.ndarray, classes: int, class_names: tuple[str, ...] | None) -> str:
    """What to do about labels numbered in another order than the outputs: the ``--class-names`` the answers fit
    (the order found on every sample), or, without names, which labels the answers fit as which outputs."""
    output_of = _relabelling(y, pred, classes)
    if class_names and len(class_names) == classes and not any("," in n for n in class_names):
        order = [""] * classes
        for i, o in enumerate(output_of):
            order[o] = class_names[i]
        return ("name the classes in the order of the model's outputs with --class-names (its answers fit "
                f"--class-names {','.join(order)}), or label the samples by output index 0..N-1 (class folders "
                "named 0, 1, ...)")
    moved = [f"label {i} as output {int(o)}" for i, o in enumerate(output_of) if o != i]
    return f"its answers fit {', '.join(moved[:4])}{', ...' if len(moved) > 4 else ''}: check how the labels were numbered"


def _check_label_order(y: np.ndarray, pred: np.ndarray, classes: int, balanced: bool, where: str,
                       class_names: tuple[str, ...] | None, allow_low: bool, log) -> None:
    """Above chance, labels numbered in another order than the model's outputs: stopped like a score at chance.

    Class folders and class names are numbered in sorted order, which need not
    be the order a model was trained in: the VGG-style baseline (93.7 % on
    Fashion-MNIST's test images) scores 37.3 % on them labelled by its sorted
    class names, well above chance (``at_chance`` passes it), and every drop
    after would be measured against that. Under the best one-to-one relabelling
    it scores 93.7 % again (``_best_relabelling``: found on half the samples,
    scored on the other). Trained models, rightly labelled, gained nothing from
    it (the baselines and a 44 % model, 50 to 5,000 samples: 0 to -18 points);
    on labels numbered by sorted names they gained 13 to 61 points from 100
    samples up (2026-12-06), so ``RELABEL_GAIN`` (10 points) separates the two.
    """
    if len(y) < MIN_DIAGNOSIS_SAMPLES:
        return
    score, relabelled = _score(pred, y, balanced), _best_relabelling(y, pred, classes, balanced)
    if relabelled < score + RELABEL_GAIN:
        return
    of = " balanced accuracy" if balanced else ""
    message = (f"the original model scores {100 * score:.1f}%{of} on {where} ({len(y):,} samples) but "
               f"{100 * relabelled:.1f}%{of} with its classes in another order: the labels look numbered in another "
               f"order than the model's outputs; {_order_fix(y, pred, classes, class_names)}")
    _refuse(message, allow_low, log)


def top_answer(pred: np.ndarray, classes: int) -> tuple[int, float]:
    """The class answered most often and the share of the answers it takes."""
    counts = np.bincount(np.asarray(pred, dtype=np.int64).reshape(-1), minlength=classes)
    return int(counts.argmax()), float(counts.max()) / max(1, int(counts.sum()))


def check_unlabelled(model, x, outputs: np.ndarray, contract: InputContract, *, passthrough: bool = False,
                     allow_low: bool = False, where: str = "the validation split", log=None,
                     fit: str | None = None) -> None:
    """The sanity gate on data without labels (``frontend.unlabelled``), where the original's accuracy cannot be
    measured: only whether its answers vary.

    A model fed values it was not trained on tends to answer one class for
    nearly everything: a CNN with its own ``Rescaling(1/255)`` fed values
    already divided by 255 answered one class for 88 % of 128 Fashion-MNIST
    images (16 % top-1), and for 79 % of them fed -1..1 (13 %); as trained,
    no class took more than 15 %. So the run stops (``allow_low``: a
    warning) when the outputs are not finite, or when one class takes
    ``COLLAPSED`` of the answers or more (two classes: ``COLLAPSED_BINARY``),
    naming the input contract under which no class takes more than
    ``VARIED`` of ``PROBE_SAMPLES`` samples, where one does. What no probe
    without labels sees: a ReLU network without normalisation fed values 255
    times too large answers nearly as varied (the tiny baseline: top class
    17 % as trained, 20 % so, at 64 % top-1 against 66 %).

    Raises:
        UserError: the outputs are not finite, or the answers collapse and ``allow_low`` is False.
    """
    if len(x) == 0:
        raise UserError(f"{where}: no samples to run the original model on")
    _check_finite(outputs, x, where)
    classes = int(outputs.shape[-1])
    top, share = top_answer(outputs.reshape(len(outputs), -1).argmax(-1), classes)
    if share < (COLLAPSED if classes > 2 else COLLAPSED_BINARY):
        return
    cause = ("check that the model is trained and that the data matches it: input range (--input-range, "
             "--input-mean/--input-std) and channel order (--channel-order)")
    if not passthrough:
        shape = tuple(model.inputs[0].shape[1:])
        pick = np.random.default_rng(0).permutation(len(x))[:PROBE_SAMPLES]
        unit = contract.unapply(np.asarray(x[pick]))
        tried = sorted((top_answer(predict(model, alt.apply(unit)).argmax(-1), classes)[1], i, alt) for i, alt in
                       enumerate(_alternatives(contract, int(shape[-1]) if len(shape) == 3 else None)))
        if tried and tried[0][0] <= VARIED:
            flags = tried[0][2].flags()
            cause = (f"with {flags} its answers vary (no class above {100 * tried[0][0]:.0f}% of {len(pick)} "
                     f"samples): if the model was trained on values like that, pass {flags}")
    message = (f"the original model answers class {top} for {100 * share:.0f}% of {where} ({len(x):,} samples, "
               f"no labels; fed {contract.describe()}): lrfc takes its answers as the labels, and a model fed values "
               f"it was not trained on answers one class for nearly everything; {cause}"
               + (f"; and the data was reshaped: {fit}" if fit else ""))
    if not allow_low:
        raise UserError(f"{message}; or, if the data really is mostly one class, pass --allow-low-accuracy")
    if log is not None:
        log(f"lrfc: warning: {message}; going on (--allow-low-accuracy)")
