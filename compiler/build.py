"""`lrfc build`: the compiler pipeline, one named stage after another.

    load -> calibrate -> score -> price -> select -> factorize -> finetune -> lower -> benchmark -> report

Every stage is a function ``stage(state)`` that reads and extends one
``BuildState``; ``STAGES`` lists them in order and ``run_build`` is the only
place that times them and reports progress. The intermediate results — the
candidate table, the plan, the fine-tuning record — are plain data that
``report.json`` and ``plan.json`` carry. ``price`` (latency objective only)
measures candidate chains on the target device or estimates them
(``lrfc.latency``); ``lower`` and ``benchmark`` (``lrfc.deploy``) write the
verified TFLite/ONNX artifacts and time them against the original's.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lrfc import memory
from lrfc.deploy import benchmark_stage, lower_stage
from lrfc.errors import UserError
from lrfc.options import BuildOptions
from lrfc.plan import LayerChoice, Plan


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
    splits: dict = field(default_factory=dict)   # train/val/calib arrays
    tasks: dict = field(default_factory=dict)    # name -> scoring.LayerTask
    candidates: dict = field(default_factory=dict)  # name -> [Candidate]
    thresholds: dict = field(default_factory=dict)  # name -> similarity threshold (raised by recovery)
    chosen: dict = field(default_factory=dict)      # name -> Candidate | None (kept)
    plan: Plan | None = None
    solutions: list = field(default_factory=list)
    compressed: object = None
    accuracy: dict = field(default_factory=dict)
    finetune: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    peak_rss_mb: dict = field(default_factory=dict)  # stage -> peak resident MB while it ran (lrfc.memory)
    cache: object = None
    report: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    link: object = None                              # devices.DeviceLink, or None: the target is out of reach
    pricer: object = None                            # latency.Pricer under --objective latency
    original_ms: dict = field(default_factory=dict)  # name -> the original layer's latency (price stage)
    artifacts: list = field(default_factory=list)    # lowered, verified files (lower stage)
    benchmarks: dict = field(default_factory=dict)


def _progress(state: BuildState, label: str, total: int):
    from lrfc.progress import Progress

    return Progress(label, total)


# ----------------------------------------------------------------------------- load


def _split(state: BuildState, ds) -> dict:
    """Disjoint, seeded calibration / training / held-out splits."""
    opts = state.options
    rng = np.random.default_rng(opts.seed)
    perm = rng.permutation(len(ds.x))
    n_calib = min(opts.calib_samples, len(ds.x))
    calib, rest = perm[:n_calib], perm[n_calib:]
    if ds.x_test is not None:
        x_val, y_val = ds.x_test, ds.y_test
    else:
        n_val = max(1, len(rest) // 5)
        val, rest = rest[:n_val], rest[n_val:]
        x_val, y_val = ds.x[val], ds.y[val]
    if opts.finetune != "none" and len(rest) < 1:
        raise UserError(f"--data: {len(ds.x)} samples leave none to fine-tune on after {n_calib} calibration samples; "
                        "lower --calib-samples or pass more data")
    if opts.train_samples is not None:
        rest = rest[: opts.train_samples]
    return {"x_calib": ds.x[calib], "x_train": ds.x[rest], "y_train": ds.y[rest], "x_val": x_val, "y_val": y_val}


def load(state: BuildState) -> None:
    """Model, target profile, data splits, catalogue, original accuracy."""
    from lrfc.data import load_data
    from lrfc.devices import link_for
    from lrfc.finetune import evaluate
    from lrfc.frontend.catalogue import describe_model
    from lrfc.inspection import load_flat
    from lrfc.targets import load_profile

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
    state.splits = _split(state, ds)
    state.accuracy["original"] = evaluate(state.flat, state.splits["x_val"], state.splits["y_val"])
    from lrfc.cache import Cache

    state.cache = Cache(Path(opts.cache_dir) if opts.cache_dir else None, enabled=opts.cache)


# ------------------------------------------------------------------------ calibrate


def calibrate(state: BuildState) -> None:
    """Capture each target layer's input/output maps and input statistics, once."""
    from lrfc.calibrate import capture
    from lrfc.scoring import make_task

    rows = {r.name: r for r in state.rows}
    x = state.splits["x_calib"]
    aware = state.options.data_aware != "off"
    # A separable layer's pointwise part sees its depthwise output: make_task derives that and its statistics.
    geoms = {n: rows[n].geometry for n in state.targets if not rows[n].type.startswith("Separable")}
    with _progress(state, "calibrate", len(x)) as bar:
        cap = capture(state.flat, state.targets, x, stats_geometry=geoms if aware else None, progress=bar.update)
    for name in state.targets:
        state.tasks[name] = make_task(state.flat.get_layer(name), rows[name], cap.inputs[name], cap.stats.get(name), aware)


