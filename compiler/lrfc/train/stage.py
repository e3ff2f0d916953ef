"""The ``finetune`` stage: the accuracy-budget contract over the ladder (train.contract), the iterative baseline."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from lrfc.plan import Plan


@dataclass(frozen=True)
class FinetuneRecord:
    """What the stage did: ``mode`` (oneshot, iterative, none), rounds run, a cold round's epochs, training seconds,
    and the epochs each round ran (a warm-started round runs fewer; early stopping may end one sooner)."""

    mode: str
    rounds: int
    epochs: int
    seconds: float
    distill: bool
    round_epochs: tuple[float, ...] = ()  # below 1: the share of one epoch a --time-budget round ran
    qat: bool = False  # the rounds trained through int8 fake quantization (--qat)
    balanced: dict[str, int] = field(default_factory=dict)  # --max-class-drop: class -> times an epoch shows each
    #                                                          of its samples, for the classes repeated
    features: float = 0.0  # --distill-features: the feature-map term's weight (0: off)

    def to_json(self) -> dict:
        return asdict(self)


def _config(state):
    from lrfc.train.finetune import FinetuneConfig

    opts = state.options
    in_memory = state.memory.train_in_memory_bytes if state.memory is not None else FinetuneConfig.in_memory_bytes
    return FinetuneConfig(epochs=opts.epochs, batch_size=opts.batch_size, distill=opts.distill, seed=opts.seed,
                          patience=opts.patience, qat=opts.qat, in_memory_bytes=in_memory, score=_class_score(state),
                          balance=opts.max_class_drop is not None, features=opts.distill_features)


def _balanced(state) -> dict[str, int]:
    """``FinetuneRecord.balanced``: the classes fine-tuning repeats (``train.finetune.class_repeats``), by name
    where the model's classes are named."""
    from lrfc.train.finetune import _labels, class_repeats

    if state.options.max_class_drop is None:
        return {}
    y = state.splits.y_train
    repeats = class_repeats(_labels(y, len(y), "training split"), int(state.flat.outputs[0].shape[-1]))
    names = state.classes or ()
    return {(names[c] if c < len(names) and names[c] else str(c)): int(r) for c, r in enumerate(repeats) if r > 1}


def _class_score(state):
    """``--max-class-drop``: an epoch is kept by its validation top-1 among those that keep every class's recall
    within the limit, and one that breaks it ranks below all that keep it (its top-1 less 1). Kept by top-1 alone,
    fine-tuning on data with few samples of a class traded that class for the average: on Fashion-MNIST with
    shirts at 2 %, a start that lost shirts 5.5 points came out of its round losing 18.7 (docs/LOG.md,
    2026-12-06). None when the option is off."""
    import numpy as np

    from lrfc.train.paired import within_class_limit, worst_class

    limit = state.options.max_class_drop
    if limit is None:
        return None
    y, original = state.splits.y_val, state.original_right

    def score(right) -> float:
        worst = worst_class(y, original, right)
        accuracy = float(np.mean(right))
        return accuracy if within_class_limit(None if worst is None else worst[1], limit) else accuracy - 1.0

    return score


def score_test_split(state) -> None:
    """The original's and the published model's top-1 on the data's test split (reported only), if it has one, and
    the drop's standard error there (``state.test_accuracy``, ``state.test_drop_error``).

    Timed as its own entry, ``test_split``: two passes over the split are no
    fine-tuning, and under ``--finetune none`` they were all the ``finetune``
    stage showed (keras.applications ResNet50 at 64x64: 38 s of 5,000 images
    through each model).
    """
    from lrfc.train.finetune import right_answers
    from lrfc.train.paired import paired_drop

    s = state.splits
    if s.x_test is None:
        state.test_accuracy, state.test_drop_error = (None, None), None
        return
    with state.timer.stage("test_split"):
        before, after = right_answers(state.flat, s.x_test, s.y_test), right_answers(state.compressed, s.x_test, s.y_test)
    state.test_accuracy = (round(float(before.mean()), 6), round(float(after.mean()), 6))
    state.test_drop_error = round(paired_drop(before, after)[1], 4)


def finetune(state) -> None:
    """One-shot fine-tuning inside the budget search (``train.contract``), or the iterative baseline."""
    from lrfc.train.finetune import as_teacher, finetune as train, teacher_logits
    from lrfc.train.paired import paired_drop

    opts = state.options
    s = state.splits
    teacher = None
    if opts.finetune != "none" and opts.distill and opts.epochs > 0:  # unlabelled data: the load stage ran it
        teacher = (teacher_logits(state.flat, s.x_train) if state.train_outputs is None
                   else as_teacher(state.flat, state.train_outputs))
    state.train_outputs = None  # held for this (ImageNet's 1,000 classes: 4 kB a sample)
    if opts.finetune == "iterative":
        right, seconds = _iterative(state, teacher)
        state.compressed_accuracy, state.compressed_right = float(right.mean()), right
        state.drop_error = paired_drop(state.original_right, right)[1]
        state.finetune = FinetuneRecord("iterative", 1, opts.epochs, round(seconds, 2), teacher is not None,
                                        balanced=_balanced(state) if opts.epochs > 0 else {},
                                        features=opts.distill_features if opts.epochs > 0 else 0.0)
        score_test_split(state)
        return
    spent, ran = [], []

    def tune_one(model, epochs: float, deadline: float | None) -> tuple[float, float, object, bool]:
        whole = max(1, math.ceil(epochs))  # below one: that share of one epoch (--time-budget)
        config = replace(_config(state), epochs=whole, deadline=deadline, fraction=min(1.0, epochs / whole))
        with state.progress("finetune", whole) as bar:
            def on_epoch(epoch, total, logs):
                bar.total = total  # a deadline may have fitted the run to fewer epochs than it started with
                bar.update(1, " ".join(f"{k} {v:.4f}" for k, v in sorted(logs.items()) if isinstance(v, float)))

            result = train(model, s.x_train, s.y_train, config, teacher=teacher, validation=(s.x_val, s.y_val),
                           progress=on_epoch, calibration=s.x_calib, original=state.flat)
        done = result.epochs if config.fraction == 1.0 else epochs
        spent.append(result.seconds)
        ran.append(done)
        return done, result.seconds, result.val_right, result.out_of_time

    state.budget.run(tune_one)
    score_test_split(state)
    tuned = opts.finetune == "oneshot" and opts.epochs > 0
    state.finetune = FinetuneRecord(opts.finetune, len(spent), opts.epochs if tuned else 0, round(sum(spent), 2),
                                    teacher is not None, tuple(ran), qat=bool(opts.qat and spent),
                                    balanced=_balanced(state) if spent else {},
                                    features=opts.distill_features if spent else 0.0)


def _iterative(state, teacher) -> tuple[object, float]:
    """The paper's baseline: factorize one layer, fine-tune, factorize the next, ...; its validation answers and
    training seconds."""
    from lrfc.factorize.rewrite import apply_plan
    from lrfc.train.finetune import finetune, right_answers

    s = state.splits
    model = state.flat
    seconds = 0.0
    stats = {n: t.stats for n, t in state.tasks.items() if t.stats is not None}
    with state.progress("iterative", len(state.plan.choices)) as bar:
        for choice in state.plan.choices:
            model = apply_plan(model, Plan((choice,)), stats)
            if state.options.epochs > 0:
                result = finetune(model, s.x_train, s.y_train, _config(state), teacher=teacher, calibration=s.x_calib,
                                  original=state.flat)
                seconds += result.seconds
            bar.update(1, choice.layer)
    state.compressed = model
    return right_answers(model, s.x_val, s.y_val), seconds
