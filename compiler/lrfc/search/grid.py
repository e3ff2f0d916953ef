"""The rank grid: which ranks to score for one layer and one method (the paper's step size).

Pure Python (no TensorFlow). One rank tuple per cost level of ``step``
percent of the layer's original cost, from maximum compression upward,
optionally rounded to a hardware multiple.
"""

from __future__ import annotations

import bisect

from lrfc.decompose import Cost, get
from lrfc.geometry import Geometry
from lrfc.objectives import check_objective, static_cost


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
    check_objective(objective)
    if not 0 < step_pct < 100:
        raise ValueError(f"step_pct must be in (0, 100) percent, received {step_pct}")
    if int(multiple_of) != multiple_of or multiple_of < 1:
        raise ValueError(f"multiple_of must be a positive integer, received {multiple_of}")
    path = _AlphaPath(tuple(int(t) for t in mod.max_ranks(geom)), int(multiple_of))
    search = _PathSearch(lambda i: static_cost(mod.cost(geom, path.ranks(i)), objective), len(path))
    original = static_cost(Cost(geom.params, geom.macs), objective)
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
