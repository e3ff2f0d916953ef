"""The search stages: ``calibrate`` (capture feature maps), ``score`` (candidates by similarity), ``select``
(the compression ladder the accuracy budget is searched along)."""

from __future__ import annotations

from lrfc.plan import LayerChoice, Plan


# ------------------------------------------------------------------------ calibrate


def capture_tasks(flat, rows: dict, targets, x, aware: bool, progress=None, store=None, batch_size: int = 64) -> dict:
    """``{layer: scoring.LayerTask}``: each target layer's captured inputs, reference output and statistics.

    Shared by the build's ``calibrate`` stage and ``lrfc decompose --data``.
    With a ``store`` (``calibrate.MapStore``) the maps and statistics go to
    files; ``batch_size`` is the capture batch (the memory plan's).
    """
    from lrfc.search.calibrate import capture
    from lrfc.search.scoring import make_task

    # A separable layer's pointwise part sees its depthwise output: make_task derives that and its statistics.
    geoms = {n: rows[n].geometry for n in targets if not rows[n].type.startswith("Separable")}
    cap = capture(flat, targets, x, batch_size, stats_geometry=geoms if aware else None, progress=progress, store=store)
    # each layer's statistics leave memory as its task is made (to files, with a store)
    return {n: make_task(flat.get_layer(n), rows[n], cap.inputs[n], cap.stats.pop(n, None), aware, store) for n in targets}


def calibrate(state) -> None:
    """Capture each target layer's input maps and input statistics, once, into files of the build's scratch folder.

    The calibration samples go to a file there too (``Splits.spilled``): later stages map them as they read them.
    """
    from lrfc.search.calibrate import MapStore

    x = state.splits.x_calib
    store = MapStore(state.output.scratch / "maps") if state.output is not None else None
    batch = state.memory.capture_batch if state.memory is not None else 64
    with state.progress("calibrate", len(x)) as bar:
        state.tasks = capture_tasks(state.flat, {r.name: r for r in state.rows}, state.targets, x,
                                    state.options.fit != "off", progress=bar.update, store=store, batch_size=batch)
    if store is not None:  # the samples leave memory until a later stage reads them (score never does)
        del x
        state.splits = state.splits.spilled(store.root / "calibration.npy")


# ---------------------------------------------------------------------------- score


def _methods_for(state, name: str) -> list[str]:
    info = state.tasks[name].info
    return [m for m in state.options.methods if m in info.methods]


def walk_threshold(options) -> float:
    """Where a layer's walk up its rank grid starts passing: the threshold, or the global allocator's floor."""
    return options.threshold if options.allocation == "threshold" else min(options.threshold, options.min_similarity)


def rank_multiple(state) -> int:
    """The channel multiple ranks are rounded to: the profile's, for the runtime that will run the model.

    Only under ``--objective latency``: a multiple is a property of the clock (kernels
    tile channels; ONNX Runtime's blocked layout needs whole blocks), while flops,
    params and memory count what they count, and a coarser grid only costs them.
    """
    from lrfc.cost.devices import measured_runtimes

    if state.objective != "latency":
        return 1
    usable = measured_runtimes(state.profile, state.link)[0] if state.link is not None else []
    return state.profile.multiple_for((usable or state.profile.runtimes)[0])


def layer_walks(state, name: str, multiple: int) -> list:
    """One layer's walks, ``(layer, method, grid, threshold)`` per applicable method, in method order."""
    from lrfc.search.grid import rank_grid
    from lrfc.search.rank_rules import baseline_ranks

    opts = state.options
    task = state.tasks[name]
    walks = []
    for method in _methods_for(state, name):
        if opts.rank_selection == "similarity":
            grid = rank_grid(method, task.info.geometry, opts.step, state.objective, multiple)
            threshold = walk_threshold(opts)
        else:  # weight-based baselines: one rank per method, scored for the report
            grid = [baseline_ranks(method, task.weights.kernel, task.info.geometry, opts.rank_selection, opts.energy)]
            threshold = 0.0
        walks.append((name, method, grid, threshold))
    return walks


def _plan_candidates(state, plan: Plan) -> dict:
    """Score a given plan's choices (``--plan``) so the report can show their similarity."""
    from lrfc.search import select
    from lrfc.search.scoring import similarity

    result = {}
    for c in plan.choices:  # checked against the model by the load stage
        task = state.tasks[c.layer]
        cost = task.info.factorized_cost(c.method, c.ranks)
        aware = c.data_aware and task.stats is not None
        sim = similarity(task, c.method, c.ranks, aware, state.cache)
        result[c.layer] = [select.Candidate(c.layer, c.method, tuple(c.ranks), cost.params, cost.macs, round(sim, 6), aware)]
    return result


def score(state) -> None:
    """Candidates per layer and method: ranks on the step grid, scored by similarity."""
    opts = state.options
    state.thresholds = {n: opts.threshold for n in state.targets}
    if opts.plan is not None:
        state.candidates = _plan_candidates(state, state.given_plan)
        return
    from lrfc.common.executor import InProcess
    from lrfc.search.fanout import score_all

    executor = state.executor or InProcess()
    multiple = rank_multiple(state)
    walks = [w for name in state.targets for w in layer_walks(state, name, multiple)]
    with state.progress("score", len(walks)) as bar:  # each walk a task of the executor (search.fanout)
        threads = state.memory.score_threads if state.memory is not None else 1
        found, state.failed_walks = score_all(state.tasks, walks, opts.fit, state.cache, executor,
                                              progress=lambda info: bar.update(1, info), threads=threads)
    state.candidates = {name: found.get(name, []) for name in state.targets}
    if state.failed_walks:
        from lrfc.common.quiet import verbose

        for f in state.failed_walks:  # one candidate family lost each (search.fanout), the rest of the build goes on
            state.log(f"score: {f.layer} {f.method} dropped, its walk raised {f.error}"
                      + (f"\n{f.trace.rstrip()}" if verbose() else ""))
    if executor.name != "inprocess" and "score" in executor.phases:
        phase = executor.phases["score"].to_json()
        state.log(f"score: {phase['tasks']} walks as {executor.name} tasks on {executor.workers} workers, "
                  f"{phase['shipped_bytes_total'] / 2**20:.1f} MiB of layer data shipped once per layer")


