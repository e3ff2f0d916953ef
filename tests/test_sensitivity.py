"""``search.sensitivity.along_front``: which front candidates get measured, and what the others are given."""

import math

import pytest

from lrfc.search.sensitivity import NEGLIGIBLE, SPREAD, along_front


def _measuring(effects):
    calls = []

    def measure(i):
        calls.append(i)
        return effects[i]

    return measure, calls


def test_a_front_whose_effects_stay_within_the_spread_is_measured_at_its_ends_only():
    sims = [0.90, 0.95, 0.97, 0.98, 0.99]
    truth = [0.02 * ((1 - s) / 0.1) ** 0.5 for s in sims]  # a power law in 1 - similarity: log-linear, so exact
    assert truth[0] / truth[-1] < SPREAD
    measure, calls = _measuring(truth)
    effects, measured = along_front(sims, measure)
    assert sorted(calls) == [0, 4] and measured == [True, False, False, False, True]
    assert effects == pytest.approx(truth, rel=1e-9)


def test_a_steep_front_is_split_until_every_interval_is_within_the_spread():
    sims = [0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99, 0.995, 0.999]
    truth = [2.0, 1.5, 0.9, 0.3, 0.08, 0.05, 0.01, 0.004, 0.0007]
    measure, calls = _measuring(truth)
    effects, measured = along_front(sims, measure)
    assert len(calls) == len(set(calls)) and 2 < len(calls) < len(sims)  # each measured once; some not at all
    assert [i for i, m in enumerate(measured) if m] == sorted(calls)
    for i, e in enumerate(effects):
        if measured[i]:
            assert e == truth[i]
        else:  # between its measured neighbours, which are within the spread of each other
            lo = max(j for j in range(i) if measured[j])
            hi = min(j for j in range(i + 1, len(sims)) if measured[j])
            assert truth[lo] <= SPREAD * truth[hi] and truth[hi] < e < truth[lo]


def test_an_unmeasurable_candidate_and_negligible_effects():
    sims = [0.6, 0.7, 0.8, 0.9, 0.99]
    measure, calls = _measuring([math.inf, 5.0, 1.0, 0.2, 0.01])
    effects, measured = along_front(sims, measure)
    assert effects[0] == math.inf and all(measured)  # an infinite end settles nothing: split down to neighbours
    tiny = [NEGLIGIBLE / 2, NEGLIGIBLE / 50, NEGLIGIBLE / 5000]
    measure, calls = _measuring(tiny)
    effects, measured = along_front([0.99, 0.999, 0.9999], measure)
    assert measured == [True, False, True] and 0 < effects[1] < NEGLIGIBLE
    for n in (0, 1, 2):
        measure, calls = _measuring([0.5, 0.1][:n])
        assert along_front([0.9, 0.99][:n], measure) == ([0.5, 0.1][:n], [True] * n) and sorted(calls) == list(range(n))
