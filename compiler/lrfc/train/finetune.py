"""One-shot fine-tuning of a factorized model, with distillation from the original.

The paper fine-tunes the whole model once, after *every* layer has been
factorized. lrfc adds knowledge distillation: the original model's outputs on
the training split (``teacher_logits``, computed once) are a second target,

    loss = alpha * CE(y, student) + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T))

so the factorized model learns the original's whole output distribution, not
only its argmax. ``T^2`` keeps the soft term's gradients on the scale of the
hard term's (Hinton et al., 2015).

Targets travel as one float32 array per sample, ``[label, teacher logits...]``
(just ``[label]`` without distillation), and one loss function splits them:
``model.fit`` then sees an ordinary single-output model, and shuffling keeps
every label with its teacher row.

Models may end in a softmax (probabilities) or not (logits); ``outputs_probabilities``
tells which by looking at the output layer. Probabilities are turned into
log-probabilities wherever logits are needed: softmax(log p) = p, so this is
exact for both the cross-entropy and the tempered softmax.

BatchNormalization stays in training mode (batch statistics, moving averages
updated, gamma/beta trained), Keras' default for ``fit``. A factorized
convolution feeds its BN a shifted distribution, and re-estimating the
statistics is part of what fine-tuning repairs: on a VGG factorized at 1/4 of
its ranks, 2 epochs on 12k Fashion-MNIST images reached 81.3% test accuracy
with BN training and 76.6% with BN frozen (``trainable = False``, inference
mode). A caller who wants BN frozen sets that on the layers beforehand.
Training steps run those layers through TensorFlow's fused kernel
(``train.fused_bn``: the same function, a quarter faster fine-tuning).

Defaults, measured on the ``tiny`` baseline factorized at 1/2 and 1/4 of its
ranks (Fashion-MNIST, 2-5 epochs, 2k-12k samples): a peak rate of 1e-3 beat
5e-4 in every comparison (by 0.1 to 1.9 points). Distillation at T = 2,
alpha = 0.5 was level with plain cross-entropy (-0.2 to +0.3 points); T = 4
was -0.7 to +0.1 points and alpha <= 0.1 0.6 to 1.4 points worse. On the
VGG, whose 1-epoch original (79.3%) was weaker than what the student reached
alone (81.3%), distilling at T = 4 cost 2.6 points: distill from a converged
original. Measured again at the budget contract's settings (VGG baseline,
reconstructed, BN-re-estimated rungs fine-tuned once on 20k images; drop in
points on validation, then on the test half; docs/BENCHMARKS.md "Fine-tuning
alone"): at 3 epochs distillation is within one round's noise (at 81.5 % and
84.5 % of MACs removed, two seeds each, distillation minus cross-entropy
-0.16, +0.08, -0.08, 0.00 on validation; the same cross-entropy round run
twice moved by 0.12 and 0.22). Longer rounds alone do not help either (8
epochs of cross-entropy: 1.40 and 1.44 against 1.12-1.46 at 3). Together
they do: 8 epochs with distillation reach 0.86 and 0.90 (two seeds) at
81.5 % and 1.14 at 84.5 % on validation, 1.30 and 1.44 on the test half
against 1.78 and 2.02 for 3 epochs of cross-entropy (seed 0). The soft
targets keep a longer run from drifting off the teacher. So the budget
contract's default became 8 epochs with distillation, at about 2.3x the
fine-tuning time of 3 epochs, over the same 20,000 samples.

More distinct samples beat more passes over the same ones, at about the same
cost: a round of 3 epochs over 60,000 samples (Fashion-MNIST's 59,500 left
after calibration: 1.1x the sample passes of 8 x 20,000) fine-tuned a deep
VGG rung further at both seeds (``python -m bench.budget --only data``: 83.1 %
of MACs and 89.7 % of params removed, 2.98 points before fine-tuning;
docs/BENCHMARKS.md): 0.66 and 0.52 points against 1.12 and 0.60 on
validation (seeds 0 and 1), 0.58 and 0.88 against 1.12 and 1.08 on the test
half. So a round is now 3 epochs with distillation over at most ``--train-samples``
60,000 (``--epochs``, ``--train-samples``, ``--no-distill`` change it).
Measured on the VGG-style baseline; the ResNet-style one's default build
with these rounds (``python -m bench.budget --only contract --models
resnet``, 2026-12-01 21:39 UTC) kept 0.46 points at 88.4 % of MACs removed,
against 0.70 at 82.7 % with 8 x 20,000 (a different search path, so not a
controlled pair).

Since 2026-12-02 a cold round is 2 epochs, not 3: the VGG-style default
build with ``--epochs 2`` (15:47-16:03 UTC) published the same rung as
with 3 (11:12-11:28 UTC): 92.5 % of params and 90.5 % of MACs removed, at
0.72 points on validation (0.96 on the test split) against 0.52 (1.08),
after 6 epochs of fine-tuning (rounds of 2, 2, 1, 1) against 8 (3, 3, 1,
1): a quarter less of what is most of the build's time. The budget search
reads what each round recovered, so a shorter round moves it less far per
round (its second round went to 86.5 % of MACs removed, not 88.5 %), not past the
budget. One cold round of that rung alone (``--plan`` of the published rung,
seed 0, the two builds side by side, 17:08-17:21 UTC) costs 2 epochs about
0.1 point on validation and 0.3 on the test split: 0.66 and 1.40 points
against 0.58 and 1.10 with 3.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from lrfc.errors import UserError
from lrfc.common.quiet import import_keras
from lrfc.common.training_only import inference_only
from lrfc.train.features import feature_pairs, feature_trainer, frozen
from lrfc.train.fused_bn import fused_batchnorm

# Floor for probabilities before taking their log (Keras' own epsilon for
# cross-entropy on probabilities).
_EPSILON = 1e-7

Progress = Callable[[int, int, dict], None]

PROBE_BATCHES = 8  # a deadline's run: steps timed (after the first, which traces) before the epochs are fitted to it
BALANCE_GROWTH = 1.0  # ``balance``: the repeated samples add at most this share of the training split to an epoch


@dataclass(frozen=True)
class FinetuneConfig:
    """How to fine-tune.

    Attributes:
        epochs: passes over the training split (the paper: ~10).
        batch_size: samples per step.
        learning_rate: Adam's initial rate; it decays to 0 along a cosine
            over all steps. Lower than training from scratch: the factorized
            weights start close to a good solution.
        distill: add the distillation term (needs ``teacher`` in ``finetune``).
        temperature: softens both distributions in the distillation term.
        alpha: weight of the hard-label loss; ``1 - alpha`` goes to distillation.
        seed: for shuffling, dropout and any initialisation.
        patience: with validation data, stop after this many epochs without a
            better validation accuracy and keep the best epoch's weights
            (None: run every epoch).
        qat: train through int8 fake quantization (``train.qat``; needs
            ``calibration`` in ``finetune`` for the activation ranges).
        in_memory_bytes: training samples (``frontend.samples.Samples``)
            larger than this once mapped are streamed a batch at a time,
            reshuffled every epoch, instead of mapped into memory first.
        deadline: a ``time.perf_counter()`` value (``--time-budget``): once
            the first ``PROBE_BATCHES`` steps are timed, the epochs that end
            before it (at least one) become the whole run and the cosine
            schedule decays to 0 over them, not over ``epochs``; after an
            epoch, training also stops when one more, at the mean epoch so far
            (validation included), would end past it. None: no deadline.
        fraction: with one epoch, the share of its batches to run (the first
            of a shuffled epoch, the schedule decaying over them): a round of
            the budget search that only that much of an epoch fits in the
            time left (``--time-budget``).
        score: what early stopping keeps an epoch (or the start) by, from
            its validation answers, higher better; None: their top-1
            (``--max-class-drop``: ``train.stage._class_score``).
        balance: each epoch repeats every sample of a class that has fewer
            than the largest class, so that each class is seen about as often
            (``class_repeats``; ``--max-class-drop``). Balanced classes: no
            change.
        features: the weight of the feature-map term (``train.features``:
            each factorized layer's output against the original layer's,
            the original run inside every step; needs ``original`` in
            ``finetune``); 0: off.
    """

    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3
    distill: bool = True
    temperature: float = 2.0
    alpha: float = 0.5
    seed: int = 0
    patience: int | None = None
    qat: bool = False
    in_memory_bytes: int = 2 * 2**30
    deadline: float | None = None
    fraction: float = 1.0
    score: Callable[[np.ndarray], float] | None = field(default=None, compare=False, repr=False)
    balance: bool = False
    features: float = 0.0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise UserError(f"fine-tuning epochs must be at least 1; received {self.epochs}")
        if not 0.0 < self.fraction <= 1.0 or (self.fraction < 1.0 and self.epochs != 1):
            raise UserError(f"fine-tuning runs a share of one epoch only (fraction in (0, 1] with 1 epoch); "
                            f"received fraction {self.fraction} with {self.epochs} epochs")
        if self.batch_size < 1:
            raise UserError(f"fine-tuning batch size must be at least 1; received {self.batch_size}")
        if not self.learning_rate > 0:
            raise UserError(f"fine-tuning learning rate must be positive; received {self.learning_rate}")
        if not self.temperature > 0:
            raise UserError(f"distillation temperature must be positive; received {self.temperature}")
        if not 0.0 <= self.alpha <= 1.0:
            raise UserError(f"distillation alpha (weight of the hard-label loss) must be within [0, 1]; received {self.alpha}")
        if not self.features >= 0:
            raise UserError(f"the feature-map term's weight must be 0 or more; received {self.features}")
        if self.features and self.qat:
            raise UserError("the feature-map term and quantization-aware fine-tuning do not go together; drop one")

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "score"}


@dataclass(frozen=True)
class FinetuneResult:
    """What one ``finetune`` call did.

    Attributes:
        epochs: epochs run.
        seconds: wall time of the training (excluding validation passes).
        history: per-epoch ``loss`` and training ``accuracy``, plus
            ``val_accuracy`` when validation data was given.
    """

    epochs: int
    seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int | None = None  # with early stopping: the epoch whose weights were kept (from 0; -1: the start's)
    val_right: np.ndarray | None = None  # with validation data: whether the returned weights get each sample right
    out_of_time: bool = False  # config.deadline ended it before config.epochs

    @property
    def val_accuracy(self) -> float | None:
        """The returned weights' top-1 on the validation data (already scored: ``val_right``'s mean)."""
        return None if self.val_right is None else float(np.mean(self.val_right))

    def to_json(self) -> dict:
        return {
            "epochs": self.epochs,
            "seconds": round(self.seconds, 2),
            "history": {k: [round(float(v), 6) for v in vs] for k, vs in self.history.items()},
        }


# ---------------------------------------------------------------- outputs


def _output_layer(model):
    outputs = model.outputs
    if len(outputs) != 1:
        raise UserError(f"model '{model.name}' has {len(outputs)} outputs; fine-tuning needs a single classifier output")
    history = getattr(outputs[0], "_keras_history", None)
    return history.operation if history is not None else model.layers[-1]


def outputs_probabilities(model) -> bool:
    """True when the model's output layer applies a softmax (it outputs probabilities, not logits)."""
    import keras

    layer = _output_layer(model)
    if isinstance(layer, keras.layers.Softmax):
        return True
    act = layer.get_config().get("activation")
    return act == "softmax" or getattr(act, "__name__", None) == "softmax"