# --------------------------------------------------------------------------- select


def original_costs(state) -> dict:
    from lrfc.decompose.base import Cost

    return {n: Cost(state.tasks[n].info.params, state.tasks[n].info.macs) for n in state.targets}


def plan_from(choices: dict) -> Plan:
    return Plan(tuple(LayerChoice(c.layer, c.method, tuple(c.ranks), bool(c.data_aware))
                      for c in choices.values() if c is not None))


def choose(state, names) -> dict:
    """Per layer, the cheapest candidate meeting that layer's threshold (None = keep)."""
    from lrfc.search import select

    costs = original_costs(state)
    chosen = {}
    for name in names:  # one layer at a time: a layer's candidates are priced (or not) together
        threshold = state.thresholds[name] if state.options.rank_selection == "similarity" else 0.0
        chosen.update(select.choose_hybrid({name: state.candidates.get(name, [])}, {name: costs[name]}, threshold,
                                           state.objective, original_ms=state.original_ms or None))
    return chosen


def select(state) -> None:
    """The compression ladder (``search.allocate``), most compressed first; the paper's plan at the threshold.

    The budget search (``train.contract``) picks a rung. Ranks from the
    weights alone (``--rank-selection vbmf|energy``) are a ladder of one: the
    rule's plan when it meets the budget, else the original. A given
    ``--plan`` or the iterative baseline's plan is built as it is: the
    accuracy budget is measured for it, not enforced.
    """
    from lrfc.search.allocate import Level, threshold_levels

    opts = state.options
    if opts.plan is not None:  # a given plan is taken as it is
        state.chosen = {n: cands[0] for n, cands in state.candidates.items()}
    else:
        state.chosen = choose(state, state.targets)
        state.solutions = solutions(state)
    fixed = opts.plan is not None or opts.rank_selection != "similarity" or opts.finetune == "iterative"
    if fixed:
        label = ("the given plan" if opts.plan is not None else f"{opts.rank_selection} ranks"
                 if opts.rank_selection != "similarity" else f"threshold {opts.threshold:g} (iterative baseline)")
        state.levels = [Level(dict(state.chosen), 0.0, label)] if any(state.chosen.values()) else []
    elif opts.allocation == "threshold":
        state.levels = threshold_levels(state.candidates, original_costs(state), opts.threshold, state.objective,
                                        state.original_ms or None)
    else:
        state.levels = global_levels(state)
    state.enforce_budget = opts.plan is None and opts.finetune != "iterative"
    state.ladder = "fixed" if fixed else opts.allocation
    state.plan = plan_from(state.chosen)


def layer_fronts(state) -> dict:
    """Per target layer, its Pareto front of candidates at or above ``--min-similarity`` (``search.allocate.front``)."""
    from lrfc.search.allocate import front

    floor = state.options.min_similarity
    return {n: front([c for c in state.candidates.get(n, []) if c.similarity >= floor], state.objective)
            for n in state.targets}


def global_levels(state) -> list:
    """The Lagrangian ladder: each front's end-to-end effects (measured or interpolated), then allocated (``search.allocate``)."""
    import time

    from lrfc.search.allocate import lagrangian_levels
    from lrfc.search.sensitivity import Sensitivity, along_front

    fronts = layer_fronts(state)
    stats = {n: t.stats for n, t in state.tasks.items() if t.stats is not None}
    start = time.perf_counter()
    sensitivity = Sensitivity(state.flat, state.splits.x_calib, stats, state.cache,
                              state.memory.free if state.memory is not None else None, state.mac_totals_of({})[0])
    order = sensitivity.follow([n for n, cands in fronts.items() if cands])  # graph order: one walk of cuts
    options, measured = {}, 0
    with state.progress("sensitivity", sum(map(len, fronts.values()))) as bar:
        for name in order:
            cands = fronts[name]
            effects, was_measured = along_front([c.similarity for c in cands],
                                                lambda i: sensitivity.of(state.tasks[name], cands[i]))
            options[name] = list(zip(cands, effects))
            measured += sum(was_measured)
            bar.update(len(cands), name)
    options = {n: options.get(n, []) for n in fronts}
    state.sensitivity = {"probe_samples": int(len(sensitivity.x)), "front_candidates": sum(map(len, fronts.values())),
                         "measured": measured, "seconds": round(time.perf_counter() - start, 2)}
    state.log(f"end-to-end effects: {measured} of {state.sensitivity['front_candidates']} front candidates measured "
              f"on {len(sensitivity.x)} probe samples, the rest interpolated along their fronts")
    return lagrangian_levels(options, original_costs(state), state.objective, state.original_ms or None)


def solutions(state) -> list:
    """The ``--max-sol`` best whole-model solutions at the layers' thresholds."""
    from lrfc.search import select as selector

    thresholds = state.thresholds if state.options.rank_selection == "similarity" else 0.0
    return selector.best_solutions(state.candidates, original_costs(state), thresholds, state.objective,
                                   state.options.max_sol, original_ms=state.original_ms or None)
