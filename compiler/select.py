"""The rank and method selector: rank grids, per-layer choices, whole-model solutions.

Pure Python and numpy (no TensorFlow), so it runs and is tested on its own.
It works on tables of ``Candidate`` records, one per (layer, method, ranks)
that calibration scored: its parameter and MAC counts, the cosine similarity
of its output feature maps to the original layer's, and optionally a measured
latency. Every type here converts to and from JSON, so a scored table and the
chosen solutions can be saved and reloaded.

The pipeline (docs/METHOD.md):
  1. ``rank_grid`` lists the ranks to score for a layer and a method: one per
     step of the layer's cost (the paper's step size), from maximum compression up.
  2. Calibration scores each grid point (outside this module) into Candidates.
  3. ``choose_hybrid`` keeps, per layer, the cheapest method and rank that meets
     the similarity threshold; ``best_solutions`` lists the ``max_sol`` cheapest
     whole-model combinations; ``step_back`` moves one layer up its Pareto front
     when fine-tuning does not recover the accuracy.
``baseline_ranks`` gives the comparators' ranks from the weights alone (VBMF as in
Kim et al. 2016, or an energy fraction).

Objectives and units (``objective_cost``):
  * ``flops``: MACs of one sample.
  * ``params``: parameter count.
  * ``memory``: bytes of the weights in fp32, ``params * BYTES_PER_PARAM``.
  * ``latency``: a candidate's ``measured_ms`` when it has one (``lrfc.latency`` fills
    it: measured on the device, or a roofline estimate); otherwise its MACs stand in
    for latency. Measured and MAC
    costs are never compared with each other: under ``latency`` the candidates being
    compared must be all measured or all unmeasured (ValueError otherwise), and when
    they are measured the original layers' latencies must be given too.

Tie-breaking, everywhere a single candidate is picked: lower objective cost, then
higher similarity, then the method's position in ``decompose.METHODS``, then the
smaller rank tuple, then weight-only before data-aware, then the layer name.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.optimize

from lrfc.decompose import METHODS, Cost, get
from lrfc.decompose.svd import dense_view
from lrfc.decompose.ttm import tt_modes
from lrfc.errors import UserError
from lrfc.geometry import ConvGeometry, Geometry
from lrfc.plan import LayerChoice, Plan

OBJECTIVES = ("latency", "flops", "params", "memory")
BYTES_PER_PARAM = 4  # fp32 weights; a quantized target's report should rescale
RULES = ("vbmf", "energy")
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


def table_to_json(cands_by_layer: Mapping[str, Sequence[Candidate]]) -> dict:
    """A scored candidate table as JSON: ``{"version": 1, "layers": {layer: [candidate...]}}``."""
    return {"version": 1, "layers": {layer: [c.to_json() for c in cands] for layer, cands in cands_by_layer.items()}}


def table_from_json(data: Mapping, where: str = "candidates") -> dict[str, list[Candidate]]:
    """The inverse of ``table_to_json``; errors name ``where`` and the layer."""
    if not isinstance(data, Mapping) or not isinstance(data.get("layers"), Mapping):
        raise UserError(f"{where}: expected {{'layers': {{layer: [candidate...]}}}}, received {type(data).__name__}")
    return {layer: [Candidate.from_json(c, f"{where}: layer {layer!r}") for c in cands]
            for layer, cands in data["layers"].items()}


def _check_objective(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}; received {objective!r}")


def _static_cost(cost: Cost, objective: str) -> float:
    """The objective from counts alone (latency: MACs stand in)."""
    _check_objective(objective)
    if objective == "params":
        return float(cost.params)
    if objective == "memory":
        return float(cost.params * BYTES_PER_PARAM)
    return float(cost.macs)  # flops, and latency without a measurement


def objective_cost(cost: Cost | Candidate, objective: str) -> float:
    """The value the selector minimises; see the module doc for units.

    Args:
        cost: a layer's or chain's ``Cost``, or a ``Candidate`` (whose
            ``measured_ms`` is used under ``latency`` when present).
        objective: one of ``OBJECTIVES``.
    """
    if isinstance(cost, Candidate):
        if objective == "latency" and cost.measured_ms is not None:
            return float(cost.measured_ms)
        return _static_cost(cost.cost, objective)
    return _static_cost(cost, objective)


def _measured(cands: Sequence[Candidate], objective: str) -> bool:
    """Whether ``cands`` are priced in milliseconds; refuses a mix of ms and MACs."""
    _check_objective(objective)
    if objective != "latency":
        return False
    n = sum(c.measured_ms is not None for c in cands)
    if 0 < n < len(cands):
        missing = next(c for c in cands if c.measured_ms is None)
        raise ValueError(f"latency objective: {n} of {len(cands)} candidates have measured_ms and the rest do not "
                         f"(e.g. {missing.layer!r} {missing.method} {missing.ranks}); measure all or none")
    return n > 0


_METHOD_ORDER = {name: n for n, name in enumerate(METHODS)}


def _key(c: Candidate, price: float) -> tuple:
    """The documented tie-breaking order."""
    return (price, -c.similarity, _METHOD_ORDER.get(c.method, len(_METHOD_ORDER)), c.method, c.ranks,
            c.data_aware, c.layer)


def _sorted(cands: Iterable[Candidate], objective: str) -> list[tuple[float, Candidate]]:
    cands = list(cands)
    _measured(cands, objective)
    priced = [(objective_cost(c, objective), c) for c in cands]
    return sorted(priced, key=lambda pc: _key(pc[1], pc[0]))


# --- the rank grid ---------------------------------------------------------------------------------

def _round_rank(r: int, top: int, multiple_of: int) -> int:
    """``r`` to the nearest multiple (ties up) within [multiple_of, top]; unchanged when top < multiple_of."""
    if multiple_of == 1 or top < multiple_of:
        return r
    r = (r + multiple_of // 2) // multiple_of * multiple_of
    return min(max(r, multiple_of), top // multiple_of * multiple_of)


class _AlphaPath:
    """Rank tuples ``max(1, round(alpha * top))`` in the order alpha grows, by index.

    Index 0 is alpha -> 0 (all ones); index i > 0 is alpha at the i-th point where
    some component changes, alpha = (2k - 1) / (2 top_c) (round half up). Ranks are
    computed in integers, so no float rounding lands on the wrong side of a step.
    """

    def __init__(self, top: tuple[int, ...], multiple_of: int):
        self.top, self.multiple_of = top, multiple_of
        points = {(2 * k - 1, 2 * t) for t in top for k in range(2, t + 1)}
        self.points = [(1, 2 * max(top))] + sorted(points, key=lambda pq: pq[0] / pq[1])

    def __len__(self) -> int:
        return len(self.points)

    def ranks(self, i: int) -> tuple[int, ...]:
        p, q = self.points[i]
        raw = (min(t, max(1, (2 * p * t + q) // (2 * q))) for t in self.top)
        return tuple(_round_rank(r, t, self.multiple_of) for r, t in zip(raw, self.top))


class _PathSearch:
    """The last index whose price is within a level, for a price that never decreases with the index.

    Every price is computed once (a ``cost()`` call) and kept; a level's search starts
    from the tightest bracket already known. Steps alternate between interpolating the
    price linearly (chain costs are smooth in the ranks, so this lands within a few
    indices) and halving the bracket, so the worst case stays about 2 log2(n) prices.
    """

    def __init__(self, price_of, n: int):
        self._price_of, self.n = price_of, n
        self._known: list[int] = []     # evaluated indices, ascending
        self._prices: list[float] = []  # their prices, hence ascending too

    def price(self, i: int) -> float:
        at = bisect.bisect_left(self._known, i)
        if at < len(self._known) and self._known[at] == i:
            return self._prices[at]
        p = self._price_of(i)
        self._known.insert(at, i)
        self._prices.insert(at, p)
        return p

    def last_within(self, level: float) -> int | None:
        if self.price(0) > level:
            return None
        if self.price(self.n - 1) <= level:
            return self.n - 1
        at = bisect.bisect_right(self._prices, level)  # price(lo) <= level < price(hi)
        lo, hi = self._known[at - 1], self._known[at]
        interpolate = True
        while hi - lo > 1:
            p_lo, p_hi = self.price(lo), self.price(hi)
            if interpolate:
                mid = lo + int((level - p_lo) / (p_hi - p_lo) * (hi - lo))
                mid = min(max(mid, lo + 1), hi - 1)
            else:
                mid = (lo + hi) // 2
            width = hi - lo
            if self.price(mid) <= level:
                lo = mid
            else:
                hi = mid
            interpolate = 2 * (hi - lo) <= width  # after a poor guess, halve once
        return lo


def rank_grid(method: str, geom: Geometry, step_pct: float, objective: str, multiple_of: int = 1) -> list[tuple[int, ...]]:
    """The ranks to score for one layer and method: one per cost level.

    Levels are ``step_pct``, ``2 step_pct``, ... percent of the original layer's
    cost under ``objective`` (MACs for latency), strictly below 100%. For each
    level the largest rank tuple on the alpha path (every component
    ``max(1, round(alpha * max_rank))``) whose chain costs at most the level is
    kept; the most compressed tuple comes first whenever it is cheaper than the
    original. Costs and ranks never decrease along the grid and no tuple repeats.

    Args:
        method: a ``decompose.METHODS`` name.
        geom: the layer; a dense method also takes a pointwise ConvGeometry.
        step_pct: the step size in percent, in (0, 100).
        objective: one of ``OBJECTIVES``.
        multiple_of: round every rank to a multiple of this (hardware-friendly
            ranks); a component whose maximum is below it stays unrounded.
    """
    mod = get(method)
    _check_objective(objective)
    if not 0 < step_pct < 100:
        raise ValueError(f"step_pct must be in (0, 100) percent, received {step_pct}")
    if int(multiple_of) != multiple_of or multiple_of < 1:
        raise ValueError(f"multiple_of must be a positive integer, received {multiple_of}")
    path = _AlphaPath(tuple(int(t) for t in mod.max_ranks(geom)), int(multiple_of))
    search = _PathSearch(lambda i: _static_cost(mod.cost(geom, path.ranks(i)), objective), len(path))
    original = _static_cost(Cost(geom.params, geom.macs), objective)
    grid: list[tuple[int, ...]] = []
    if search.price(0) < original:
        grid.append(path.ranks(0))
    j = 1
    while j * step_pct < 100:
        i = search.last_within(original * j * step_pct / 100)
        if i is not None and (not grid or path.ranks(i) != grid[-1]):
            grid.append(path.ranks(i))
        j += 1
    return grid


# --- choosing ---------------------------------------------------------------------------------------

def cheapest_passing(cands: Iterable[Candidate], threshold: float, objective: str) -> Candidate | None:
    """The cheapest candidate with ``similarity >= threshold`` (meant for one layer and method), or None."""
    passing = [c for c in cands if c.similarity >= threshold]
    ranked = _sorted(passing, objective)
    return ranked[0][1] if ranked else None


def pareto_front(cands: Iterable[Candidate], objective: str) -> list[Candidate]:
    """The candidates no other is at least as cheap and as similar as, sorted by cost.

    Meant for one layer's candidates (all methods). Of candidates with equal cost
    and similarity the first in tie-breaking order stands for all, so along the front
    cost and similarity both strictly increase.
    """
    front: list[Candidate] = []
    best_sim = -math.inf
    for _, c in _sorted(cands, objective):
        if c.similarity > best_sim:
            front.append(c)
            best_sim = c.similarity
    return front


def step_back(choice: Candidate, front: Sequence[Candidate]) -> Candidate | None:
    """The next point up ``choice``'s layer front: the cheapest with a higher similarity.

    ``front`` is sorted by cost, as ``pareto_front`` returns it, so similarity rises
    along it too. When ``choice`` lies on it the answer is the next point, at a higher
    cost; None when ``choice`` is already the most similar point.
    """
    others = sorted({c.layer for c in front} - {choice.layer})
    if others:
        raise ValueError(f"step_back needs the front of layer {choice.layer!r}; it holds layer {others[0]!r}")
    return next((c for c in front if c.similarity > choice.similarity), None)


def _check_methods(methods: Iterable[str] | None) -> frozenset[str] | None:
    if methods is None:
        return None
    methods = frozenset(methods)
    unknown = sorted(methods - set(METHODS))
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}; known: {', '.join(METHODS)}")
    return methods


def _layer_options(cands_by_layer: Mapping[str, Sequence[Candidate]], original_cost: Mapping[str, Cost],
                   threshold: float, objective: str, methods: Iterable[str] | None,
                   original_ms: Mapping[str, float] | None) -> tuple[dict[str, float], dict[str, list[tuple[float, Candidate]]]]:
    """Per layer: the original's price, and the passing candidates cheaper than it (and smaller in parameters
    or MACs), in tie-breaking order."""
    allowed = _check_methods(methods)
    passing = {layer: [c for c in cands if c.similarity >= threshold and (allowed is None or c.method in allowed)]
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
            originals[layer] = _static_cost(original_cost[layer], objective)
        # A chain with more parameters and more MACs than the layer is no compression, whatever a timer
        # says: at microsecond scale a "faster" measurement of a bigger chain is noise.
        base = original_cost[layer]
        options[layer] = [(p, c) for p, c in _sorted(cands, objective)
                          if p < originals[layer] and (c.params < base.params or c.macs < base.macs)]
    return originals, options


def choose_hybrid(cands_by_layer: Mapping[str, Sequence[Candidate]], original_cost: Mapping[str, Cost],
                  threshold: float, objective: str, methods: Iterable[str] | None = None,
                  original_ms: Mapping[str, float] | None = None) -> dict[str, Candidate | None]:
    """Per layer, the method and ranks of least objective cost that meet ``threshold``.

    Args:
        cands_by_layer: every scored candidate, by layer (all methods together).
        original_cost: the original layers' costs; must cover every layer.
        threshold: the least similarity a candidate needs.
        objective: one of ``OBJECTIVES``.
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
                   threshold: float, objective: str, max_sol: int, methods: Iterable[str] | None = None,
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


