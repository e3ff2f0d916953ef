"""bench.quality's plan covers every point issue 6 asks for, and the quick plan stays small."""

from bench.quality import GROUPS, budget, plan


def _flag(rows, group, flag):
    return sorted(float(r["flags"][flag]) for r in rows if r["group"] == group)


def test_full_plan_covers_the_sweeps_and_both_models():
    rows = plan(False, list(GROUPS))
    names = [r["name"] for r in rows]
    assert len(names) == len(set(names))
    assert _flag(rows, "threshold", "--threshold") == [0.85, 0.88, 0.92, 0.95, 0.98]
    assert _flag(rows, "step", "--step") == [2.0, 5.0, 10.0]
    # 500 is the shared default: the hybrid-t0.92 row is that point of the calibration sweep
    assert _flag(rows, "calib", "--calib-samples") == [100.0, 1000.0, 2000.0]
    assert budget(False)["--calib-samples"] == "500"
    for model in ("vgg", "resnet"):
        assert {n.split("/")[1] for n in names if n.startswith(model + "/") and
                next(r for r in rows if r["name"] == n)["group"] == "methods"} == {"hybrid", "tucker", "cp", "tt", "vbmf", "energy"}
    # each model's first row empties its cache: that row is the model's compiler-cost measurement
    firsts = {}
    for r in rows:
        firsts.setdefault(r["model"], r)
    assert all(r["cache"] in ("fresh", "cold") and r["name"].endswith("/hybrid") for r in firsts.values())
    # the finetune rows rebuild the VGG hybrid row's plan, which runs before them
    assert names.index("vgg/hybrid") < min(i for i, r in enumerate(rows) if r["group"] == "finetune")


def test_quick_plan_is_vgg_and_tiny_only_and_keeps_each_question():
    rows = plan(True, list(GROUPS))
    assert {r["model"] for r in rows} == {"vgg", "tiny"}
    assert {r["group"] for r in rows} == set(GROUPS) - {"pareto"}
    assert len(rows) <= 13
    assert budget(True)["--train-samples"] == "2000" and budget(True)["--max-rounds"] == "1"