# ---------------------------------------------------------------------------- score


def _methods_for(state: BuildState, name: str) -> list[str]:
    info = state.tasks[name].info
    return [m for m in state.options.methods if m in info.methods]


def _score_layer(state: BuildState, name: str) -> list:
    """Every applicable method's candidates for one layer, walking to the layer's threshold."""
    from lrfc import select
    from lrfc.scoring import score_method

    opts = state.options
    task = state.tasks[name]
    cands = []
    for method in _methods_for(state, name):
        if opts.rank_selection == "similarity":
            grid = select.rank_grid(method, task.info.geometry, opts.step, state.objective)
            threshold = state.thresholds[name]
        else:  # weight-based baselines: one rank per method, scored for the report
            grid = [select.baseline_ranks(method, task.weights.kernel, task.info.geometry, opts.rank_selection, opts.energy)]
            threshold = 0.0
        cands += score_method(task, method, grid, threshold, state.cache, opts.data_aware)
    return cands


def _plan_candidates(state: BuildState, plan: Plan) -> dict:
    """Score a given plan's choices (``--plan``) so the report can show their similarity."""
    from lrfc import decompose, select
    from lrfc.rewrite import check_choice
    from lrfc.scoring import similarity

    result = {}
    for c in plan.choices:
        if c.layer not in state.tasks:
            raise UserError(f"{state.options.plan}: layer {c.layer!r} is not a factorizable layer of {state.options.model}")
        task = state.tasks[c.layer]
        check_choice(task.info, c)
        cost = decompose.get(c.method).cost(task.info.geometry, c.ranks)
        aware = c.data_aware and task.stats is not None
        sim = similarity(task, c.method, c.ranks, aware, state.cache)
        result[c.layer] = [select.Candidate(c.layer, c.method, tuple(c.ranks), cost.params + task.info.params - task.info.geometry.params,
                                            cost.macs + task.info.macs - task.info.geometry.macs, round(sim, 6), aware)]
    return result


def score(state: BuildState) -> None:
    """Candidates per layer and method: ranks on the step grid, scored by similarity."""
    opts = state.options
    state.thresholds = {n: opts.threshold for n in state.targets}
    if opts.plan is not None:
        state.candidates = _plan_candidates(state, Plan.load(opts.plan))
        return
    with _progress(state, "score", len(state.targets)) as bar:
        for name in state.targets:
            state.candidates[name] = _score_layer(state, name)
            bar.update(1, name)


# ---------------------------------------------------------------------------- price


def _priced(state: BuildState) -> bool:
    return state.objective == "latency" and state.options.plan is None


def _price_layers(state: BuildState, names) -> None:
    """Latency of each layer's original and of its candidates that pass the base threshold.

    Candidates under the base threshold can never be chosen (layer thresholds
    only rise), so they are not priced; ones priced before keep their price.
    """
    from dataclasses import replace

    from lrfc import decompose
    from lrfc.latency import Chain
    from lrfc.rewrite import activation_of, chain_rank
    from lrfc.scoring import original_stage, prepared_for

    base = state.options.threshold if state.options.rank_selection == "similarity" else 0.0
    chains = {}
    for name in names:
        task = state.tasks[name]
        geom, act = task.info.geometry, activation_of(state.flat.get_layer(name))
        shape, rank = tuple(task.inputs.shape[1:]), chain_rank(geom)
        bias = () if task.weights.bias is None else (task.weights.bias,)
        original = original_stage(task.weights, geom)
        original = replace(original, weights=original.weights + bias, use_bias=bool(bias), activation=act)
        chains[(name, None)] = Chain(shape, [original], rank)
        for c in state.candidates[name]:
            if c.similarity >= base and c.measured_ms is None:
                mod = decompose.get(c.method)
                prepared = prepared_for(task, c.method, c.data_aware and task.stats is not None, state.cache)
                chains[(name, c)] = Chain(shape, mod.stages(mod.truncate(prepared, tuple(c.ranks)), geom, act), rank)
    ms = state.pricer.price(chains)
    for name in names:
        state.original_ms[name] = ms[(name, None)]
        state.candidates[name] = [replace(c, measured_ms=round(ms[(name, c)], 5)) if (name, c) in ms else c
                                  for c in state.candidates[name]]