# --- baseline rank selections (weights only) -----------------------------------------------------

def _psi0(x: float) -> float:
    return math.log1p(x) / x - 0.5


def _evb_tau_bar(alpha: float) -> float:
    """The zero of ``Psi0(tau) + Psi0(tau / alpha)`` above sqrt(alpha) (2.5129 at alpha = 1)."""
    lo = math.sqrt(alpha)
    return scipy.optimize.brentq(lambda t: _psi0(t) + _psi0(t / alpha), lo, 4.0 * (1.0 + lo), xtol=1e-12)


def _evb_tau(x: np.ndarray, alpha: float) -> np.ndarray:
    """tau(x; alpha) = ((x - 1 - alpha) + sqrt((x - 1 - alpha)^2 - 4 alpha)) / 2, for x > (1 + sqrt(alpha))^2."""
    b = x - (1.0 + alpha)
    return 0.5 * (b + np.sqrt(np.maximum(b * b - 4.0 * alpha, 0.0)))


def _evb_free_energy(sigma2: float, s2: np.ndarray, M: int, alpha: float, x_bar: float) -> float:
    """2F / M of the EVB solution at noise variance ``sigma2``, up to a constant.

    With ``x_h = gamma_h^2 / (M sigma^2)`` over all L singular values:
    ``L log sigma^2 + sum_h x_h + sum_{x_h > x_bar} (log(1 + tau_h) + alpha log(1 + tau_h / alpha) - tau_h)``;
    the last sum is what a kept component saves (negative exactly when x_h > x_bar).
    The constant ``-sum_h log gamma_h^2`` is dropped, so zero singular values are fine.
    """
    x = s2 / (M * sigma2)
    tau = _evb_tau(x[x > x_bar], alpha)
    return float(len(s2) * math.log(sigma2) + np.sum(x) + np.sum(np.log1p(tau) + alpha * np.log1p(tau / alpha) - tau))


