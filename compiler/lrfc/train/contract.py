"""The accuracy budget as a contract: the most compressed rung of the ladder whose drop stays within it.

``lrfc build`` publishes only a model whose top-1 drop on the validation
split is within ``--max-acc-drop``; keeping every layer (the original) always
is, so a build that finds no such plan publishes the original and says so.

The ladder (``search.allocate``) runs from the most compressed plan to the
least. The search over it:

1. **A cheap proxy picks the first rung.** Each rung it looks at is built with
   its starting point repaired (``factorize.stage.build_level``:
   reconstruction, BN re-estimation) and scored, without any fine-tuning, on
   validation samples (not training samples: the original scores those from
   memory, which inflates every drop), ``PROXY_SAMPLES`` at a time: a look
   whose drop lies within ``PROXY_Z`` standard errors of the goal it is
   compared with scores the next ones, up to the whole split (``_within``);
   one clearly on either side stops at the first. Bisection finds the most compressed
   rung whose proxy drop fine-tuning is expected to bring within ``TARGET``
   of the budget (``RECOVERY``: what one fine-tuning round recovers, until a
   round has been measured); once a round has passed, within the whole budget
   at the ratio measured at the most compressed rung that passed (``_goal``);
   once a failed and a passing round bracket the search, within ``TARGET`` at
   the proxy drop interpolated between the two: ``proxy_between``). When it predicts no rung deeper than the least
   compressed pass, the search steps past that pass anyway (a *forced step*),
   by one rung, and by twice as many after each forced step that passed with
   room (``forced_stride``): a proxy that lags what fine-tuning recovers
   (the VGG-style baseline's four rounds were four one-rung steps, each
   passing at 0.62-0.76 points) no longer spends every round on one rung.
   A round's bisection starts from the bracket its earlier looks already
   give for the new goal (``_known_bracket``): it builds new rungs only
   inside what those looks left open, not from the ladder's middle again.
2. **Fine-tuning confirms it** on the validation split (early stopping).
   A rung that meets the budget is the best so far and the search moves to
   more compression; one that misses it moves to less. Later rounds start
   from fine-tuned weights for every layer whose choice did not change
   (warm start: the last round's, or the best pass's when fewer of the
   rung's parameters start fresh from those, ``_warm_source``), and run
   ``--epochs`` times the share of the rung's parameters that start fresh,
   at least one (``round_epochs``): the end-game's one-layer steps (the
   VGG-style baseline: 6 % and 10 % of the rung's parameters) train one
   epoch, not three.
3. **The last round cannot miss.** When the next round is the last
   (``--max-rounds``, or ``--time-budget`` leaving no room for another) and
   none has met the budget, the proxy's guess
   is not enough: the round takes the most compressed rung whose starting
   point, built as the round builds it (warm-started, repaired), already
   meets the budget on the whole validation split (bisection, each look
   stopped early once it cannot: ``_secure_pick``). Fine-tuning's early
   stopping scores that start on the same split and keeps it unless an
   epoch beats it (``finetune._EpochLog``), so the round passes. ``make
   demo`` on a fresh Xeon (2026-12-06 01:35 UTC) had ended with rungs 4, 6
   and 7 at 1.22, 1.08 and 1.10 points and published the original (0.99x):
   one epoch did not recover what the proxy, on 1,000 samples, had promised.
   When not even the least compressed rung's start meets it, the round is
   the proxy's pick as before; a first round (``--max-rounds 1``) is too.
4. It stops when the bracket between the most compressed failure and the
   least compressed success is closed, after ``--max-rounds`` fine-tuning
   rounds (4 when not given; under ``--time-budget`` none unless given:
   ``options.round_limit``), or when ``--time-budget`` leaves no room for
   another epoch, and
   publishes the best rung that met the budget. Under ``--time-budget`` a
   round runs the epochs that fit in what is left (``epochs_that_fit``: the
   last round's seconds per epoch, ``RESERVE`` of the budget kept for the
   stages after the search), or when not one does, the share of one that
   fits, at least ``MIN_SHARE``, instead of being skipped whole; the first
   round, with no epoch timed yet, may take ``FIRST_SHARE`` of the time left
   (a deeper round needs the rest): it times its first steps and runs the
   whole epochs that end by then (at least one), its learning-rate schedule
   decaying over them (``finetune.FinetuneConfig.deadline``).

**What is judged.** For an int8 or fp16 target the Keras model is not what
runs: each round whose Keras model meets the budget is lowered as the build
will publish it and its files are scored on the validation split
(``lower.judge``); the round's ``drop`` (and error) is then the worst file's,
``model_drop`` the Keras model's, and it meets the budget only if every file
does (a round whose Keras model misses is not lowered). The last round's
secured start is judged the same way, and ``--finetune none``, which bisects
on the Keras models' drops, aims under the budget by the largest gap a judged
rung showed (``_files_gap``). The published accuracy stays the Keras model's;
the ``lower`` stage scores the files again for the report (``deliverables``),
from the same weights and samples, so the same numbers.

Every measured drop keeps its standard error (the original's and the
rung's answers paired on the same validation samples: ``train.paired``),
and ``Round.drop_error`` reports it. With ``--confidence P`` a rung meets the
budget when the drop's one-sided bound, drop + z_P errors, is within it:
rounds, the last round's secured start and ``--finetune none``'s bisection
judge that bound, and the proxy's goals aim at the budget less the margin
at the last round's error (``_budget``). Early stopping still keeps the
most accurate weights, so a secured round's epoch that beats its start's
accuracy while disagreeing with the original on more samples could bound
over the budget where the start did not: then that round misses.

With ``--finetune none`` the validation split itself is the measure: the
bisection finds the most compressed rung that meets the budget as it is, and
what it measured is final (a rung is neither scored twice nor tried again once
the bisection has seen it over the budget). The bisection looks at the most
compressed rung first: one build, and usually one ``EARLY_CHUNK`` of samples
when it fails; when it passes (a model that loses nothing at any rung, such
as an untrained one) the search ends there instead of after log2(rungs) looks
(keras.applications ResNet50 at 64x64, untrained: 8 looks and 138 s of its
factorize stage before, one look and 14 s now). A rung is scored ``EARLY_CHUNK``
samples at a time and dropped as soon as it cannot meet the budget whatever
the rest of the split gives (``_scored_or_bound``: exact, no statistics);
``proxy_drops`` then holds the least drop it could still have had, and
``proxy_bounded`` lists those rungs.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass

from lrfc.lower.judge import judged_precision
from lrfc.options import round_limit
from lrfc.train.paired import error_guess, paired_drop, paired_error, upper_bound, within_class_limit, worst_class, z_of

PROXY_SAMPLES = 1000     # validation samples a look scores at a time (the first: all a look far from its goal scores)
PROXY_Z = 2.0            # ... and more while its drop is within this many standard errors of the goal
EARLY_CHUNK = 1000      # --finetune none: validation samples scored between two checks of the bound
RECOVERY = 2.0          # proxy drop / fine-tuned drop before a round is measured (VGG: 1.8 at 3 epochs; 2.2, 2.6 at 8 with distillation)
TARGET = 0.8            # aim at this share of the budget while the recovery ratio is a guess, and in a bracket
FLOOR_DROP = 0.25       # points: a smaller fine-tuned drop is within the validation split's noise (5,000 samples)
RESERVE = 0.1           # --time-budget: the share kept for the stages after the search (test split, lowering, benchmarks)
RESERVE_MIN_S = 60.0    # ... and at least this: those took 20-60 s for the benchmark models, 250 s for ResNet50
MIN_SHARE = 0.5         # --time-budget: the least share of one epoch a round may train when a whole one does not fit
FIRST_SHARE = 0.5       # --time-budget: the most of the search's time a first round may take when more may follow (the log says "half")
COST_TOLERANCE = 0.01   # --finetune none: the bisection ends once the rungs it has not settled save less than this share of the cost


@dataclass(frozen=True)
class Round:
    """One rung tried: its plan's size, its accuracy before (proxy) and after fine-tuning (validation)."""

    level: int
    label: str
    params: int
    macs: int
    proxy_drop: float | None
    accuracy: float
    drop: float
    met: bool
    epochs: float         # whole epochs; below 1, the share of one a --time-budget round ran
    seconds: float
    forced_step: int = 0  # rungs stepped past the least compressed pass when the proxy predicted none; 0: its pick
    fresh: float = 1.0    # the share of the rung's target-layer parameters that started fresh (not warm): its epochs
    capped: float = 0     # epochs --time-budget took off the round: those it would have run, less those it ran
    secured: bool = False  # the last round's rung, its starting point already within the budget (``_secure_pick``)
    drop_error: float = 0.0  # one standard error of ``drop``, in points (paired: ``train.paired``)
    class_drop: float | None = None  # --max-class-drop: the worst class's recall drop, in points; None: not held
    steer: float | None = None  # ... the drop the search steers by, when the worst class's (scaled) is the larger
    model_drop: float | None = None  # an int8/fp16 target whose files were judged: the Keras model's drop (``drop``
    #                                  and ``drop_error`` are then the worst file's)
    files: dict | None = None  # ... each format's drop in points

    @property
    def steer_drop(self) -> float:
        """The drop the search reads recovery and brackets from: ``drop``, or under ``--max-class-drop`` the worst
        class's drop in the budget's units (``steer``: worst x max_acc_drop / max_class_drop) where that is the
        larger, so the search aims at whichever limit is nearer. A round that failed only on a class had a drop
        near 0, which read as "fine-tuning recovers everything" and sent the next pick deeper: on an imbalanced
        set, four rounds stepped one rung each and all missed (docs/LOG.md, 2026-12-06)."""
        return self.drop if self.steer is None else self.steer

    def to_json(self) -> dict:
        return asdict(self)