def price(state: BuildState) -> None:
    """Under the latency objective: each candidate's latency, measured on the device or estimated."""
    if not _priced(state):
        return
    from lrfc.latency import Pricer

    state.pricer = Pricer(state.profile, state.link, state.options.cost_db, log=state.log,
                          cache_dir=state.options.cache_dir)
    _price_layers(state, state.targets)
    state.log(state.pricer.info.summary())


# --------------------------------------------------------------------------- select


def _original_costs(state: BuildState) -> dict:
    from lrfc.decompose.base import Cost

    return {n: Cost(state.tasks[n].info.params, state.tasks[n].info.macs) for n in state.targets}


def _plan_from(choices: dict) -> Plan:
    return Plan(tuple(LayerChoice(c.layer, c.method, tuple(c.ranks), bool(c.data_aware))
                      for c in choices.values() if c is not None))


def _choose(state: BuildState, names) -> dict:
    """Per layer, the cheapest candidate meeting that layer's threshold (None = keep)."""
    from lrfc import select

    costs = _original_costs(state)
    chosen = {}
    for name in names:
        threshold = state.thresholds[name] if state.options.rank_selection == "similarity" else 0.0
        chosen.update(select.choose_hybrid({name: state.candidates.get(name, [])}, {name: costs[name]}, threshold,
                                           state.objective, original_ms=state.original_ms or None))
    return chosen


def select_stage(state: BuildState) -> None:
    """Per layer the method and rank that minimise the objective at the threshold; the best whole-model solutions."""
    from lrfc import select

    opts = state.options
    if opts.plan is not None:  # a given plan is taken as it is
        state.chosen = {n: cands[0] for n, cands in state.candidates.items()}
    else:
        state.chosen = _choose(state, state.targets)
        threshold = opts.threshold if opts.rank_selection == "similarity" else 0.0
        state.solutions = select.best_solutions(state.candidates, _original_costs(state), threshold, state.objective,
                                                opts.max_sol, original_ms=state.original_ms or None)
    state.plan = _plan_from(state.chosen)


# ------------------------------------------------------------------------ factorize


def factorize(state: BuildState) -> None:
    """Apply the plan to the original model."""
    from lrfc.rewrite import apply_plan
    from lrfc.scoring import prepared_for

    prepared = {}
    for c in state.plan.choices:
        aware = c.data_aware and state.tasks[c.layer].stats is not None
        prepared[(c.layer, c.method, c.data_aware)] = prepared_for(state.tasks[c.layer], c.method, aware, state.cache)
    stats = {n: t.stats for n, t in state.tasks.items() if t.stats is not None}
    state.compressed = apply_plan(state.flat, state.plan, stats, prepared)


# ------------------------------------------------------------------------- finetune


def _finetune_config(state: BuildState, epochs: int):
    from lrfc.finetune import FinetuneConfig

    return FinetuneConfig(epochs=epochs, batch_size=state.options.batch_size, distill=state.options.distill,
                          seed=state.options.seed)


def _epoch_bar(state: BuildState, label: str, total: int):
    bar = _progress(state, label, total)
    return bar, (lambda epoch, total_, logs: bar.update(1, " ".join(f"{k} {v:.4f}" for k, v in sorted(logs.items())
                                                                 if isinstance(v, float))))


def _oneshot_round(state: BuildState, teacher) -> tuple[float, float]:
    from lrfc.finetune import evaluate, finetune

    s = state.splits
    seconds = 0.0
    if state.options.epochs > 0:
        bar, callback = _epoch_bar(state, "finetune", state.options.epochs)
        with bar:
            result = finetune(state.compressed, s["x_train"], s["y_train"], _finetune_config(state, state.options.epochs),
                              teacher=teacher, progress=callback)
        seconds = result.seconds
    return evaluate(state.compressed, s["x_val"], s["y_val"]), seconds