def vbmf_rank(matrix: np.ndarray) -> int:
    """The rank of the empirical variational Bayesian MF solution, noise variance estimated.

    Nakajima, Sugiyama, Babacan and Tomioka (JMLR 2013), with the EVB threshold
    and the noise-variance bounds of Nakajima et al. (JMLR 2015). For ``Y``
    (L x M, L <= M, transposed if needed), alpha = L / M, singular values gamma_h:
    component h is kept iff ``gamma_h^2 > M sigma^2 x_bar`` with
    ``x_bar = (1 + tau_bar)(1 + alpha / tau_bar)`` and tau_bar the zero of
    ``Psi0(t) + Psi0(t / alpha)``, ``Psi0(x) = log(1 + x) / x - 1/2`` (solved
    exactly; Kim et al.'s code uses ``2.5129 sqrt(alpha)``, exact only at alpha = 1).
    sigma^2 minimises the EVB free energy over
    ``[max(gamma_{xi+1}^2 / (M x_bar), sum_{h>xi} gamma_h^2 / (M (L - xi))), ||Y||^2 / (LM)]``,
    ``xi = ceil(L / (1 + alpha)) - 1``. The free energy can have several local minima
    in sigma^2, so a log-spaced scan picks the basin and a bounded Brent search refines it.

    Returns:
        The number of kept components; 0 for pure noise (and for a zero matrix).
    """
    y = np.asarray(matrix, dtype=np.float64)
    if y.ndim != 2 or min(y.shape) < 1:
        raise ValueError(f"vbmf_rank needs a non-empty 2-D matrix, received shape {y.shape}")
    if y.shape[0] > y.shape[1]:
        y = y.T
    L, M = y.shape
    scale = math.sqrt(float(np.mean(y * y)))
    if not scale > 0:
        return 0
    s2 = scipy.linalg.svdvals(y / scale) ** 2  # scaling changes sigma^2, not the rank
    alpha = L / M
    tau_bar = _evb_tau_bar(alpha)
    x_bar = (1.0 + tau_bar) * (1.0 + alpha / tau_bar)
    xi = min(math.ceil(L / (1.0 + alpha)) - 1, L - 1)
    upper = float(np.sum(s2)) / (L * M)
    lower = max(s2[xi] / (M * x_bar), float(np.mean(s2[xi:])) / M)
    lower = min(max(lower, upper * 1e-12), upper)
    if lower < upper:
        energy = lambda v: _evb_free_energy(v, s2, M, alpha, x_bar)  # noqa: E731
        scan = np.geomspace(lower, upper, 64)
        k = int(np.argmin([energy(v) for v in scan]))
        a, b = scan[max(k - 1, 0)], scan[min(k + 1, len(scan) - 1)]
        sigma2 = float(scipy.optimize.minimize_scalar(energy, bounds=(a, b), method="bounded",
                                                      options={"xatol": 1e-10 * b}).x)
        if energy(scan[k]) < energy(sigma2):
            sigma2 = float(scan[k])
    else:
        sigma2 = upper
    return int(np.sum(s2 > M * sigma2 * x_bar))


