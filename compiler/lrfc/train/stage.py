"""The ``finetune`` stage: one-shot fine-tuning of the factorized model, recovery rounds, the iterative baseline."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from lrfc.plan import Plan


@dataclass(frozen=True)
class FinetuneRecord:
    """What the stage did: ``mode`` (oneshot, iterative, none), rounds run, epochs per round, training seconds."""

    mode: str
    rounds: int
    epochs: int
    seconds: float
    distill: bool

    def to_json(self) -> dict:
        return asdict(self)


def _config(state):
    from lrfc.train.finetune import FinetuneConfig

    opts = state.options
    return FinetuneConfig(epochs=opts.epochs, batch_size=opts.batch_size, distill=opts.distill, seed=opts.seed)


def _oneshot_round(state, teacher) -> tuple[float, float]:
    from lrfc.train.finetune import evaluate, finetune

    s = state.splits
    seconds = 0.0
    if state.options.epochs > 0:
        with state.progress("finetune", state.options.epochs) as bar:
            def on_epoch(epoch, total, logs):
                bar.update(1, " ".join(f"{k} {v:.4f}" for k, v in sorted(logs.items()) if isinstance(v, float)))

            result = finetune(state.compressed, s.x_train, s.y_train, _config(state), teacher=teacher,
                              progress=on_epoch)
        seconds = result.seconds
    return evaluate(state.compressed, s.x_val, s.y_val), seconds


def finetune(state) -> None:
    """One-shot (or iterative) fine-tuning; recovery rounds while the accuracy drop is too large."""
    from lrfc.factorize.stage import factorize
    from lrfc.search.stage import recover
    from lrfc.train.finetune import evaluate, teacher_logits

    opts = state.options
    s = state.splits
    teacher = None
    if opts.finetune != "none" and opts.distill and opts.epochs > 0:
        teacher = teacher_logits(state.flat, s.x_train)
    rounds, total_seconds = 0, 0.0
    if opts.finetune == "iterative":
        acc, total_seconds = _iterative(state, teacher)
        rounds = 1
    elif opts.finetune == "none":
        acc = evaluate(state.compressed, s.x_val, s.y_val)
        rounds = 0
    else:
        while True:
            rounds += 1
            acc, seconds = _oneshot_round(state, teacher)
            total_seconds += seconds
            drop = 100.0 * (state.original_accuracy - acc)
            state.log(f"round {rounds}: accuracy {100 * acc:.2f}% (drop {drop:.2f} points)")
            if drop <= opts.max_acc_drop or rounds >= opts.max_rounds or not state.plan.choices:
                break
            if not recover(state):
                break
            with state.timer.stage("factorize"):
                factorize(state)
    state.compressed_accuracy = acc
    state.finetune = FinetuneRecord(opts.finetune, rounds, opts.epochs if opts.finetune != "none" else 0,
                                    round(total_seconds, 2), teacher is not None)


def _iterative(state, teacher) -> tuple[float, float]:
    """The paper's baseline: factorize one layer, fine-tune, factorize the next, ..."""
    from lrfc.factorize.rewrite import apply_plan
    from lrfc.train.finetune import evaluate, finetune

    s = state.splits
    model = state.flat
    seconds = 0.0
    stats = {n: t.stats for n, t in state.tasks.items() if t.stats is not None}
    with state.progress("iterative", len(state.plan.choices)) as bar:
        for choice in state.plan.choices:
            model = apply_plan(model, Plan((choice,)), stats)
            if state.options.epochs > 0:
                result = finetune(model, s.x_train, s.y_train, _config(state), teacher=teacher)
                seconds += result.seconds
            bar.update(1, choice.layer)
    state.compressed = model
    return evaluate(model, s.x_val, s.y_val), seconds
