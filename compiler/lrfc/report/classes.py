"""Per-class recall of the original and the published model on the validation split.

``--max-acc-drop`` holds top-1 over all validation samples, which a rare class
barely moves: a defect class of 2 % of the samples can lose half its recall
for a 1-point drop overall, and a model that now misses most defects still
meets the budget; and even on balanced classes the loss gathers where the
model was weakest (the VGG-style baseline at a 2.5-point drop: shirts lost 10
points of recall). The report keeps each class's recall before and after
(the share of its samples each model gets right, paired: the drop's standard
error from the same samples) and flags a class whose loss is both large
(``FLAG_POINTS``) and beyond the budget with 95 % confidence over all the
classes at once (Bonferroni: with 1,000 classes of 5 samples each, chance
alone would otherwise flag some), so a number that looks fine overall is
checked class by class. ``--max-class-drop`` makes it part of the contract
(``train.contract``: a round meets the budget only when every class's recall
drop is within it).
Without labels the classes are the original's answers and recall is the
share of them the published model keeps.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from lrfc.train.paired import class_drops

FLAG_POINTS = 5.0  # a class's recall loss below this is not flagged, however sure
FAMILY_ALPHA = 0.05  # the chance that any class is flagged by noise alone (split over the classes)


def class_recall(y, original_right, compressed_right, names: tuple[str, ...] | None, max_drop: float) -> dict | None:
    """``{"classes": [{class, name, samples, original, compressed, drop, drop_error, flagged}], "worst": index into
    classes or None, "flagged": [class]}``; None without the answers (a build that stopped before publishing)."""
    if y is None or original_right is None or compressed_right is None:
        return None
    y = np.asarray(y).reshape(-1)
    before, after = np.asarray(original_right, bool), np.asarray(compressed_right, bool)
    if not (len(y) == len(before) == len(after)) or not len(y):
        return None
    rows, drops = [], class_drops(y, before, after)
    z = NormalDist().inv_cdf(1 - FAMILY_ALPHA / len(drops))
    for label, (drop, error, samples) in drops.items():
        mask = y == label
        rows.append({"class": label, "name": names[label] if names and label < len(names) and names[label] else None,
                     "samples": samples, "original": round(float(before[mask].mean()), 6),
                     "compressed": round(float(after[mask].mean()), 6), "drop": round(drop, 4),
                     "drop_error": round(error, 4),
                     "flagged": bool(drop >= FLAG_POINTS and drop - z * error > max_drop)})
    worst = max(range(len(rows)), key=lambda i: (rows[i]["drop"], -rows[i]["samples"]))
    return {"classes": rows, "worst": worst if rows[worst]["drop"] > 0 else None,
            "flagged": [r["class"] for r in rows if r["flagged"]]}


def class_name(row: dict) -> str:
    return f"'{row['name']}'" if row.get("name") else f"class {row['class']}"


def classes_line(recall: dict, labels: str | None = None) -> str | None:
    """One line for the terminal: the class that lost most, and every flagged one; None when none lost any."""
    if not recall or recall.get("worst") is None:
        return None
    rows = recall["classes"]
    what = "answers kept" if labels == "original" else "recall"
    worst = rows[recall["worst"]]
    line = (f"worst of {len(rows)}: {class_name(worst)} {what} {100 * worst['original']:.1f}% -> "
            f"{100 * worst['compressed']:.1f}% ({worst['drop']:.1f} ± {worst['drop_error']:.1f} points, "
            f"{worst['samples']:,} samples)")
    flagged = [r for r in rows if r["flagged"]]
    if flagged:
        line += (f"; warning: {', '.join(class_name(r) for r in flagged[:3])}{' ...' if len(flagged) > 3 else ''} "
                 f"lost over {FLAG_POINTS:g} points of {what}{' each' if len(flagged) > 1 else ''}, beyond the "
                 f"budget at 95% confidence over all {len(rows)} classes: --max-acc-drop holds top-1 over all "
                 "samples, and one class (a rare one above all) can lose far more; check "
                 f"{'it' if len(flagged) == 1 else 'them'} before deploying, or hold every class with "
                 "--max-class-drop")
    return line
