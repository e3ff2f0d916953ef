"""The ``factorize`` stage: a rung of the compression ladder made into a model, its starting point repaired.

``build_level`` is how every candidate model of a build is made (here and in
the budget search, ``train.contract``): the plan applied to the original with
the search's prepared factorizations, the weights of an earlier fine-tuned
model carried over for the layers whose choice did not change (warm start),
then the changed layers' last factors refit to the original's outputs
(``factorize.reconstruct``) and the BatchNorm statistics re-estimated
(``train.bn``), both on the calibration samples, before any gradient step.
The stage itself picks the first rung to try (``train.contract.BudgetSearch.start``).
"""

from __future__ import annotations


def _prepared(state, plan) -> dict:
    from lrfc.search.scoring import prepared_for

    return {(c.layer, c.method, c.data_aware): prepared_for(state.tasks[c.layer], c.method,
                                                            c.data_aware and state.tasks[c.layer].stats is not None,
                                                            state.cache)
            for c in plan.choices}


def warm_start(model, warm_model, warm_plan, plan) -> list[str]:
    """Copy ``warm_model``'s weights into ``model`` wherever the plan did not change; returns the changed layers."""
    before, after = warm_plan.by_layer(), plan.by_layer()
    changed = [n for n, c in after.items() if before.get(n) != c] + [n for n in before if n not in after]
    for layer in model.layers:
        if not layer.weights or any(layer.name == n or layer.name.startswith(f"{n}__") for n in changed):
            continue
        try:
            source = warm_model.get_layer(layer.name)
        except ValueError:
            continue
        weights = source.get_weights()
        if [w.shape for w in weights] == [w.shape for w in layer.get_weights()]:
            layer.set_weights(weights)
    return changed


def plan_model(state, plan):
    """The model of ``plan`` as factorized, before any repair: what the ``measure`` stage times."""
    from lrfc.factorize.rewrite import apply_plan

    stats = {n: t.stats for n, t in state.tasks.items() if t.stats is not None}
    return apply_plan(state.flat, plan, stats, _prepared(state, plan))


def build_level(state, plan, warm=None):
    """The model of ``plan`` with its starting point repaired; ``warm`` is ``(model, plan)`` fine-tuned earlier."""
    from lrfc.common.memory import release
    from lrfc.factorize.reconstruct import reconstruct
    from lrfc.train.bn import reestimate_bn

    model = plan_model(state, plan)
    changed = [c.layer for c in plan.choices] if warm is None else warm_start(model, *warm, plan)
    order = [r.name for r in state.rows if r.name in set(changed) and r.name in plan.by_layer()]
    if state.options.reconstruct and order:
        reconstruct(model, state.tasks, order, state.splits.x_calib)
    if state.options.bn_reestimate:
        reestimate_bn(model, state.splits.x_calib)
    release()  # reconstruction's tap models, in reference cycles: a rung's worth of traced graphs
    return model


def factorize(state) -> None:
    """The first plan the budget search tries, as a model ready to fine-tune (or to be judged as it is)."""
    from lrfc.train.contract import BudgetSearch

    state.budget = BudgetSearch(state)
    state.budget.start()