def energy_rank(singular_values: np.ndarray, fraction: float) -> int:
    """The smallest k whose k largest singular values keep ``fraction`` of the sum of their squares.

    Returns 0 when every singular value is zero.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], received {fraction}")
    e = np.sort(np.asarray(singular_values, dtype=np.float64).ravel() ** 2)[::-1]
    total = float(np.sum(e))
    if not total > 0:
        return 0
    kept = np.cumsum(e)
    return int(min(np.searchsorted(kept, fraction * total * (1 - 1e-12)) + 1, len(e)))


def _conv_kernel(kernel: np.ndarray, geom: Geometry, method: str) -> np.ndarray:
    """The kernel as ``W[c, i, j, o]`` (cin, kh, kw, cout)."""
    if not isinstance(geom, ConvGeometry):
        raise ValueError(f"{method} factorizes convolutions; received a {type(geom).__name__}")
    want = (*geom.kernel, geom.cin, geom.cout)
    if tuple(kernel.shape) != want:
        raise ValueError(f"kernel shape {kernel.shape} does not match the geometry, expected {want}")
    return kernel.transpose(2, 0, 1, 3)


def _unfoldings(method: str, w: np.ndarray, geom: Geometry) -> tuple[np.ndarray, ...]:
    """The matrices whose ranks are the method's ranks (CP: Tucker's two)."""
    if method in ("tucker", "cp"):
        t = _conv_kernel(w, geom, method)
        cin, cout = t.shape[0], t.shape[3]
        return t.reshape(cin, -1), t.transpose(3, 0, 1, 2).reshape(cout, -1)
    if method == "tt":
        t = _conv_kernel(w, geom, method)
        cin, kh, kw, cout = t.shape
        return t.reshape(cin, -1), t.reshape(cin * kh, -1), t.reshape(cin * kh * kw, cout)
    view = dense_view(geom)
    shape = (view.in_features, view.out_features)
    if tuple(w.shape) not in (shape, (1, 1, *shape)):
        raise ValueError(f"kernel shape {w.shape} does not match the geometry, expected {shape} or {(1, 1, *shape)}")
    w = w.reshape(shape)
    if method in ("svd", "qr"):
        return (w,)
    if method == "ttm":  # the 3-way tensor (m1 n1, m2 n2, m3 n3) of ttm.prepare, on ttm's own modes
        (m1, m2, m3), (n1, n2, n3) = tt_modes(*shape)
        t = w.reshape(m1, m2, m3, n1, n2, n3).transpose(0, 3, 1, 4, 2, 5)
        return t.reshape(m1 * n1, -1), t.reshape(m1 * n1 * m2 * n2, -1)
    raise ValueError(f"no baseline rank rule for method {method!r}")


def baseline_ranks(method: str, kernel: np.ndarray, geom: Geometry, rule: str, fraction: float = 0.9) -> tuple[int, ...]:
    """Ranks for ``method`` from the weights alone, as the comparators pick them.

    Each rank is the ``rule`` rank of one unfolding of the kernel: tucker, the
    cin- and cout-mode unfoldings (Kim et al. 2016 use VBMF on exactly these);
    tt, the TT unfoldings (cin | kh kw cout), (cin kh | kw cout), (cin kh kw | cout);
    svd and qr, W (in x out); ttm, the two unfoldings of ttm's 3-way tensor.
    CP has no unfolding rank of its own: the usual heuristic takes the larger of
    the two Tucker ranks. Every rank is clipped to [1, max_ranks].

    Args:
        method: a ``decompose.METHODS`` name.
        kernel: HWIO (kh, kw, cin, cout) for a convolution; (in, out) or
            (1, 1, in, out) for a dense method.
        geom: the layer's geometry.
        rule: ``"vbmf"`` (``vbmf_rank``) or ``"energy"`` (``energy_rank`` at ``fraction``).
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}; received {rule!r}")
    top = tuple(get(method).max_ranks(geom))
    mats = _unfoldings(method, np.asarray(kernel, dtype=np.float64), geom)
    if rule == "vbmf":
        ranks = [vbmf_rank(m) for m in mats]
    else:
        ranks = [energy_rank(scipy.linalg.svdvals(m), fraction) for m in mats]
    if method == "cp":
        ranks = [max(ranks)]
    return tuple(min(max(int(r), 1), t) for r, t in zip(ranks, top))
