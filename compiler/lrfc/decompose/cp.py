"""CP (canonical polyadic) factorization of a convolution.

Rank ``(R,)``: the kernel, read as ``W[c, i, j, o]``, becomes a sum of R
rank-one terms

    W[c, i, j, o] ~= sum_r A[c, r] H[i, r] V[j, r] O[r, o]

and the layer becomes 1x1 cin->R (A), depthwise kh x 1 (H; stride and
dilation of H, original padding), depthwise 1 x kw (V; stride and dilation of
W), 1x1 R->cout (O, with the bias and activation). TensorFlow pads each axis
independently, so the per-axis split is exact. A size-1 depthwise stage
(kh == 1, e.g. a Conv1D, or kw == 1) is a per-channel scale: it is folded into
A, so the chain never holds a trivial stage. A strided 2-D layer keeps the
two spatial factors in one kh x kw depthwise stage (``fused``: the kernel
``H[i, r] V[j, r]``, the layer's strides), since TensorFlow's CPU depthwise
kernel takes equal strides only; CP does not take a layer whose strides
differ between the axes (``unsupported``). An unstrided layer keeps the two
stages here (its parameters and MACs are CP's, and fine-tuning keeps each
term rank one); its TFLite and ONNX files run them as one kh x kw depthwise
operator (``lower.separable_depthwise``).
``Factors.arrays = (A, H, V, O)``, A (cin, R), H (kh, R), V (kw, R), O (R, cout).

CP is not exact at any fixed rank; ``max_ranks`` is a cap: the largest R
whose chain has no more parameters than the original kernel and, for a
spatial kernel, no more than ``RANK_CAP`` x max(cin, cout) terms. Past that
the fit costs O(R^3) per sweep (the R x R solves) and the terms degenerate
(a random 3x3x256x256 kernel: degeneracy 3.2 at R = 256, 9.2 at R = 1,000;
86 s for one ALS run at R = 1,000), while Tucker and TT already cover those
costs (R = 2 max(cin, cout) is about 4/9 of a square 3x3 layer's
parameters). The trained VGG- and ResNet-style plans choose CP ranks up to
1.02 max(cin, cout) (VGG conv3: 65 for 64 channels), well inside the cap.

Fitting: a 1x1 kernel's CP is a matrix fit, solved exactly by the truncated
SVD (``_pointwise``). Otherwise alternating least squares in numpy (not
tensorly's parafac, which is slow), started from the leading eigenvectors
of each mode's Gram (HOSVD; a mode with fewer than R of them is completed
with seeded Gaussian columns), at most ``MAX_ITER`` sweeps, stopping when the relative error improves by less
than ``TOL``. One sweep costs two contractions of the kernel with a factor
(cout first, then cin): 2 kh kw cin cout R multiply-adds. Deterministic:
the same kernel and rank give the same factors. ``prepare`` computes the
(whitened) tensor and the Gram eigenvectors once; ``truncate`` runs ALS.

Degeneracy bounded (Phan et al. 2020, "Stable low-rank tensor
decomposition"): on trained kernels plain ALS drifts toward terms of large
norm that cancel each other (VGG conv6 at rank 32: the terms' squared norms
sum to 24x the energy of the approximation they make), which float32 and
fine-tuning handle badly. ``degeneracy`` is that ratio; when ALS ends above
``DEGENERACY_BOUND`` it is run again with a norm penalty on the terms
(``lambda ||O||^2``, the other factors being unit columns) for each
``PENALTIES`` value in turn until the ratio is within the bound. On the VGG
baseline's kernels the first penalty that suffices (0.01-0.03) costs under
0.005 in relative error.

Bounded effort: a sweep costs about 4 R^3 (the solves) + 4 kh kw cin cout R
(the contractions) flops. Where the full schedule (MAX_ITER sweeps for the
first run and for each penalised rerun, each from the HOSVD start) fits in
``ALS_FLOPS``, it runs as it always did: every layer of the Fashion-MNIST
baselines (VGG conv6 at R = 256: 0.2 GFLOP a sweep). Past that
(``sweeps_for``), half the budget goes to the first run and the rest to the
penalised ones, each *continuing* from the previous factors rather than
restarting (never under ``MIN_SWEEPS`` and 2 sweeps): ResNet50's
512-channel layers at high rank (R = 1,024: 14 GFLOP a sweep), whose CP
candidates would otherwise take minutes each. On that path the sweep's two
contractions of the tensor with a factor run in float32
(``BOUNDED_CONTRACT``; the solves, Grams and the refit stay float64) and a
run stops at ``BOUNDED_TOL``, since float32 sums resolve the error to about
1e-6: a CP walk of keras.applications ResNet50's conv5_block1_2 (512
channels, 8 ranks up to 1,024, data-aware, one thread) 16.1 -> 11.7 s,
conv4_block1_2 8.4 -> 6.6 s, every similarity equal to 6 digits but one
(conv5 at R = 45: 0.990356 -> 0.990369) (one-off ``/tmp`` script, each way
twice, 2026-12-02 05:05 UTC).

Fits kept: ``truncate`` is deterministic, and one build asks for the same
fit many times (scoring, pricing, the sensitivity of each front candidate,
every rung of the budget search, the whole-model timings), so the last fits
are kept in memory by content (``FITS_KEPT`` bytes of factors, least
recently used out) and, once a build names a folder (``keep_fits_on_disk``:
the score cache's ``fits/``), every fit is also written there and read back
instead of refitted, by this build and the next. The demo model's latency
build spent a third of its price and factorize stages re-running ALS;
ResNet50's sensitivity stage re-ran every front candidate's fit.

Data-aware (``stats`` given): the output error per tap is
``||S (W[i,j] - W'[i,j])||`` with ``channel_cov = S S`` (see ``tucker``), so
ALS runs on the whitened tensor ``S W`` and the input factor is un-whitened,
``A = S^-1 A_white``. ALS cannot see correlations between taps, so the last
factor is then re-fit to the output on the full patch moment
``Sigma = input_cov``: with ``F`` (kh kw cin, R) the kernel of the first three
stages, ``E||W_mat^T p - O^T F^T p||^2`` is least at
``O = (F^T Sigma F)^-1 F^T Sigma W_mat`` (closed form; ``Sigma W_mat`` is
computed in ``prepare``).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import scipy.linalg

from lrfc.common import npyfile
from lrfc.decompose.base import Cost, Factors, LayerStats, LayerWeights, Stage
from lrfc.decompose.stats import whitener
from lrfc.decompose.common import check_ranks, top_eigvecs
from lrfc.decompose.conv_chain import chain_cost, channel_unfoldings, check_conv, separable_steps, step, to_stages
from lrfc.geometry import ConvGeometry

NAME = "cp"
KIND = "conv"
NUM_RANKS = 1

MAX_ITER = 60
RANK_CAP = 2                          # a spatial kernel's terms, at most, in units of max(cin, cout)
ALS_FLOPS = 100e9                     # one fit's sweeps, penalised reruns included, about
MIN_SWEEPS = 5
TOL = 1e-6
SEED = 0
DEGENERACY_BOUND = 3.0                # sum of the terms' squared norms / squared norm of their sum
PENALTIES = (0.01, 0.03, 0.1, 0.3, 1.0)  # lambda on ||O||^2 (A, H, V unit columns), tried in order
BOUNDED_CONTRACT = np.float32       # the bounded-effort path's contractions (module doc)
BOUNDED_TOL = 1e-5                    # its stopping rule: float32 sums resolve the error to about 1e-6
FITS_KEPT = 128 * 2**20               # bytes of recent fits kept in memory (frontend.memory_plan counts them)
FIT_VERSION = 2                       # bump when a fit changes meaning: files of older fits stop matching
                                      # (2: the bounded path's float32 contractions)
_fits: OrderedDict = OrderedDict()    # (prepared key, rank, max_iter, tol) -> Factors, most recent last
_held = [0]                           # bytes of the factors in _fits
_fit_dir: list = [None]               # the folder fits are written to and read from (keep_fits_on_disk)
_lock = threading.Lock()              # _fits and _held: the score stage runs walks in threads (search.fanout)


def keep_fits_on_disk(folder: Path | None) -> None:
    """Write every fit to ``folder`` (one ``.npz`` by content) and read it back instead of refitting; None: memory only."""
    _fit_dir[0] = None if folder is None else Path(folder)


def forget_fits() -> None:
    """Drop the fits kept in memory (the files stay): what a fresh process starts with."""
    with _lock:
        _fits.clear()
        _held[0] = 0


def max_ranks(geom: ConvGeometry) -> tuple[int]:
    """The largest R whose chain has at most the original's parameters and, spatially, at most 2 max(cin, cout) terms."""
    check_conv(geom)
    (kh, kw), cin, cout = geom.kernel, geom.cin, geom.cout
    cap = (kh * kw * cin * cout) // (cin + (kh * kw if fused(geom) else kh + kw) + cout)
    if kh * kw > 1:
        cap = min(cap, RANK_CAP * max(cin, cout))
    return (max(1, cap),)


