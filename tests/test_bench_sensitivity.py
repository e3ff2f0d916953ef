"""bench.sensitivity's replay: the sampled walk over fully measured fronts, and how its ladder compares."""

from bench.sensitivity import analyse
from lrfc.search.select import Candidate


def _raw(effects_by_layer):
    fronts = {}
    for layer, effects in effects_by_layer.items():
        n = len(effects)
        cands = [Candidate(layer, "svd", (k + 1,), 10 * (k + 1), 100 * (k + 1), 0.5 + 0.49 * k / (n - 1))
                 for k in range(n)]
        fronts[layer] = {"candidates": [c.to_json() for c in cands], "effects": effects, "seconds": [1.0] * n}
    return {"model": "synthetic", "calib": 8, "objective": "flops", "probe_samples": 8,
            "original": {layer: [1000, 10000] for layer in effects_by_layer}, "fronts": fronts,
            "measured_at": "now"}


def test_a_power_law_front_is_measured_at_its_ends_and_loses_nothing():
    law = [0.02 * ((1 - (0.5 + 0.49 * k / 4)) / 0.5) ** 0.3 for k in range(5)]  # within 4x end to end
    row = analyse(_raw({"a": law, "b": [2 * e for e in law]}), spreads=[4.0])
    s = row["spreads"]["4"]
    assert row["front_candidates"] == 10 and s["measured"] == 4 and s["seconds_sampled"] == 4.0
    assert row["seconds_all"] == 10.0 and s["effect_ratio"]["worst"] == 1.0


def test_a_misleading_interior_shows_in_the_ratio():
    # the middle candidate is far better than its neighbours suggest: interpolation misses it
    row = analyse(_raw({"a": [0.02, 0.015, 0.0001, 0.011, 0.01]}), spreads=[4.0, 1.0])
    assert row["spreads"]["4"]["measured"] == 2 and row["spreads"]["4"]["effect_ratio"]["worst"] > 1.5
    assert row["spreads"]["1"]["measured"] == 5 and row["spreads"]["1"]["effect_ratio"]["worst"] == 1.0
