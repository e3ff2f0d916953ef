"""`lrfc build`: the compiler pipeline, one named stage after another.

    load -> calibrate -> score -> price -> select -> measure -> factorize -> finetune -> lower -> benchmark -> report

Every stage is a function ``stage(state)`` that reads and extends one
``BuildState``; ``STAGES`` lists them in order and each stage's body lives in
the folder of its part of the compiler (``frontend/``, ``search/``, ``cost/``,
``factorize/``, ``train/``, ``lower/``, ``benchmark/``, ``report/``).
``run_build`` runs them, and ``StageTimer`` is the one clock: a stage that
re-enters another (the budget search's rounds re-factorize inside
``finetune``) charges that time to the other stage, not to itself. The
intermediate results (the candidate table, the plan, the fine-tuning record)
are plain data that ``report.json`` and ``plan.json`` carry.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lrfc.common import allocator, memory
from lrfc.common.progress import stderr_line
from lrfc.options import BuildOptions
from lrfc.plan import Plan

if TYPE_CHECKING:  # the state's types, without importing TensorFlow or the stages here
    import keras
    import numpy as np

    from lrfc.benchmark.stage import Benchmarks
    from lrfc.common.executor import Executor
    from lrfc.common.outputs import OutputDir
    from lrfc.cost.devices import DeviceLink
    from lrfc.cost.latency import Pricer
    from lrfc.cost.measure import WholeModel
    from lrfc.factorize.equalize import Equalization
    from lrfc.frontend.catalogue import LayerInfo
    from lrfc.frontend.contract import InputContract
    from lrfc.frontend.memory_plan import MemoryPlan
    from lrfc.frontend.splits import Splits
    from lrfc.lower.records import ArtifactRecord
    from lrfc.search.allocate import Level
    from lrfc.search.cache import Cache
    from lrfc.search.fanout import Failure
    from lrfc.search.scoring import LayerTask
    from lrfc.search.select import Candidate, Solution
    from lrfc.targets import Profile
    from lrfc.train.contract import BudgetSearch
    from lrfc.train.stage import FinetuneRecord


class StageTimer:
    """Seconds per stage; nested stages are charged to themselves and taken off the enclosing one."""

    def __init__(self, clock=time.perf_counter):
        self._clock = clock
        self.seconds: dict[str, float] = {}
        self._open: list[list] = []  # [name, start, seconds charged to nested stages]

    @contextlib.contextmanager
    def stage(self, name: str):
        """Charge the time inside the block to ``name``."""
        entry = [name, self._clock(), 0.0]
        self._open.append(entry)
        try:
            yield
        finally:
            self._open.pop()
            elapsed = self._clock() - entry[1]
            self.seconds[name] = self.seconds.get(name, 0.0) + elapsed - entry[2]
            if self._open:
                self._open[-1][2] += elapsed

    def snapshot(self) -> dict[str, float]:
        """Every stage's seconds so far, open stages included up to now (report.json is written inside one)."""
        now = self._clock()
        out = dict(self.seconds)
        for name, start, nested in self._open:
            out[name] = out.get(name, 0.0) + now - start - nested
        return out