def _recover(state: BuildState) -> bool:
    """Raise the thresholds of the layers that lost most, re-score and re-select them.

    The worse-scoring half of the factorized layers (at least one) get their
    threshold moved halfway to 1 (0.92 -> 0.96 -> 0.98 ...), again while that
    changes none of their choices; their walks continue up the rank grid
    (earlier scores come from the cache) and their choices move up their
    Pareto fronts. Returns False when no choice can move any more.
    """
    factorized = sorted((c for c in state.chosen.values() if c is not None), key=lambda c: (c.similarity, c.layer))
    if not factorized or state.options.rank_selection != "similarity" or state.options.plan is not None:
        return False  # nothing to move, or no search to move along (weight-based ranks, a given plan)
    worst = [c.layer for c in factorized[: max(1, math.ceil(len(factorized) / 2))]]
    start = time.perf_counter()
    before = dict(state.chosen)
    while state.chosen == before and min(state.thresholds[n] for n in worst) < 1.0 - 1e-6:
        for name in worst:
            state.thresholds[name] = 1.0 - (1.0 - state.thresholds[name]) / 2
            state.candidates[name] = _score_layer(state, name)
        if _priced(state):
            _price_layers(state, worst)
        state.chosen.update(_choose(state, worst))
    state.timings["score"] = state.timings.get("score", 0.0) + time.perf_counter() - start
    if state.chosen == before:
        return False
    state.plan = _plan_from(state.chosen)
    return True


def finetune_stage(state: BuildState) -> None:
    """One-shot (or iterative) fine-tuning; recovery rounds while the accuracy drop is too large."""
    from lrfc.finetune import evaluate, teacher_logits

    opts = state.options
    s = state.splits
    teacher = None
    if opts.finetune != "none" and opts.distill and opts.epochs > 0:
        teacher = teacher_logits(state.flat, s["x_train"])
    rounds, total_seconds = 0, 0.0
    if opts.finetune == "iterative":
        acc, total_seconds = _iterative(state, teacher)
        rounds = 1
    elif opts.finetune == "none":
        acc = evaluate(state.compressed, s["x_val"], s["y_val"])
        rounds = 0
    else:
        while True:
            rounds += 1
            acc, seconds = _oneshot_round(state, teacher)
            total_seconds += seconds
            drop = 100.0 * (state.accuracy["original"] - acc)
            state.log(f"round {rounds}: accuracy {100 * acc:.2f}% (drop {drop:.2f} points)")
            if drop <= opts.max_acc_drop or rounds >= opts.max_rounds or not state.plan.choices:
                break
            if not _recover(state):
                break
            t0 = time.perf_counter()
            factorize(state)
            state.timings["factorize"] = state.timings.get("factorize", 0.0) + time.perf_counter() - t0
    state.accuracy["compressed"] = acc
    state.finetune = {"mode": opts.finetune, "rounds": rounds, "epochs": opts.epochs if opts.finetune != "none" else 0,
                      "seconds": round(total_seconds, 2), "distill": bool(teacher is not None)}


def _iterative(state: BuildState, teacher) -> tuple[float, float]:
    """The paper's baseline: factorize one layer, fine-tune, factorize the next, ..."""
    from lrfc.finetune import evaluate, finetune
    from lrfc.rewrite import apply_plan

    s = state.splits
    model = state.flat
    seconds = 0.0
    stats = {n: t.stats for n, t in state.tasks.items() if t.stats is not None}
    with _progress(state, "iterative", len(state.plan.choices)) as bar:
        for choice in state.plan.choices:
            model = apply_plan(model, Plan((choice,)), stats)
            if state.options.epochs > 0:
                result = finetune(model, s["x_train"], s["y_train"], _finetune_config(state, state.options.epochs), teacher=teacher)
                seconds += result.seconds
            bar.update(1, choice.layer)
    state.compressed = model
    return evaluate(model, s["x_val"], s["y_val"]), seconds


# --------------------------------------------------------------------------- report


