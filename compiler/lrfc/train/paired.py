"""A top-1 drop measured on the same samples for both models: its standard error and its one-sided bound.

Both models are scored on the same samples, so the drop is the mean over
samples of the original's right minus the compressed model's (-1, 0 or 1
each) and its standard error is that of a paired mean: it grows with the
samples the two answer differently, not with either model's error rate. On
the Fashion-MNIST benchmark builds (5,000 validation samples, 2-4 % of them
answered differently) it is 0.2-0.3 points, a quarter of a 1-point budget.
Data the build never judged on sees another drop: the VGG-style default
build's model (0.86 points on validation) drops 0.90 on the other half of
the test images, and over 200 random halvings of those 10,000 images the
two halves' drops differ by 0.39 points (one standard deviation; docs/LOG.md,
2026-12-06).

``--confidence P`` holds the contract to the drop's one-sided ``P`` upper
bound, ``drop + z_P * error`` (a normal quantile), instead of the drop
itself: a budget meant to hold on a user's own held-out data.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

DISAGREE_GUESS = 0.03  # the share of samples a compressed model is taken to answer differently from the original
#                        before one is measured (the benchmark builds' published models: 2-4 % on validation)


def paired_error(n: int, total: int, squares: int) -> float:
    """One standard error, in points, of a paired drop from its tallies over ``n`` samples.

    ``total`` and ``squares`` sum the per-sample differences (the original's
    right minus the other model's: -1, 0 or 1) and their squares (the samples
    the two disagree on). 0 for fewer than two samples.
    """
    if n < 2:
        return 0.0
    variance = max(0.0, (squares - total * total / n) / (n - 1))
    return 100.0 * math.sqrt(variance / n)


def paired_drop(original_right, right) -> tuple[float, float]:
    """The drop in points (the original's top-1 minus the other's) and its standard error, from per-sample answers.

    Args:
        original_right: whether the original got each sample right (bools, one per sample).
        right: the same for the other model, on the same samples in the same order.
    """
    a, b = np.asarray(original_right, bool), np.asarray(right, bool)
    if a.shape != b.shape:
        raise ValueError(f"paired answers differ in length: {a.shape} and {b.shape}")
    diff = a.astype(np.int64) - b.astype(np.int64)
    n = len(diff)
    if n == 0:
        return 0.0, 0.0
    total, squares = int(diff.sum()), int(np.abs(diff).sum())
    return 100.0 * total / n, paired_error(n, total, squares)


def class_drops(y, original_right, right) -> dict[int, tuple[float, float, int]]:
    """Each class's recall drop in points, its standard error and its sample count: ``paired_drop`` on the
    samples of each label in ``y`` (the report's per-class table, ``--max-class-drop``)."""
    y = np.asarray(y).reshape(-1)
    a, b = np.asarray(original_right, bool), np.asarray(right, bool)
    out = {}
    for c in np.unique(y):
        mask = y == c
        out[int(c)] = (*paired_drop(a[mask], b[mask]), int(mask.sum()))
    return out


def within_class_limit(drop: float | None, limit: float | None) -> bool:
    """Whether a class's recall drop (points; None: no class) is within ``--max-class-drop`` (None: off)."""
    return limit is None or drop is None or drop <= limit + 1e-9


def worst_class(y, original_right, right) -> tuple[int, float] | None:
    """The class whose recall dropped most, and by how many points; None without samples."""
    drops = class_drops(y, original_right, right)
    if not drops:
        return None
    c = max(drops, key=lambda k: drops[k][0])
    return c, drops[c][0]


def z_of(confidence: float | None) -> float:
    """The normal quantile a one-sided ``confidence`` bound adds standard errors by: 0 without one."""
    if confidence is None:
        return 0.0
    return NormalDist().inv_cdf(confidence)


def error_guess(samples: int) -> float:
    """The standard error, in points, of a drop on ``samples`` paired samples at ``DISAGREE_GUESS`` of them
    answered differently: what ``--confidence`` expects before a model is measured."""
    return 100.0 * math.sqrt(DISAGREE_GUESS / max(1, samples))


def samples_for_margin(confidence: float, margin: float) -> int:
    """The paired samples on which ``--confidence``'s margin, at ``error_guess``, is ``margin`` points."""
    return math.ceil(DISAGREE_GUESS * (100.0 * z_of(confidence) / margin) ** 2) if margin > 0 else 0


def upper_bound(drop: float, error: float, confidence: float | None) -> float:
    """The drop's one-sided ``confidence`` upper bound in points (the drop itself without ``confidence``)."""
    return drop + z_of(confidence) * error
