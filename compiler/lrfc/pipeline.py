"""`lrfc build`: the compiler pipeline, one named stage after another.

    load -> calibrate -> score -> price -> select -> factorize -> finetune -> lower -> benchmark -> report

Every stage is a function ``stage(state)`` that reads and extends one
``BuildState``; ``STAGES`` lists them in order and each stage's body lives in
the folder of its part of the compiler (``frontend/``, ``search/``, ``cost/``,
``factorize/``, ``train/``, ``lower/``, ``benchmark/``, ``report/``).
``run_build`` runs them, and ``StageTimer`` is the one clock: a stage that
re-enters another (recovery rounds re-score and re-factorize inside
``finetune``) charges that time to the other stage, not to itself. The
intermediate results (the candidate table, the plan, the fine-tuning record)
are plain data that ``report.json`` and ``plan.json`` carry.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lrfc.common import memory
from lrfc.options import BuildOptions
from lrfc.plan import Plan


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
    """What the stages know so far. Fields are filled in stage order."""

    options: BuildOptions
    log: object = print
    profile: object = None
    objective: str = ""
    flat: object = None                      # the flattened original model
    rows: list = field(default_factory=list)  # LayerInfo per layer
    targets: list = field(default_factory=list)  # names of factorizable layers
    output: object = None                    # common.outputs.OutputDir: staging, then one publish at the end
    contract: object = None                  # frontend.contract.InputContract: how data values reach the model
    data_values: str = ""                    # what the data's values were (frontend.data.to_unit)
    splits: object = None                    # frontend.splits.Splits
    tasks: dict = field(default_factory=dict)    # name -> scoring.LayerTask
    candidates: dict = field(default_factory=dict)  # name -> [Candidate]
    thresholds: dict = field(default_factory=dict)  # name -> similarity threshold (raised by recovery)
    chosen: dict = field(default_factory=dict)      # name -> Candidate | None (kept)
    given_plan: Plan | None = None           # --plan, checked by the load stage
    plan: Plan | None = None
    solutions: list = field(default_factory=list)
    compressed: object = None
    accuracy: dict = field(default_factory=dict)
    finetune: dict = field(default_factory=dict)
    timer: StageTimer = field(default_factory=StageTimer)
    peak_rss_mb: dict = field(default_factory=dict)  # stage -> peak resident MB while it ran (lrfc.common.memory)
    cache: object = None
    report: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    link: object = None                              # devices.DeviceLink, or None: the target is out of reach
    pricer: object = None                            # latency.Pricer under --objective latency
    original_ms: dict = field(default_factory=dict)  # name -> the original layer's latency (price stage)
    artifacts: list = field(default_factory=list)    # lower.records.ArtifactRecord per file (lower stage)
    benchmarks: dict = field(default_factory=dict)

    @property
    def failed(self) -> list:
        """Artifacts that failed verification (not published)."""
        return [a for a in self.artifacts if not a.passed]

    def progress(self, label: str, total: int):
        """A progress bar for a long loop inside a stage."""
        from lrfc.common.progress import Progress

        return Progress(label, total)


def _stages():
    from lrfc.benchmark.stage import benchmark
    from lrfc.cost.stage import price
    from lrfc.factorize.stage import factorize
    from lrfc.frontend.stage import load
    from lrfc.lower.stage import lower
    from lrfc.report.stage import report
    from lrfc.search.stage import calibrate, score, select
    from lrfc.train.stage import finetune

    return (("load", load), ("calibrate", calibrate), ("score", score), ("price", price), ("select", select),
            ("factorize", factorize), ("finetune", finetune), ("lower", lower), ("benchmark", benchmark),
            ("report", report))


STAGES = _stages()
"""The pipeline, in order: ``(name, stage function)``."""


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def preflight(options: BuildOptions, log):
    """Every check that needs no TensorFlow, before any heavy work: options, profile, paths.

    Returns the prepared ``OutputDir``.
    """
    from lrfc.common.outputs import OutputDir
    from lrfc.cost.costdb import check_cost_db
    from lrfc.search.cache import check_cache_dir, default_cache_dir
    from lrfc.targets import load_profile

    options.validate()
    load_profile(options.target)
    if options.cache:
        check_cache_dir(Path(options.cache_dir) if options.cache_dir else default_cache_dir())
    check_cost_db(options.cost_db)
    output = OutputDir(options.out)
    output.prepare(log)  # last: it may create the folder, and nothing after it can fail
    return output


def run_build(options: BuildOptions, log=_stderr) -> BuildState:
    """Run every stage in order, timing each and recording its peak memory; returns the final state.

    Results are staged and published as one set at the end (``common.outputs``);
    a failure or an interruption leaves the output folder as it was. Artifacts
    that failed verification are not published; ``state.failed`` lists them
    (the CLI exits 1 on them).
    """
    output = preflight(options, log)
    from lrfc.common.quiet import import_keras

    import_keras()
    state = BuildState(options, log=log, output=output)
    try:
        for name, stage in STAGES:
            fresh = memory.reset_peak()
            with state.timer.stage(name):
                stage(state)
            peak = memory.peak_mb()
            if name != "report" and fresh and peak is not None:  # without a reset it would be the run's peak so far
                state.peak_rss_mb[name] = round(peak, 1)
        state.outputs = output.publish()
    finally:
        output.discard()
        if state.cache is not None:
            state.cache.close()
        if state.pricer is not None:
            state.pricer.close()
    return state