def fused(geom: ConvGeometry) -> bool:
    """Whether the chain's spatial part is one kh x kw depthwise stage instead of kh x 1 then 1 x kw.

    A strided 2-D layer's separable stages would carry unequal strides ((s, 1)
    then (1, s)), and TensorFlow's CPU depthwise kernel refuses those unless
    oneDNN is on (it is by default only on CPUs with AVX-512: on an AVX2-only
    EPYC every such CP candidate failed to run). One kh x kw depthwise stage
    with the layer's own (equal) strides and padding is exact, and at stride s
    costs kh kw R MACs an output position against about (s kh + kw) R for the
    two stages (exactly that when the input is s times the output: the same
    at a 3x3 kernel and stride 2; the golden test's 13x13 -> 7x7 layer: 441
    against 420 per rank), in one operator fewer.
    The stride of a size-1 axis then stays on the depthwise stage too (the
    first 1x1 runs at the input's size), so that its strides are equal.
    """
    strided = any(s > 1 for s in geom.strides)
    return geom.spatial_rank == 2 and strided and max(geom.kernel) > 1


def unsupported(geom: ConvGeometry) -> str | None:
    """Why CP cannot factorize ``geom`` (None: it can): a 2-D layer whose strides differ between the axes."""
    if fused(geom) and geom.strides[0] != geom.strides[1]:
        return (f"strides {tuple(geom.strides)} differ between the axes, and a depthwise stage takes equal strides "
                "only (TensorFlow's CPU kernel)")
    return None


