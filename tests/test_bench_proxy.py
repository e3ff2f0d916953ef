"""bench.proxy's replay: decisions and bisection picks on the first samples, sequentially, on the whole split."""

import numpy as np

from bench.proxy import bisect, replay, sequential
from bench.render_proxy import proxy


def test_a_plain_bisection_finds_the_most_compressed_rung_within_the_goal():
    drops = [9.0, 5.0, 3.0, 2.0, 0.5]
    assert bisect(lambda i: (drops[i] <= 2.5, 10), 5) == (3, 20)  # looks at rungs 2 and 3
    assert bisect(lambda i: (drops[i] <= 0.1, 10), 5)[0] == 5  # none: the original


def test_the_sequential_proxy_scores_more_only_near_its_goal():
    diff = np.zeros(5000, np.int64)
    diff[::20] = 1                                   # 5 points, evenly spread
    assert sequential(diff, 1.0) == (False, 1000)   # far: the first 1,000 decide
    assert sequential(diff, 4.8) == (False, 5000)   # near: scored to the end
    assert sequential(diff, 5.0) == (True, 5000)


def test_the_replay_counts_what_the_first_samples_get_wrong():
    n = 5000
    original = np.ones(n, bool)
    rungs = np.ones((3, n), bool)
    rungs[0, ::10] = False                           # 10 points everywhere
    rungs[1, np.r_[np.arange(0, 1000, 67), 1000 + 160 * np.arange(25)]] = False  # 1.5 points on the first 1,000, 0.8 on all
    out = replay(original, rungs)
    assert out["drop_whole"] == [10.0, 0.8, 0.0] and out["drop_first"] == [10.0, 1.5, 0.0]
    at = {p["goal"]: p for p in out["picks"]}
    assert (at[1.0]["whole"], at[1.0]["first"], at[1.0]["sequential"]) == (1, 2, 1)
    assert at[1.0]["samples_first"] == 2000 and at[1.0]["samples_whole"] == 10000
    # rung 1 is judged wrongly on the first 1,000 for goals from 0.8 to 1.5 (not included)
    wrong = [g for g in at if (out["drop_first"][1] <= g) != (out["drop_whole"][1] <= g)]
    assert wrong == [1.0, 1.25]
    assert out["off_first"] == len(wrong) and out["off_sequential"] == 0
    record = {"machine": {"cpu": "cpu", "cores": 2}, "runs": {"m": {
        "command": "python -m bench.proxy --models m", "build": "lrfc build m.keras", "date": "2026-12-06 03:30 UTC", "wall_s": 60.0, "validation_samples": n,
        "proxy_samples": 1000, "macs_before": 100, "rungs": [{"label": "a", "macs": 10}, {"label": "b", "macs": 50},
                                                              {"label": "c", "macs": 90}], **out}}}
    text = "\n".join(proxy(record))
    assert f"| m | 3 | 5,000 | {len(wrong)} of 117 | 0 | {sum(p['first'] != p['whole'] for p in out['picks'])} of 39 | 0 |" in text
    assert "| 1.00 | 1 (50.0 %, 0.80) | 2 (10.0 %, 0.00) | 1 (50.0 %, 0.80) |" in text
    assert "- m: `python -m bench.proxy --models m` (2026-12-06 03:30 UTC, 1.0 min); the ladder of `lrfc build m.keras`" in text
