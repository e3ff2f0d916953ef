"""The ``factorize`` stage: the plan applied to the original model, reusing the search's prepared factorizations."""

from __future__ import annotations


def factorize(state) -> None:
    """Apply the plan to the original model."""
    from lrfc.factorize.rewrite import apply_plan
    from lrfc.search.scoring import prepared_for

    prepared = {}
    for c in state.plan.choices:
        aware = c.data_aware and state.tasks[c.layer].stats is not None
        prepared[(c.layer, c.method, c.data_aware)] = prepared_for(state.tasks[c.layer], c.method, aware, state.cache)
    stats = {n: t.stats for n, t in state.tasks.items() if t.stats is not None}
    state.compressed = apply_plan(state.flat, state.plan, stats, prepared)