def _layers(geom: ConvGeometry, rank: int):
    if fused(geom):
        first = step(geom.in_hw, (1, 1))
        inner = [step(first.out_hw, geom.kernel, geom.strides, geom.dilation, geom.padding)]
        steps = [first, *inner, step(inner[0].out_hw, (1, 1))]
    else:
        steps = separable_steps(geom)
    inner = [("depthwise", st, rank, rank) for st in steps[1:-1]]
    return [("conv", steps[0], geom.cin, rank), *inner, ("conv", steps[-1], rank, geom.cout)]


def cost(geom: ConvGeometry, ranks) -> Cost:
    """Params and MACs: R (cin + kh + kw + cout) (+ bias), size-1 depthwise stages left out; R (cin + kh kw + cout)
    when ``fused``."""
    (rank,) = check_ranks(ranks, max_ranks(geom), NAME)
    return chain_cost(_layers(geom, rank), geom.cout if geom.use_bias else 0)


@dataclass(frozen=True)
class Prepared:
    """The tensor ALS fits (whitened when data-aware) and each mode's Gram eigenvectors."""

    tensor: np.ndarray             # (cin, kh, kw, cout), float64
    modes: tuple[np.ndarray, ...]  # eigenvectors per mode, largest first
    unwhiten: np.ndarray | None    # S^-1 (cin, cin) when data-aware
    sigma: np.ndarray | None       # input_cov (kh kw cin)^2 when data-aware: borrowed, not pickled (``attach``)
    sigma_w: np.ndarray | None     # input_cov @ W_mat (kh kw cin, cout) when data-aware
    bias: np.ndarray | None
    geom: ConvGeometry
    key: str = ""                  # content hash of what ALS and the refit read: the kept fits' key

    def __getstate__(self) -> dict:
        """Pickled without ``sigma``: it is the layer's own ``input_cov``, which every holder of the layer's task has.

        Kept, it was most of the score cache on disk: keras.applications
        ResNet50's 3x3 layers of the last stage hold a 4,608 x 4,608 moment
        (170 MB in float64) each, and the cold 64x64 build wrote 1.19 GB of
        CP preparations out of 2.0 GB in all.
        """
        return {**self.__dict__, "sigma": None}


