"""Weight-only rank rules, the comparators' way of picking ranks: VBMF (Kim et al. 2016) and an energy fraction.

``baseline_ranks`` gives a method's ranks from its kernel alone; ``lrfc build
--rank-selection vbmf|energy`` scores those single candidates instead of
walking the similarity grid.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import scipy.optimize

from lrfc.decompose import get
from lrfc.geometry import Geometry

RULES = ("vbmf", "energy")


def _psi0(x: float) -> float:
    return math.log1p(x) / x - 0.5


def _evb_tau_bar(alpha: float) -> float:
    """The zero of ``Psi0(tau) + Psi0(tau / alpha)`` above sqrt(alpha) (2.5129 at alpha = 1)."""
    lo = math.sqrt(alpha)
    return scipy.optimize.brentq(lambda t: _psi0(t) + _psi0(t / alpha), lo, 4.0 * (1.0 + lo), xtol=1e-12)


def _evb_tau(x: np.ndarray, alpha: float) -> np.ndarray:
    """tau(x; alpha) = ((x - 1 - alpha) + sqrt((x - 1 - alpha)^2 - 4 alpha)) / 2, for x > (1 + sqrt(alpha))^2."""
    b = x - (1.0 + alpha)
    return 0.5 * (b + np.sqrt(np.maximum(b * b - 4.0 * alpha, 0.0)))


def _evb_free_energy(sigma2: float, s2: np.ndarray, M: int, alpha: float, x_bar: float) -> float:
    """2F / M of the EVB solution at noise variance ``sigma2``, up to a constant.

    With ``x_h = gamma_h^2 / (M sigma^2)`` over all L singular values:
    ``L log sigma^2 + sum_h x_h + sum_{x_h > x_bar} (log(1 + tau_h) + alpha log(1 + tau_h / alpha) - tau_h)``;
    the last sum is what a kept component saves (negative exactly when x_h > x_bar).
    The constant ``-sum_h log gamma_h^2`` is dropped, so zero singular values are fine.
    """
    x = s2 / (M * sigma2)
    tau = _evb_tau(x[x > x_bar], alpha)
    return float(len(s2) * math.log(sigma2) + np.sum(x) + np.sum(np.log1p(tau) + alpha * np.log1p(tau / alpha) - tau))


def vbmf_rank(matrix: np.ndarray) -> int:
    """The rank of the empirical variational Bayesian MF solution, noise variance estimated.

    Nakajima, Sugiyama, Babacan and Tomioka (JMLR 2013), with the EVB threshold
    and the noise-variance bounds of Nakajima et al. (JMLR 2015). For ``Y``
    (L x M, L <= M, transposed if needed), alpha = L / M, singular values gamma_h:
    component h is kept iff ``gamma_h^2 > M sigma^2 x_bar`` with
    ``x_bar = (1 + tau_bar)(1 + alpha / tau_bar)`` and tau_bar the zero of
    ``Psi0(t) + Psi0(t / alpha)``, ``Psi0(x) = log(1 + x) / x - 1/2`` (solved
    exactly; Kim et al.'s code uses ``2.5129 sqrt(alpha)``, exact only at alpha = 1).
    sigma^2 minimises the EVB free energy over
    ``[max(gamma_{xi+1}^2 / (M x_bar), sum_{h>xi} gamma_h^2 / (M (L - xi))), ||Y||^2 / (LM)]``,
    ``xi = ceil(L / (1 + alpha)) - 1``. The free energy can have several local minima
    in sigma^2, so a log-spaced scan picks the basin and a bounded Brent search refines it.

    Returns:
        The number of kept components; 0 for pure noise (and for a zero matrix).
    """
    y = np.asarray(matrix, dtype=np.float64)
    if y.ndim != 2 or min(y.shape) < 1:
        raise ValueError(f"vbmf_rank needs a non-empty 2-D matrix, received shape {y.shape}")
    if y.shape[0] > y.shape[1]:
        y = y.T
    L, M = y.shape
    scale = math.sqrt(float(np.mean(y * y)))
    if not scale > 0:
        return 0
    s2 = scipy.linalg.svdvals(y / scale) ** 2  # scaling changes sigma^2, not the rank
    alpha = L / M
    tau_bar = _evb_tau_bar(alpha)
    x_bar = (1.0 + tau_bar) * (1.0 + alpha / tau_bar)
    xi = min(math.ceil(L / (1.0 + alpha)) - 1, L - 1)
    upper = float(np.sum(s2)) / (L * M)
    lower = max(s2[xi] / (M * x_bar), float(np.mean(s2[xi:])) / M)
    lower = min(max(lower, upper * 1e-12), upper)
    if lower < upper:
        energy = lambda v: _evb_free_energy(v, s2, M, alpha, x_bar)  # noqa: E731
        scan = np.geomspace(lower, upper, 64)
        k = int(np.argmin([energy(v) for v in scan]))
        a, b = scan[max(k - 1, 0)], scan[min(k + 1, len(scan) - 1)]
        sigma2 = float(scipy.optimize.minimize_scalar(energy, bounds=(a, b), method="bounded",
                                                      options={"xatol": 1e-10 * b}).x)
        if energy(scan[k]) < energy(sigma2):
            sigma2 = float(scan[k])
    else:
        sigma2 = upper
    return int(np.sum(s2 > M * sigma2 * x_bar))


def energy_rank(singular_values: np.ndarray, fraction: float) -> int:
    """The smallest k whose k largest singular values keep ``fraction`` of the sum of their squares.

    Returns 0 when every singular value is zero.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], received {fraction}")
    e = np.sort(np.asarray(singular_values, dtype=np.float64).ravel() ** 2)[::-1]
    total = float(np.sum(e))
    if not total > 0:
        return 0
    kept = np.cumsum(e)
    return int(min(np.searchsorted(kept, fraction * total * (1 - 1e-12)) + 1, len(e)))


def baseline_ranks(method: str, kernel: np.ndarray, geom: Geometry, rule: str, fraction: float = 0.9) -> tuple[int, ...]:
    """Ranks for ``method`` from the weights alone, as the comparators pick them.

    Each rank is the ``rule`` rank of one unfolding of the kernel; which
    unfoldings is the method's own business (its module's ``baseline``: e.g.
    Tucker's cin- and cout-mode unfoldings, on which Kim et al. 2016 use
    VBMF). Every rank is clipped to [1, max_ranks].

    Args:
        method: a ``decompose.METHODS`` name.
        kernel: HWIO (kh, kw, cin, cout) for a convolution; (in, out) or
            (1, 1, in, out) for a dense method.
        geom: the layer's geometry.
        rule: ``"vbmf"`` (``vbmf_rank``) or ``"energy"`` (``energy_rank`` at ``fraction``).
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}; received {rule!r}")
    mod = get(method)

    def rank_of(matrix: np.ndarray) -> int:
        return vbmf_rank(matrix) if rule == "vbmf" else energy_rank(scipy.linalg.svdvals(matrix), fraction)

    ranks = mod.baseline(np.asarray(kernel, dtype=np.float64), geom, rank_of)
    return tuple(min(max(int(r), 1), t) for r, t in zip(ranks, mod.max_ranks(geom)))
