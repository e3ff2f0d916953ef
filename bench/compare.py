"""The comparisons the benchmark document draws from quality rows: pure functions over result dicts.

A *row* is one build of ``bench.quality`` (its ``flags``, ``model``,
``accuracy_after``, ``drop_points``, ``macs_removed_pct``, ``finetune``,
``choices``). Methods are compared at matched accuracy on rows that had the
same fine-tuning effort (one round), never by extrapolating a front.
"""

from __future__ import annotations

DROP_LEVELS = (1.0, 2.0, 3.0, 5.0, 10.0)


def family(row: dict) -> str:
    """The rank rule and method set a row used: ``hybrid``, ``tucker``, ..., ``vbmf`` or ``energy``."""
    flags = row.get("flags", {})
    rule = flags.get("--rank-selection", "similarity")
    if rule != "similarity":
        return rule
    return flags.get("--methods", "hybrid")


def one_round(rows: dict) -> dict:
    """Rows searched and fine-tuned once (no recovery round, no given plan): equal effort per build."""
    return {n: r for n, r in rows.items()
            if r["finetune"].get("mode") == "oneshot" and r["finetune"].get("rounds") == 1
            and "--plan" not in r.get("flags", {}) and "--calib-samples" not in r.get("flags", {})}


def fronts(rows: dict, model: str) -> dict[str, list[tuple[float, float, str]]]:
    """Per family, ``(MACs kept %, accuracy %, row name)`` of the model's one-round rows, by MACs kept."""
    out: dict[str, list] = {}
    for name, r in one_round(rows).items():
        if r["model"] == model:
            point = (round(100 - r["macs_removed_pct"], 2), 100 * r["accuracy_after"], name)
            out.setdefault(family(r), []).append(point)
    return {f: sorted(points) for f, points in out.items()}


def best_at_drop(rows: dict, model: str, levels=DROP_LEVELS) -> dict[str, dict[float, tuple[float, str] | None]]:
    """Per family and drop level: the most MACs removed by a one-round row within that drop, and the row."""
    table: dict[str, dict] = {}
    for name, r in one_round(rows).items():
        if r["model"] != model:
            continue
        entry = table.setdefault(family(r), {level: None for level in levels})
        for level in levels:
            best = entry[level]
            if r["drop_points"] <= level and (best is None or r["macs_removed_pct"] > best[0]):
                entry[level] = (r["macs_removed_pct"], name)
    return table


def verdict(table: dict, challenger: str, level: float, rivals=None) -> str | None:
    """``wins``/``ties``/``loses`` (by more than 0.05 points of MACs removed) for ``challenger`` against the
    best of ``rivals`` (default: every other family) at ``level``: ``loses`` when only a rival has a build
    within that drop, None when no rival has one."""
    mine = (table.get(challenger) or {}).get(level)
    others = [v[level] for f, v in table.items() if f != challenger and (rivals is None or f in rivals)
              and v.get(level) is not None]
    if not others:
        return None
    if mine is None:  # a rival gets there and the challenger does not
        return "loses"
    best_other = max(o[0] for o in others)
    return "wins" if mine[0] > best_other + 0.05 else "ties" if mine[0] >= best_other - 0.05 else "loses"


def by_threshold(rows: dict, model: str) -> dict[str, dict[float, tuple[float, float, str]]]:
    """Per family and similarity threshold (0.92 when not given): (MACs removed %, drop points, row name)
    of the model's one-round similarity rows; the same threshold means the same per-layer bar."""
    out: dict[str, dict] = {}
    for name, r in one_round(rows).items():
        if r["model"] == model and family(r) not in ("vbmf", "energy"):
            t = float(r["flags"].get("--threshold", 0.92))
            out.setdefault(family(r), {})[t] = (r["macs_removed_pct"], r["drop_points"], name)
    return out


def plan_agreement(a: dict, b: dict) -> tuple[int, int, int]:
    """Two plans' ``choices`` (layer -> [method, ranks]): layers with the same method, the same method
    and ranks, and layers factorized in either."""
    layers = set(a) | set(b)
    same_method = sum(1 for n in layers if n in a and n in b and a[n][0] == b[n][0])
    same = sum(1 for n in layers if n in a and n in b and a[n] == b[n])
    return same_method, same, len(layers)
