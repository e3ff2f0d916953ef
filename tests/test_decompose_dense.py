"""The dense methods (svd, qr, ttm) and the TTMatrixDense layer, against real Keras layers.

Fixed seeds throughout. Exactness and costs are checked on the Keras chains
the stages build; the data-aware fit on the hidden layers of a small MLP
trained on scikit-learn's digits (real inputs, held-out evaluation).
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
import scipy.linalg

from lrfc.common.quiet import import_keras

keras = import_keras()

from lrfc.decompose import LayerStats, LayerWeights, decompose, qr, svd, ttm  # noqa: E402
from lrfc.decompose.chain import chain_model  # noqa: E402
from lrfc.decompose.dense_chain import dense_view  # noqa: E402
from lrfc.decompose.ttm_layer import TTMatrixDense  # noqa: E402
from lrfc.geometry import ConvGeometry, DenseGeometry  # noqa: E402

DENSE = [svd, qr, ttm]
IDS = [m.NAME for m in DENSE]

# name -> (geometry without bias, Keras input shape); 13 inputs (prime) exercises ttm's size-1 modes
CASES = {
    "dense_rank2": (DenseGeometry(24, 20, use_bias=False), (24,)),
    "dense_rank3": (DenseGeometry(13, 20, tokens=5, use_bias=False), (5, 13)),
    "conv_1x1": (ConvGeometry((1, 1), 12, 18, (4, 5), (4, 5), use_bias=False), (4, 5, 12)),
}


def with_bias(geom, use_bias: bool):
    return dataclasses.replace(geom, use_bias=use_bias)


def random_layer(geom, seed: int = 0, decay: bool = False) -> LayerWeights:
    """Random kernel in Keras layout; ``decay`` gives it a decaying spectrum (ranks then matter)."""
    rng = np.random.default_rng(seed)
    view = dense_view(geom)
    w = rng.standard_normal((view.in_features, view.out_features))
    if decay:
        u, _, vt = np.linalg.svd(w, full_matrices=False)
        w = (u * 0.7 ** np.arange(len(vt))) @ vt
    kernel = w.reshape(1, 1, *w.shape) if isinstance(geom, ConvGeometry) else w
    bias = rng.standard_normal(view.out_features) if view.use_bias else None
    return LayerWeights(kernel.astype(np.float32), None if bias is None else bias.astype(np.float32))


def reference(geom, weights: LayerWeights, in_shape, activation):
    """The original layer as a real Keras Dense / 1x1 Conv2D model."""
    if isinstance(geom, ConvGeometry):
        layer = keras.layers.Conv2D(geom.cout, 1, use_bias=geom.use_bias, activation=activation)
    else:
        layer = keras.layers.Dense(geom.out_features, use_bias=geom.use_bias, activation=activation)
    model = keras.Sequential([keras.Input(in_shape), layer])
    layer.set_weights([weights.kernel] + ([weights.bias] if weights.bias is not None else []))
    return model


def run(model, x) -> np.ndarray:
    return np.asarray(model(x, training=False), dtype=np.float64)


def kernel_of(factors) -> np.ndarray:
    """The (in, out) kernel a method's factors represent, computed independently of Keras."""
    if factors.method == "ttm":
        w = np.einsum("xiap,pjbq,qkcy->ijkabc", *factors.arrays)
        return w.reshape(math.prod(w.shape[:3]), -1)
    a, b = factors.arrays
    return a @ b


