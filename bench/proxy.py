"""How well the budget search's proxy tells which rungs are within a goal: a few samples, all, or as many as it takes.

The budget search (``train.contract``) bisects a build's ladder with each
rung's drop before fine-tuning (built as a look builds it: reconstructed,
BN re-estimated), comparing it with a goal. This harness builds every rung
of one build's ladder that way, scores each on the whole validation split,
and replays, for goals from 0.5 to 10 points, the decisions (drop <= goal)
and a plain bisection over the ladder three ways: on the first
``PROXY_SAMPLES`` samples (the proxy before 2026-12-06), on as many as
``contract.proxy_side`` asks for (the proxy now: more while the drop is
within ``PROXY_Z`` standard errors of the goal), and on the whole split
(the reference). It records the decisions and picks that differ from the
whole split's and the samples each way scores.

    python -m bench.proxy [--models demo,vgg]

The builds run ``lrfc build`` in this process up to its measure stage, with
the options ``make demo`` (demo) and ``python -m bench.budget --only
contract`` (vgg, resnet) use. Results: ``bench/results/proxy.json``;
``python -m bench.render``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.machine import note_machine, stamp
from bench.results_file import put_row, update_json
from bench.scale import model_path

RESULTS = Path("bench/results/proxy.json")
WORK = Path("bench/work/proxy")
GOALS = tuple(float(g) for g in np.arange(0.5, 10.01, 0.25))
DEMO = ["--data", "fashion-mnist", "--target", "host", "--max-acc-drop", "1.0", "--epochs", "1", "--train-samples",
        "10000", "--max-rounds", "3"]  # the Makefile's `make demo`


def argv_of(name: str) -> list[str]:
    """The build whose ladder a row replays: ``make demo``'s, or bench.budget's default (contract) row's."""
    from bench.budget import BASE

    flags = DEMO if name == "demo" else [x for flag, value in BASE.items() for x in (flag, value)]
    return [str(model_path(name)), *flags, "--out", str(WORK / "out" / name), "--cache-dir", str(WORK / "cache" / name)]


def ladder_answers(argv: list[str]) -> tuple[np.ndarray, np.ndarray, list[dict], float]:
    """The original's and every rung's right answers on the whole validation split (bool arrays), the rungs'
    labels and MACs, and the build's MACs, of ``lrfc build ARGV``'s ladder."""
    from bench.scale import state_until
    from lrfc.common import outputs
    from lrfc.factorize.stage import build_level
    from lrfc.frontend.samples import predict
    from lrfc.search.stage import plan_from

    outputs.OutputDir.discard = lambda self: None  # the stages' captured maps stay where the looks need them
    state = state_until("measure", argv)
    splits = state.splits
    labels = np.asarray(splits.y_val).reshape(-1)
    original = predict(state.flat, splits.x_val).argmax(axis=-1) == labels
    rungs, info = [], []
    for level in state.levels:
        model = build_level(state, plan_from(level.choices))
        rungs.append(predict(model, splits.x_val).argmax(axis=-1) == labels)
        info.append({"label": level.label, "macs": int(state.mac_totals_of(level.choices)[1])})
    return original, np.array(rungs), info, float(state.mac_totals_of({})[0])


def sequential(diff: np.ndarray, goal: float) -> tuple[bool, int]:
    """``contract``'s proxy on one rung: (within ``goal``, samples scored), ``PROXY_SAMPLES`` at a time."""
    from lrfc.train.contract import PROXY_SAMPLES, proxy_side

    n = 0
    while True:
        n = min(len(diff), n + PROXY_SAMPLES)
        side = proxy_side(n, int(diff[:n].sum()), int(np.abs(diff[:n]).sum()), len(diff), goal)
        if side is not None:
            return side, n


def bisect(within, rungs: int) -> tuple[int, int]:
    """A plain bisection for the most compressed rung within the goal (``rungs``: none is): (rung, samples)."""
    lo, hi, samples = -1, rungs, 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        ok, n = within(mid)
        samples += n
        lo, hi = (lo, mid) if ok else (mid, hi)
    return hi, samples


def replay(original: np.ndarray, rungs: np.ndarray) -> dict:
    """Decisions and bisection picks for every goal, three ways; see the module doc."""
    from lrfc.train.contract import PROXY_SAMPLES

    diffs = original.astype(np.int64)[None, :] - rungs.astype(np.int64)
    head = min(PROXY_SAMPLES, diffs.shape[1])
    whole = 100.0 * diffs.mean(axis=1)
    first = 100.0 * diffs[:, :head].mean(axis=1)
    k = len(rungs)
    out = {"decisions": 0, "off_first": 0, "off_sequential": 0, "samples_sequential": 0, "picks": []}
    for goal in GOALS:
        for i in range(k):
            side, n = sequential(diffs[i], goal)
            out["decisions"] += 1
            out["off_first"] += int((first[i] <= goal) != (whole[i] <= goal))
            out["off_sequential"] += int(side != (whole[i] <= goal))
            out["samples_sequential"] += n
        pick_whole, n_whole = bisect(lambda i: (whole[i] <= goal, diffs.shape[1]), k)
        pick_first, n_first = bisect(lambda i: (first[i] <= goal, head), k)
        pick_seq, n_seq = bisect(lambda i: sequential(diffs[i], goal), k)
        out["picks"].append({"goal": goal, "whole": pick_whole, "first": pick_first, "sequential": pick_seq,
                             "samples_first": n_first, "samples_sequential": n_seq, "samples_whole": n_whole})
    out["drop_whole"] = [round(float(d), 3) for d in whole]
    out["drop_first"] = [round(float(d), 3) for d in first]
    return out


def run(name: str) -> dict:
    from lrfc.train.contract import PROXY_SAMPLES, PROXY_Z

    argv = argv_of(name)
    start = time.perf_counter()
    original, rungs, info, macs = ladder_answers(argv)
    row = {"model": name, "command": f"python -m bench.proxy --models {name}", "build": "lrfc build " + " ".join(argv),
           **stamp(), "validation_samples": int(len(original)), "proxy_samples": PROXY_SAMPLES, "proxy_z": PROXY_Z,
           "original_accuracy": float(original.mean()), "macs_before": macs, "rungs": info,
           **replay(original, rungs), "wall_s": round(time.perf_counter() - start, 1)}
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="demo,vgg")
    args = parser.parse_args(argv)
    for name in args.models.split(","):
        row = run(name)

        def change(results: dict, name=name, row=row) -> None:
            put_row(results.setdefault("runs", {}), name, row)
            note_machine(results)

        update_json(RESULTS, change)
        print(f"{name}: decisions off the whole split's: first {row['proxy_samples']:,} {row['off_first']}, "
              f"sequential {row['off_sequential']} of {row['decisions']}")


if __name__ == "__main__":
    main()
