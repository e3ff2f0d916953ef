"""The ``report`` stage: model.keras, plan.json, report.html and (last) report.json, from the build's state."""

from __future__ import annotations

import json


def accuracy_budget(options, original: float, compressed: float, validation_samples: int, enforced: bool,
                    error: float = 0.0, recall: dict | None = None) -> dict:
    """``--max-acc-drop`` against the published model's drop: ``{max_drop, drop, drop_error, confidence,
    upper_bound, met, validation_samples, enforced}``; with ``--max-class-drop``, also ``max_class_drop`` and
    ``worst_class`` (``{class, name, drop}`` of ``recall``, ``report.classes``), and ``met`` holds both.

    ``drop_error`` is the drop's standard error in points (paired:
    ``train.paired``); with ``--confidence``, ``upper_bound`` is the drop's
    one-sided bound at it, and ``met`` is judged on that bound (else on the
    drop, and ``upper_bound`` is None). ``enforced`` is False for a fixed
    plan (``--plan``, weight-based ranks, the iterative baseline): its budget
    is measured and reported, not held.
    """
    from lrfc.train.paired import upper_bound, within_class_limit

    drop = round(100.0 * (original - compressed), 4)
    bound = None if options.confidence is None else round(upper_bound(drop, error, options.confidence), 4)
    met = (drop if bound is None else bound) <= options.max_acc_drop + 1e-9
    held = {}
    if options.max_class_drop is not None:
        rows = (recall or {}).get("classes") or []
        worst = max(rows, key=lambda r: r["drop"]) if rows else None
        held = {"max_class_drop": options.max_class_drop,
                "worst_class": None if worst is None else {k: worst[k] for k in ("class", "name", "drop")}}
        met = met and within_class_limit(None if worst is None else worst["drop"], options.max_class_drop)
    return {"max_drop": options.max_acc_drop, "drop": drop, "drop_error": round(error, 4),
            "confidence": options.confidence, "upper_bound": bound, "met": met,
            "validation_samples": int(validation_samples), "enforced": bool(enforced), **held}


def _scores(state, validation: float, test: float | None, original: bool = False) -> dict:
    """A model's top-1 on validation and test; with no labels (``state.labels == "original"``) neither is known:
    ``accuracy`` is None and the compressed model's ``agreement`` with the original's answers stands in (the
    original's own is 100 % by construction, so it has none)."""
    if state.labels != "original":  # "data", or "held-out": validation's labels are the data's
        return {"accuracy": round(validation, 6), "test_accuracy": test}
    return {"accuracy": None, "test_accuracy": None,
            **({} if original else {"agreement": round(validation, 6), "test_agreement": test})}


def solutions(state) -> list[dict]:
    """The rungs timed as whole models, each with its plan, predicted and measured latency and what it scored.

    ``proxy_drop``: before fine-tuning, on the proxy samples; ``accuracy``:
    after fine-tuning, on the validation split (None where the budget search
    did not try the rung).
    """
    whole = state.whole
    if whole is None:
        return []
    tried = {r.level: r for r in state.budget.rounds} if state.budget is not None else {}
    proxy = state.budget.proxy if state.budget is not None else {}
    rows = []
    for t in whole.rungs:
        done = tried.get(t.rung) if t.rung is not None else None
        rows.append({**t.to_json(), "plan": whole.choices.get(t.level),
                     "proxy_drop": None if t.rung is None else proxy.get(t.rung),
                     "accuracy": None if done is None else done.accuracy, "drop": None if done is None else done.drop})
    return rows