@dataclass
class BuildState:
    """What the stages know so far. Fields are filled in stage order (the comment names the stage)."""

    options: BuildOptions
    log: Callable[[str], None] = print
    output: OutputDir | None = None          # run_build: staging, then one publish at the end
    executor: Executor | None = None         # where score and price tasks run (common.executor); run_build
    timer: StageTimer = field(default_factory=StageTimer)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)  # stage -> peak resident MiB while it ran
    # load
    profile: Profile | None = None
    objective: str = ""
    link: DeviceLink | None = None           # None: the target is out of reach (latency estimated); links[0]
    links: list[DeviceLink] = field(default_factory=list)  # every --device (a farm prices chains on all of them)
    flat: keras.Model | None = None          # the flattened original model (a one-unit classifier: as two classes)
    binary: str | None = None                # "sigmoid" or "logit": the original's one output unit (frontend.binary)
    rows: list[LayerInfo] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)  # names of factorizable layers
    given_plan: Plan | None = None           # --plan, checked against the model
    contract: InputContract | None = None    # how data values reach the model
    data_values: str = ""                    # what the data's values were (frontend.data.to_unit)
    data_fit: str | None = None              # how the data's shape was fitted to the input (frontend.data.describe_fit)
    classes: tuple[str, ...] | None = None   # the class names by label, when the data named them (image folders)
    splits: Splits | None = None
    original_accuracy: float = 0.0           # top-1 on the validation split (the sanity gate checked it)
    original_right: np.ndarray | None = None  # ... whether it gets each validation sample right (paired drops)
    labels: str = "data"                     # "original": validation had none, the original's answers are them;
    #                                          "held-out": only validation (and test) had them (frontend.unlabelled)
    train_outputs: np.ndarray | None = None  # ... then its outputs on the training split (the distillation's teacher)
    cache: Cache | None = None
    memory: MemoryPlan | None = None         # the formula's terms and the batch sizes under --memory-budget
    # calibrate, score, price, select
    tasks: dict[str, LayerTask] = field(default_factory=dict)
    candidates: dict[str, list[Candidate]] = field(default_factory=dict)
    failed_walks: list[Failure] = field(default_factory=list)  # score: walks that raised (their candidates dropped)
    thresholds: dict[str, float] = field(default_factory=dict)  # per layer (all --threshold today; the plot and report read them)
    pricer: Pricer | None = None             # --objective latency only
    original_ms: dict[str, float] = field(default_factory=dict)  # the original layers' latency (price)
    chosen: dict[str, Candidate | None] = field(default_factory=dict)  # None: kept
    plan: Plan | None = None
    solutions: list[Solution] = field(default_factory=list)
    levels: list[Level] = field(default_factory=list)  # the compression ladder, most compressed first
    sensitivity: dict | None = None          # global allocation: probe size, front candidates, how many measured
    enforce_budget: bool = True              # False for a given --plan and the iterative baseline
    ladder: str = "global"                  # how the levels were made: global, threshold or fixed (one rung)
    level: int | None = None                 # the rung the model is made of
    whole: WholeModel | None = None          # measure: rungs timed as whole models (--objective latency)
    budget: BudgetSearch | None = None       # the factorize and finetune stages' search along the ladder
    # factorize, finetune
    compressed: keras.Model | None = None
    finetune: FinetuneRecord | None = None
    compressed_accuracy: float = 0.0        # the published model's top-1 on the validation split
    drop_error: float = 0.0                  # ... its drop's standard error, in points (train.paired)
    compressed_right: np.ndarray | None = None  # ... whether it gets each validation sample right (report.classes)
    test_drop_error: float | None = None     # the same on the test split
    test_accuracy: tuple = (None, None)      # original's and published model's top-1 on the data's test split
    # lower, benchmark, report
    artifacts: list[ArtifactRecord] = field(default_factory=list)
    deliverables: list[dict] = field(default_factory=list)  # a non-fp32 target's files scored on validation
    equalization: Equalization | None = None  # lower: the chains equalized for int8 (None: no int8 file, or --qat)
    benchmarks: Benchmarks | None = None
    report: dict = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)  # published files, after run_build

    @property
    def failed(self) -> list[ArtifactRecord]:
        """lrfc's files at the target's precision that failed verification (not published).

        A failed reference (the original's file, or the other precision's: ``ArtifactRecord.deliverable``)
        is reported and timed, not a failure.
        """
        return [a for a in self.artifacts if not a.passed and a.deliverable]

    def mac_totals(self) -> tuple[int, int]:
        """MACs of one sample through the original model and through the one the chosen plan makes."""
        return self.mac_totals_of(self.chosen)

    def mac_totals_of(self, choices: dict) -> tuple[int, int]:
        """MACs of one sample through the original model and through the one ``choices`` make."""
        before = sum(r.macs for r in self.rows)
        return before, before + sum(c.macs - self.tasks[n].info.macs for n, c in choices.items() if c is not None)

    def progress(self, label: str, total: int, transient: bool = False):
        """A progress bar for a long loop inside a stage (``transient``: erased at its end, nothing in a log)."""
        from lrfc.common.progress import Progress

        return Progress(label, total, transient=transient)


