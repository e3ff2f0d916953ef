"""The ``price`` stage: under ``--objective latency``, each candidate chain's latency on the target.

Measured on the device when it can be reached, roofline-estimated otherwise
(``cost.latency.Pricer``); other objectives need no pricing and the stage
does nothing.
"""

from __future__ import annotations

from dataclasses import replace


def priced(state) -> bool:
    """Whether this build prices candidates in milliseconds."""
    return state.objective == "latency" and state.options.plan is None


def price_layers(state, names) -> None:
    """Latency of each layer's original and of its candidates at or above where the walk starts passing.

    Candidates below it are never offered to the allocation, so they are not
    priced; ones priced before keep their price.
    """
    from lrfc import decompose
    from lrfc.cost.latency import Chain
    from lrfc.frontend.catalogue import activation_of
    from lrfc.geometry import chain_rank
    from lrfc.search.scoring import original_stage, prepared_for

    from lrfc.search.stage import walk_threshold

    base = walk_threshold(state.options) if state.options.rank_selection == "similarity" else 0.0
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
                prepared = prepared_for(task, c.method, c.data_aware and task.stats is not None, state.cache)
                chains[(name, c)] = Chain(shape, decompose.chain_stages(c.method, prepared, c.ranks, geom, act), rank)
    ms = state.pricer.price(chains)
    for name in names:
        if (name, None) not in ms:  # the user's own layer does not lower alone: the original would not either
            refusals = state.pricer.info.unlowerable
            raise RuntimeError(f"price: layer {name!r} of the original model does not lower on its own "
                               f"({len(refusals)} chains refused, the first: {refusals[0]['error'] if refusals else '?'})")
        state.original_ms[name] = ms[(name, None)]
        refused = [c for c in state.candidates[name] if (name, c) in chains and (name, c) not in ms]
        for c in refused:  # a chain the converter or the runtime refuses could not be in a published model either
            state.log(f"price: {name} {c.method} at ranks {list(c.ranks)} dropped, its chain does not lower or load "
                      f"(costs.unlowerable in report.json)")
        state.candidates[name] = [replace(c, measured_ms=round(ms[(name, c)], 5)) if (name, c) in ms else c
                                  for c in state.candidates[name] if c not in refused]


def price(state) -> None:
    """Under the latency objective: each candidate's latency, measured on the device or estimated."""
    if not priced(state):
        return
    from lrfc.cost.latency import Pricer

    state.pricer = Pricer(state.profile, state.links, state.options.cost_db, log=state.log,
                          cache_dir=state.options.cache_dir, executor=state.executor)
    price_layers(state, state.targets)
    state.log(state.pricer.info.summary())


def measure(state) -> None:
    """Under the latency objective: the ladder's rungs timed as whole models; the ladder keeps the measured frontier.

    See ``cost.measure``. A fixed plan (``--plan``, weight-based ranks, the
    iterative baseline) is measured by the final benchmark instead.
    """
    if not priced(state) or not state.levels or not state.enforce_budget:
        return
    from lrfc.cost.measure import measure_ladder

    state.whole = whole = measure_ladder(state)
    if whole.status != "measured":
        state.log(f"whole-model latency {whole.status}: the ladder stays as priced per layer")
        return
    kept = [t for t in whole.rungs if t.rung is not None]
    ladder_before = len(state.levels)
    state.levels = [state.levels[i] for i in whole.ladder]
    fastest = min((t.measured_ms for t in whole.rungs), default=None)
    error = whole.error()
    state.log(f"measure: {len(whole.rungs)} rungs and the original on {whole.runtime} ({whole.precision}): original "
              f"{whole.original.measured_ms:.3f} ms, fastest rung {fastest:.3f} ms; {len(kept)} kept (each faster "
              f"than the original and every less compressed rung), {len(state.levels)} of {ladder_before} rungs "
              f"stay on the ladder; per-layer cost model off by {100 * error['per_layer_sum']:.0f}% "
              f"(calibrated on the original: {100 * error['with_remainder']:.0f}% with its unpriced remainder, "
              f"{100 * error['scaled']:.0f}% scaled by its measured/summed ratio)")
    if not kept:
        state.log(f"no plan measured faster than the original on {whole.runtime}: the original will be published")