def attach(prepared: Prepared, stats: LayerStats | None) -> Prepared:
    """``prepared`` with the moment it borrows (``sigma``) back from the layer's statistics; as it is if it has it."""
    if prepared.unwhiten is None or prepared.sigma is not None:
        return prepared
    if stats is None or stats.input_cov.shape != (prepared.sigma_w.shape[0],) * 2:
        raise ValueError("a data-aware CP preparation needs its layer's statistics back (attach)")
    return replace(prepared, sigma=np.asarray(stats.input_cov, np.float64))


def prepare(weights: LayerWeights, geom: ConvGeometry, stats: LayerStats | None = None) -> Prepared:
    """The (whitened) kernel as (cin, kh, kw, cout) and the HOSVD bases ALS starts from."""
    check_conv(geom, weights)
    kernel = np.asarray(weights.kernel, np.float64)
    x = kernel.transpose(2, 0, 1, 3)
    unwhiten = sigma = sigma_w = None
    if stats is not None:
        (kh, kw), cin = geom.kernel, geom.cin
        if stats.channel_cov.shape != (cin, cin) or stats.input_cov.shape != (kh * kw * cin,) * 2:
            raise ValueError(f"statistics do not fit a {kernel.shape} kernel: channel_cov {stats.channel_cov.shape}, "
                             f"input_cov {stats.input_cov.shape}, expected ({cin}, {cin}) and ({kh * kw * cin}, {kh * kw * cin})")
        s, unwhiten = whitener(stats.channel_cov)
        x = np.einsum("dc,cijo->dijo", s, x)
        sigma = np.asarray(stats.input_cov, np.float64)
        sigma_w = sigma @ kernel.reshape(-1, geom.cout)
    modes = []
    for axis in range(4):
        unf = np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)
        modes.append(top_eigvecs(unf @ unf.T))
    x = np.ascontiguousarray(x)
    digest = hashlib.blake2b(repr((x.shape, geom)).encode(), digest_size=16)
    for part in (x, sigma_w, unwhiten, weights.bias):  # sigma_w = Sigma W fingerprints Sigma for this kernel
        digest.update(b"-" if part is None else np.ascontiguousarray(part).tobytes())
    return Prepared(x, tuple(modes), unwhiten, sigma, sigma_w, weights.bias, geom, digest.hexdigest())


def _init(modes: tuple[np.ndarray, ...], rank: int) -> list[np.ndarray]:
    rng = np.random.default_rng(SEED)
    out = []
    for basis in modes:
        n = basis.shape[0]
        f = basis[:, :rank]
        if rank > f.shape[1]:
            f = np.concatenate([f, rng.standard_normal((n, rank - f.shape[1])) / np.sqrt(n)], axis=1)
        out.append(f)
    return out