def rel(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# --- exactness, cost -------------------------------------------------------------------------

@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("mod", DENSE, ids=IDS)
def test_exact_at_max_ranks(mod, case, use_bias):
    geom, in_shape = CASES[case]
    geom = with_bias(geom, use_bias)
    weights = random_layer(geom, seed=1)
    factors = decompose(mod.NAME, weights, geom, mod.max_ranks(geom))
    model = chain_model(in_shape, mod.stages(factors, geom, "tanh"), spatial_rank=2)
    x = np.random.default_rng(2).standard_normal((3, *in_shape)).astype(np.float32)
    ref = run(reference(geom, weights, in_shape, "tanh"), x)
    err = rel(run(model, x), ref)
    assert err < 1e-4, f"{mod.NAME} {case}: relative error {err:.2e} at ranks {mod.max_ranks(geom)}"
    kinds = {type(layer).__name__ for layer in model.layers[1:]}
    if mod is ttm:
        assert kinds == {"TTMatrixDense"}
    else:
        assert kinds == ({"Conv2D"} if isinstance(geom, ConvGeometry) else {"Dense"})


def ttm_reference(x: np.ndarray, cores) -> tuple[np.ndarray, int]:
    """The TT-matrix product by plain numpy matmuls, and the MACs per input vector those matmuls take.

    The state keeps, per vector, (i_k, remaining indices, a_{k-1}); each core
    contracts (i_k, a_{k-1}) and appends (j_k, a_k).
    """
    n = len(x)
    z = x.reshape(n, cores[0].shape[1], -1, 1)
    macs = 0
    for core in cores:
        rp, m, nk, r = core.shape
        z = z.reshape(n, m, -1, rp).transpose(0, 2, 1, 3)
        rows = z.shape[1]
        z = z.reshape(-1, m * rp) @ core.transpose(1, 0, 2, 3).reshape(m * rp, nk * r)
        macs += rows * (m * rp) * (nk * r)
        z = z.reshape(n, -1)
    return z.reshape(n, -1), macs


def counted(model) -> tuple[int, int]:
    """Params from Keras and MACs per sample counted from each built layer's weight shapes.

    A TTMatrixDense layer's MACs are those of ``ttm_reference`` on its cores
    (the test below checks that this contraction is what the layer computes).
    """
    macs = 0
    for layer in model.layers[1:]:
        tokens = math.prod(layer.input.shape[1:-1])
        if isinstance(layer, TTMatrixDense):
            probe = np.zeros((1, layer.in_features))
            _, per_vector = ttm_reference(probe, [np.asarray(c) for c in layer.cores])
            macs += tokens * per_vector
        else:
            k = np.asarray(layer.get_weights()[0])
            macs += tokens * k.shape[-2] * k.shape[-1]
    return model.count_params(), macs


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("mod", DENSE, ids=IDS)
def test_cost_matches_the_built_chain(mod, case):
    geom, in_shape = CASES[case]
    for use_bias in (True, False):
        g = with_bias(geom, use_bias)
        weights = random_layer(g, seed=3)
        prepared = mod.prepare(weights, g)
        top = mod.max_ranks(g)
        for ranks in {tuple(1 for _ in top), tuple(max(1, t // 2) for t in top), (top[0], *[1] * (len(top) - 1)), top}:
            model = chain_model(in_shape, mod.stages(mod.truncate(prepared, ranks), g), spatial_rank=2)
            c = mod.cost(g, ranks)
            assert (c.params, c.macs) == counted(model), f"{mod.NAME} {case} ranks {ranks}"


def test_ttm_layer_performs_the_counted_contraction():
    """The numpy matmul sequence whose MACs ``counted`` takes gives the Keras layer's output."""
    geom = DenseGeometry(24, 20, tokens=5)
    factors = decompose("ttm", random_layer(geom, seed=4), geom, (3, 4))
    model = chain_model((5, 24), ttm.stages(factors, geom), spatial_rank=2)
    x = np.random.default_rng(5).standard_normal((2, 5, 24)).astype(np.float32)
    y, per_vector = ttm_reference(x.reshape(-1, 24).astype(np.float64), factors.arrays)
    np.testing.assert_allclose(run(model, x), (y + factors.bias).reshape(2, 5, 20), rtol=1e-4, atol=1e-4)
    assert 5 * per_vector == ttm.cost(geom, (3, 4)).macs


# --- rank reuse, error vs rank ---------------------------------------------------------------

def independent_truncation(name: str, w: np.ndarray, ranks, geom) -> np.ndarray:
    """The rank-``ranks`` kernel computed from scratch, without the module's prepare."""
    if name == "svd":
        u, s, vt = np.linalg.svd(w, full_matrices=False)
        return (u[:, :ranks[0]] * s[:ranks[0]]) @ vt[:ranks[0]]
    if name == "qr":
        q = scipy.linalg.qr(w, mode="economic", pivoting=True)[0][:, :ranks[0]]
        return q @ (q.T @ w)
    (m1, m2, m3), (n1, n2, n3) = ttm.tt_modes(*w.shape)
    t = w.reshape(m1, m2, m3, n1, n2, n3).transpose(0, 3, 1, 4, 2, 5).reshape(m1 * n1, m2 * n2, m3 * n3)
    u = np.linalg.svd(t.reshape(m1 * n1, -1), full_matrices=False)[0][:, :ranks[0]]
    v = np.linalg.svd(t.reshape(-1, m3 * n3), full_matrices=False)[2][:ranks[1]].T
    t = np.einsum("ap,pq,qbc,cr,sr->abs", u, u.T, t, v, v)
    return t.reshape(m1, n1, m2, n2, m3, n3).transpose(0, 2, 4, 1, 3, 5).reshape(w.shape)


@pytest.mark.parametrize("mod", DENSE, ids=IDS)
def test_rank_reuse_matches_fresh_decompositions(mod):
    geom = DenseGeometry(48, 40)
    weights = random_layer(geom, seed=6, decay=True)
    prepared = mod.prepare(weights, geom)
    top = mod.max_ranks(geom)
    picks = [tuple(max(1, t // k) for t in top) for k in (5, 2, 1)] + [tuple(max(1, t // 5) for t in top)]
    for ranks in picks:
        reused = mod.truncate(prepared, ranks)
        fresh = decompose(mod.NAME, weights, geom, ranks)
        assert reused.ranks == fresh.ranks == ranks
        for a, b in zip(reused.arrays, fresh.arrays):
            np.testing.assert_array_equal(a, b)
        w = np.asarray(weights.kernel, np.float64)
        assert rel(kernel_of(reused), independent_truncation(mod.NAME, w, ranks, geom)) < 1e-8


@pytest.mark.parametrize("mod", DENSE, ids=IDS)
def test_error_falls_as_rank_grows(mod):
    geom = DenseGeometry(48, 40)
    weights = random_layer(geom, seed=7, decay=True)
    w = np.asarray(weights.kernel, np.float64)
    prepared = mod.prepare(weights, geom)
    top = mod.max_ranks(geom)
    sweeps = [[tuple(max(1, round(t * f)) for t in top) for f in np.linspace(0, 1, 9)]]
    if len(top) == 2:  # each rank alone, the other one at its maximum
        sweeps += [[(r, top[1]) for r in range(1, top[0] + 1)], [(top[0], r) for r in range(1, top[1] + 1)]]
    for sweep in sweeps:
        errors = [rel(kernel_of(mod.truncate(prepared, r)), w) for r in sweep]
        assert all(b <= a + 1e-9 for a, b in zip(errors, errors[1:])), f"{mod.NAME}: {list(zip(sweep, errors))}"
        assert errors[-1] < errors[0]
    assert rel(kernel_of(mod.truncate(prepared, top)), w) < 1e-10


# --- data-aware on real data -----------------------------------------------------------------

@pytest.fixture(scope="module")
def digits_mlp():
    """A 64-128-64-10 ReLU MLP trained a few seconds on digits; each layer's inputs, calibration / held-out."""
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    order = np.random.default_rng(0).permutation(len(x))
    calib, held = order[:1200], order[1200:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: a few seconds of training is the point
        mlp = MLPClassifier((128, 64), max_iter=25, learning_rate_init=5e-3, random_state=0).fit(x[calib], y[calib])
    assert mlp.score(x[held], y[held]) > 0.9
    inputs = [x]
    for w, b in zip(mlp.coefs_[:-1], mlp.intercepts_[:-1]):
        inputs.append(np.maximum(inputs[-1] @ w + b, 0.0))
    return mlp, inputs, calib, held


def cosine(a, b) -> float:
    a, b = a.ravel(), b.ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("layer", [0, 1], ids=["pixels_64x128", "hidden_128x64"])
def test_data_aware_beats_weight_only_on_digits(digits_mlp, layer):
    mlp, inputs, calib, held = digits_mlp
    w, b = mlp.coefs_[layer], mlp.intercepts_[layer]
    x_cal, x_held = inputs[layer][calib], inputs[layer][held]
    geom = DenseGeometry(*w.shape)
    weights = LayerWeights(w.astype(np.float32), b.astype(np.float32))
    stats = LayerStats(x_cal.T @ x_cal / len(x_cal), x_cal.T @ x_cal / len(x_cal), len(x_cal))
    target = np.maximum(x_held @ w + b, 0.0)  # the layer's output (ReLU) on held-out inputs

    def similarity(factors):
        return cosine(np.maximum(x_held @ kernel_of(factors) + b, 0.0), target)

    for mod in DENSE:
        plain, aware = mod.prepare(weights, geom), mod.prepare(weights, geom, stats)
        for frac in (0.1, 0.25, 0.5):
            ranks = tuple(max(1, round(t * frac)) for t in mod.max_ranks(geom))
            fw, fd = mod.truncate(plain, ranks), mod.truncate(aware, ranks)
            assert (fw.data_aware, fd.data_aware) == (False, True)
            sw, sd = similarity(fw), similarity(fd)
            print(f"layer {layer} {mod.NAME:4s} ranks {ranks}: weight-only {sw:.4f}  data-aware {sd:.4f}")
            assert sd >= sw, f"{mod.NAME} ranks {ranks}: data-aware {sd:.4f} < weight-only {sw:.4f}"
            if mod is svd and frac == 0.1:
                assert sd > sw + 0.01, f"svd at a low rank should gain clearly: {sd:.4f} vs {sw:.4f}"


def test_data_aware_without_signal_stays_weight_only():
    geom = DenseGeometry(8, 6)
    weights = random_layer(geom)
    zero = LayerStats(np.zeros((8, 8)), np.zeros((8, 8)), 10)
    for mod in DENSE:
        factors = mod.truncate(mod.prepare(weights, geom, zero), mod.max_ranks(geom))
        assert not factors.data_aware
        assert rel(kernel_of(factors), np.asarray(weights.kernel, np.float64)) < 1e-6


def test_data_aware_is_exact_at_full_rank_with_rank_deficient_inputs():
    rng = np.random.default_rng(8)
    geom = DenseGeometry(24, 20)
    weights = random_layer(geom, seed=8)
    x = rng.standard_normal((200, 5)) @ rng.standard_normal((5, 24))  # rank 5 of 24
    stats = LayerStats(x.T @ x / 200, x.T @ x / 200, 200)
    for mod in DENSE:
        factors = mod.truncate(mod.prepare(weights, geom, stats), mod.max_ranks(geom))
        assert factors.data_aware
        assert rel(kernel_of(factors), np.asarray(weights.kernel, np.float64)) < 1e-6


@pytest.mark.parametrize("samples", [40, 600])
def test_a_large_dense_moment_is_whitened_through_eigenvectors_and_gives_the_same_factors(monkeypatch, samples):
    """Above EXPLICIT_MAX inputs, a dense layer that saw fewer vectors than inputs keeps them as rows (a Dense after
    a Flatten: 12,544 inputs, 500 vectors) and is whitened from their thin SVD; one that saw more keeps its moment,
    whitened through eigh's eigenvectors. Either way S, S^-1 and svd's, qr's and ttm's factors are the ones the
    explicit whitener of the moment gives."""
    from lrfc.decompose import stats as stats_mod

    rng = np.random.default_rng(9)
    n = 300
    x = np.maximum(rng.standard_normal((samples, 60)) @ rng.standard_normal((60, n)), 0.0)  # rank <= 60
    x[:, :5] = 0.0  # dead inputs
    cov = x.T @ x / samples
    monkeypatch.setattr(stats_mod, "EXPLICIT_MAX", 64)
    held = stats_mod.dense_stats(x.astype(np.float32))
    assert held.samples == samples and (held.rows is not None) == (samples < n)
    np.testing.assert_allclose(stats_mod.moment(held), x.T @ x.astype(np.float32).astype(np.float64) / samples,
                               rtol=1e-6, atol=1e-6)
    stats = LayerStats(None, None, samples, x / np.sqrt(samples)) if samples < n else LayerStats(cov, cov, samples)
    s, s_inv = stats_mod.whitener(cov)
    m = rng.standard_normal((n, 7))
    white = stats_mod.row_whitening(stats.rows) if stats.rows is not None else stats_mod.whitening(cov)
    assert white.explicit is None and white.basis.shape == (n, min(samples, n))
    assert rel(white.times(m), s @ m) < 1e-9 and rel(white.inverse_times(m), s_inv @ m) < 1e-7
    geom = DenseGeometry(n, 12)
    weights = random_layer(geom, seed=9)
    for mod in (svd, qr, ttm):
        held_factors = mod.prepare(weights, geom, stats)
        monkeypatch.setattr(stats_mod, "EXPLICIT_MAX", 4096)
        explicit = mod.prepare(weights, geom, LayerStats(cov, cov, samples))
        monkeypatch.setattr(stats_mod, "EXPLICIT_MAX", 64)
        top = mod.max_ranks(geom)
        for ranks in (tuple(max(1, t // 4) for t in top), top):
            assert rel(kernel_of(mod.truncate(held_factors, ranks)), kernel_of(mod.truncate(explicit, ranks))) < 1e-7


def test_dense_rows_merge_until_they_reach_the_inputs_then_become_the_moment(monkeypatch):
    from lrfc.decompose import stats as stats_mod

    monkeypatch.setattr(stats_mod, "EXPLICIT_MAX", 16)
    x = np.random.default_rng(12).standard_normal((70, 40)).astype(np.float32)
    whole = x.astype(np.float64).T @ x.astype(np.float64) / 70
    merged = stats_mod.accumulate(stats_mod.dense_stats(x[:10]), stats_mod.dense_stats(x[10:30]))
    assert merged.rows is not None and merged.rows.shape == (30, 40) and merged.input_cov is None
    np.testing.assert_allclose(stats_mod.moment(merged), x[:30].astype(np.float64).T @ x[:30] / 30,
                               atol=1e-12)
    merged = stats_mod.accumulate(merged, stats_mod.dense_stats(x[30:]))  # 70 vectors of 40 inputs: a moment
    assert merged.rows is None and merged.channel_cov is merged.input_cov and merged.samples == 70
    np.testing.assert_allclose(merged.input_cov, whole, atol=1e-12)


def test_dense_statistics_merge_in_place_as_one_moment():
    """A dense layer's two moments are one array, merged once and in place, to the bit what the formula gives."""
    from lrfc.decompose.stats import accumulate, dense_stats

    x = np.random.default_rng(11).standard_normal((50, 40)).astype(np.float32)
    first, second = dense_stats(x[:20]), dense_stats(x[20:])
    assert first.channel_cov is first.input_cov
    want = 0.4 * first.input_cov + 0.6 * second.input_cov
    held = first.input_cov
    merged = accumulate(first, second)
    assert merged.input_cov is held and merged.channel_cov is held and merged.samples == 50
    assert np.array_equal(merged.input_cov, want)
    np.testing.assert_allclose(merged.input_cov, dense_stats(x).input_cov, atol=1e-12)


def test_a_small_moment_keeps_the_explicit_whitener_to_the_bit():
    from lrfc.decompose.stats import whitener, whitening

    rng = np.random.default_rng(10)
    x = rng.standard_normal((30, 50))
    cov = x.T @ x / 30
    white, (s, s_inv) = whitening(cov), whitener(cov)
    m = rng.standard_normal((50, 4))
    assert np.array_equal(white.times(m), s @ m) and np.array_equal(white.inverse_times(m), s_inv @ m)


# --- mode factorization, errors, the layer's serialization -----------------------------------

def test_factor_modes_are_balanced_and_deterministic():
    assert ttm.factor_modes(4096) == (16, 16, 16)
    assert ttm.factor_modes(1024) == (8, 8, 16)
    assert ttm.factor_modes(784) == (7, 8, 14)
    assert ttm.factor_modes(13) == (1, 1, 13)
    assert ttm.factor_modes(4096, 2) == (64, 64) and ttm.factor_modes(4096, 4) == (8, 8, 8, 8)
    for n in (1, 2, 10, 97, 360, 1000, 25088):
        for d in (2, 3, 4):
            modes = ttm.factor_modes(n, d)
            assert len(modes) == d and math.prod(modes) == n and list(modes) == sorted(modes)
    assert ttm.tt_modes(4096, 1024) == ((16, 16, 16), (8, 8, 16))


def test_bad_inputs_are_refused_with_the_received_value():
    dense = DenseGeometry(24, 20)
    weights = random_layer(dense)
    for mod in DENSE:
        prepared = mod.prepare(weights, dense)
        top = mod.max_ranks(dense)
        for bad in (tuple(0 for _ in top), tuple(t + 1 for t in top), (1,) * (len(top) + 1)):
            with pytest.raises(ValueError, match=r"received"):
                mod.truncate(prepared, bad)
        with pytest.raises(ValueError, match=r"kernel \(3, 3\)"):
            mod.max_ranks(ConvGeometry((3, 3), 12, 18, (4, 5), (2, 3)))
        with pytest.raises(ValueError, match=r"kernel shape \(20, 24\)"):
            mod.prepare(LayerWeights(weights.kernel.T, weights.bias), dense)
        with pytest.raises(ValueError, match=r"statistics of 5 inputs do not fit a dense layer with 24"):
            mod.prepare(weights, dense, LayerStats(np.eye(5), np.eye(5), 1))


def test_ttm_layer_saves_and_loads_as_keras(tmp_path):
    geom = DenseGeometry(24, 20, tokens=5)
    factors = decompose("ttm", random_layer(geom, seed=9), geom, (3, 5))
    (stage,) = ttm.stages(factors, geom, "relu")
    inp = keras.Input((5, 24))
    ttm_layer = TTMatrixDense(stage.meta["in_modes"], stage.meta["out_modes"], factors.ranks, use_bias=True,
                              activation="relu", name="ttm")
    out = keras.layers.Dense(3, name="head")(ttm_layer(inp))
    ttm_layer.set_weights(list(stage.weights))
    model = keras.Model(inp, out)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    x = np.random.default_rng(10).standard_normal((4, 5, 24)).astype(np.float32)
    np.testing.assert_array_equal(run(model, x), run(loaded, x))
    assert isinstance(loaded.get_layer("ttm"), TTMatrixDense)
    assert loaded.get_layer("ttm").get_config()["ranks"] == [3, 5]
