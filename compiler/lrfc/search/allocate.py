"""Compression levels: whole-model plans ordered from the most compressed to keeping every layer.

The accuracy budget is met by searching along such a ladder (``train.contract``);
how the ladder is made is the allocation:

Levels hold at least one factorized layer; keeping every layer (the original
model) is the ladder's implicit top, the plan that always meets a budget.

* ``threshold`` (the paper's): one feature-map similarity threshold for every
  layer. Each distinct similarity at or above the base threshold gives the
  plan that picks, per layer, the cheapest candidate reaching it; raising it
  walks every layer up its front at once.
* ``global``: each candidate carries its measured end-to-end effect
  (``search.sensitivity``: the KL divergence of the model's outputs with only
  that layer factorized). For a price ``lambda`` per unit of that effect,
  each layer independently picks the candidate minimising
  ``cost + lambda * effect``, the Lagrangian relaxation of "least cost under a
  total-degradation budget" (as in HALP and ALDS). As ``lambda`` grows, a
  layer moves along the lower convex hull of its (effect, cost) points; the
  ladder is every such move, cheapest price first. Sensitive layers keep
  more rank, robust ones give more up.

Pure Python over ``search.select.Candidate`` records: no TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lrfc.decompose import Cost
from lrfc.search.select import Candidate, choose_hybrid, objective_cost


@dataclass(frozen=True)
class Level:
    """One whole-model plan: per layer a candidate or None (kept), its total cost and how it was chosen."""

    choices: dict[str, Candidate | None]
    cost: float
    label: str

    def factorized(self) -> int:
        return sum(c is not None for c in self.choices.values())

    def to_json(self) -> dict:
        return {"label": self.label, "cost": self.cost,
                "choices": {n: (None if c is None else [c.method, list(c.ranks)]) for n, c in self.choices.items()}}


def front(cands: Sequence[Candidate], objective: str) -> list[Candidate]:
    """One layer's candidates that no cheaper one matches in similarity, cheapest first (all methods and fits)."""
    out, best = [], -math.inf
    for c in sorted(cands, key=lambda c: (objective_cost(c, objective), -c.similarity, c.method, c.ranks)):
        if c.similarity > best:
            out.append(c)
            best = c.similarity
    return out


def _keep_cost(layer: str, original: Mapping[str, Cost], objective: str, original_ms) -> float:
    if objective == "latency" and original_ms:
        return float(original_ms[layer])
    return objective_cost(original[layer], objective)


def threshold_levels(cands_by_layer: Mapping[str, Sequence[Candidate]], original: Mapping[str, Cost],
                     base: float, objective: str, original_ms: Mapping[str, float] | None = None) -> list[Level]:
    """The paper's ladder: one uniform threshold, from ``base`` up to keeping every layer."""
    values = sorted({c.similarity for cands in cands_by_layer.values() for c in cands if c.similarity >= base})
    ladder, seen = [], set()
    for tau in [base, *values]:
        choices = choose_hybrid(cands_by_layer, original, tau, objective, original_ms=original_ms)
        key = tuple((n, None if c is None else (c.method, c.ranks, c.data_aware)) for n, c in choices.items())
        if key in seen or not any(c is not None for c in choices.values()):
            continue
        seen.add(key)
        ladder.append(Level(choices, _total(choices, original, objective, original_ms), f"threshold {tau:.4f}"))
    return ladder


def _total(choices, original, objective, original_ms) -> float:
    return math.fsum(objective_cost(c, objective) if c is not None else _keep_cost(n, original, objective, original_ms)
                     for n, c in choices.items())


def hull(points: Sequence[tuple[float, float, object]]) -> list[tuple[float, float, object]]:
    """The lower convex hull of ``(cost, effect, item)`` from the cheapest point to the one of least effect.

    These are the points some price ``lambda >= 0`` makes optimal for
    ``cost + lambda * effect``, in the order a growing price visits them.
    """
    pts = sorted(points, key=lambda p: (p[0], p[1]))
    current = pts[0]
    out = [current]
    while True:
        better = [p for p in pts if p[1] < current[1]]
        if not better:
            return out
        # the least extra cost per unit of effect removed; on a tie, the one that removes most
        nxt = min(better, key=lambda p: ((p[0] - current[0]) / (current[1] - p[1]), p[1]))
        out.append(nxt)
        current = nxt


def lagrangian_levels(options: Mapping[str, Sequence[tuple[Candidate, float]]], original: Mapping[str, Cost],
                      objective: str, original_ms: Mapping[str, float] | None = None) -> list[Level]:
    """The global ladder from ``{layer: [(candidate, effect)]}``; see the module doc.

    Keeping a layer is always an option (its cost, effect 0); candidates no
    cheaper than keeping are never offered.
    """
    hulls, edges = {}, []
    for layer, cands in options.items():
        keep = _keep_cost(layer, original, objective, original_ms)
        points = [(keep, 0.0, None)] + [(objective_cost(c, objective), float(e), c) for c, e in cands
                                        if math.isfinite(e) and objective_cost(c, objective) < keep]
        hulls[layer] = hull(points)
        for k in range(1, len(hulls[layer])):
            (c0, e0, _), (c1, e1, _) = hulls[layer][k - 1], hulls[layer][k]
            edges.append(((c1 - c0) / (e0 - e1), layer, k))
    position = {layer: 0 for layer in hulls}

    def level(price: float) -> Level:
        choices = {layer: hulls[layer][position[layer]][2] for layer in hulls}
        return Level(choices, math.fsum(hulls[layer][position[layer]][0] for layer in hulls),
                     f"lambda {price:.4g}" if price else "lambda 0")

    ladder = [level(0.0)]
    for price, layer, k in sorted(edges):
        position[layer] = k
        ladder.append(level(price))
    return [lv for lv in ladder if lv.factorized()]
