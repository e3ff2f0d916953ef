"""What measuring only part of each front costs the global allocator (``search.sensitivity.along_front``).

The select stage measures each front candidate's end-to-end effect (the KL
divergence of the model's outputs with only that layer factorized) at the
front's ends and wherever two measured neighbours differ by more than
``SPREAD``; the rest are interpolated. This harness runs a real build
through the select stage with *every* front candidate measured (each one
timed), then replays the sampled walk over those same numbers, so both
ladders come from one model, one probe set and one set of candidates. Each
of ``SPREADS`` is replayed (the build's own is ``SPREAD``), reporting:

* how many candidates the walk measures, and the seconds that saves
  (the sum of the measured candidates' own times against all of them);
* how far an interpolated effect is from the measured one (|log ratio|);
* what it does to the ladder: for every rung of the sampled ladder, its true
  total effect (the measured effects of its choices, summed, as the
  allocator's budget counts them) against the least total effect any rung of
  the fully measured ladder reaches at no greater cost, both floored at
  ``NEGLIGIBLE`` (below it two totals cannot be told apart). 1.0 means the
  sampled rung is as good as the full allocator's; the median and the worst
  rung are reported, over all rungs and over the rungs removing at least
  70 % of the objective's cost (where the budget builds land).

    python -m bench.sensitivity [--models vgg,resnet,resnet50-64] [--calib-samples 256] [--spreads 2,4,8,16]
                                [--replay] [--builds POINTS]

``--builds POINTS`` also runs the real ``--finetune none`` build at
``--max-acc-drop POINTS`` twice, fresh caches each, with the walk sampled and
with every front candidate measured: what the budget search publishes either
way, and the select stage's seconds.

Results: ``bench/results/sensitivity.json``; ``python -m bench.render``.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.machine import note_machine, stamp
from bench.results_file import update_json
from bench.scale import model_path, state_until

RESULTS = Path("bench/results/sensitivity.json")
WORK = Path("bench/work/sensitivity")
MODELS = ("vgg", "resnet", "resnet50-64")
KNOWN = ("demo", *MODELS)
SPREADS = (2.0, 4.0, 8.0, 16.0)
DEEP = 0.70  # rungs removing at least this share of the objective's cost


def _measure_every_candidate(record: list):
    """An ``along_front`` that measures every index, timing each; what it saw is appended to ``record``."""

    def along_front(similarities, measure):
        values, seconds = [], []
        for i in range(len(similarities)):
            start = time.perf_counter()
            values.append(float(measure(i)))
            seconds.append(time.perf_counter() - start)
        record.append((list(similarities), values, seconds))
        return values, [True] * len(values)

    return along_front


def _best_full(full_ladder, cost: float, truth) -> float:
    """The least true total effect of a fully measured rung costing no more than ``cost``."""
    return min((truth(lv) for lv in full_ladder if lv.cost <= cost * (1 + 1e-9)), default=math.inf)


def measure(name: str, calib: int) -> dict:
    """A build through select with every front candidate measured; the raw numbers (saved under WORK)."""
    import lrfc.search.sensitivity as sensitivity
    from lrfc.search.stage import layer_fronts, original_costs

    record: list = []
    shutil.rmtree(WORK / "cache" / name, ignore_errors=True)  # every effect measured (and timed) afresh
    real = sensitivity.along_front
    sensitivity.along_front = _measure_every_candidate(record)
    argv = [str(model_path(name)), "--data", "fashion-mnist", "--target", "host", "--finetune", "none",
            "--objective", "flops", "--bench-runs", "0", "--calib-samples", str(calib), "--allow-low-accuracy",
            "--out", str(WORK / "out" / name), "--cache-dir", str(WORK / "cache" / name)]
    try:
        state = state_until("select", argv)
    finally:
        sensitivity.along_front = real
    fronts = layer_fronts(state)
    assert [len(f) for f in fronts.values()] == [len(r[0]) for r in record], "fronts and measurements disagree"
    originals = original_costs(state)
    raw = {"model": name, "calib": calib, "objective": state.objective,
           "probe_samples": state.sensitivity["probe_samples"],
           "original": {n: [originals[n].params, originals[n].macs] for n in fronts},
           "fronts": {n: {"candidates": [c.to_json() for c in cands], "effects": values, "seconds": seconds}
                      for (n, cands), (_, values, seconds) in zip(fronts.items(), record)},
           **stamp("measured_at")}
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / f"{name}-raw.json").write_text(json.dumps(raw))
    return raw


def analyse(raw: dict, spreads=SPREADS) -> dict:
    """The row: the sampled walk replayed at each spread over the fully measured fronts."""
    import lrfc.search.sensitivity as sensitivity
    from lrfc.decompose import Cost
    from lrfc.search.allocate import lagrangian_levels
    from lrfc.search.select import Candidate

    objective = raw["objective"]
    fronts = {n: ([Candidate.from_json(c) for c in f["candidates"]], f["effects"], f["seconds"])
              for n, f in raw["fronts"].items()}
    originals = {n: Cost(int(p), int(m)) for n, (p, m) in raw["original"].items()}
    full = {n: list(zip(cands, values)) for n, (cands, values, _) in fronts.items()}
    true_effect = {c: v for opts in full.values() for c, v in opts}

    def truth(level) -> float:
        return math.fsum(true_effect[c] for c in level.choices.values() if c is not None)

    full_ladder = lagrangian_levels(full, originals, objective)
    total = math.fsum(originals[n].macs for n in fronts)
    candidates = sum(len(f[0]) for f in fronts.values())
    seconds_all = math.fsum(sum(f[2]) for f in fronts.values())
    by_spread = {}
    for spread in spreads:
        sampled, errors, seconds_sampled, measured = {}, [], 0.0, 0
        for n, (cands, values, seconds) in fronts.items():
            effects, was = sensitivity.along_front([c.similarity for c in cands], lambda i: values[i], spread)
            sampled[n] = list(zip(cands, effects))
            seconds_sampled += sum(s for s, w in zip(seconds, was) if w)
            measured += sum(was)
            errors += [abs(math.log(max(e, 1e-12) / max(v, 1e-12))) for e, v, w in zip(effects, values, was)
                       if not w and math.isfinite(v) and max(e, v) > sensitivity.NEGLIGIBLE]
        sampled_ladder = lagrangian_levels(sampled, originals, objective)
        ratios, deep = [], []
        for lv in sampled_ladder:  # totals below NEGLIGIBLE are indistinguishable: floored there
            best = _best_full(full_ladder, lv.cost, truth)
            ratio = max(truth(lv), sensitivity.NEGLIGIBLE) / max(best, sensitivity.NEGLIGIBLE)
            ratios.append(ratio)
            if lv.cost <= (1 - DEEP) * total:
                deep.append(ratio)
        by_spread[f"{spread:g}"] = {
            "measured": measured, "measured_pct": round(100.0 * measured / max(1, candidates), 1),
            "seconds_sampled": round(seconds_sampled, 1),
            "interpolated_log_error": {"n": len(errors),
                                       "median": round(statistics.median(errors), 3) if errors else None,
                                       "p90": round(sorted(errors)[int(0.9 * (len(errors) - 1))], 3) if errors else None,
                                       "within_2x_pct": round(100.0 * sum(e <= math.log(2) for e in errors)
                                                              / max(1, len(errors)), 1)},
            "rungs": len(sampled_ladder),
            "effect_ratio": {"median": round(statistics.median(ratios), 3), "worst": round(max(ratios), 3),
                             "deep_median": round(statistics.median(deep), 3) if deep else None,
                             "deep_worst": round(max(deep), 3) if deep else None, "deep_rungs": len(deep)}}
    above = sum(v > sensitivity.NEGLIGIBLE for f in fronts.values() for v in f[1])
    return {
        "command": f"python -m bench.sensitivity --models {raw['model']} --calib-samples {raw['calib']}",
        "layers": len(fronts), "front_candidates": candidates, "above_negligible": above,
        "probe_samples": raw["probe_samples"], "seconds_all": round(seconds_all, 1),
        "rungs_full": len(full_ladder), "default_spread": sensitivity.SPREAD, "spreads": by_spread,
        "measured_at": raw["measured_at"],
    }


def _child_build(mode: str, argv: list[str]) -> None:
    """``lrfc build ARGV`` with the sampled walk (``sampled``) or every front candidate measured (``full``)."""
    import lrfc.search.sensitivity as sensitivity
    from lrfc import cli

    if mode == "full":
        sensitivity.along_front = lambda sims, measure, spread=None: ([measure(i) for i in range(len(sims))],
                                                                      [True] * len(sims))
    raise SystemExit(cli.main(["build", *argv]))


def builds(name: str, budget: float) -> dict:
    """The same ``--finetune none`` build at ``--max-acc-drop budget`` with the walk sampled and with every
    front candidate measured: what the budget search publishes either way."""
    out = {}
    for mode in ("full", "sampled"):
        argv = [str(model_path(name)), "--data", "fashion-mnist", "--target", "host", "--objective", "flops",
                "--max-acc-drop", f"{budget:g}", "--finetune", "none", "--formats", "tflite", "--bench-runs", "0",
                "--out", str(WORK / "out" / f"{name}-{mode}-d{budget:g}"), "--cache-dir",
                str(WORK / "cache" / f"{name}-{mode}"), "--json"]
        shutil.rmtree(WORK / "cache" / f"{name}-{mode}", ignore_errors=True)
        start = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "bench.sensitivity", "--child-build", mode, "--", *argv],
                             capture_output=True, text=True)
        if res.returncode != 0:
            sys.stderr.write(res.stderr)
            raise SystemExit(f"{mode} build of {name} failed ({res.returncode})")
        report = json.loads(res.stdout)
        o, c = report["original"], report["compressed"]
        out[mode] = {"macs_removed_pct": round(100 * (1 - c["macs"] / o["macs"]), 2),
                     "params_removed_pct": round(100 * (1 - c["params"] / o["params"]), 2),
                     "drop_points": round(100 * (o["accuracy"] - c["accuracy"]), 2),
                     "measured": report["sensitivity"]["measured"],
                     "front_candidates": report["sensitivity"]["front_candidates"],
                     "select_s": report["timings"]["select"], "wall_s": round(time.perf_counter() - start, 1),
                     "command": "lrfc build " + " ".join(argv[:-1])}
    return {"budget": budget, **out}


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child-build"]:
        return _child_build(argv[1], argv[3:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--calib-samples", type=int, default=256)
    parser.add_argument("--spreads", default=",".join(f"{s:g}" for s in SPREADS),
                        help="the SPREAD values to replay the walk with")
    parser.add_argument("--replay", action="store_true",
                        help="analyse the last measurement (bench/work/sensitivity/MODEL-raw.json) again")
    parser.add_argument("--builds", type=float, default=None, metavar="POINTS",
                        help="also run the --finetune none build at this --max-acc-drop, sampled and fully measured")
    args = parser.parse_args(argv)
    for name in args.models.split(","):
        if name not in KNOWN:
            raise SystemExit(f"--models: unknown {name}; choose from {', '.join(KNOWN)}")
        saved = WORK / f"{name}-raw.json"
        raw = json.loads(saved.read_text()) if args.replay and saved.exists() else measure(name, args.calib_samples)
        row = analyse(raw, [float(v) for v in args.spreads.split(",")])
        if args.builds is not None:
            row["builds"] = builds(name, args.builds)
        print(f"{name}: {row}", flush=True)
        update_json(RESULTS, lambda doc: (doc.setdefault("rows", {}).__setitem__(name, row),
                                          note_machine(doc)))


if __name__ == "__main__":
    main()
