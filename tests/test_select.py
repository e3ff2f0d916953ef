"""The selector: rank grids, choices, k-best solutions and baseline ranks (numpy only, fast)."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from lrfc.decompose import METHODS, Cost
from lrfc.errors import UserError
from lrfc.geometry import ConvGeometry, DenseGeometry
from lrfc.objectives import OBJECTIVES
from lrfc.search.grid import rank_grid
from lrfc.search.rank_rules import baseline_ranks, energy_rank, vbmf_rank
from lrfc.search.select import Candidate, Solution, best_solutions, choose_hybrid, objective_cost

CONV = ConvGeometry((3, 3), 32, 48, (16, 16), (16, 16), padding="same")
POINTWISE = ConvGeometry((1, 1), 64, 96, (8, 8), (8, 8))
DENSE = DenseGeometry(120, 84)


def _geom_for(method: str):
    return CONV if METHODS[method].KIND == "conv" else DENSE


def cand(layer, method, ranks, cost, sim, **kw) -> Candidate:
    """A candidate whose params and MACs both equal ``cost``."""
    return Candidate(layer, method, tuple(ranks), cost, cost, sim, **kw)


# --- objective ----------------------------------------------------------------------------------

def test_objective_cost_units():
    c = Cost(params=1000, macs=50_000)
    assert objective_cost(c, "flops") == 50_000
    assert objective_cost(c, "params") == 1000
    assert objective_cost(c, "memory") == 4000  # fp32 bytes
    assert objective_cost(c, "latency") == 50_000  # MACs stand in
    measured = Candidate("l", "svd", (3,), 1000, 50_000, 0.95, measured_ms=0.25)
    assert objective_cost(measured, "latency") == 0.25
    assert objective_cost(measured, "flops") == 50_000
    assert objective_cost(Candidate("l", "svd", (3,), 1000, 50_000, 0.95), "latency") == 50_000
    with pytest.raises(ValueError, match="'speed'"):
        objective_cost(c, "speed")
    assert OBJECTIVES == ("latency", "flops", "params", "memory")


# --- rank grid ----------------------------------------------------------------------------------

@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("objective", ["flops", "params"])
def test_grid_is_monotone_below_original_from_max_compression(method, objective):
    geom, mod = _geom_for(method), METHODS[method]
    original = geom.macs if objective == "flops" else geom.params
    grid = rank_grid(method, geom, 5, objective)
    assert grid[0] == (1,) * mod.NUM_RANKS
    costs = [objective_cost(mod.cost(geom, r), objective) for r in grid]
    assert all(a <= b for a, b in zip(costs, costs[1:]))
    assert all(all(x <= y for x, y in zip(a, b)) for a, b in zip(grid, grid[1:]))  # ranks only grow
    assert len(set(grid)) == len(grid)
    assert max(costs) < original
    top = mod.max_ranks(geom)
    assert all(1 <= r <= t for ranks in grid for r, t in zip(ranks, top))
    assert len(rank_grid(method, geom, 2, objective)) > len(rank_grid(method, geom, 10, objective))


def test_grid_exact_levels_for_svd():
    geom = DenseGeometry(100, 100, use_bias=False)  # params 200 R, original 10,000
    assert rank_grid("svd", geom, 10, "params") == [(1,)] + [(5 * j,) for j in range(1, 10)]
    assert rank_grid("svd", geom, 2, "params") == [(j,) for j in range(1, 50)]
    # each point is the largest rank within its level: 10% = 1000 params -> R = 5
    assert METHODS["svd"].cost(geom, (5,)).params == 1000


def test_grid_scales_every_rank_by_one_alpha():
    geom = ConvGeometry((3, 3), 64, 128, (8, 8), (8, 8), padding="same")
    grid = rank_grid("tucker", geom, 10, "flops")
    for r1, r2 in grid[1:]:  # max ranks (64, 128): r2 ~ 2 r1
        assert abs(r2 - 2 * r1) <= 1
    cost = METHODS["tucker"].cost
    for j, ranks in enumerate(grid[1:], start=1):  # within its level, and the next path point is not
        assert cost(geom, ranks).macs <= geom.macs * j / 10


def test_grid_multiple_of_rounds_ranks():
    geom = DenseGeometry(100, 100, use_bias=False)
    assert rank_grid("svd", geom, 10, "params", multiple_of=8) == [(8,), (16,), (24,), (32,), (40,)]
    tucker = ConvGeometry((3, 3), 20, 64, (8, 8), (8, 8), padding="same")
    grid = rank_grid("tucker", tucker, 5, "flops", multiple_of=8)
    assert grid and all(r % 8 == 0 and 8 <= r <= 16 for r, _ in grid)  # cin 20: never above 16
    assert all(r % 8 == 0 for _, r in grid)
    small = ConvGeometry((3, 3), 4, 64, (8, 8), (8, 8), padding="same")
    grid = rank_grid("tucker", small, 5, "flops", multiple_of=8)
    assert {r for r, _ in grid} <= {1, 2, 3, 4}  # max 4 < 8: left unrounded
    assert all(r % 8 == 0 for _, r in grid)


def test_grid_pointwise_conv_and_errors():
    grid = rank_grid("svd", POINTWISE, 10, "flops")
    assert grid[0] == (1,) and all(METHODS["svd"].cost(POINTWISE, r).macs < POINTWISE.macs for r in grid)
    with pytest.raises(ValueError, match="step_pct"):
        rank_grid("svd", DENSE, 0, "flops")
    with pytest.raises(ValueError, match="multiple_of"):
        rank_grid("svd", DENSE, 5, "flops", multiple_of=0)
    with pytest.raises(ValueError, match="ConvGeometry"):
        rank_grid("tucker", DENSE, 5, "flops")
    with pytest.raises(KeyError, match="unknown decomposition method"):
        rank_grid("nmf", DENSE, 5, "flops")


def test_grid_prices_few_points_on_resnet50_layers(monkeypatch):
    """The level search evaluates a few chain costs per level, not the whole rank path (thousands of tuples).

    Counted, not timed: a count is the same on a loaded machine.
    """
    conv = ConvGeometry((3, 3), 512, 512, (7, 7), (7, 7), padding="same")
    pointwise = ConvGeometry((1, 1), 2048, 512, (7, 7), (7, 7))
    fc = DenseGeometry(2048, 1000)
    jobs = [(m, conv) for m in ("tucker", "cp", "tt")] + [(m, g) for m in ("svd", "qr", "ttm") for g in (pointwise, fc)]
    for method, geom in jobs:
        calls = []
        real = METHODS[method].cost
        monkeypatch.setattr(METHODS[method], "cost", lambda g, r, real=real: calls.append(r) or real(g, r))
        size = len(rank_grid(method, geom, 2, "flops"))
        monkeypatch.setattr(METHODS[method], "cost", real)
        assert size >= 15 and len(calls) <= 5 * size + 20, (method, size, len(calls))


# --- choosing -----------------------------------------------------------------------------------

def test_the_cheapest_passing_candidate_wins_and_ties_go_by_method_order():
    cands = [cand("a", "tucker", (1, 1), 10, 0.50), cand("a", "tucker", (2, 2), 20, 0.80),
             cand("a", "tucker", (3, 3), 30, 0.93), cand("a", "tucker", (4, 4), 40, 0.97),
             cand("a", "cp", (5,), 25, 0.70), cand("a", "tt", (2, 2, 2), 35, 0.99),
             cand("a", "cp", (9,), 20, 0.80)]  # a tie with tucker (2, 2): tucker comes first
    original = {"a": Cost(100, 100)}
    assert choose_hybrid({"a": cands}, original, 0.92, "flops")["a"] == cands[2]
    assert choose_hybrid({"a": cands}, original, 0.80, "flops")["a"] == cands[1]
    assert choose_hybrid({"a": cands}, original, 0.999, "flops")["a"] is None  # nothing passes: kept
    assert choose_hybrid({"a": cands}, original, {"a": 0.95}, "flops")["a"] == cands[5]  # a per-layer threshold


def _table():
    originals = {"c1": Cost(100, 1000), "c2": Cost(200, 2000), "fc": Cost(50, 50)}
    table = {
        "c1": [cand("c1", "tucker", (2, 2), 400, 0.95), cand("c1", "cp", (3,), 300, 0.93),
               cand("c1", "tt", (1, 1, 1), 200, 0.80)],       # tt fails the threshold
        "c2": [cand("c2", "tucker", (1, 1), 2500, 0.99),       # passes, but dearer than the original
               cand("c2", "tt", (1, 1, 1), 900, 0.50)],
        "fc": [cand("fc", "svd", (1,), 30, 0.96), cand("fc", "qr", (1,), 30, 0.96), cand("fc", "ttm", (1, 1), 20, 0.91)],
    }
    return table, originals


def test_choose_hybrid_picks_cheapest_passing_method_or_keeps():
    table, originals = _table()
    chosen = choose_hybrid(table, originals, 0.92, "flops")
    assert list(chosen) == ["c1", "c2", "fc"]
    assert chosen["c1"].method == "cp"
    assert chosen["c2"] is None  # the only passing option costs more than the layer
    assert chosen["fc"].method == "svd"  # tie on cost and similarity: registry order svd < qr
    assert choose_hybrid(table, originals, 0.92, "flops", methods=["tucker", "qr"])["c1"].method == "tucker"
    assert choose_hybrid(table, originals, 0.999, "flops") == {"c1": None, "c2": None, "fc": None}
    assert choose_hybrid(table, originals, 0.90, "flops")["fc"].method == "ttm"
    with pytest.raises(ValueError, match="'lowrank'"):
        choose_hybrid(table, originals, 0.92, "flops", methods=["lowrank"])
    with pytest.raises(ValueError, match="'fc'"):
        choose_hybrid(table, {"c1": originals["c1"], "c2": originals["c2"]}, 0.92, "flops")


def test_latency_uses_measurements_consistently():
    table = {"a": [cand("a", "tucker", (2, 2), 100, 0.95, measured_ms=0.9), cand("a", "cp", (3,), 50, 0.95, measured_ms=1.5)]}
    originals = {"a": Cost(1000, 1000)}
    assert choose_hybrid(table, originals, 0.9, "flops")["a"].method == "cp"
    chosen = choose_hybrid(table, originals, 0.9, "latency", original_ms={"a": 1.2})
    assert chosen["a"].method == "tucker"  # cp is slower than the original on the device
    assert choose_hybrid(table, originals, 0.9, "latency", original_ms={"a": 0.5}) == {"a": None}
    with pytest.raises(ValueError, match="original_ms"):
        choose_hybrid(table, originals, 0.9, "latency")
    mixed = {"a": [table["a"][0], cand("a", "cp", (3,), 50, 0.95)]}
    with pytest.raises(ValueError, match="1 of 2 candidates"):
        choose_hybrid(mixed, originals, 0.9, "latency", original_ms={"a": 1.2})


def test_a_bigger_chain_is_never_chosen_however_fast_it_measured():
    # 346 params / 336 MACs against a 330 / 320 layer: the failure CI met on a 32->10 logits layer,
    # where a timer at microsecond scale called the bigger chain faster
    bigger = Candidate("fc", "svd", (10,), 346, 336, 0.99, measured_ms=0.001)
    smaller = Candidate("fc", "svd", (4,), 170, 160, 0.97, measured_ms=0.0012)
    originals = {"fc": Cost(330, 320)}
    assert choose_hybrid({"fc": [bigger]}, originals, 0.9, "latency", original_ms={"fc": 0.002}) == {"fc": None}
    chosen = choose_hybrid({"fc": [bigger, smaller]}, originals, 0.9, "latency", original_ms={"fc": 0.002})
    assert chosen["fc"] is smaller
    assert choose_hybrid({"fc": [bigger]}, originals, 0.0, "params") == {"fc": None}


def _brute_force(table, originals, threshold, objective):
    layers = list(table)
    per_layer = []
    for layer in layers:
        keep = objective_cost(originals[layer], objective)
        opts = [(objective_cost(c, objective), c) for c in table[layer]
                if c.similarity >= threshold and objective_cost(c, objective) < keep]
        per_layer.append(opts + [(keep, None)])
    return sorted(math.fsum(p for p, _ in combo) for combo in itertools.product(*per_layer))


def test_best_solutions_are_the_k_cheapest():
    rng = np.random.default_rng(3)
    originals, table = {}, {}
    for n in range(5):
        layer = f"l{n}"
        originals[layer] = Cost(1000, 1000)
        table[layer] = [cand(layer, m, (k + 1,), int(rng.integers(100, 1200)), float(rng.uniform(0.85, 1.0)))
                        for m in ("tucker", "cp", "tt") for k in range(3)]
    brute = _brute_force(table, originals, 0.9, "flops")
    sols = best_solutions(table, originals, 0.9, "flops", max_sol=25)
    assert len(sols) == 25
    assert [s.cost for s in sols] == brute[:25]
    assert len({tuple((layer, c) for layer, c in s.choices.items()) for s in sols}) == 25  # no repeats
    for s in sols:
        assert s.cost == math.fsum(objective_cost(originals[l] if c is None else c, "flops") for l, c in s.choices.items())
        sims = [1.0 if c is None else c.similarity for c in s.choices.values()]
        assert s.min_similarity == min(sims) and s.mean_similarity == pytest.approx(sum(sims) / len(sims))
        assert all(c is None or c.similarity >= 0.9 for c in s.choices.values())
    assert sols[0].choices == choose_hybrid(table, originals, 0.9, "flops")
    everything = best_solutions(table, originals, 0.9, "flops", max_sol=10**6)
    assert [s.cost for s in everything] == brute  # every combination, once


def test_best_solutions_small_case_in_order():
    table, originals = _table()
    sols = best_solutions(table, originals, 0.92, "flops", max_sol=10)
    # c1: cp 300, tucker 400, keep 1000; c2: keep 2000; fc: svd 30, qr 30, keep 50
    assert [s.cost for s in sols] == [2330, 2330, 2350, 2430, 2430, 2450, 3030, 3030, 3050]
    assert [(s.choices["c1"].method, s.choices["fc"].method) for s in sols[:2]] == [("cp", "svd"), ("cp", "qr")]
    assert sols[2].choices["fc"] is None and sols[2].min_similarity == 0.93
    with pytest.raises(ValueError, match="max_sol"):
        best_solutions(table, originals, 0.92, "flops", max_sol=0)


# --- JSON ---------------------------------------------------------------------------------------

def test_json_round_trips():
    table, originals = _table()
    table["c1"].append(cand("c1", "tucker", (3, 3), 500, 0.97, data_aware=True, measured_ms=0.4))
    for c in table["c1"]:
        assert Candidate.from_json(json.loads(json.dumps(c.to_json()))) == c
    sol = best_solutions(table, originals, 0.92, "flops", max_sol=3)[2]
    assert Solution.from_json(json.loads(json.dumps(sol.to_json()))) == sol
    plan = sol.to_plan()
    assert [(c.layer, c.method, c.ranks) for c in plan.choices] == [(l, c.method, c.ranks) for l, c in sol.choices.items() if c]
    with pytest.raises(UserError, match="similarity"):
        Candidate.from_json({"layer": "x", "method": "svd", "ranks": [1], "params": 1, "macs": 1})


# --- baseline ranks -----------------------------------------------------------------------------

def _low_rank(m, n, r, noise, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, r)) @ rng.standard_normal((r, n)) + noise * rng.standard_normal((m, n))


@pytest.mark.parametrize("shape,rank,noise", [((200, 100), 7, 0.1), ((200, 100), 7, 1.0), ((100, 200), 12, 0.5),
                                              ((300, 300), 20, 1.0), ((64, 576), 10, 0.5)])
def test_vbmf_recovers_the_true_rank(shape, rank, noise):
    assert [vbmf_rank(_low_rank(*shape, rank, noise, seed)) for seed in range(3)] == [rank] * 3


def test_vbmf_on_noise_and_degenerate_input():
    for shape in [(200, 100), (100, 100), (64, 576)]:
        assert vbmf_rank(np.random.default_rng(1).standard_normal(shape)) == 0
    assert vbmf_rank(np.zeros((5, 4))) == 0
    assert vbmf_rank(_low_rank(50, 40, 3, 0.0, 1)) == 3  # exactly low rank: zero singular values are fine
    with pytest.raises(ValueError, match="2-D"):
        vbmf_rank(np.ones(5))


def test_energy_rank():
    s = np.array([4.0, 3.0, 2.0, 1.0])  # energies 16, 9, 4, 1 of 30
    assert energy_rank(s, 0.5) == 1  # 16/30 = 0.53
    assert energy_rank(s, 0.8) == 2  # 25/30 = 0.83
    assert energy_rank(s, 0.9) == 3  # 29/30
    assert energy_rank(s, 1.0) == 4
    assert energy_rank(s[::-1], 0.8) == 2  # order does not matter
    assert energy_rank(np.zeros(3), 0.9) == 0
    with pytest.raises(ValueError, match="fraction"):
        energy_rank(s, 0.0)


@pytest.mark.parametrize("rule", ["vbmf", "energy"])
@pytest.mark.parametrize("method", list(METHODS))
def test_baseline_ranks_valid_for_every_method(method, rule):
    rng = np.random.default_rng(0)
    geoms = [CONV] if METHODS[method].KIND == "conv" else [DENSE, POINTWISE]
    for geom in geoms:
        shape = (*geom.kernel, geom.cin, geom.cout) if isinstance(geom, ConvGeometry) else (geom.in_features, geom.out_features)
        ranks = baseline_ranks(method, rng.standard_normal(shape), geom, rule)
        top = METHODS[method].max_ranks(geom)
        assert len(ranks) == METHODS[method].NUM_RANKS
        assert all(isinstance(r, int) and 1 <= r <= t for r, t in zip(ranks, top)), (ranks, top)
        METHODS[method].cost(geom, ranks)  # accepted by the method


def test_baseline_ranks_find_planted_structure():
    rng = np.random.default_rng(5)
    # a Tucker-(3, 5) kernel: W[i, j] = A G[i, j] B
    a, g, b = rng.standard_normal((32, 3)), rng.standard_normal((3, 3, 3, 5)), rng.standard_normal((5, 48))
    kernel = np.einsum("cr,ijrs,so->ijco", a, g, b) + 1e-3 * rng.standard_normal((3, 3, 32, 48))
    assert baseline_ranks("tucker", kernel, CONV, "vbmf") == (3, 5)
    assert baseline_ranks("tucker", kernel, CONV, "energy", fraction=0.9999) == (3, 5)
    assert baseline_ranks("cp", kernel, CONV, "vbmf") == (5,)
    w = _low_rank(120, 84, 6, 1e-3, 2)
    assert baseline_ranks("svd", w, DENSE, "vbmf") == (6,)
    assert baseline_ranks("qr", w, DENSE, "energy", fraction=0.9999) == (6,)
    assert baseline_ranks("svd", w[None, None], DenseGeometry(120, 84, tokens=4), "vbmf") == (6,)
    with pytest.raises(ValueError, match="rule"):
        baseline_ranks("svd", w, DENSE, "aic")
    with pytest.raises(ValueError, match="kernel shape"):
        baseline_ranks("tucker", w, CONV, "vbmf")


def test_select_imports_no_tensorflow():
    code = "import sys, lrfc.search.select; print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