def _solve(gram: np.ndarray, rhs: np.ndarray, penalty: float = 0.0) -> np.ndarray:
    """``rhs @ (gram + penalty I)^-1`` for a symmetric PSD gram (a tiny ridge keeps it invertible).

    By Cholesky: the ridged gram is positive definite, and its factorization
    costs half of LU's (a 1,024 x 1,024 gram, 512 right-hand sides, one
    thread: 45 against 67 ms, one-off, 2026-12-01 23:45 UTC; a sweep solves
    four). A gram too ill-conditioned for it goes to the pseudo-inverse, as
    LU's failures did."""
    ridge = 1e-10 * max(np.trace(gram) / len(gram), np.finfo(np.float64).tiny) + penalty
    g = gram + ridge * np.eye(len(gram))
    try:
        return scipy.linalg.cho_solve(scipy.linalg.cho_factor(g, check_finite=False), rhs.T, check_finite=False).T
    except np.linalg.LinAlgError:
        return rhs @ np.linalg.pinv(g)


def _normalise(f: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(f, axis=0)
    return f / np.where(norms > 0, norms, 1.0)


def degeneracy(factors) -> float:
    """Sum of the CP terms' squared norms over the squared norm of their sum: 1 for orthogonal terms, large when
    terms cancel. ``factors`` = (A, H, V, O) as ALS holds them: every factor (size, R), O (cout, R)."""
    grams = [f.T @ f for f in factors]
    total = float(np.sum(grams[0] * grams[1] * grams[2] * grams[3]))
    return float(np.sum(np.prod([np.diag(g) for g in grams], axis=0))) / max(total, np.finfo(np.float64).tiny)


def als(x: np.ndarray, factors: list[np.ndarray], max_iter: int = MAX_ITER, tol: float = TOL, penalty: float = 0.0,
        contract=np.float64):
    """CP-ALS on a 4-way tensor from the given factors; ``penalty`` weighs ``||O||^2`` (A, H, V stay unit columns).

    ``contract``: the precision of the two contractions of the tensor with a
    factor (the sweep's bulk); everything else stays float64.

    Returns:
        ``(factors, rel_error, sweeps)``; the scale sits in the last factor.
    """
    ci, kh, kw, co = x.shape
    a, h, v, o = factors
    rank = a.shape[1]
    norm_sq = float(np.sum(x * x))
    xc = x.astype(contract, copy=False)
    flat, rows = xc.reshape(ci * kh * kw, co), xc.reshape(ci, -1)
    err, sweeps = np.inf, 0
    g_h, g_v, g_o = h.T @ h, v.T @ v, o.T @ o                    # each factor's gram, renewed with the factor
    for sweeps in range(1, max_iter + 1):
        t = (flat @ o.astype(contract, copy=False)).reshape(ci, kh, kw, rank)   # X x_cout O
        t = t.astype(np.float64, copy=False)
        a = _normalise(_solve(g_h * g_v * g_o, np.einsum("cijr,ir,jr->cr", t, h, v)))
        g_a = a.T @ a
        h = _normalise(_solve(g_a * g_v * g_o, np.einsum("cijr,cr,jr->ir", t, a, v)))
        g_h = h.T @ h
        v = _normalise(_solve(g_a * g_h * g_o, np.einsum("cijr,cr,ir->jr", t, a, h)))
        g_v = v.T @ v
        u = (a.T.astype(contract, copy=False) @ rows).reshape(rank, kh, kw, co)  # X x_cin A
        u = u.astype(np.float64, copy=False)
        m_o = np.einsum("rijo,ir,jr->or", u, h, v)
        g_rest = g_a * g_h * g_v
        o = _solve(g_rest, m_o, penalty)
        g_o = o.T @ o
        fit_sq = norm_sq - 2 * np.sum(m_o * o) + np.sum(g_rest * g_o)
        new = np.sqrt(max(fit_sq, 0.0) / max(norm_sq, np.finfo(np.float64).tiny))
        if err - new < tol:
            err = min(err, new)
            break
        err = new
    return [a, h, v, o], float(err), sweeps


def _pointwise(prepared: Prepared, rank: int) -> list[np.ndarray]:
    """A 1x1 kernel's CP is a rank-R matrix fit, whose optimum is the truncated SVD (Eckart-Young): the cin
    mode's leading eigenvectors and the kernel projected on them. ALS only approaches it; the svd method's error
    is matched to 5 digits, weight-only and data-aware. (Not a time saver on ResNet50: its CP time is the 3x3 layers'.)"""
    cin, _, _, cout = prepared.tensor.shape
    a = prepared.modes[0][:, :rank]
    o = prepared.tensor.reshape(cin, cout).T @ a
    ones = np.ones((1, rank))
    return [a, ones, ones.copy(), o]


def _balance(factors: list[np.ndarray]) -> list[np.ndarray]:
    """Equal column norms across the factors of each term (keeps float32 chains well scaled)."""
    norms = np.stack([np.linalg.norm(f, axis=0) for f in factors])  # (4, R)
    scale = np.prod(norms, axis=0) ** (1.0 / len(factors))
    return [f * (scale / np.where(n > 0, n, 1.0)) for f, n in zip(factors, norms)]


def sweeps_for(shape: tuple[int, ...], rank: int) -> tuple[int, int, bool]:
    """Sweeps of the first ALS run and of each penalised one, and whether those continue (module doc)."""
    sweep = 4.0 * rank ** 3 + 4.0 * float(np.prod(shape)) * rank
    total = int(ALS_FLOPS // sweep)
    if total >= MAX_ITER * (1 + len(PENALTIES)):
        return MAX_ITER, MAX_ITER, False
    first = max(MIN_SWEEPS, min(MAX_ITER, total // 2))
    return first, max(2, (total - first) // len(PENALTIES)), True


def truncate(prepared: Prepared, ranks, max_iter: int = MAX_ITER, tol: float = TOL) -> Factors:
    """ALS at rank R from the prepared HOSVD start; the input factor un-whitened when data-aware (fits kept)."""
    (rank,) = check_ranks(ranks, max_ranks(prepared.geom), NAME)
    key = (prepared.key, rank, max_iter, tol)
    with _lock:
        if prepared.key and key in _fits:
            _fits.move_to_end(key)
            return _fits[key]
    factors = _read_fit(prepared, key)
    if factors is None:
        factors = _fit(prepared, rank, max_iter, tol)
        _write_fit(factors, key)
    if prepared.key:
        for arr in factors.arrays:
            arr.setflags(write=False)  # shared by every caller from now on
        with _lock:
            if key not in _fits:
                _held[0] += _bytes(factors)
            _fits[key] = factors
            while _held[0] > FITS_KEPT and len(_fits) > 1:  # a running total: thousands of small fits stay cheap
                _held[0] -= _bytes(_fits.popitem(last=False)[1])
    return factors


_MEMBERS = ("a", "h", "v", "o")  # a stored fit's arrays, in Factors.arrays order


def _fit_path(key) -> Path | None:
    folder = _fit_dir[0]
    if folder is None or not key[0]:
        return None
    prepared_key, rank, max_iter, tol = key
    return folder / f"cp{FIT_VERSION}-{prepared_key}-r{rank}-i{max_iter}-t{tol:g}.npz"


def _read_fit(prepared: Prepared, key) -> Factors | None:
    path = _fit_path(key)
    if path is None or not path.exists():
        return None
    try:
        arrays = tuple(npyfile.arrays(path, _MEMBERS).values())  # in the order asked
    except (OSError, ValueError, KeyError, EOFError):
        return None  # a damaged entry is refitted (and rewritten)
    return Factors(NAME, (key[1],), arrays, prepared.bias, prepared.unwhiten is not None)


def _write_fit(factors: Factors, key) -> None:
    path = _fit_path(key)
    if path is None:
        return
    from lrfc.common.atomic import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **dict(zip(_MEMBERS, factors.arrays)))


def _bytes(factors: Factors) -> int:
    return sum(a.nbytes for a in factors.arrays)


def _fit(prepared: Prepared, rank: int, max_iter: int, tol: float) -> Factors:
    if prepared.unwhiten is not None and prepared.sigma is None:
        raise ValueError("this CP preparation was unpickled without its statistics: attach() them first")
    if prepared.tensor.shape[1:3] == (1, 1):
        fs, penalty = _pointwise(prepared, rank), 0.0
    else:
        start = _init(prepared.modes, rank)
        first, more, continued = sweeps_for(prepared.tensor.shape, rank)
        contract, tol = (BOUNDED_CONTRACT, max(tol, BOUNDED_TOL)) if continued else (np.float64, tol)
        fs, _, _ = als(prepared.tensor, start, min(max_iter, first), tol, contract=contract)
        penalty = 0.0
        for penalty in PENALTIES if degeneracy(fs) > DEGENERACY_BOUND else ():
            fs, _, _ = als(prepared.tensor, fs if continued else start, min(max_iter, more), tol, penalty, contract)
            if degeneracy(fs) <= DEGENERACY_BOUND:
                break
    a, h, v, o = _balance(fs)
    if prepared.unwhiten is not None:
        a = prepared.unwhiten @ a
        f = np.einsum("cr,ir,jr->ijcr", a, h, v).reshape(-1, rank)
        gram = f.T @ prepared.sigma @ f  # the same relative penalty: each column's weight in the gram is its diagonal
        o = _solve(gram, prepared.sigma_w.T @ f, penalty * float(np.mean(np.diag(gram))))
    return Factors(NAME, (rank,), (a, h, v, o.T.copy()), prepared.bias, prepared.unwhiten is not None)


def decompose(weights: LayerWeights, geom: ConvGeometry, ranks, stats: LayerStats | None = None) -> Factors:
    """``prepare`` + ``truncate`` for one rank."""
    return truncate(prepare(weights, geom, stats), ranks)


def stages(factors: Factors, geom: ConvGeometry, activation: str | None = None) -> list[Stage]:
    """1x1 conv, depthwise kh x 1, depthwise 1 x kw, 1x1 conv (+bias, activation); size-1 scales folded into A.

    A strided 2-D layer (``fused``): 1x1 conv, one depthwise kh x kw with the layer's strides, 1x1 conv.
    """
    a, h, v, o = factors.arrays
    (kh, kw) = geom.kernel
    if fused(geom):  # one kh x kw depthwise stage: H[i, r] V[j, r]
        spatial = np.einsum("ir,jr->ijr", h, v)[:, :, :, None]
        return to_stages(_layers(geom, factors.ranks[0]), [a[None, None], spatial, o[None, None]], factors.bias,
                         activation)
    kernels = []
    if kh == 1:
        a = a * h[0]
    if kw == 1:
        a = a * v[0]
    kernels.append(a[None, None])
    if kh > 1:
        kernels.append(h[:, None, :, None])   # (kh, 1, R, 1)
    if kw > 1:
        kernels.append(v[None, :, :, None])   # (1, kw, R, 1)
    kernels.append(o[None, None])
    return to_stages(_layers(geom, factors.ranks[0]), kernels, factors.bias, activation)


def baseline(kernel, geom: ConvGeometry, rank_of) -> tuple[int]:
    """CP has no unfolding rank of its own: the usual heuristic takes the larger of the two Tucker ranks."""
    return (max(rank_of(m) for m in channel_unfoldings(kernel, geom, NAME)),)