def _report(state: BuildState) -> dict:
    opts = state.options
    chosen = {n: c for n, c in state.chosen.items() if c is not None}

    layers, unfactorized = [], []
    for r in state.rows:
        if not r.methods:
            if r.macs:  # a convolution/dense-family layer no method takes (depthwise, grouped, ...)
                unfactorized.append({"name": r.name, "type": r.type, "reason": r.note or "no factorization applies"})
            continue
        c = chosen.get(r.name)
        entry = {"name": r.name, "type": r.type, "method": None, "ranks": None, "similarity": None,
                 "params_before": r.params, "params_after": r.params, "macs_before": r.macs, "macs_after": r.macs,
                 "data_aware": None}
        if r.name in state.original_ms:
            entry["latency_ms_before"] = entry["latency_ms_after"] = round(state.original_ms[r.name], 5)
        if c is not None:
            entry.update(method=c.method, ranks=list(c.ranks), similarity=c.similarity, data_aware=c.data_aware,
                         params_after=c.params, macs_after=c.macs)
            if c.measured_ms is not None:
                entry["latency_ms_after"] = round(c.measured_ms, 5)
        elif r.name in state.targets:
            entry["note"] = "kept: no candidate met the threshold at a lower cost"
        else:
            entry["note"] = "kept: none of --methods applies"
        layers.append(entry)
    total_macs_before = sum(r.macs for r in state.rows)
    total_macs_after = total_macs_before + sum(l["macs_after"] - l["macs_before"] for l in layers)
    costs = state.pricer.info.to_json() if state.pricer is not None else None
    for run in state.benchmarks.get("runs", []):
        run["ratios"]["macs"] = round(total_macs_before / max(1, total_macs_after), 4)
    return {
        "model": opts.model, "data": opts.data, "target": state.profile.name, "objective": state.objective,
        "threshold": opts.threshold, "layer_thresholds": {n: round(t, 6) for n, t in state.thresholds.items()},
        "seed": opts.seed, "step": opts.step, "rank_selection": opts.rank_selection,
        "methods": list(opts.methods),
        "cost_source": costs["source"] if costs else ("given plan" if opts.plan else "closed-form"),
        "costs": costs,
        "original": {"params": sum(r.params for r in state.rows), "macs": total_macs_before,
                     "accuracy": round(state.accuracy["original"], 6)},
        "compressed": {"params": int(state.compressed.count_params()), "macs": total_macs_after,
                       "accuracy": round(state.accuracy["compressed"], 6)},
        "splits": {"calibration": int(len(state.splits["x_calib"])), "train": int(len(state.splits["x_train"])),
                   "validation": int(len(state.splits["x_val"]))},
        "layers": layers,
        "unfactorized": unfactorized,
        "finetune": state.finetune,
        "artifacts": state.artifacts,
        "benchmarks": state.benchmarks,
        "timings": {k: round(v, 3) for k, v in state.timings.items()},
        "peak_rss_mb": dict(state.peak_rss_mb),
        "cache": {"enabled": opts.cache, "hits": state.cache.hits, "misses": state.cache.misses},
        "search": {
            "candidates": [c.to_json() for cands in state.candidates.values() for c in cands],
            "solutions": [s.to_json() for s in state.solutions],
        },
    }


def report(state: BuildState) -> None:
    """Write model.keras, plan.json, report.html and — last — report.json, each atomically."""
    from lrfc.atomic import atomic_path, write_text
    from lrfc.report import write_report

    start = time.perf_counter()
    out = Path(state.options.out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "model.keras") as tmp:
        state.compressed.save(tmp)
    write_text(out / "plan.json", json.dumps(state.plan.to_json(), indent=2) + "\n")
    state.timings["report"] = time.perf_counter() - start  # so far: the rest is writing the report itself
    state.report = _report(state)
    state.outputs = {"model": out / "model.keras", "plan": out / "plan.json", **write_report(state.report, out)}


STAGES = (
    ("load", load),
    ("calibrate", calibrate),
    ("score", score),
    ("price", price),
    ("select", select_stage),
    ("factorize", factorize),
    ("finetune", finetune_stage),
    ("lower", lower_stage),
    ("benchmark", benchmark_stage),
    ("report", report),
)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_build(options: BuildOptions, log=_stderr) -> BuildState:
    """Run every stage in order, timing each; returns the final state (``state.report``)."""
    options.validate()
    from lrfc.targets import load_profile

    load_profile(options.target)  # a bad --target fails before any heavy import
    from lrfc.quiet import import_keras

    import_keras()
    state = BuildState(options, log=log)
    try:
        for name, stage in STAGES:
            fresh = memory.reset_peak()
            start = time.perf_counter()
            before = state.timings.get(name, 0.0)
            others = sum(v for k, v in state.timings.items() if k != name)
            stage(state)
            nested = sum(v for k, v in state.timings.items() if k != name) - others  # e.g. re-factorizing in recovery
            if name != "report":  # report times itself before it writes report.json
                state.timings[name] = before + time.perf_counter() - start - nested
                peak = memory.peak_mb()
                if fresh and peak is not None:  # without a reset it would be the whole run's peak so far
                    state.peak_rss_mb[name] = round(peak, 1)
    finally:
        if state.cache is not None:
            state.cache.close()
        if state.pricer is not None:
            state.pricer.close()
    return state
