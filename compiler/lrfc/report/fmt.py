"""Formatting shared by the terminal summary, the HTML page and the plot of a build report."""

from __future__ import annotations

import math

from lrfc.benchmark.stage import baseline_of, fastest, fastest_p50
from lrfc.objectives import cost_key
from lrfc.train.paired import within_class_limit


def cost_source_line(report: dict) -> str:
    """Say where the selection's costs came from, so nobody reads MACs as milliseconds."""
    source, objective, target = report.get("cost_source"), report["objective"], report.get("target", "the target")
    costs = report.get("costs") or {}
    if source == "measured":
        where = (costs.get("device") or {}).get("transport") or "this machine"
        how = f" ({costs['runtime']}, {costs['precision']}, {costs['threads']} threads)" if costs.get("runtime") else ""
        return f"latency measured on {target} via {where}{how}" if costs else f"latency measured on {target}"
    if source == "estimated":
        basis = f": {costs['basis']}" if costs.get("basis") else ""
        return f"latency estimated for {target} (not measured){basis}"
    if source == "closed-form":
        return f"{'parameters' if cost_key(objective) == 'params' else 'MACs'} counted analytically (objective {objective})"
    if source == "given plan":
        return "the plan was given (--plan); no search"
    if source == "macs-stand-in":  # reports written before latency was measured
        if objective == "latency":
            return f"MACs stand in for latency (no measured or estimated latency for {target})"
        return f"{'parameters' if cost_key(objective) == 'params' else 'MACs'} counted analytically (objective {objective})"
    return f"cost source {source!r}"


def check_report(report: dict) -> None:
    missing = [k for k in ("objective", "threshold", "original", "compressed", "layers") if k not in report]
    if missing:
        raise ValueError(f"not a build report: missing {missing}; received keys {sorted(report)}")


