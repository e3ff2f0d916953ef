"""The method and rank selector: per-layer choices and whole-model solutions over a candidate table.

Pure Python (no TensorFlow), so it runs and is tested on its own. It works on
tables of ``Candidate`` records, one per (layer, method, ranks) that the
search scored: its parameter and MAC counts, the cosine similarity of its
output feature maps to the original layer's, and optionally a measured
latency. Every type here converts to and from JSON, so a scored table and the
chosen solutions can be saved and reloaded.

The search (docs/METHOD.md): ``search.grid.rank_grid`` lists the ranks to
score, ``search.scoring`` scores them into Candidates, then
``choose_hybrid`` keeps, per layer, the cheapest method and rank that meets
the similarity threshold and ``best_solutions`` lists the ``max_sol``
cheapest whole-model combinations. ``search.rank_rules`` gives the
comparators' weight-only ranks.

Costs (``objective_cost``) are in the units of ``lrfc.objectives``; under
``latency`` a candidate's ``measured_ms`` is used when it has one
(``lrfc.cost`` fills it: measured on the device, or a roofline estimate),
otherwise its MACs stand in. Measured and MAC costs are never compared with
each other: under ``latency`` the candidates being compared must be all
measured or all unmeasured (ValueError otherwise), and when they are
measured the original layers' latencies must be given too.

Tie-breaking, everywhere a single candidate is picked: lower objective cost, then
higher similarity, then the method's position in ``decompose.METHODS``, then the
smaller rank tuple, then weight-only before data-aware, then the layer name.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from lrfc.decompose import METHODS, Cost
from lrfc.errors import UserError
from lrfc.objectives import check_objective, static_cost
from lrfc.plan import LayerChoice, Plan

KEEP_SIMILARITY = 1.0  # a kept layer reproduces its own output


# --- candidates and their cost -----------------------------------------------------------------

@dataclass(frozen=True)
class Candidate:
    """One scored factorization of one layer.

    ``similarity`` is the cosine similarity of the chain's output feature maps to
    the original layer's on the calibration data; ``measured_ms`` the latency of
    the chain on the target runtime, when it was measured.
    """

    layer: str
    method: str
    ranks: tuple[int, ...]
    params: int
    macs: int
    similarity: float
    data_aware: bool = False
    measured_ms: float | None = None

    @property
    def cost(self) -> Cost:
        return Cost(self.params, self.macs)

    def to_json(self) -> dict:
        # plain Python numbers: calibration may hand numpy scalars, which json refuses
        return {"layer": self.layer, "method": self.method, "ranks": [int(r) for r in self.ranks],
                "params": int(self.params), "macs": int(self.macs), "similarity": float(self.similarity),
                "data_aware": bool(self.data_aware),
                "measured_ms": None if self.measured_ms is None else float(self.measured_ms)}

    @classmethod
    def from_json(cls, data: Mapping, where: str = "candidate") -> "Candidate":
        try:
            ms = data.get("measured_ms")
            return cls(str(data["layer"]), str(data["method"]), tuple(int(r) for r in data["ranks"]),
                       int(data["params"]), int(data["macs"]), float(data["similarity"]),
                       bool(data.get("data_aware", False)), None if ms is None else float(ms))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"{where}: not a valid candidate ({type(exc).__name__}: {exc}); expected "
                            f"{{'layer', 'method', 'ranks', 'params', 'macs', 'similarity'}}, received {data!r}") from exc


def objective_cost(cost: Cost | Candidate, objective: str) -> float:
    """The value the selector minimises; see the module doc for units.

    Args:
        cost: a layer's or chain's ``Cost``, or a ``Candidate`` (whose
            ``measured_ms`` is used under ``latency`` when present).
        objective: one of ``lrfc.objectives.OBJECTIVES``.
    """
    if isinstance(cost, Candidate):
        if objective == "latency" and cost.measured_ms is not None:
            return float(cost.measured_ms)
        return static_cost(cost.cost, objective)
    return static_cost(cost, objective)


def _measured(cands: Sequence[Candidate], objective: str) -> bool:
    """Whether ``cands`` are priced in milliseconds; refuses a mix of ms and MACs."""
    check_objective(objective)
    if objective != "latency":
        return False
    n = sum(c.measured_ms is not None for c in cands)
    if 0 < n < len(cands):
        missing = next(c for c in cands if c.measured_ms is None)
        raise ValueError(f"latency objective: {n} of {len(cands)} candidates have measured_ms and the rest do not "
                         f"(e.g. {missing.layer!r} {missing.method} {missing.ranks}); measure all or none")
    return n > 0


def _key(c: Candidate, price: float) -> tuple:
    """The documented tie-breaking order."""
    order = list(METHODS)
    return (price, -c.similarity, order.index(c.method) if c.method in order else len(order), c.method, c.ranks,
            c.data_aware, c.layer)


def _sorted(cands: Iterable[Candidate], objective: str) -> list[tuple[float, Candidate]]:
    cands = list(cands)
    _measured(cands, objective)
    priced = [(objective_cost(c, objective), c) for c in cands]
    return sorted(priced, key=lambda pc: _key(pc[1], pc[0]))


# --- choosing ---------------------------------------------------------------------------------------

def _check_methods(methods: Iterable[str] | None) -> frozenset[str] | None:
    if methods is None:
        return None
    methods = frozenset(methods)
    unknown = sorted(methods - set(METHODS))
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}; known: {', '.join(METHODS)}")
    return methods


def _threshold_of(threshold: float | Mapping[str, float]):
    """``layer -> threshold`` for one threshold for all layers or one per layer."""
    if isinstance(threshold, Mapping):
        return lambda layer: float(threshold[layer])
    return lambda layer: float(threshold)


def _layer_options(cands_by_layer: Mapping[str, Sequence[Candidate]], original_cost: Mapping[str, Cost],
                   threshold: float | Mapping[str, float], objective: str, methods: Iterable[str] | None,
                   original_ms: Mapping[str, float] | None) -> tuple[dict[str, float], dict[str, list[tuple[float, Candidate]]]]:
    """Per layer: the original's price, and the passing candidates cheaper than it (and smaller in parameters
    or MACs), in tie-breaking order."""
    allowed = _check_methods(methods)
    limit = _threshold_of(threshold)
    passing = {layer: [c for c in cands if c.similarity >= limit(layer) and (allowed is None or c.method in allowed)]
               for layer, cands in cands_by_layer.items()}
    for layer, cands in passing.items():
        wrong = next((c for c in cands if c.layer != layer), None)
        if wrong is not None:
            raise ValueError(f"candidate of layer {wrong.layer!r} is listed under layer {layer!r}")
    measured = _measured([c for cands in passing.values() for c in cands], objective)
    originals, options = {}, {}
    for layer, cands in passing.items():
        if layer not in original_cost:
            raise ValueError(f"no original cost for layer {layer!r}; original_cost has {len(original_cost)} layers")
        if measured:
            if original_ms is None or layer not in original_ms:
                raise ValueError(f"latency objective with measured candidates needs original_ms for layer {layer!r}")
            originals[layer] = float(original_ms[layer])
        else:
            originals[layer] = static_cost(original_cost[layer], objective)
        # A chain with more parameters and more MACs than the layer is no compression, whatever a timer
        # says: at microsecond scale a "faster" measurement of a bigger chain is noise.
        base = original_cost[layer]
        options[layer] = [(p, c) for p, c in _sorted(cands, objective)
                          if p < originals[layer] and (c.params < base.params or c.macs < base.macs)]
    return originals, options


def choose_hybrid(cands_by_layer: Mapping[str, Sequence[Candidate]], original_cost: Mapping[str, Cost],
                  threshold: float | Mapping[str, float], objective: str, methods: Iterable[str] | None = None,
                  original_ms: Mapping[str, float] | None = None) -> dict[str, Candidate | None]:
    """Per layer, the method and ranks of least objective cost that meet ``threshold``.

    Args:
        cands_by_layer: every scored candidate, by layer (all methods together).
        original_cost: the original layers' costs; must cover every layer.
        threshold: the least similarity a candidate needs: one for all layers, or per layer.
        objective: one of ``lrfc.objectives.OBJECTIVES``.
        methods: restrict to these methods (default: all).
        original_ms: the original layers' measured latencies, needed when the
            candidates carry ``measured_ms`` under ``latency``.

    Returns:
        ``{layer: Candidate}``, or None for a layer to keep as it is (nothing passes,
        or nothing that passes is cheaper than the original), in the input's order.
    """
    _, options = _layer_options(cands_by_layer, original_cost, threshold, objective, methods, original_ms)
    return {layer: (opts[0][1] if opts else None) for layer, opts in options.items()}


@dataclass(frozen=True)
class Solution:
    """One whole-model combination: a Candidate or None (keep) per layer.

    ``cost`` is the summed objective cost, kept layers at their original cost.
    Similarities count a kept layer as ``KEEP_SIMILARITY``.
    """

    cost: float
    choices: dict[str, Candidate | None]
    min_similarity: float
    mean_similarity: float

    def to_plan(self) -> Plan:
        return to_plan(self.choices)

    def to_json(self) -> dict:
        return {"cost": self.cost, "min_similarity": self.min_similarity, "mean_similarity": self.mean_similarity,
                "choices": {layer: (None if c is None else c.to_json()) for layer, c in self.choices.items()}}

    @classmethod
    def from_json(cls, data: Mapping, where: str = "solution") -> "Solution":
        try:
            choices = {layer: (None if c is None else Candidate.from_json(c, f"{where}: layer {layer!r}"))
                       for layer, c in data["choices"].items()}
            return cls(float(data["cost"]), choices, float(data["min_similarity"]), float(data["mean_similarity"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"{where}: not a valid solution ({type(exc).__name__}: {exc}); expected "
                            f"{{'cost', 'choices', 'min_similarity', 'mean_similarity'}}") from exc


def to_plan(choices: Mapping[str, Candidate | None]) -> Plan:
    """The factorization plan of per-layer choices; kept layers (None) are left out."""
    return Plan(tuple(LayerChoice(c.layer, c.method, c.ranks, c.data_aware) for c in choices.values() if c is not None))


def best_solutions(cands_by_layer: Mapping[str, Sequence[Candidate]], original_cost: Mapping[str, Cost],
                   threshold: float | Mapping[str, float], objective: str, max_sol: int,
                   methods: Iterable[str] | None = None,
                   original_ms: Mapping[str, float] | None = None) -> list[Solution]:
    """The ``max_sol`` cheapest whole-model combinations, cheapest first.

    Each layer's options are "keep" plus its passing candidates of every method
    that are cheaper than the original (a dearer one loses to "keep" on cost and
    similarity alike). Options are sorted per layer; combinations are enumerated
    best-first with a heap over index vectors, each reached from exactly one
    parent (the vector with its last non-zero index lowered by one), so the work
    is about ``max_sol * layers`` heap operations, not the product of the option
    counts. Equal totals are ordered by the index vectors, i.e. by the per-layer
    tie-breaking order, first layer first. ``solutions[0]`` is ``choose_hybrid``'s
    answer. Arguments are those of ``choose_hybrid``.
    """
    if int(max_sol) != max_sol or max_sol < 1:
        raise ValueError(f"max_sol must be a positive integer, received {max_sol}")
    originals, options = _layer_options(cands_by_layer, original_cost, threshold, objective, methods, original_ms)
    layers = list(options)
    # per layer: (price, candidate or None for keep), cheapest first; keep is dearest
    lists = [options[layer] + [(originals[layer], None)] for layer in layers]

    def total(vec: tuple[int, ...]) -> float:
        return math.fsum(lists[n][i][0] for n, i in enumerate(vec))  # exact: independent of the order

    start = (0,) * len(layers)
    heap = [(total(start), start)]
    out: list[Solution] = []
    while heap and len(out) < max_sol:
        price, vec = heapq.heappop(heap)
        choices = {layer: lists[n][i][1] for n, (layer, i) in enumerate(zip(layers, vec))}
        sims = [KEEP_SIMILARITY if c is None else c.similarity for c in choices.values()]
        out.append(Solution(price, choices, min(sims, default=KEEP_SIMILARITY),
                            math.fsum(sims) / len(sims) if sims else KEEP_SIMILARITY))
        last = max((n for n, i in enumerate(vec) if i), default=0)
        for n in range(last, len(layers)):
            if vec[n] + 1 < len(lists[n]):
                child = vec[:n] + (vec[n] + 1,) + vec[n + 1:]
                heapq.heappush(heap, (total(child), child))
    return out