def _answers(model, x, y):
    """Whether ``model`` gets each sample of ``(x, y)`` right (bools; the top-1 is their mean)."""
    from lrfc.train.finetune import right_answers

    return right_answers(model, x, y)


def _scored_or_bound(model, x, y, floor: float):
    """Top-1 on ``(x, y)`` and the per-sample answers; or, once it is sure to end below ``floor``, its highest
    possible value and None.

    Scored ``EARLY_CHUNK`` samples at a time; after each chunk, if every
    remaining sample being right could not lift the accuracy to ``floor``,
    the rest is not scored: the rung is over the budget whatever it gives.
    """
    import numpy as np

    from lrfc.frontend.samples import Samples, predict
    from lrfc.train.finetune import _labels

    n, seen, correct, right = len(x), 0, 0, []
    y = _labels(y, n, "validation")
    chunks = x.chunks(EARLY_CHUNK) if isinstance(x, Samples) else (x[i:i + EARLY_CHUNK] for i in range(0, n, EARLY_CHUNK))
    for chunk in chunks:
        right.append(predict(model, chunk).argmax(axis=-1) == y[seen:seen + len(chunk)])
        seen, correct = seen + len(chunk), correct + int(right[-1].sum())
        if seen < n and (correct + n - seen) / n < floor:
            return (correct + n - seen) / n, None
    answers = np.concatenate(right) if right else np.zeros(0, bool)
    return float(answers.mean()) if n else 0.0, answers


def proxy_between(rounds, lo_fail: int, hi_pass: int, aim: float) -> float | None:
    """The proxy drop at which fine-tuning should land on ``aim``, read off the bracket's two rounds.

    Once a rung has failed and a less compressed one has passed, the two
    rounds say how fine-tuned drops follow proxy drops right there: the goal
    is interpolated between them (regula falsi) instead of assuming one
    ratio through zero, which a small proxy drop fine-tuned back to nearly
    nothing skews (the demo: 0.7 -> 0.26 points beside 1.3 -> 1.62). None
    without such a pair, or when the proxy does not order them.
    """
    fail = next((r for r in rounds if r.level == lo_fail), None)
    ok = next((r for r in rounds if r.level == hi_pass), None)
    if fail is None or ok is None or fail.proxy_drop is None or ok.proxy_drop is None:
        return None
    if fail.proxy_drop <= ok.proxy_drop or fail.steer_drop <= ok.steer_drop:
        return None
    return ok.proxy_drop + (aim - ok.steer_drop) * (fail.proxy_drop - ok.proxy_drop) / (fail.steer_drop - ok.steer_drop)