def _predict(model, x, batch_size: int) -> np.ndarray:
    from lrfc.frontend.samples import predict

    return predict(model, x, batch_size)


def _labels(y, n: int, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot
        y = y.argmax(axis=1)
    if y.size != n:
        raise UserError(f"{where}: {n} samples but {y.size} labels")
    return y.reshape(n).astype(np.int64)


def class_repeats(labels: np.ndarray, classes: int) -> np.ndarray:
    """Per class, how many times an epoch shows each of its samples (``FinetuneConfig.balance``): about as often
    as the largest class is seen (its count over the class's, rounded), the repeats together adding at most
    ``BALANCE_GROWTH`` of the split (each scaled down alike, at least 1). Balanced classes: all 1.

    Fine-tuning on data where one class is rare trades it for the average: on Fashion-MNIST with shirts at
    1.8 % of 54,500 training images, a rung whose start lost shirts 12.2 points of recall lost 20.7 after two
    epochs, and 4.9 with shirts repeated 6 times, its top-1 0.04 points higher (weighting the loss by the same
    factor instead: 7.3 points and 0.55 lower; docs/LOG.md, 2026-12-06 21:18).
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=classes)
    repeats = np.ones(len(counts), dtype=np.int64)
    seen = counts > 0
    if not seen.any():
        return repeats
    repeats[seen] = np.maximum(1, np.rint(counts.max() / counts[seen]))
    extra = int(((repeats - 1) * counts).sum())
    room = BALANCE_GROWTH * int(counts.sum())
    if extra > room:
        repeats = 1 + np.floor((repeats - 1) * room / extra).astype(np.int64)
    return repeats


def evaluate(model, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``, in [0, 1].

    Args:
        model: a single-output classifier (logits or probabilities: the
            argmax is the same).
        x: samples fitting the model input.
        y: integer labels (or one-hot rows).
        batch_size: samples per inference batch.
    """
    return float(np.mean(right_answers(model, x, y, batch_size)))


def right_answers(model, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Whether ``model``'s top-1 is right on each sample of ``(x, y)``: bools, one per sample (``evaluate``'s mean)."""
    if len(x) == 0:
        raise UserError("evaluate: no samples")
    y = _labels(y, len(x), "evaluate")
    return _predict(model, x, batch_size).argmax(axis=-1) == y


def teacher_logits(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The original model's logits on ``x`` (float32, one row per sample), for distillation.

    A model ending in a softmax gives probabilities; they are returned as
    log-probabilities (floored at 1e-7), which are logits up to a per-sample
    constant that no softmax can see.
    """
    import_keras()
    return as_teacher(model, _predict(model, x, batch_size))


def as_teacher(model, outputs: np.ndarray) -> np.ndarray:
    """``model``'s outputs as distillation targets: logits as they are, probabilities as log-probabilities."""
    if outputs_probabilities(model):
        return np.log(np.clip(outputs, _EPSILON, 1.0)).astype(np.float32)
    return np.asarray(outputs, dtype=np.float32)


# ---------------------------------------------------------------- loss and metric


def _loss_fn(config: FinetuneConfig, probabilities: bool):
    """The loss on targets ``[label, teacher logits...]`` (just ``[label]`` without distillation)."""
    from keras import ops

    alpha, t = config.alpha, config.temperature

    def as_logits(y_pred):
        return ops.log(ops.clip(y_pred, _EPSILON, 1.0)) if probabilities else y_pred

    def hard_label_loss(y_true, y_pred):
        labels = ops.cast(y_true[:, 0], "int32")
        return ops.sparse_categorical_crossentropy(labels, as_logits(y_pred), from_logits=True)

    def distillation_loss(y_true, y_pred):
        student = as_logits(y_pred)
        labels = ops.cast(y_true[:, 0], "int32")
        hard = ops.sparse_categorical_crossentropy(labels, student, from_logits=True)
        log_p_teacher = ops.log_softmax(y_true[:, 1:] / t, axis=-1)
        log_p_student = ops.log_softmax(student / t, axis=-1)
        kl = ops.sum(ops.exp(log_p_teacher) * (log_p_teacher - log_p_student), axis=-1)
        return alpha * hard + (1.0 - alpha) * (t * t) * kl

    return distillation_loss if config.distill else hard_label_loss


def _accuracy_metric(keras):
    from keras import ops

    def label_accuracy(y_true, y_pred):
        labels = ops.cast(y_true[:, 0], "int32")
        return ops.cast(ops.equal(labels, ops.cast(ops.argmax(y_pred, axis=-1), "int32")), "float32")

    return keras.metrics.MeanMetricWrapper(label_accuracy, name="accuracy")


def _targets(y: np.ndarray, teacher: np.ndarray | None, n: int, classes: int) -> np.ndarray:
    labels = _labels(y, n, "fine-tuning data").astype(np.float32)[:, None]
    if teacher is None:
        return labels
    teacher = np.asarray(teacher, dtype=np.float32)
    if teacher.shape != (n, classes):
        raise UserError(f"teacher logits have shape {teacher.shape}; expected ({n}, {classes}): one row of model outputs per training sample")
    if not np.isfinite(teacher).all():
        raise UserError("teacher logits contain NaN or Inf")
    return np.concatenate([labels, teacher], axis=1)


# ---------------------------------------------------------------- training


def finetune(
    model,
    x: np.ndarray,
    y: np.ndarray,
    config: FinetuneConfig = FinetuneConfig(),
    teacher: np.ndarray | None = None,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    progress: Progress | None = None,
    calibration: np.ndarray | None = None,
    original=None,
) -> FinetuneResult:
    """Fine-tune ``model`` in place with Adam (see the module docstring for the loss).

    Training runs through a second Functional model over the same layers, so
    ``model``'s weights (BN statistics included) change but its compile state
    does not: it saves and loads with nothing from lrfc, and a later call
    (e.g. on the next model of an iterative schedule) starts from fresh
    optimizer state.

    Args:
        model: a single-output classifier, usually the factorized model.
        x: training samples fitting the model input.
        y: integer labels (or one-hot rows).
        config: epochs, rate, distillation settings, seed.
        teacher: the original model's logits on ``x`` (``teacher_logits``);
            required when ``config.distill``.
        validation: optional ``(x, y)`` scored after every epoch. With
            ``config.patience`` the starting weights are scored too and
            compete with every epoch: fine-tuning never returns a model
            worse on validation than the one it was given (a reconstructed,
            BN-re-estimated start can beat a short, high-rate round).
        progress: called after each epoch with (epoch index from 0, total
            epochs, logs) where logs hold ``loss``, ``accuracy`` and, with
            validation data, ``val_accuracy``.
        calibration: samples whose layer outputs give the activation ranges
            of quantization-aware training (``config.qat``).
        original: the unfactorized model, whose layers' outputs the
            feature-map term compares with the chains' (``config.features``).

    Returns:
        The epochs run, the training time, the per-epoch history and, with
        validation data, the returned weights' accuracy on it.
    """
    keras = import_keras()
    if len(x) == 0:
        raise UserError("fine-tuning: no training samples")
    if config.qat and (calibration is None or not len(calibration)):
        raise UserError("quantization-aware fine-tuning needs calibration samples for its activation ranges")
    if config.distill and teacher is None:
        raise UserError("fine-tuning with distillation needs the original model's outputs (teacher_logits); pass teacher= or set distill=False")
    if config.features and original is None:
        raise UserError("the feature-map term needs the original model; pass original= or set features=0")
    classes = int(model.outputs[0].shape[-1])
    targets = _targets(y, teacher if config.distill else None, len(x), classes)
    order = None  # the samples of one epoch, by index, when some are repeated (``config.balance``)
    if config.balance:
        labels = targets[:, 0].astype(np.int64)
        repeats = class_repeats(labels, classes)[labels]
        order = np.repeat(np.arange(len(x)), repeats) if (repeats > 1).any() else None
    batches = -(-(len(x) if order is None else len(order)) // config.batch_size)
    per_epoch = batches if config.fraction >= 1.0 else max(1, math.ceil(config.fraction * batches))
    fitted = config.deadline is not None and config.epochs > 1 and per_epoch > PROBE_BATCHES + 1
    trainer, total_steps = _trainer(keras, model, config, steps=config.epochs * per_epoch, calibration=calibration,
                                    fitted=fitted, original=original)
    part = {} if per_epoch == batches else {"steps_per_epoch": per_epoch}  # a shuffled epoch's first batches
    epochs = _EpochLog(model, trainer, config, validation, progress)
    start = time.perf_counter()  # before the start's score: validation_seconds holds it too, and is taken off
    epochs.score_start()
    callbacks = [keras.callbacks.LambdaCallback(on_epoch_end=epochs.on_epoch_end)]
    if fitted:
        callbacks.append(keras.callbacks.LambdaCallback(
            on_train_batch_end=_DeadlineFit(epochs, total_steps, per_epoch).on_batch_end))
    # augmentation off (common.training_only); the original frozen while the feature-map term runs it
    held = frozen(original) if config.features else contextlib.nullcontext()
    with fused_batchnorm(model), inference_only(trainer, noise=False), held:
        # repeated samples are taken batch by batch, not copied into a larger split first
        if order is not None or (getattr(x, "nbytes", 0) > config.in_memory_bytes and not isinstance(x, np.ndarray)):
            trainer.fit(_streamed(keras, x, targets, config, order), epochs=config.epochs, verbose=0,
                        callbacks=callbacks, **part)
        else:
            trainer.fit(np.asarray(x, dtype=np.float32), targets, batch_size=config.batch_size, epochs=config.epochs,
                        shuffle=True, verbose=0, callbacks=callbacks, **part)
    seconds = time.perf_counter() - start - epochs.validation_seconds
    best = epochs.restore_best()
    return FinetuneResult(len(epochs.history["loss"]), seconds, epochs.history, best, epochs.kept_answers(),
                          epochs.out_of_time)


def _streamed(keras, x, targets: np.ndarray, config: FinetuneConfig, rows: np.ndarray | None = None):
    """Training batches of ``x``'s ``rows`` (all of it by default; an index more than once: that sample repeated),
    reshuffled (seeded) every epoch, taken per batch: a ``Samples`` too large to hold mapped, or a balanced epoch."""
    rows = np.arange(len(x)) if rows is None else rows

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(config.seed)
            self.order = self.rng.permutation(rows)

        def __len__(self) -> int:
            return -(-len(rows) // config.batch_size)

        def __getitem__(self, i: int):
            batch = self.order[i * config.batch_size:(i + 1) * config.batch_size]
            return np.asarray(x[batch], dtype=np.float32), targets[batch]  # as the in-memory path casts it

        def on_epoch_end(self) -> None:
            self.order = self.rng.permutation(rows)

    return Batches()


def _trainer(keras, model, config: FinetuneConfig, steps: int, calibration=None, fitted: bool = False, original=None):
    """A compiled twin of ``model`` (same variables, own compile state), seeded, with a cosine-decayed Adam, and the
    schedule's total steps as a variable when ``fitted`` (a deadline may shorten it once training is timed), else None.

    With ``config.qat`` the twin computes through int8 fake quantization (``train.qat``); with
    ``config.features`` its loss adds the feature-map term against ``original`` (``train.features``).
    """
    keras.utils.set_random_seed(config.seed)
    total = keras.Variable(float(steps), trainable=False, dtype="float32", name="schedule_steps") if fitted else None
    schedule = (_fitted_cosine(keras, config.learning_rate, total) if fitted
                else keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps))
    if config.qat:  # the chains equalized first: the fake quantization trains at the ranges int8 will use
        from lrfc.factorize.equalize import equalize_chains
        from lrfc.train.qat import qat_twin

        equalize_chains(model, calibration)
        trainer, _ = qat_twin(model, calibration)
    elif config.features and (pairs := feature_pairs(model, original)):
        trainer = feature_trainer(keras, model, original, config.features, pairs)
    else:
        trainer = keras.Model(model.inputs, model.outputs, name=f"{model.name}_finetune")
    reseed_random_layers(trainer, config.seed)  # the twin's layers are the model's (QAT: wrapped, not copied)
    trainer.compile(optimizer=keras.optimizers.Adam(schedule), loss=_loss_fn(config, outputs_probabilities(model)),
                    metrics=[_accuracy_metric(keras)])
    return trainer, total


def reseed_random_layers(model, seed: int) -> int:
    """Set the state of every random layer's generator (Dropout, noise, augmentation: Keras ``SeedGenerator``s)
    from ``seed`` and the generator's place in the model; returns how many there were.

    ``keras.utils.set_random_seed`` does not reach them: a layer built without a seed draws its generator's
    state when it is created (loading the model, rewriting it), from whatever Python's random state is then.
    The VGG-style baseline's Dropout read 249485432 in one process and 654449012 in the next, so one epoch of
    the same fine-tuning gave other weights every run (2026-12-06; the ResNet-style baseline, with no
    Dropout, repeated bitwise): the same ``--seed`` now gives the same model.
    """
    import numpy as np

    generators = [g for layer in model._flatten_layers(include_self=True, recursive=True)
                  for g in getattr(layer, "_seed_generators", [])]
    for k, generator in enumerate(generators):
        value = (int(seed) * 1_000_003 + 7_919 * (k + 1)) % (2 ** 31 - 1)
        generator.state.assign(np.asarray([value, 0], dtype=str(generator.state.dtype)))
    return len(generators)


def _fitted_cosine(keras, rate: float, total):
    """Keras' cosine decay to 0 (``CosineDecay``, alpha 0) over ``total`` steps, a variable the run may shorten."""

    class FittedCosine(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            ops = keras.ops
            done = ops.minimum(ops.cast(step, "float32"), total)
            return rate * 0.5 * (1.0 + ops.cos(math.pi * done / total))

        def get_config(self) -> dict:
            return {"rate": rate, "steps": float(total.numpy())}

    return FittedCosine()


class _DeadlineFit:
    """After ``PROBE_BATCHES`` timed steps of the first epoch: the whole epochs that end before the deadline (at
    least one; validation passes at the start's score time) become the run, its schedule decaying over them.

    Without it a deadline ends the run after the epoch past which another would not fit, which cuts the cosine
    schedule part way (a 2-epoch round stopped after one ends at half the peak rate, where a 1-epoch round ends at 0).
    """

    def __init__(self, log: "_EpochLog", total, per_epoch: int):
        self.log, self.total, self.per_epoch = log, total, per_epoch
        self.first: float | None = None
        self.done = False

    def on_batch_end(self, batch: int, logs=None) -> None:
        if self.done:
            return
        now = time.perf_counter()
        if batch == 0:
            self.first = now
            return
        if batch < PROBE_BATCHES or self.first is None:
            return
        self.done = True
        step = (now - self.first) / batch
        validation = self.log.validation_seconds  # the start's score, when there is one: one pass over validation
        end_first = now + step * (self.per_epoch - batch - 1) + validation
        config = self.log.config
        more = math.floor((config.deadline - end_first) / (step * self.per_epoch + validation)) if step > 0 else 0
        planned = int(min(config.epochs, max(1, 1 + more)))
        if planned < config.epochs:
            self.total.assign(float(planned * self.per_epoch))
            self.log.fit_to(planned)


class _EpochLog:
    """The per-epoch history (validation scored on the model itself, not counted as training time), and early
    stopping: the best validation epoch's weights are kept aside and restored at the end."""

    def __init__(self, model, trainer, config: FinetuneConfig, validation, progress):
        self.model, self.trainer, self.config, self.validation, self.progress = model, trainer, config, validation, progress
        self.history: dict[str, list[float]] = {"loss": [], "accuracy": []}
        if validation is not None:
            self.history["val_accuracy"] = []
        self.validation_seconds = 0.0
        self.best: tuple[float, int, list, np.ndarray] | None = None  # (val accuracy, epoch, weights, answers)
        self.start: tuple[float, int, list, np.ndarray] | None = None  # the same for the weights before any epoch
        self.last_right: np.ndarray | None = None  # the latest epoch's validation answers (``right_answers``)
        self.began = time.perf_counter()
        self.out_of_time = False
        self.epochs = config.epochs  # the run's epochs: fewer once a deadline has fitted them (``fit_to``)

    def fit_to(self, epochs: int) -> None:
        """The run becomes ``epochs`` long (a deadline's: ``_DeadlineFit``): it stops after them, out of time."""
        self.epochs = epochs

    def score_start(self) -> None:
        """With early stopping, the weights before any epoch compete with the best epoch at the end (epoch -1).

        They do not count towards patience: the first epochs at the peak rate often score below a
        reconstructed start and the later, lower-rate ones recover (VGG, one rung, 3 epochs: a drop
        of 1.22 points when the start counted towards patience, 0.80 when it did not).
        """
        if self.validation is None or self.config.patience is None:
            return
        start = time.perf_counter()
        right = right_answers(self.model, *self.validation)
        self.start = (self._score(right), -1, self.model.get_weights(), right)
        self.validation_seconds += time.perf_counter() - start

    def on_epoch_end(self, epoch: int, logs: dict | None) -> None:
        row = {"loss": float(logs["loss"]), "accuracy": float(logs["accuracy"])}
        if self.validation is not None:
            start = time.perf_counter()
            self.last_right = right_answers(self.model, *self.validation)
            row["val_accuracy"] = float(np.mean(self.last_right))
            self.validation_seconds += time.perf_counter() - start
            self._early_stop(epoch, self._score(self.last_right))
        self._deadline(epoch)
        for k, v in row.items():
            self.history[k].append(v)
        if self.progress is not None:
            self.progress(epoch, self.epochs, row)

    def _score(self, right: np.ndarray) -> float:
        """What an epoch is kept by: ``config.score`` of its validation answers, else their top-1."""
        return float(np.mean(right)) if self.config.score is None else float(self.config.score(right))

    def _early_stop(self, epoch: int, accuracy: float) -> None:
        """Keep the best epoch; stop after ``patience`` epochs without a better one in the schedule's second half.

        Epochs in the first half of the cosine schedule do not count towards
        patience: at the peak rate a round often scores below where it
        started and recovers only as the rate falls (VGG, one rung, 8 epochs
        with distillation: stopped after 6 epochs at patience 2, a drop of
        1.32 points; all 8 run, 0.86).
        """
        if self.config.patience is None:
            return
        if self.best is None or accuracy > self.best[0]:
            self.best = (accuracy, epoch, self.model.get_weights(), self.last_right)
            return
        half = self.epochs / 2
        counted = sum(1 for e in range(self.best[1] + 1, epoch + 1) if e + 1 > half)
        if counted >= self.config.patience:
            self.trainer.stop_training = True

    def _deadline(self, epoch: int) -> None:
        """Stop after the epochs a deadline fitted, or when another epoch, at the mean so far, would end past it."""
        deadline = self.config.deadline
        if deadline is None or epoch + 1 >= self.config.epochs or self.trainer.stop_training:
            return
        if epoch + 1 >= self.epochs:
            self.trainer.stop_training = self.out_of_time = True
            return
        now = time.perf_counter()
        if now + (now - self.began) / (epoch + 1) > deadline:
            self.trainer.stop_training = self.out_of_time = True

    def kept_answers(self) -> np.ndarray | None:
        """Whether the weights ``restore_best`` left in the model get each validation sample right (None without
        validation).

        Those weights were scored on the validation split before being kept, so
        a caller that needs their accuracy (the budget search, once a round)
        reads it here instead of scoring the same weights on the same samples again.
        """
        if self.validation is None:
            return None
        if self.best is not None:
            return self.best[3]
        return self.last_right

    def restore_best(self) -> int | None:
        """Put the best epoch's weights back (early stopping), or the start's if no epoch beat them; that epoch, or None."""
        if self.start is not None and (self.best is None or self.start[0] > self.best[0]):
            self.best = self.start
        if self.best is None:
            return None
        if self.best[1] != len(self.history["loss"]) - 1:
            self.model.set_weights(self.best[2])
        return self.best[1]