def _stages():
    from lrfc.benchmark.stage import benchmark
    from lrfc.cost.stage import measure, price
    from lrfc.factorize.stage import factorize
    from lrfc.frontend.stage import load
    from lrfc.lower.stage import lower
    from lrfc.report.stage import report
    from lrfc.search.stage import calibrate, score, select
    from lrfc.train.stage import finetune

    return (("load", load), ("calibrate", calibrate), ("score", score), ("price", price), ("select", select),
            ("measure", measure), ("factorize", factorize), ("finetune", finetune), ("lower", lower),
            ("benchmark", benchmark), ("report", report))


STAGES = _stages()
"""The pipeline, in order: ``(name, stage function)``."""


def preflight(options: BuildOptions, log):
    """Every check that needs no TensorFlow, before any heavy work: options, profile, paths.

    Returns the prepared ``OutputDir`` and the executor (``common.executor``: a Ray cluster is reached here).
    """
    from lrfc.common.executor import make_executor
    from lrfc.common.outputs import OutputDir
    from lrfc.cost.costdb import check_cost_db
    from lrfc.cost.devices import HOST_PROFILES
    from lrfc.search.cache import check_cache_dir, default_cache_dir
    from lrfc.targets import build_profile

    options.validate()
    profile = build_profile(options)
    if options.qat and profile.precision != "int8":
        from lrfc.errors import UserError

        raise UserError(f"--qat trains for int8 rounding, but target {profile.name} compiles for {profile.precision}; "
                        "use an int8 target (host-int8 here, or a profile with precision = \"int8\")")
    if options.cache:
        check_cache_dir(Path(options.cache_dir) if options.cache_dir else default_cache_dir())
    check_cost_db(options.cost_db)
    priced = (options.objective or profile.objective) == "latency" and options.plan is None
    if priced and not options.devices:  # roofline estimates: are the figures the first runtime's processor's?
        from lrfc.targets import estimates_problem

        problem = estimates_problem(profile)
        if problem:
            from lrfc.errors import UserError

            raise UserError(f"--formats {','.join(options.formats)}: {problem}")
    lanes = (len(options.devices) or int(profile.name in HOST_PROFILES)) if priced else 0  # devices that measure
    executor = make_executor(options.executor, options.ray_address, lanes)  # a Ray cluster is reached now
    try:
        output = OutputDir(options.out)
        output.prepare(log)  # last: it may create the folder, and nothing after it can fail
    except BaseException:
        executor.close()
        raise
    return output, executor


def run_build(options: BuildOptions, log=stderr_line) -> BuildState:
    """Run every stage in order, timing each and recording its peak memory; returns the final state.

    Results are staged and published as one set at the end (``common.outputs``);
    a failure or an interruption leaves the output folder as it was. Artifacts
    that failed verification are not published; ``state.failed`` lists them
    (the CLI exits 1 on them).
    """
    output, executor = preflight(options, log)
    state = BuildState(options, log=log, output=output, executor=executor)
    try:
        from lrfc.common.quiet import import_keras

        allocator.choose()  # before TensorFlow's first allocation: what memory is freed goes back (common.allocator)
        import_keras()
        for name, stage in STAGES:
            memory.release()  # the last stage's garbage (models and graphs in cycles) is not this one's peak
            fresh = memory.reset_peak()
            with state.timer.stage(name):
                stage(state)
            peak = memory.peak_mb()
            if name != "report" and fresh and peak is not None:  # without a reset it would be the run's peak so far
                state.peak_rss_mb[name] = round(peak, 1)
        state.outputs = output.publish()
    finally:
        from lrfc.decompose.cp import keep_fits_on_disk
        from lrfc.frontend.samples import cap_batches

        cap_batches(None)
        keep_fits_on_disk(None)  # like the batch cap, the fits folder is this build's, not the process's
        output.discard()
        executor.close()
        if state.cache is not None:
            state.cache.close()
        if state.pricer is not None:
            state.pricer.close()
    return state