def round_epochs(epochs: int, fresh: float) -> int:
    """A round's epochs: ``epochs`` times the share of the rung that starts fresh (not warm-started), at least 1.

    A cold round (``fresh`` = 1) runs them all; a warm-started round whose
    changed layers hold a third of the rung's parameters runs a third of them.
    Not less than one: rounds of a share of one epoch (a random part of the
    training split, at least half) were tried on the EPYC, 2026-12-04
    (``python -m bench.budget --only contract`` at commit 2fe4b33): the
    VGG-style build's third and fourth rounds, 0.94 and 0.5 epochs, failed
    at rungs 35 and 37 (1.10 and 1.20 points) and it published 86.5 % of
    MACs removed, where whole-epoch runs there published 90.5 % and 88.1 %;
    on the ResNet-style build they saved about a minute of 18.
    """
    return max(1, min(epochs, math.ceil(epochs * fresh - 1e-9)))


def epochs_that_fit(seconds_left: float, epoch_seconds: float) -> float:
    """The epochs of ``epoch_seconds`` each that fit in ``seconds_left``: whole ones, or when not one does, the
    share of one that does (in hundredths) if at least ``MIN_SHARE``; else 0.

    Half an epoch is the least: a quarter-epoch round left the ResNet-style baseline's rung 60 at 2.8-5.3
    points where a whole one reached 0.6-0.8 (docs/LOG.md, 2026-12-04); rounds of half an epoch passed there.
    """
    if seconds_left <= 0:
        return 0
    if epoch_seconds <= 0:
        return 1
    whole = int(seconds_left // epoch_seconds)
    if whole:
        return whole
    share = math.floor(100 * seconds_left / epoch_seconds) / 100
    return share if share >= MIN_SHARE else 0


def proxy_side(n: int, total: int, squares: int, n_all: int, goal: float) -> bool | None:
    """Whether a look's drop is within ``goal`` points, or None while it cannot tell.

    The look has scored the first ``n`` of ``n_all`` validation samples;
    ``total`` and ``squares`` sum the original's right minus the rung's
    (-1, 0 or 1 per sample) and its square, so the drop is ``100 total / n``
    and its standard error that of a paired mean. None while the drop lies
    within ``PROXY_Z`` standard errors of ``goal`` and samples are left: the
    next ``PROXY_SAMPLES`` decide more. On the VGG-style and ResNet-style
    baselines' ladders (85 and 117 rungs; ``python -m bench.proxy``), the
    first 1,000 samples alone sent a bisection to another rung than all
    5,000 for 22 and 35 of 39 goals; this rule for 0 and 3 (one rung off,
    each within 0.4 points of its goal).
    """
    within = 100.0 * total / max(n, 1) <= goal
    if n >= n_all or n < 2:
        return within
    error = paired_error(n, total, squares)
    return within if abs(100.0 * total / n - goal) > PROXY_Z * error else None


def forced_stride(rounds, forced: dict[int, int], room: float) -> int:
    """How many rungs a forced step moves: 1, doubled for each forced step just before that passed within ``room``.

    ``forced`` maps the rungs picked by a forced step to their stride; the
    streak counts the latest rounds back to the first that was not such a pass.
    """
    streak = 0
    for r in reversed(rounds):
        if r.level not in forced or not r.met or r.steer_drop > room:
            break
        streak += 1
    return 2 ** streak


class BudgetSearch:
    """The search of one build; ``start`` (the factorize stage) then ``run`` (the finetune stage)."""

    def __init__(self, state):
        self.state = state
        self.options = state.options
        self.levels = state.levels
        self.tune = self.options.finetune == "oneshot" and self.options.epochs > 0
        s = state.splits
        self.x_proxy, self.y_proxy = s.x_val, s.y_val  # the validation split, in its seeded order
        self.labels = None                           # fine-tuning: the validation labels, as integers
        self.proxy: dict[int, float] = {}            # rung -> proxy drop in points
        self.proxy_accuracy: dict[int, float] = {}   # rung -> its accuracy on the proxy samples
        self.proxy_right: dict[int, object] = {}     # --finetune none: rung -> its answers on the whole split
        self.z = z_of(self.options.confidence)       # --confidence: standard errors the drop's bound adds
        self.tally: dict[int, tuple[int, int, int]] = {}  # rung -> (samples scored, sum and sum of squares of the
        #                                               original's right minus the rung's, per sample: -1, 0 or 1)
        self.bounded: set[int] = set()               # rungs dropped early: their accuracy is an upper bound
        self.look_seconds = 0.0                      # building and scoring the rungs looked at
        self.models: dict[int, object] = {}          # rungs built for the proxy, kept until tried
        self.lo_fail, self.hi_pass = -1, len(self.levels)
        self.forced: dict[int, int] = {}             # rung -> stride of the forced step that picked it
        self.best: tuple | None = None  # (rung, model, accuracy, its drop's error, its validation answers)
        self.secured: dict[int, tuple] = {}          # rung -> (warm source, warm model, fresh share, built model)
        self.secured_levels: set[int] = set()        # rungs a last round took by their start (``_secure_pick``)
        self.rounds: list[Round] = []
        self.stopped = ""
        self.judged = judged_precision(state)        # int8/fp16: the files are judged too (``lower.judge``)
        self.judge_seconds = 0.0                     # lowering and scoring them

    @property
    def round_limit(self) -> float:
        """Fine-tuning rounds, at most (``options.round_limit``: ``--max-rounds``, else 4, or none under
        ``--time-budget``)."""
        return round_limit(self.options.max_rounds, self.options.time_budget)

    # ------------------------------------------------------------------ building and measuring

    def plan(self, i: int):
        from lrfc.search.stage import plan_from

        return plan_from(self.levels[i].choices)

    def proxy_drop(self, i: int) -> float:
        """The rung's drop before fine-tuning, in points, on the samples scored so far (built once, kept for a try).

        Fine-tuning: on the first ``PROXY_SAMPLES`` validation samples; ``_within`` scores more where that is too
        close to the goal to tell. ``--finetune none``: on the whole validation split, which decides, stopped
        once the budget is out of reach.
        """
        if i in self.proxy:
            return self.proxy[i]
        start = time.perf_counter()
        self.models = {}  # only the latest is kept (a try usually follows the last look): gone before the next
        model = self._build(i)
        if self.tune:
            self.tally[i] = (0, 0, 0)
            self._score_more(i, model)
        else:
            original = self.state.original_accuracy  # the load stage scored it on the whole validation split
            floor = original - (self.options.max_acc_drop + 1e-6) / 100.0  # --confidence's bound only adds to a drop
            self.proxy_accuracy[i], right = _scored_or_bound(model, self.x_proxy, self.y_proxy, floor)
            if right is None:
                self.bounded.add(i)
            else:
                self.proxy_right[i] = right
            self.proxy[i] = 100.0 * (original - self.proxy_accuracy[i])
        self.models = {i: model}
        self.look_seconds += time.perf_counter() - start
        return self.proxy[i]

    def _score_more(self, i: int, model) -> None:
        """Score rung ``i``'s ``model`` on the next ``PROXY_SAMPLES`` validation samples; update its proxy drop.

        The drop is the mean, over the samples scored, of the original's
        right minus the rung's (per sample -1, 0 or 1), so both are scored on
        the same samples and its standard error is that of a paired mean. The
        original's answers are the load stage's (``state.original_right``).
        """
        import numpy as np

        from lrfc.frontend.samples import predict
        from lrfc.train.finetune import _labels

        x, n_all = self.x_proxy, len(self.x_proxy)
        if self.labels is None:
            self.labels = _labels(self.y_proxy, n_all, "validation")
        labels, original_right = self.labels, self.state.original_right
        n, total, squares = self.tally[i]
        end = min(n_all, n + PROXY_SAMPLES)
        rows = x.subset(np.arange(n, end)) if hasattr(x, "subset") else x[n:end]
        right = predict(model, rows).argmax(axis=-1) == labels[n:end]
        diff = original_right[n:end].astype(np.int64) - right.astype(np.int64)
        n, total, squares = end, total + int(diff.sum()), squares + int(np.abs(diff).sum())
        self.tally[i] = (n, total, squares)
        self.proxy_accuracy[i] = float(np.mean(original_right[:n])) - total / n
        self.proxy[i] = 100.0 * total / n

    def _side(self, i: int, goal: float) -> bool | None:
        """Whether rung ``i``'s proxy drop is within ``goal`` (``proxy_side``); None also for a rung not looked at."""
        if i not in self.proxy:
            return None
        if i not in self.tally:  # scored in full (``--finetune none``)
            return self.proxy[i] + self._margin(i) <= goal
        return proxy_side(*self.tally[i], len(self.x_proxy), goal)

    def _within(self, i: int, goal: float) -> bool:
        """Whether rung ``i``'s proxy drop is within ``goal``, scoring more of the validation split until it can
        tell (``_side``); the rung is built again if it is no longer the latest look's."""
        drop = self.proxy_drop(i)
        if i not in self.tally:  # scored in full (``--finetune none``)
            return drop + self._margin(i) <= goal
        while (side := self._side(i, goal)) is None:
            start = time.perf_counter()
            model = self.models.get(i)
            if model is None:
                model = self._build(i)
                self.models = {i: model}
            self._score_more(i, model)
            self.look_seconds += time.perf_counter() - start
        return side

    def _worst_class(self, right) -> tuple[int, float] | None:
        """``--max-class-drop``: the class whose recall on the validation split dropped most, and by how many points;
        None when it is off."""
        if self.options.max_class_drop is None:
            return None
        return worst_class(self.state.splits.y_val, self.state.original_right, right)

    def _classes_held(self, worst: tuple[int, float] | None) -> bool:
        """Whether ``worst`` (``_worst_class``) is within ``--max-class-drop`` (True when it is off). Logged when a
        class breaks it, so a round "over the budget" at a small drop says why."""
        limit = self.options.max_class_drop
        if worst is None or within_class_limit(worst[1], limit):
            return True
        names = self.state.classes
        name = f"'{names[worst[0]]}'" if names and worst[0] < len(names) and names[worst[0]] else f"class {worst[0]}"
        self.state.log(f"{name} lost {worst[1]:.1f} points of recall on the validation split, over --max-class-drop "
                       f"{limit:g}")
        return False

    def _error(self, right) -> float:
        """One standard error, in points, of the drop of a model with validation answers ``right`` (paired with the
        original's)."""
        return paired_drop(self.state.original_right, right)[1]

    def _judge_files(self, i: int, model):
        """An int8 or fp16 target: rung ``i``'s ``model`` lowered as the build would publish it and its files scored
        on the validation split (``lower.judge.FilesJudged``); None when no file at that precision could be scored
        (the Keras model's numbers stand)."""
        from lrfc.lower.judge import judge_files

        with self.state.timer.stage("lower"):  # lowering, as the stage after the search does
            files = judge_files(self.state, model, [n for n, c in self.levels[i].choices.items() if c is not None])
        self.judge_seconds += files.seconds
        for fmt, why in files.unscored.items():
            self.state.log(f"{self.levels[i].label}: its {fmt} file could not be scored ({why})")
        return files if files.right is not None else None

    def _files_meet(self, files) -> tuple[float, float, bool]:
        """The worst file's drop, its standard error and whether it keeps the budget."""
        drop = 100.0 * (self.state.original_accuracy - float(files.right.mean()))
        error = self._error(files.right)
        return drop, error, upper_bound(drop, error, self.options.confidence) <= self.options.max_acc_drop + 1e-9

    def _margin(self, i: int) -> float:
        """``--finetune none``: what ``--confidence`` adds to rung ``i``'s drop for its upper bound (0 without it,
        and for a rung dropped early: over the budget already)."""
        right = self.proxy_right.get(i)
        return self.z * self._error(right) if right is not None and self.z else 0.0

    def _budget(self) -> float:
        """The fine-tuned drop a round may measure and meet the budget: ``--max-acc-drop``, less ``--confidence``'s
        margin at the last round's standard error (before any round, at ``paired.error_guess``)."""
        budget = self.options.max_acc_drop
        if not self.z:
            return budget
        if self.rounds:
            return budget - self.z * self.rounds[-1].drop_error
        return budget - self.z * error_guess(len(self.x_proxy))

    def _recovery(self) -> float:
        """Proxy drop / fine-tuned drop: at the most compressed rung that passed, else the median of the rounds.

        The ratio grows with depth (the VGG-style baseline at 77.6, 80.2, 81.5
        and 82.8 % of MACs removed: 2.4, 3.8, 3.6, 6.3), and the next pick lies
        deeper than every pass, so the deepest pass predicts it best; the
        median of all rounds lagged behind it (``python -m bench.budget
        --only contract --models vgg`` at commit 37bac9f, 2026-12-01 18:57
        UTC: four rounds that all passed with 0.46-0.66 points). A drop under ``FLOOR_DROP``
        counts as that much.
        """
        measured = self._measured()
        if not measured:
            return RECOVERY
        passed = [r for r in measured if r.met]
        rounds = [min(passed, key=lambda r: r.level)] if passed else measured
        return max(1.0, statistics.median(r.proxy_drop / max(r.steer_drop, FLOOR_DROP) for r in rounds))

    def _goal(self) -> float:
        """The proxy drop the next rung may have: the budget, or after fine-tuning what one round brings within it.

        Until a round has passed, the recovery ratio is assumed (``RECOVERY``)
        or read where rounds failed, and the goal aims at ``TARGET`` of the
        budget, leaving room for that guess. Once one has passed, the ratio is
        the deepest pass's, which under-states what fine-tuning recovers at the
        deeper rung it picks (the ratio grows with depth): that is the margin,
        and the goal aims at the whole budget. At ``TARGET`` a first round that
        passed with 0.7 points left the next goal one rung deeper (the VGG-style
        default build: three of four runs stepped 57 -> 56, two of those three
        ended 3.6 points short of the params target). A bracket (a failed and a
        passing round) is interpolated, unbiased, so it aims at ``TARGET`` again.
        Side by side on an AVX2 EPYC's VGG-style baseline (one run each,
        2026-12-03, README): 48 -> 37 -> 36 -> 22 (failed), published at 0.38
        points with 92.5 % / 90.5 % of params / MACs removed, against the old
        aim's 48 -> 45 -> 43 -> 39 at 0.88 points, 91.7 % / 89.2 %.
        """
        if not self.tune:  # compared with each rung's drop plus its ``_margin``
            return self.options.max_acc_drop - self._files_gap()
        budget = self._budget()
        bracket = proxy_between(self.rounds, self.lo_fail, self.hi_pass, TARGET * budget)
        if bracket is not None:
            return bracket
        passed = any(r.met for r in self._measured())
        return (budget if passed else TARGET * budget) * self._recovery()

    def _files_gap(self) -> float:
        """The most a rung's judged files lost beyond its Keras model, in points, over the rounds judged so far (0
        before any): ``--finetune none`` bisects on the Keras models' drops, so it aims that much under the budget
        once a rung's files have shown they lose more, instead of stepping up one rung per miss."""
        return max([0.0, *(r.drop - r.model_drop for r in self.rounds if r.model_drop is not None)])

    def _measured(self) -> list[Round]:
        """The rounds whose proxy drop is large enough to read a recovery ratio from."""
        return [r for r in self.rounds if r.proxy_drop and r.proxy_drop > 0.25]

    def _pick(self) -> int | None:
        """The most compressed untried rung predicted to meet the budget (bisection on the proxy)."""
        lo, hi = self.lo_fail, self.hi_pass
        if hi - lo <= 1:
            return None
        last = self.rounds[-1] if self.rounds else None
        if not self.tune and last is not None and not last.met and last.steer is not None:
            return (lo + hi) // 2  # missed on a class the proxy (top-1) cannot see: bisect the bracket itself
        goal = self._goal()
        if not self.tune and lo == -1 and not self.proxy and len(self.levels) > 2:
            if self._within(0, goal):  # the most compressed rung first: it ends the search when it passes
                return 0
            lo = 0
        lo, hi = self._known_bracket(lo, hi, goal)
        while hi - lo > 1 and not self._settled(lo, hi):
            mid = (lo + hi) // 2
            if self._within(mid, goal):
                hi = mid
            else:
                lo = mid
        if not self.tune:  # the proxy is the validation split: a rung over the budget there has failed for good
            self.lo_fail = max(self.lo_fail, lo)
            return min(hi, self.hi_pass - 1)
        if hi < self.hi_pass or self.hi_pass == len(self.levels):  # its pick, or nothing has passed yet
            return min(hi, self.hi_pass - 1)
        stride = forced_stride(self.rounds, self.forced, TARGET * self._budget())
        pick = max(self.lo_fail + 1, self.hi_pass - stride)
        self.forced[pick] = self.hi_pass - pick
        self.state.log(f"the proxy predicts no rung past {self.levels[self.hi_pass].label} within the budget: "
                       f"trying {self.hi_pass - pick} rung{'s' if self.hi_pass - pick > 1 else ''} past it")
        return pick

    def _settled(self, lo: int, hi: int) -> bool:
        """``--finetune none``: whether the best rung between the failure ``lo`` and the pass ``hi`` could save at
        most ``COST_TOLERANCE`` of the least compressed rung's cost over ``hi``, so no look there is worth its price.

        Each look builds and scores a rung on the whole validation split: on
        big models the most of the factorize stage (Xception at 71x71 on the
        Xeon, 2026-12-05: 9 looks over 175 rungs, ~32 s each alone, the last
        three moving the result by three rungs).
        """
        if self.tune or lo + 1 >= hi or hi >= len(self.levels):
            return False
        scale = max(level.cost for level in self.levels)
        return self.levels[hi].cost - self.levels[lo + 1].cost <= COST_TOLERANCE * scale

    def _known_bracket(self, lo: int, hi: int, goal: float) -> tuple[int, int]:
        """``(lo, hi)`` narrowed by the rungs already looked at: the most compressed known to be within ``goal``
        becomes ``hi``, the least compressed known over it (more compressed than that) becomes ``lo``.

        Bisection assumes the proxy grows with compression; where it does, this
        finds the rung plain bisection would, without looking again at what an
        earlier round's bisection already saw (the ResNet-style default build:
        its 4 rounds' picks cost 99 s of looks before).
        """
        passing = [k for k in self.proxy if lo < k < hi and self._side(k, goal) is True]
        hi = min(passing, default=hi)
        failing = [k for k in self.proxy if lo < k < hi and self._side(k, goal) is False]
        return max(failing, default=lo), hi

    # ------------------------------------------------------------------ the search

    def start(self) -> None:
        """Pick the first rung and build it (the factorize stage); no rung: the original, as it is."""
        from lrfc.factorize.rewrite import apply_plan
        from lrfc.plan import Plan

        state = self.state
        if not self.levels:
            state.level, state.plan, state.compressed = None, Plan(()), apply_plan(state.flat, Plan(()))
            slower = state.whole is not None and state.whole.status == "measured" and state.whole.rungs
            self.stopped = "no plan measured faster than the original" if slower else "no plan on the ladder"
            return
        i = self._pick() if state.enforce_budget else 0
        state.level, state.plan = i, self.plan(i)
        state.compressed = self.models.pop(i, None) or self._build(i)

    def _build(self, i: int, warm=None):
        from lrfc.factorize.stage import build_level

        with self.state.timer.stage("factorize"):
            return build_level(self.state, self.plan(i), warm)

    def _seconds_left(self) -> float:
        """What ``--time-budget`` leaves for rounds: the budget less the time spent and ``RESERVE`` of it."""
        budget = 60.0 * self.options.time_budget
        spent = sum(self.state.timer.snapshot().values())
        return budget - max(RESERVE * budget, RESERVE_MIN_S) - spent

    def _deadline(self, first: bool) -> float | None:
        """The ``time.perf_counter()`` by which a round's training must end (``--time-budget``), or None.

        A first round that another may follow (``first``: ``_first_of_several``) gets ``FIRST_SHARE`` of what is
        left, so that a deeper one fits after it: the ResNet-style build on the EPYC, 2026-12-05, at
        ``--time-budget 10`` spent it all on the first round's 2 epochs and published that conservative rung
        (78.7 % / 77.2 % removed), while at ``--time-budget 8`` the first round fitted only 1 epoch and a second
        reached 85.6 % / 82.7 % at 0.12 points.
        """
        if self.options.time_budget is None:
            return None
        return time.perf_counter() + (FIRST_SHARE if first else 1.0) * self._seconds_left()

    def _first_of_several(self) -> bool:
        """Whether the next round is the first and more may follow it (rounds, and rungs, left)."""
        return not self.rounds and self.tune and self.round_limit > 1 and len(self.levels) > 1

    def _round_unit(self) -> float:
        """The seconds one more epoch takes, the last round's (deeper rungs train faster, so after a step deeper
        this over-states the next one; a round of a share of one counts its fixed costs, the validation scores,
        as that share's too); with ``--finetune none``, one more rung looked at, built and scored."""
        if not self.tune:
            return self.look_seconds / max(1, len(self.proxy))
        last = self.rounds[-1]
        return last.seconds / last.epochs if last.epochs > 0 else last.seconds

    def _fit_epochs(self, epochs: float) -> float:
        """``epochs``, or fewer when ``--time-budget`` leaves room for fewer (a share of one: ``epochs_that_fit``;
        0: not even ``MIN_SHARE`` of one). With ``--finetune none``: 1 when one more look fits, else 0."""
        if self.options.time_budget is None:
            return epochs
        fit = epochs_that_fit(self._seconds_left(), self._round_unit())
        return min(epochs, fit) if self.tune else float(fit >= 1)

    def run(self, tune_one) -> None:
        """Try rungs until the bracket closes, the rounds or the time run out; publish the best (or the original).

        ``tune_one(model, epochs, deadline) -> (epochs run, seconds, validation answers or None, out of
        time)`` fine-tunes a model in place (not called with ``--finetune none``): a cold round for
        ``--epochs``, a warm-started one for ``round_epochs`` of them, fewer where ``--time-budget`` leaves
        room for fewer; ``deadline`` (a ``time.perf_counter()`` value, or None) shortens it to the epochs that
        end before it, and says so. The answers (a bool per sample, the top-1 their mean) are the weights
        it kept, on the whole validation split, which fine-tuning scores after every epoch; None: the search
        scores them itself. A round meets the budget when its drop (with ``--confidence``, its upper bound at
        the paired standard error) is within ``--max-acc-drop``.
        """
        state = self.state
        i, model = state.level, state.compressed
        original = state.original_accuracy
        fresh = 1.0  # the share of the rung that starts fresh: all of it in the first round
        wanted = planned = round_epochs(self.options.epochs, fresh)  # the first round: only its deadline caps it
        while i is not None:
            start, first = time.perf_counter(), self._first_of_several()
            epochs, _, right, out_of_time = (tune_one(model, planned, self._deadline(first)) if self.tune
                                             else (0, 0.0, None, False))
            if out_of_time:
                room = "in half the time left, the rest kept for a deeper round" if first else "in time"
                state.log(f"--time-budget: {self.levels[i].label} trained {epochs} of its {planned} epochs, those that "
                          f"fitted {room}")
            if not self.tune and i in self.proxy_right:  # scored on all of validation
                right = self.proxy_right[i]
            elif right is None:  # fine-tuning scored what it kept on validation: not scored twice
                right = _answers(model, state.splits.x_val, state.splits.y_val)
            accuracy = float(right.mean())
            drop, error = 100.0 * (original - accuracy), self._error(right)
            worst = self._worst_class(right)
            met = (upper_bound(drop, error, self.options.confidence) <= self.options.max_acc_drop + 1e-9
                   and self._classes_held(worst))
            files = self._judge_files(i, model) if met and self.judged else None  # a miss already: not lowered
            capped = round(wanted - (epochs if out_of_time else planned), 2)
            self._record(i, model, accuracy, drop, met, epochs, time.perf_counter() - start, fresh, capped, error,
                         right, worst, files)
            if not state.enforce_budget:
                self.best, self.stopped = (i, model, accuracy, error, right), "a fixed plan: measured, not enforced"
                break
            previous = i
            i = self._next(previous, model)
            if i is None:
                break
            if self.tune:  # from fine-tuned weights wherever the plan did not change
                secured = self.secured.pop(i, None)
                source, warm_model, fresh = secured[:3] if secured else self._warm_source(i, previous, model)
                wanted = round_epochs(self.options.epochs, fresh)
                planned = self._fit_epochs(wanted)
                if not planned:  # the pick's looks used the last of the time
                    self.stopped = f"--time-budget {self.options.time_budget:g} minutes"
                    break
                if planned < wanted:
                    state.log(f"--time-budget: {self.levels[i].label} trains {planned:g} of its {wanted} epochs, what "
                              "fits in the time left")
                model = secured[3] if secured else self._build(i, warm=(warm_model, self.plan(source)))
            else:  # judged as it is: the rung the bisection built is the one to take
                model = self.models.pop(i, None) or self._build(i)
        self._publish()

    def _warm_source(self, i: int, previous: int, model) -> tuple[int, object, float]:
        """The fine-tuned rung to warm-start rung ``i`` from, its model, and the share of ``i`` left to start fresh:
        the last round's, or the best pass's when that one leaves less (stepping back up after a failure, the
        failed rung shares less with the rung between it and the last pass than that pass does: the ResNet-style
        default build on the EPYC, 2026-12-04, went 60 (passed) -> 48 (failed) -> 58 and trained 58 for 2
        epochs from 48's weights)."""
        fresh = self._fresh_share(previous, i)
        if self.best is not None and self.best[0] != previous:
            from_best = self._fresh_share(self.best[0], i)
            if from_best < fresh:
                return self.best[0], self.best[1], from_best
        return previous, model, fresh

    def _fresh_share(self, before: int, after: int) -> float:
        """The share of rung ``after``'s target-layer parameters in layers whose choice differs from rung ``before``'s."""
        old, new = self.levels[before].choices, self.levels[after].choices
        flat = self.state.flat

        def params(name, choice):
            return choice.params if choice is not None else flat.get_layer(name).count_params()

        sizes = {n: params(n, c) for n, c in new.items()}
        total = sum(sizes.values())
        return sum(v for n, v in sizes.items() if old.get(n) != new[n]) / total if total else 1.0

    def _record(self, i, model, accuracy, drop, met, epochs, seconds, fresh=1.0, capped=0, error=0.0,
                right=None, worst=None, files=None) -> None:
        """Round ``i`` measured: ``accuracy``, ``drop``, ``error`` and ``right`` are the Keras model's (what the
        build publishes as its accuracy), ``files`` (``_judge_files``) what its int8/fp16 files gave: then the
        round's drop is the worst file's, and it meets the budget only if every file does."""
        plan_params = int(model.count_params())
        model_drop, model_error, file_drops, files_said = drop, error, None, ""
        if files is not None:
            original = self.state.original_accuracy
            file_drops = {f: round(100.0 * (original - a), 4) for f, a in files.accuracy.items()}
            drop, error, met = self._files_meet(files)
            files_said = f"; its {self.judged} files: {files.describe(original)}"
        macs = self.state.mac_totals_of(self.levels[i].choices)[1]
        class_drop = steer = None
        if worst is not None:  # --max-class-drop: the worst class in the budget's units, where it is the larger
            class_drop = round(worst[1], 4)
            scaled = worst[1] * self.options.max_acc_drop / max(self.options.max_class_drop, 1e-9)
            steer = round(scaled, 4) if scaled > drop else None
        self.rounds.append(Round(i, self.levels[i].label, plan_params, macs, self.proxy.get(i), round(accuracy, 6),
                                 round(drop, 4), met, epochs, round(seconds, 2), self.forced.get(i, 0), round(fresh, 4),
                                 capped, i in self.secured_levels, round(error, 4), class_drop, steer,
                                 None if files is None else round(model_drop, 4), file_drops))
        bound = (f", {upper_bound(drop, error, self.options.confidence):.2f} at {self.options.confidence:.0%} "
                 "confidence" if self.z else "")
        scored = (f"accuracy {100 * accuracy:.2f}% (drop {model_drop:.2f} points" if self.state.labels != "original"
                  else f"agreement {100 * accuracy:.2f}% with the original ({model_drop:.2f} points changed")
        self.state.log(f"round {len(self.rounds)}: {self.levels[i].label} ({plan_params:,} params): {scored}"
                       f"{files_said}{bound}{'' if met else ', over the budget'})")
        if met:
            self.hi_pass = min(self.hi_pass, i)
            if self.best is None or i < self.best[0]:
                self.best = (i, model, accuracy, model_error, right)
        else:
            self.lo_fail = max(self.lo_fail, i)

    def _next(self, previous: int | None = None, model=None) -> int | None:
        """The next rung to try after rung ``previous`` (its fine-tuned ``model``), or None: the search stops."""
        if self.hi_pass - self.lo_fail <= 1:
            self.stopped = "converged" if self.hi_pass > 0 else self._deepest_passed()
            return None
        if self._settled(self.lo_fail, self.hi_pass):
            n = self.hi_pass - self.lo_fail - 1
            self.stopped = (f"converged within {COST_TOLERANCE:.0%} of the cost ({n} rung{'s' * (n > 1)} between the "
                            "last failure and the pass not looked at)")
            return None
        if self.tune and len(self.rounds) >= self.round_limit:
            self.stopped = f"--max-rounds {self.round_limit}"
            return None
        if not self._fit_epochs(1):  # not one more epoch (or rung) before the reserve: no looks either
            self.stopped = f"--time-budget {self.options.time_budget:g} minutes"
            return None
        secured = self._secure_pick(previous, model) if self._last_chance() else None
        return self._pick() if secured is None else secured

    def _last_chance(self) -> bool:
        """Whether the next round is the last, after rounds that all missed the budget: the last ``--max-rounds``
        allows, or under ``--time-budget`` one after which not another epoch of the last round's length fits.

        Not a first round (``--max-rounds 1``): nothing has yet shown the proxy's pick to miss, and a one-round
        build measures what the proxy picks (the ablation's rows in docs/BENCHMARKS.md).
        """
        if not (self.tune and self.rounds and self.hi_pass == len(self.levels)):
            return False
        timed_out = self.options.time_budget is not None and self._seconds_left() < 2 * self._round_unit()
        return timed_out or len(self.rounds) == self.round_limit - 1

    def _secure_pick(self, previous: int | None = None, model=None) -> int | None:
        """The most compressed rung past the last failure whose starting point meets the budget on the whole
        validation split, built as the round will build it (warm from ``previous``'s fine-tuned ``model``, or
        cold), kept in ``secured`` for the round; None when not even the least compressed rung's start does.

        Bisection over the starts, each scored ``EARLY_CHUNK`` samples at a time and dropped once it cannot meet
        the budget (``_scored_or_bound``); fine-tuning scores the same start on the same split and keeps it
        unless an epoch beats it, so the round this picks passes (module doc, item 3).
        """
        from lrfc.search.scoring import narrowed

        state, budget = self.state, self.options.max_acc_drop
        floor = state.original_accuracy - (budget + 1e-6) / 100.0
        drops: dict[int, float] = {}

        def passes(k: int) -> bool:
            start = time.perf_counter()
            source, warm_model, fresh = (self._warm_source(k, previous, model) if previous is not None
                                         else (k, None, 1.0))
            built = self._build(k, warm=None if warm_model is None else (warm_model, self.plan(source)))
            accuracy, right = _scored_or_bound(built, state.splits.x_val, state.splits.y_val, floor)
            self.look_seconds += time.perf_counter() - start
            drops[k] = 100.0 * (state.original_accuracy - accuracy)
            if (right is None or upper_bound(drops[k], self._error(right), self.options.confidence) > budget + 1e-9
                    or not self._classes_held(self._worst_class(right))):
                return False
            files = self._judge_files(k, built) if self.judged else None
            if files is not None and not self._files_meet(files)[2]:
                return False
            self.secured = {k: (source, warm_model, fresh, built)}  # the best so far; the others are dropped
            return True

        lo, hi = self.lo_fail, len(self.levels) - 1
        if hi <= lo:
            return None
        if not passes(hi):
            self.secured = {}
            state.log("last round, none has met the budget: not even the least compressed rung's starting point "
                      "meets it on the validation split; the proxy's pick instead")
            return None
        hi = narrowed(passes, lo, hi)
        self.secured = {hi: self.secured[hi]}
        self.secured_levels.add(hi)
        state.log(f"last round, none has met the budget: {self.levels[hi].label}, the most compressed rung whose "
                  f"starting point already meets it "
                  f"({drops[hi]:.2f} points on the validation split before fine-tuning; {len(drops)} looked at)")
        return hi

    def _deepest_passed(self) -> str:
        """Why the search stopped when the ladder's most compressed rung met the budget: what bounds the ladder."""
        from lrfc.search.stage import rank_multiple

        o = self.options
        deepest = next(r for r in self.rounds if r.level == 0)
        spare = o.max_acc_drop - upper_bound(deepest.drop, deepest.drop_error, o.confidence)
        bounds = [f"--min-similarity {o.min_similarity:g}" if o.allocation == "global" else f"--threshold {o.threshold:g}"]
        multiple = rank_multiple(self.state)
        if multiple > 1:
            bounds.append(f"ranks in multiples of {multiple} under --objective latency (--objective flops does not "
                          "round them)")
        return (f"the most compressed rung met the budget with {spare:.2f} points to spare; the candidates bound the "
                f"ladder: {' and '.join(bounds)}")

    def _publish(self) -> None:
        from lrfc.factorize.rewrite import apply_plan
        from lrfc.plan import Plan

        state = self.state
        self.models = {}  # rungs built for a look and never tried: nothing after the search needs them
        if self.best is None:
            if self.levels:
                state.log(f"no factorized plan met --max-acc-drop {self.options.max_acc_drop:g} ({self.stopped}); "
                          "publishing the original model")
            else:
                state.log(f"{self.stopped}: publishing the original model")
            state.compressed, state.plan, state.level = apply_plan(state.flat, Plan(())), Plan(()), None
            state.chosen = {n: None for n in state.targets}
            state.compressed_accuracy, state.drop_error = state.original_accuracy, 0.0
            state.compressed_right = state.original_right  # the original published: its own answers
            return
        i, model, accuracy, error, right = self.best
        state.level, state.plan, state.compressed, state.compressed_accuracy = i, self.plan(i), model, accuracy
        state.drop_error, state.compressed_right = error, right
        state.chosen = dict(self.levels[i].choices)

    def to_json(self) -> dict:
        return {"allocation": self.state.ladder,
                "enforced": bool(self.state.enforce_budget), "levels": len(self.levels),
                "published": "original" if self.best is None else self.levels[self.best[0]].label,
                "published_level": None if self.best is None else self.best[0],
                "stopped": self.stopped,
                "proxy_samples": min(PROXY_SAMPLES, len(self.x_proxy)) if self.tune else int(len(self.x_proxy)),
                "proxy_drops": {str(k): round(v, 4) for k, v in sorted(self.proxy.items())},
                "proxy_scored": {str(k): t[0] for k, t in sorted(self.tally.items())},
                "proxy_seconds": round(self.look_seconds, 2),
                "proxy_bounded": sorted(self.bounded),
                "judged": f"{self.judged} files" if self.judged else "keras model",
                "judge_seconds": round(self.judge_seconds, 2),
                "rounds": [r.to_json() for r in self.rounds]}