def build_report(state) -> dict:
    """The ``report.json`` document of a finished build."""
    from lrfc.frontend.catalogue import CUSTOM_NOTE
    from lrfc.provenance import provenance
    from lrfc.report.classes import class_recall
    from lrfc.search.stage import rank_multiple

    opts = state.options
    chosen = {n: c for n, c in state.chosen.items() if c is not None}
    recall = class_recall(state.splits.y_val, state.original_right, state.compressed_right, state.classes,
                          opts.max_acc_drop)

    layers, unfactorized = [], []
    failed: dict[str, list[str]] = {}
    for f in state.failed_walks:
        failed.setdefault(f.layer, []).append(f.method)
    for r in state.rows:
        if not r.methods:
            if r.macs or r.note == CUSTOM_NOTE:  # a conv/dense-family layer no method takes; the user's own class
                unfactorized.append({"name": r.name, "type": r.type, "reason": r.note or "no factorization applies"})
            continue
        c = chosen.get(r.name)
        entry = {"name": r.name, "type": r.type, "method": None, "ranks": None, "similarity": None,
                 "params_before": r.params, "params_after": r.params, "macs_before": r.macs, "macs_after": r.macs,
                 "data_aware": None}
        if r.name in state.original_ms:
            entry["latency_ms_before"] = entry["latency_ms_after"] = round(state.original_ms[r.name], 5)
        if c is not None:
            entry.update(method=c.method, ranks=list(c.ranks), similarity=c.similarity, data_aware=c.data_aware,
                         params_after=c.params, macs_after=c.macs)
            if c.measured_ms is not None:
                entry["latency_ms_after"] = round(c.measured_ms, 5)
        elif r.name in state.targets and failed.get(r.name) and not state.candidates.get(r.name):
            entry["note"] = f"kept: scoring raised for {', '.join(failed[r.name])} (search.failed_walks)"
        elif r.name in state.targets:
            entry["note"] = "kept: no candidate met the threshold at a lower cost"
        else:
            entry["note"] = "kept: none of --methods applies"
        layers.append(entry)
    total_macs_before, total_macs_after = state.mac_totals()
    costs = state.pricer.info.to_json() if state.pricer is not None else None
    return {
        "provenance": provenance(),  # lrfc's version, the command, when, the packages, the machine
        "model": opts.model_name, "data": opts.data_name, "target": state.profile.name, "objective": state.objective,
        "binary_output": state.binary,  # "sigmoid"/"logit": one output unit read at its threshold (frontend.binary)
        "threshold": opts.threshold, "layer_thresholds": {n: round(t, 6) for n, t in state.thresholds.items()},
        "seed": opts.seed, "step": opts.step, "rank_selection": opts.rank_selection,
        "rank_multiple": rank_multiple(state),
        "methods": list(opts.methods),
        "cost_source": costs["source"] if costs else ("given plan" if opts.plan else "closed-form"),
        "costs": costs,
        "labels": state.labels,  # "original": validation had none, the original's answers stood in; "held-out":
        # only validation and test had them, training took the original's answers (frontend.unlabelled)
        "original": {"params": sum(r.params for r in state.rows), "macs": total_macs_before,
                     **_scores(state, state.original_accuracy, state.test_accuracy[0], original=True)},
        "compressed": {"params": int(state.compressed.count_params()), "macs": total_macs_after,
                       **_scores(state, state.compressed_accuracy, state.test_accuracy[1]),
                       "test_drop_error": state.test_drop_error},
        "input": {**state.contract.to_json(), "data_values": state.data_values, "data_fit": state.data_fit},
        "splits": state.splits.to_json(),
        "accuracy_budget": accuracy_budget(opts, state.original_accuracy, state.compressed_accuracy,
                                           len(state.splits.x_val), state.enforce_budget, state.drop_error, recall)
        | {"labels": state.labels}
        | ({"deliverables": state.deliverables} if state.deliverables else {}),
        "class_recall": recall,
        "budget_search": state.budget.to_json(),
        "sensitivity": state.sensitivity,
        "solutions": solutions(state),
        "whole_model": None if state.whole is None else {k: v for k, v in state.whole.to_json().items()
                                                         if k != "rungs"},
        "layers": layers,
        "unfactorized": unfactorized,
        "finetune": state.finetune.to_json(),
        "repair": {"reconstruct": opts.reconstruct, "bn_reestimate": opts.bn_reestimate},
        "artifacts": [a.to_json() for a in state.artifacts],
        "int8_equalization": None if state.equalization is None else state.equalization.to_json(),
        "benchmarks": state.benchmarks.to_json(),
        "timings": {k: round(v, 3) for k, v in state.timer.snapshot().items()},
        "peak_rss_mb": dict(state.peak_rss_mb),
        "memory": None if state.memory is None else state.memory.to_json(),
        "cache": {"enabled": opts.cache, "hits": state.cache.hits, "misses": state.cache.misses},
        "executor": state.executor.to_json() if state.executor is not None else None,
        "search": {
            "candidates": [c.to_json() for cands in state.candidates.values() for c in cands],
            "solutions": [s.to_json() for s in state.solutions],
            "failed_walks": [f.to_json() for f in state.failed_walks],
        },
    }


def report(state) -> None:
    """Stage model.keras, plan.json, report.html and report.json; ``run_build`` publishes them with the artifacts."""
    from lrfc.common.atomic import atomic_path, write_text
    from lrfc.lower.records import sha256_of
    from lrfc.lower.stamp import stamp, stamp_entries
    from lrfc.report.files import write_report

    from lrfc.frontend.binary import user_form

    staging = state.output.staging
    with atomic_path(staging / "model.keras") as tmp:
        user_form(state.compressed, state.binary).save(tmp)  # a binary classifier with its one unit again
        stamp(tmp, "keras", stamp_entries(state.contract, state.classes))  # its input contract travels with it
    write_text(staging / "plan.json", json.dumps(state.plan.to_json(), indent=2) + "\n")
    keras = staging / "model.keras"  # listed by its hash, as the artifacts are: `lrfc verify --report` checks it,
    # and `lrfc export`/`verify` of it read the input contract recorded here
    state.report = build_report(state) | {"keras_model": {"path": str(state.output.path / "model.keras"),
                                                          "bytes": keras.stat().st_size, "sha256": sha256_of(keras)}}
    write_report(state.report, staging)
