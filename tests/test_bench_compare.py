"""bench.compare: the matched-accuracy and plan comparisons docs/BENCHMARKS.md states."""

from bench import compare


def row(flags, drop, removed, rounds=1, mode="oneshot", model="vgg", choices=None):
    return {"flags": flags, "model": model, "drop_points": drop, "macs_removed_pct": removed,
            "accuracy_after": (93.9 - drop) / 100, "finetune": {"mode": mode, "rounds": rounds}, "choices": choices or {}}


ROWS = {
    "vgg/hybrid-t0.85": row({"--threshold": "0.85", "--max-rounds": "1"}, 6.0, 94.0),
    "vgg/hybrid-t0.98": row({"--threshold": "0.98", "--max-rounds": "1"}, 0.8, 70.0),
    "vgg/tucker-t0.98": row({"--methods": "tucker", "--threshold": "0.98"}, 0.9, 60.0),
    "vgg/tucker-t0.85": row({"--methods": "tucker", "--threshold": "0.85"}, 1.5, 85.0),
    "vgg/energy": row({"--rank-selection": "energy"}, 3.0, 80.0),
    "vgg/hybrid": row({}, 0.5, 88.0, rounds=3),                     # recovery: more effort, left out
    "vgg/calib100": row({"--calib-samples": "100"}, 0.1, 99.0),     # another calibration size, left out
    "vgg/oneshot-e1": row({"--plan": "p.json"}, 0.1, 99.0),         # a given plan, left out
    "vgg/step5": row({"--step": "5"}, 0.1, 99.0, rounds=0, mode="none"),
    "resnet/tt": row({"--methods": "tt"}, 0.1, 99.0, model="resnet"),
}


def test_family_names_the_rule_or_method_set():
    assert [compare.family(ROWS[n]) for n in ("vgg/hybrid-t0.85", "vgg/tucker-t0.98", "vgg/energy")] == \
        ["hybrid", "tucker", "energy"]


def test_best_at_drop_uses_one_round_rows_of_the_model_only():
    table = compare.best_at_drop(ROWS, "vgg", levels=(1.0, 2.0, 5.0, 10.0))
    assert set(table) == {"hybrid", "tucker", "energy"}
    assert table["hybrid"] == {1.0: (70.0, "vgg/hybrid-t0.98"), 2.0: (70.0, "vgg/hybrid-t0.98"),
                               5.0: (70.0, "vgg/hybrid-t0.98"), 10.0: (94.0, "vgg/hybrid-t0.85")}
    assert table["tucker"][1.0] == (60.0, "vgg/tucker-t0.98") and table["tucker"][2.0] == (85.0, "vgg/tucker-t0.85")
    assert table["energy"][2.0] is None and table["energy"][5.0] == (80.0, "vgg/energy")


def test_verdict_against_the_best_other_family():
    table = compare.best_at_drop(ROWS, "vgg", levels=(1.0, 2.0, 5.0, 10.0))
    assert compare.verdict(table, "hybrid", 1.0) == "wins"     # 70 vs tucker 60
    assert compare.verdict(table, "hybrid", 2.0) == "loses"    # 70 vs tucker 85
    assert compare.verdict(table, "hybrid", 10.0) == "wins"    # 94 vs 85 and 80
    assert compare.verdict({"hybrid": {1.0: (70.0, "a")}}, "hybrid", 1.0) is None
    assert compare.verdict(table, "hybrid", 5.0, rivals={"energy"}) == "loses"  # 70 vs 80
    assert compare.verdict(table, "hybrid", 1.0, rivals={"energy"}) is None      # energy has no build within 1
    only_rival = {"hybrid": {3.0: None}, "cp": {3.0: (78.1, "vgg/cp-t0.98")}}
    assert compare.verdict(only_rival, "hybrid", 3.0) == "loses"


def test_fronts_sorted_by_macs_kept():
    fronts = compare.fronts(ROWS, "vgg")
    assert [p[0] for p in fronts["hybrid"]] == [6.0, 30.0]
    assert fronts["tucker"][0][2] == "vgg/tucker-t0.85"


def test_plan_agreement_counts_methods_and_ranks():
    a = {"c1": ["tucker", [8, 8]], "c2": ["cp", [16]], "fc": ["svd", [4]]}
    b = {"c1": ["tucker", [8, 8]], "c2": ["cp", [12]], "c3": ["tt", [2, 2]]}
    assert compare.plan_agreement(a, b) == (2, 1, 4)


def test_by_threshold_keeps_similarity_rows_per_threshold():
    table = compare.by_threshold(ROWS, "vgg")
    assert set(table) == {"hybrid", "tucker"}
    assert table["hybrid"] == {0.85: (94.0, 6.0, "vgg/hybrid-t0.85"), 0.98: (70.0, 0.8, "vgg/hybrid-t0.98")}
    assert table["tucker"][0.85] == (85.0, 1.5, "vgg/tucker-t0.85")


def test_oneshot_verdict_takes_the_cheapest_oneshot_at_iterative_accuracy():
    from bench.render_quality import oneshot_verdict

    def ft(mode, seconds, acc):
        return {"finetune": {"mode": mode, "seconds": seconds}, "accuracy_after": acc}

    rows = {"e1": ft("oneshot", 20, 0.8859), "e2": ft("oneshot", 34, 0.9062), "e3": ft("oneshot", 53, 0.9115),
            "it": ft("iterative", 224, 0.9027)}
    text = oneshot_verdict(rows)
    assert "90.62% vs iterative 90.27%" in text and "**6.6x cheaper**" in text
    del rows["e2"], rows["e3"]
    assert oneshot_verdict(rows).startswith("No one-shot row reached the iterative accuracy (90.27%")
    assert oneshot_verdict({"e1": rows["e1"]}) is None