def short(name: str, width: int = 36) -> str:
    name = str(name)
    return name if len(name) <= width else name[: width // 2 - 2] + "..." + name[-(width - width // 2 - 1):]


def ranks_text(ranks) -> str:
    return "x".join(str(r) for r in ranks) if ranks else "-"


def sim_text(sim) -> str:
    return "-" if sim is None else f"{sim:.4f}"


def pct_removed(before: int, after: int) -> str:
    """Share of ``before`` that is gone, one decimal; negative when the model grew."""
    return "n/a" if not before else f"{100 * (1 - after / before):.1f}%"


def accuracy_line(before, after, error: float | None = None) -> str:
    """Top-1 before -> after and the drop (or gain), with its standard error where the report has one."""
    if before is None and after is None:
        return "not evaluated (no data given)"
    if before is None or after is None:
        return f"{acc_text(before)} -> {acc_text(after)}"
    drop = 100 * (before - after)
    change = f"drop {drop:.2f} points" if drop >= 0 else f"gain {-drop:.2f} points"
    return f"{acc_text(before)} -> {acc_text(after)} ({change}{error_text(error)})"


def answers_line(agreement: float | None, error: float | None = None) -> str:
    """With no labels (``frontend.unlabelled``): the share of the original's answers the compressed model kept."""
    if agreement is None:
        return "not evaluated"
    return (f"{100 * agreement:.2f}% of the original's answers kept ({100 * (1 - agreement):.2f} points changed"
            f"{error_text(error)})")


def drop_error(report: dict) -> float | None:
    """The standard error of the published model's validation drop (None in a report from before it was kept)."""
    return (report.get("accuracy_budget") or {}).get("drop_error")


def error_text(error: float | None) -> str:
    """", standard error E" of a paired drop (``train.paired``); nothing for a report without one or an exact 0."""
    return f", standard error {error:.2f}" if error else ""


def acc_text(a) -> str:
    return "n/a" if a is None else f"{100 * a:.2f}%"


def finetune_line(ft: dict) -> str:
    if ft.get("mode", "none") == "none":
        return "none"
    rounds, epochs, ran = ft.get("rounds", 0), ft.get("epochs", 0), list(ft.get("round_epochs") or ())
    if ran and any(e != epochs for e in ran):
        parts = [ft["mode"], f"{rounds} round{'s' * (rounds != 1)} of {'+'.join(map(str, ran))} epochs"]
    else:
        parts = [ft["mode"], f"{rounds} round{'s' * (rounds != 1)} x {epochs} epoch{'s' * (epochs != 1)}"]
    if ft.get("qat"):
        parts.append("quantization-aware (int8 fake quantization)")
    if ft.get("distill"):
        parts.append("distillation")
    if ft.get("features"):
        parts.append(f"feature maps (weight {ft['features']:g})")
    if ft.get("balanced"):  # --max-class-drop
        parts.append("rarer classes repeated (" + ", ".join(f"{c} x{r}" for c, r in ft["balanced"].items()) + ")")
    parts.append(f"{ft.get('seconds', 0.0):.1f}s")
    return ", ".join(parts)


def splits_line(splits: dict) -> str:
    """Calibration / training / validation sample counts, and where validation came from."""
    source = {"test split": "half the given test split", "held out": "held out from the data"}.get(
        splits.get("validation_source"), splits.get("validation_source") or "?")
    test = f", {splits['test']:,} test (the other half, reported only)" if splits.get("test") else ""
    return (f"{splits['calibration']:,} calibration, {splits['train']:,} training, {splits['validation']:,} "
            f"validation samples ({source}){test}")


def report_contract(report: dict):
    """The build's ``InputContract``, from its report's ``input`` (None in a report written before it recorded one)."""
    from lrfc.frontend.contract import from_record

    return from_record(report["input"], "the build") if isinstance(report.get("input"), dict) else None


def output_line(binary: str) -> str:
    """A binary classifier's one output unit (``report.json``'s ``binary_output``), as the summary says it."""
    from lrfc.frontend.binary import describe

    return f"{describe(binary)}; scored as two classes, published with its one unit"


def input_line(contract: dict) -> str:
    """What the data's values were and how they reached the model."""
    parts = [f"pixel values {contract['range']}"]
    if contract.get("channel_order", "rgb") != "rgb":
        parts.append(f"channel order {contract['channel_order']}")
    for key in ("mean", "std"):
        if contract.get(key) is not None:
            parts.append(f"{key} " + ",".join(f"{v:g}" for v in contract[key]))
    data = f"data {contract['data_values']} -> " if contract.get("data_values") else ""
    why = f": {contract['reason']}" if contract.get("reason") else ""
    fit = f"; {contract['data_fit']}" if contract.get("data_fit") else ""
    if str(contract.get("data_values", "")).startswith("as given"):  # already normalised: no contract applies to it
        return (f"data {contract['data_values']}; the model's input contract ({', '.join(parts)}, "
                f"{contract.get('source', '?')}{why}) is not applied to it{fit}")
    return f"{data}{', '.join(parts)} ({contract.get('source', '?')}{why}){fit}"


def budget_line(budget: dict, verdict: bool = True) -> str:
    """Whether the top-1 drop stayed within --max-acc-drop, and by how much; for a non-fp32 target, its files too.

    ``verdict=False``: the line without its leading "met: " or "MISSED by N
    points: " (a report card shows that word itself); a line about files that
    missed while the Keras model met it is all verdict and stays whole.
    """
    drop, limit, bound = budget["drop"], budget["max_drop"], budget.get("upper_bound")
    judged = drop if bound is None else bound
    error = budget.get("drop_error")
    extra = f", at most {bound:.2f} at {budget['confidence']:.0%} confidence" if bound is not None else ""
    extra += f" (standard error {error:.2f})" if error else ""
    unlabelled = budget.get("labels") == "original"  # no labels: a drop is the share of the original's answers changed

    def said(points: float, unit: str = "") -> str:
        return f"{points:.2f} points of the original's answers changed" if unlabelled else f"drop {points:.2f}{unit}"

    if unlabelled:
        extra += " (no labels: the top-1 drop is at most that)"
    worst, class_limit = budget.get("worst_class"), budget.get("max_class_drop")
    if worst is not None and not within_class_limit(worst["drop"], class_limit) and judged <= limit + 1e-9:
        name = f"'{worst['name']}'" if worst.get("name") else f"class {worst['class']}"
        head, detail = (f"MISSED by {name}", f"{said(drop, ' points')}{extra} within --max-acc-drop {limit:g}, but "
                        f"{name} lost {worst['drop']:.2f} points of recall against --max-class-drop {class_limit:g}")
    elif budget["met"]:
        head, detail = "met", f"{said(drop, ' points')}{extra} within --max-acc-drop {limit:g}"
        if class_limit is not None:
            detail += (f", every class within --max-class-drop {class_limit:g}"
                       + (f" (worst {max(worst['drop'], 0.0):.2f})" if worst is not None else ""))
    else:
        head, detail = f"MISSED by {judged - limit:.2f} points", f"{said(drop)}{extra} against --max-acc-drop {limit:g}"
    fixed = "" if budget.get("enforced", True) else " (a fixed plan: measured, not enforced)"
    files = budget.get("deliverables") or []
    each = "; ".join(f"{d['file']} {said(d['drop'])}, {'within' if d['met'] else 'over'}" for d in files)
    if files and budget["met"] and not all(d["met"] for d in files):
        head, detail = "", (f"MISSED by the {files[0]['precision']} files ({each}) against --max-acc-drop {limit:g}; "
                            f"the Keras model met it ({said(drop)})")
    elif files:
        detail += f"; its {files[0]['precision']} files: {each}"
    lead = f"{head}: " if head and verdict else ""
    return f"{lead}{detail}{fixed}, on {budget['validation_samples']:,} validation samples"


def nearest_miss(search: dict) -> tuple[int, int, dict] | tuple[int, None, None] | None:
    """``(published, k, round)``: the published rung's level (the original's: one past the ladder's last) and the
    least compressed round past it that missed the budget, the ``k``-th, or ``(published, None, None)`` when none
    did; None for a report from before the published level was kept. The ladder runs from the most compressed
    rung (level 0) up, so "past" is a lower level."""
    if "published_level" not in search:
        return None
    published = search["published_level"]
    if published is None:
        published = search.get("levels", 0)
    missed = [(k, r) for k, r in enumerate(search.get("rounds") or [], 1)
              if not r.get("met") and "level" in r and "drop" in r and r["level"] < published]
    if not missed:
        return published, None, None
    return (published, *max(missed, key=lambda kr: kr[1]["level"]))


def missed_rung_line(report: dict) -> str | None:
    """The least compressed rung past the published one whose round missed the budget (``nearest_miss``): what it
    would have removed and by how much it missed; None when no round past the published rung missed.

    A user deciding whether a little more budget (or fine-tuning) is worth it
    reads this: the default ResNet-style build run with ``--max-rounds 6`` on
    the AVX-512 EPYC (2026-12-07, docs/LOG.md) published 88.9 % of the params
    removed at 0.64 points, where its rounds 5 and 6 had reached 92.7 % and
    91.6 % and missed by 0.06 and 0.02 points, within one standard error
    (0.29).
    """
    budget = report.get("accuracy_budget") or {}
    nearest = nearest_miss(report.get("budget_search") or {})
    if nearest is None or nearest[2] is None or budget.get("max_drop") is None:
        return None
    _, k, r = nearest
    orig, limit, drop, error = report["original"], budget["max_drop"], r["drop"], r.get("drop_error")
    removed = (f"{pct_removed(orig['params'], r['params'])} of params and {pct_removed(orig['macs'], r['macs'])} of "
               f"MACs removed")
    said = f"drop {drop:.2f} points" + (f" (standard error {error:.2f})" if error else "")
    if drop > limit + 1e-9:
        how = f"{said}, {drop - limit:.2f} over --max-acc-drop {limit:g}"
        if error and drop - limit <= error:
            how += ", within one standard error"
    else:
        why = (f"on the drop's {budget['confidence']:.0%} bound (--confidence)" if budget.get("confidence") else
               "on a class's recall (--max-class-drop)" if r.get("class_drop") is not None else "")
        how = f"{said} within --max-acc-drop {limit:g}, but it missed{' ' + why if why else ''}"
    return f"round {k}'s {r['label']} ({removed}) missed: {how}"


def left_open(search: dict) -> str | None:
    """What a budget search that stopped on its rounds left untried: the rungs between the published one and the
    nearest miss past it (``nearest_miss``), or every rung past it when none missed; None when it stopped for
    another reason or nothing was left."""
    nearest = nearest_miss(search)
    if nearest is None or not str(search.get("stopped", "")).startswith("--max-rounds"):
        return None
    published, _, r = nearest
    if published - (-1 if r is None else r["level"]) <= 1:
        return None
    where = "past the published one" if r is None else "between the published one and the nearest miss"
    return f"rungs {where} untried (more rounds, or --time-budget, would search on)"


GAIN_ERRORS = 2.0  # a gain over the original larger than this many standard errors of the validation split is said


def gain_line(report: dict) -> str | None:
    """Said when the compressed model beats the original by more than ``GAIN_ERRORS`` standard errors on validation
    (the drop's paired error, ``train.paired``; a report from before it was kept: the original's top-1's own).

    Compression does not add accuracy: such a gain is fine-tuning training an
    under-trained original further on the user's data (a keras.applications
    MobileNetV2 of bench.foreign, trained 6 epochs: 81.9 -> 84.8 % at 21 % of its MACs removed),
    so the original fine-tuned the same way is the fair comparison. With
    ``--finetune none`` it is the starting point's repair doing it (an
    untrained keras.applications EfficientNetV2B0 went from 3.6 to 8.8 % by
    BatchNorm statistics re-estimated on 64 samples). None otherwise.
    """
    from lrfc.frontend.sanity import validation_resolution

    before, after = report["original"].get("accuracy"), report["compressed"].get("accuracy")
    samples = (report.get("accuracy_budget") or {}).get("validation_samples")
    if before is None or after is None or not samples:
        return None
    error = drop_error(report) or validation_resolution(before, samples)  # the paired error where the report has it
    gain = 100.0 * (after - before)
    if gain <= GAIN_ERRORS * error:
        return None
    trainer, baseline = "fine-tuning", "fine-tuned the same way"
    if (report.get("finetune") or {}).get("mode", "none") == "none":
        repair = report.get("repair") or {}
        done = [what for key, what in (("bn_reestimate", "BatchNorm statistics re-estimated"),
                                       ("reconstruct", "layers reconstructed")) if repair.get(key)]
        trainer = " and ".join(done) + " on the calibration data" if done else "the starting point's repair"
        baseline = "repaired the same way"
    return (f"the compressed model scores {gain:.2f} points above the original on validation (one standard error is "
            f"{error:.2f}): the original looks under-trained for this data and {trainer} trained it further, so the "
            f"gain is training, not compression; the original {baseline} is the fair baseline")


def test_split_line(report: dict) -> str | None:
    """Said when the budget was met on validation but the test split's drop is over it: how far apart the two
    halves are, against the standard error of their difference, and which one decides. None otherwise.

    The two are drops of one model on two disjoint halves of the data's test
    split, so they differ by noise of about 1.4 standard errors (200 random
    halvings of Fashion-MNIST's test images, the VGG-style default build's
    model: 0.39 points; ``train.paired``): a user who checks the model on
    their own held-out images sees the same.
    """
    budget = report.get("accuracy_budget") or {}
    before, after = report["original"].get("test_accuracy"), report["compressed"].get("test_accuracy")
    if not budget.get("met") or not budget.get("enforced", True) or before is None or after is None:
        return None
    drop, limit = 100.0 * (before - after), budget["max_drop"]
    if drop <= limit + 1e-9:
        return None
    errors = [budget.get("drop_error"), report["compressed"].get("test_drop_error")]
    apart = drop - budget["drop"]
    spread = ""
    if all(errors):
        both = math.hypot(*errors)
        spread = f", {apart / both:.1f} standard errors of their difference ({both:.2f})"
    bound = "" if budget.get("confidence") is not None else "; --confidence 0.9 holds the budget on the drop's bound"
    return (f"the test split's drop ({drop:.2f} points) is over --max-acc-drop {limit:g} while validation's "
            f"({budget['drop']:.2f}) met it: the halves differ by {apart:.2f} points{spread}; validation decides, "
            f"and other held-out images move the drop as much{bound}")


def baseline_line(run: dict) -> str | None:
    """One runtime's warning when the original at the other precision beats both lrfc models; else None.

    For a float target that is int8 of the original (the user's alternative); for an int8 target, the original
    at fp32 as it is."""
    other = baseline_of(run)
    if not other:
        return None
    precision, pair = other
    # each at its fastest thread count where several were timed, as ``fastest`` weighs them
    base, lrfc_other, lrfc = (fastest_p50(pair["original"]), fastest_p50(pair["compressed"]),
                              fastest_p50(run["compressed"]))
    if base >= min(lrfc_other, lrfc):
        return None
    choice = ("int8 quantization of the original alone is the faster choice" if precision == "int8"
              else f"the original at {precision}, as it is, is the faster choice")
    if pair["original"].get("verified") is False:
        choice = "it would be the faster choice, but its file failed the verification gate (timed, not published)"
    return (f"{run['runtime']}: the original at {precision} ({base:.3f} ms) is faster than lrfc's model at "
            f"{precision} ({lrfc_other:.3f} ms) and at {run['precision']} ({lrfc:.3f} ms); on this runtime, {choice}")


def fastest_line(run: dict) -> str | None:
    """Which of one runtime's timed files ran fastest, and when lrfc's int8 file did not pay; None without a baseline."""
    other = baseline_of(run)
    if not other:
        return None
    best = fastest(run)
    label = f"{'lrfc' if best['model'] == 'compressed' else 'the original'} at {best['precision']}"
    on = (f" on {best['threads']} thread{'s' * (best['threads'] != 1)}"
          if run["compressed"].get("p50_ms_by_threads") and best.get("threads") else "")
    line = f"{run['runtime']}: {best['name'] or label} ({label}), p50 {best['p50_ms']:.3f} ms{on}"
    if best.get("verified") is False:
        line += " (failed the verification gate: timed, not published)"
    quicker = best.get("faster_unverified")
    if quicker:
        who = "lrfc" if quicker["model"] == "compressed" else "the original"
        line += (f"; {quicker['name'] or who} ({who} at {quicker['precision']}, {quicker['p50_ms']:.3f} ms) ran faster "
                 "but failed the verification gate (timed, not published)")
    lrfc = {run["precision"]: run["compressed"], other[0]: other[1]["compressed"]}
    lrfc_int8 = lrfc.pop("int8", None)
    if lrfc_int8 is None or not lrfc:  # no int8 file, or no float one, to weigh against each other
        return line
    float_precision, lrfc_float = next(iter(lrfc.items()))
    if best["model"] == "compressed" and best["precision"] == "int8":
        if lrfc_int8.get("accuracy") is not None and lrfc_float.get("accuracy") is not None:
            line += (f"; top-1 {100 * lrfc_int8['accuracy']:.2f}% against {100 * lrfc_float['accuracy']:.2f}% at "
                     f"{float_precision} on the verification samples")
    elif fastest_p50(lrfc_int8) > fastest_p50(lrfc_float):
        line += (f"; lrfc's int8 file ({fastest_p50(lrfc_int8):.3f} ms) runs "
                 f"{fastest_p50(lrfc_int8) / fastest_p50(lrfc_float):.2f}x as long as its {float_precision} one on "
                 "this runtime: int8 does not pay here")
    return line


def threads_line(run: dict) -> str | None:
    """Each timed file's fastest thread count and its p50 there, and lrfc's speed-up with both at their fastest;
    None when the run timed one count."""
    counts = run["compressed"].get("p50_ms_by_threads")
    if not counts:
        return None
    files = [("original", run["precision"], run["original"]), ("lrfc", run["precision"], run["compressed"])]
    other = baseline_of(run)
    if other:
        files += [("original", other[0], other[1]["original"]), ("lrfc", other[0], other[1]["compressed"])]
    shown = ", ".join(f"{who} {precision} on {row['best_threads']} ({row['best_p50_ms']:.3f} ms)"
                      for who, precision, row in files if "best_threads" in row)
    profile = max(int(n) for n in counts)
    return (f"{run['runtime']}: each file's fastest of {', '.join(counts)} threads: {shown}; each on its fastest, "
            f"lrfc {run['precision']} is {run['ratios']['latency_p50_best_threads']:.2f}x as fast as the original "
            f"{run['precision']} ({run['ratios']['latency_p50']:.2f}x both on {profile}, the profile's)")


def timed_again_line(run: dict) -> str | None:
    """Why a run's files were timed twice (``benchmark.stage``), for the summary's ``check`` line and the page; None
    when they were timed once."""
    from lrfc.benchmark.stage import TIMED_AGAIN

    if (run.get("agreement") or {}).get("retimed"):
        return agreement_line(run)
    if run.get("timed_again"):
        return (f"{run['runtime']}: timed once more, as {TIMED_AGAIN.get(run['timed_again'], run['timed_again'])}; "
                "each file keeps the lower median of its two timings")
    return None


def agreement_line(run: dict) -> str:
    """How the final speed-up compares with the search's whole-model timing of the same plan, once re-timed."""
    a = run["agreement"]
    low, high = a["search"]
    expected = f"{low:.2f}x" if round(low, 2) == round(high, 2) else f"{low:.2f}-{high:.2f}x"
    verdict = ("now within the search's timing" if a["agrees"] else
               "still outside the search's timing: the machine was likely busy; only ratios timed side by side compare")
    return (f"{run['runtime']}: the search timed the published plan at {expected} the original; this benchmark read "
            f"{a['first']:.2f}x, timed again {a['final']:.2f}x ({verdict})")
