"""The convolution methods (tucker, cp, tt) and input statistics, against real Keras layers.

Fixed seeds throughout. Exactness and costs are checked on the Keras chains
the stages build, data-aware fitting on a small conv net trained on
scikit-learn's digits.
"""

from __future__ import annotations

import numpy as np
import pytest

from lrfc.common.quiet import import_keras

keras = import_keras()  # a hard dependency: never skipped

from lrfc.decompose import METHODS, Cost, LayerWeights, cp, tt, tucker  # noqa: E402
from lrfc.decompose.chain import chain_model  # noqa: E402
from lrfc.decompose.stats import accumulate, conv_stats, dense_stats, patches  # noqa: E402
from lrfc.geometry import ConvGeometry, conv_out_len  # noqa: E402

CIN, COUT = 6, 10


def geometry(kernel, in_hw=(11, 11), strides=(1, 1), dilation=(1, 1), padding="same", use_bias=True,
             spatial_rank=2, cin=CIN, cout=COUT) -> ConvGeometry:
    out = tuple(conv_out_len(n, k, s, d, padding) for n, k, s, d in zip(in_hw, kernel, strides, dilation))
    return ConvGeometry(kernel=tuple(kernel), cin=cin, cout=cout, in_hw=tuple(in_hw), out_hw=out,
                        strides=tuple(strides), dilation=tuple(dilation), padding=padding, use_bias=use_bias,
                        spatial_rank=spatial_rank)


def random_layer(geom: ConvGeometry, seed: int = 0) -> LayerWeights:
    rng = np.random.default_rng(seed)
    kernel = rng.standard_normal((*geom.kernel, geom.cin, geom.cout)).astype(np.float32)
    bias = rng.standard_normal(geom.cout).astype(np.float32) if geom.use_bias else None
    return LayerWeights(kernel, bias)


def input_shape(geom: ConvGeometry) -> tuple[int, ...]:
    return (geom.in_hw[1], geom.cin) if geom.spatial_rank == 1 else (*geom.in_hw, geom.cin)


def reference(geom: ConvGeometry, weights: LayerWeights, activation="relu"):
    """The original layer as a real Keras Conv2D / Conv1D model."""
    if geom.spatial_rank == 1:
        layer = keras.layers.Conv1D(geom.cout, geom.kernel[1], strides=geom.strides[1], dilation_rate=geom.dilation[1],
                                    padding=geom.padding, use_bias=geom.use_bias, activation=activation)
        kernel = weights.kernel[0]
    else:
        layer = keras.layers.Conv2D(geom.cout, geom.kernel, strides=geom.strides, dilation_rate=geom.dilation,
                                    padding=geom.padding, use_bias=geom.use_bias, activation=activation)
        kernel = weights.kernel
    model = keras.Sequential([keras.Input(input_shape(geom)), layer])
    layer.set_weights([kernel] + ([weights.bias] if geom.use_bias else []))
    return model


def run(model, x) -> np.ndarray:
    return np.asarray(model(x, training=False), dtype=np.float64)


def rel_err(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def random_input(geom: ConvGeometry, n: int = 2, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *input_shape(geom))).astype(np.float32)


def keras_macs(model) -> int:
    """MACs of a built chain, from each layer's own output shape."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        positions = int(np.prod(layer.output.shape[1:-1]))
        kernel = layer.get_weights()[0]
        if isinstance(layer, (keras.layers.DepthwiseConv2D, keras.layers.DepthwiseConv1D)):
            total += positions * int(np.prod(kernel.shape[:-1]))
        else:
            total += positions * int(kernel.size)
    return total


def reconstruct(factors) -> np.ndarray:
    """The HWIO kernel a method's factors stand for."""
    arr = factors.arrays
    if factors.method == "tucker":
        return np.einsum("ca,ijab,bo->ijco", *arr)
    if factors.method == "tt":
        return np.einsum("ca,aib,bje,eo->ijco", *arr)
    return np.einsum("cr,ir,jr,ro->ijco", *arr)


# Geometries the exactness, CP-chain and cost tests share (kernel, strides, dilation, padding, bias, in_hw, 1-D).
GEOMS = {
    "3x3-s1-same": geometry((3, 3)),
    "3x3-s2-same": geometry((3, 3), strides=(2, 2)),
    "3x3-s2-valid-nobias": geometry((3, 3), in_hw=(10, 9), strides=(2, 2), padding="valid", use_bias=False),
    "3x3-d2-valid": geometry((3, 3), dilation=(2, 2), padding="valid"),
    "3x3-d2-same-nobias": geometry((3, 3), dilation=(2, 2), use_bias=False),
    "5x5-s2-valid": geometry((5, 5), strides=(2, 2), padding="valid"),
    "1x7-s1-same-nobias": geometry((1, 7), use_bias=False),
    "7x1-s2-valid": geometry((7, 1), in_hw=(13, 8), strides=(2, 2), padding="valid"),
    "1x1-s1": geometry((1, 1)),
    "1x1-s2-same": geometry((1, 1), strides=(2, 2)),
    "conv1d-k5-s2-same": geometry((1, 5), in_hw=(1, 17), strides=(1, 2), spatial_rank=1),
    "conv1d-k3-d2-valid-nobias": geometry((1, 3), in_hw=(1, 16), dilation=(1, 2), padding="valid",
                                          use_bias=False, spatial_rank=1),
}


# --- exactness --------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["tucker", "tt"])
@pytest.mark.parametrize("name", list(GEOMS))
def test_exact_at_max_ranks(method, name):
    geom = GEOMS[name]
    mod, weights = METHODS[method], random_layer(geom)
    factors = mod.decompose(weights, geom, mod.max_ranks(geom))
    chain = chain_model(input_shape(geom), mod.stages(factors, geom, "relu"), geom.spatial_rank)
    x = random_input(geom)
    assert rel_err(run(chain, x), run(reference(geom, weights), x)) < 1e-4


@pytest.mark.parametrize("method", ["tucker", "tt"])
def test_data_aware_exact_at_max_ranks(method):
    geom = GEOMS["3x3-s2-same"]
    mod, weights = METHODS[method], random_layer(geom)
    x = random_input(geom, n=4) ** 2  # non-white, correlated statistics
    factors = mod.decompose(weights, geom, mod.max_ranks(geom), conv_stats(x, geom))
    assert factors.data_aware
    chain = chain_model(input_shape(geom), mod.stages(factors, geom, "relu"), geom.spatial_rank)
    assert rel_err(run(chain, x), run(reference(geom, weights), x)) < 1e-4


@pytest.mark.parametrize("name", ["3x3-s2-same", "3x3-d2-valid", "1x7-s1-same-nobias", "7x1-s2-valid",
                                  "1x1-s2-same", "conv1d-k5-s2-same"])
def test_cp_chain_computes_its_factors(name):
    """The CP chain (depthwise split, folded size-1 stages; one depthwise stage when strided) equals a conv with the
    CP kernel, and no depthwise stage carries unequal strides (TensorFlow's Eigen CPU kernel refuses them)."""
    geom = GEOMS[name]
    weights = random_layer(geom)
    factors = cp.decompose(weights, geom, (3,))
    stages = cp.stages(factors, geom, "relu")
    chain = chain_model(input_shape(geom), stages, geom.spatial_rank)
    approx = LayerWeights(reconstruct(factors).astype(np.float32), weights.bias)
    x = random_input(geom)
    assert rel_err(run(chain, x), run(reference(geom, approx), x)) < 1e-4
    strided = geom.spatial_rank == 2 and max(geom.strides) > 1 and max(geom.kernel) > 1
    assert cp.fused(geom) == strided
    spatial = 1 if strided else (geom.kernel[0] > 1) + (geom.kernel[1] > 1)
    assert len(chain.layers) - 1 == len(stages) == 2 + spatial
    assert all(s.strides[0] == s.strides[1] for s in stages if s.kind == "depthwise" and geom.spatial_rank == 2)


def test_cp_leaves_out_a_layer_whose_strides_differ_between_axes():
    """A 3x3 conv at strides (2, 1): no depthwise stage could carry them, so CP is not among its methods."""
    from lrfc.decompose import applicable

    geom = geometry((3, 3), in_hw=(12, 12), strides=(2, 1))
    assert "strides (2, 1)" in cp.unsupported(geom)
    assert applicable("conv", geom) == ("tucker", "tt")
    assert applicable("conv", GEOMS["3x3-s2-same"]) == ("tucker", "cp", "tt")


# --- CP quality ---------------------------------------------------------------------------------

def test_cp_error_falls_with_rank():
    geom = geometry((3, 3), cin=16, cout=16, use_bias=False)
    weights = random_layer(geom, seed=3)
    prepared = cp.prepare(weights, geom)
    errs = [rel_err(reconstruct(cp.truncate(prepared, (r,))), weights.kernel) for r in (2, 8, 32)]
    print(f"\ncp relative error at ranks 2, 8, 32 on a random 3x3x16x16 kernel: {errs}")
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 0.6


def test_cp_degeneracy_is_bounded_at_little_cost():
    """A tensor of border rank 2 (rank 4): ALS at rank 3 drifts to large terms that cancel; the bound stops it."""
    rng = np.random.default_rng(0)
    a, b = ([rng.standard_normal(n) for n in (8, 3, 3, 8)] for _ in range(2))
    x = sum(np.einsum("c,i,j,o->cijo", *[b[k] if k == m else a[k] for k in range(4)]) for m in range(4))
    kernel = x.transpose(1, 2, 0, 3)  # (kh, kw, cin, cout)
    geom = geometry((3, 3), cin=8, cout=8, use_bias=False)
    prepared = cp.prepare(LayerWeights(kernel), geom)
    free, free_err, _ = cp.als(prepared.tensor, cp._init(prepared.modes, 3))
    # the case is real: unbounded ALS degenerates past the bound (9.x on an AVX-512 EPYC, 8.0 on an AVX2 one:
    # rounding steers a degenerate trajectory)
    assert cp.degeneracy(free) > cp.DEGENERACY_BOUND
    factors = cp.truncate(prepared, (3,))
    a_, h_, v_, o_ = factors.arrays
    assert cp.degeneracy((a_, h_, v_, o_.T)) <= cp.DEGENERACY_BOUND
    # the price: the cancelling terms' last bit of fit (0.7% -> 8.6% relative error here; 99.3% of the energy kept)
    assert free_err < rel_err(reconstruct(factors), kernel) < 0.1
    # a kernel ALS fits without degenerating (rank 4 plus noise) is left exactly as ALS fit it: no penalty
    plain = np.einsum("ir,jr,cr,or->ijco", *(rng.standard_normal((n, 4)) for n in (3, 3, 16, 16)))
    plain += 0.1 * rng.standard_normal(plain.shape)
    p2 = cp.prepare(LayerWeights(plain), geometry((3, 3), cin=16, cout=16, use_bias=False))
    unbounded, _, _ = cp.als(p2.tensor, cp._init(p2.modes, 4))
    assert cp.degeneracy(unbounded) <= cp.DEGENERACY_BOUND
    np.testing.assert_allclose(reconstruct(cp.truncate(p2, (4,))), np.einsum("cr,ir,jr,or->ijco", *unbounded), atol=1e-9)


@pytest.mark.filterwarnings("ignore:Trying to compute SVD")
def test_cp_recovers_low_rank_kernel_and_matches_tensorly():
    rng = np.random.default_rng(3)
    kernel = np.einsum("ir,jr,cr,or->ijco", *(rng.standard_normal((n, 4)) for n in (3, 3, 8, 12)))
    geom = geometry((3, 3), cin=8, cout=12, use_bias=False)
    prepared = cp.prepare(LayerWeights(kernel), geom)
    assert rel_err(reconstruct(cp.truncate(prepared, (4,))), kernel) < 1e-4
    assert rel_err(reconstruct(cp.truncate(prepared, (6,))), kernel) < 1e-3

    import tensorly as tl
    from tensorly.decomposition import parafac

    noisy = random_layer(geometry((3, 3), cin=16, cout=16), seed=1).kernel.astype(np.float64)
    ours = rel_err(reconstruct(cp.decompose(LayerWeights(noisy), geometry((3, 3), cin=16, cout=16, use_bias=False),
                                            (12,))), noisy)
    cp_tensor = parafac(tl.tensor(noisy.transpose(2, 0, 1, 3)), 12, init="svd", n_iter_max=200, tol=1e-8)
    theirs = rel_err(tl.cp_to_tensor(cp_tensor).transpose(1, 2, 0, 3), noisy)
    print(f"\ncp rank 12 relative error: ours {ours:.4f}, tensorly parafac {theirs:.4f}")
    assert ours < 1.02 * theirs


# --- cost ---------------------------------------------------------------------------------------

COST_CASES = [
    ("tucker", "3x3-s2-same", (4, 7)), ("tucker", "3x3-d2-valid", (2, 3)), ("tucker", "5x5-s2-valid", (6, 10)),
    ("tucker", "1x1-s2-same", (3, 5)), ("tucker", "conv1d-k5-s2-same", (4, 4)),
    ("tt", "3x3-s2-same", (4, 7, 5)), ("tt", "3x3-s2-valid-nobias", (2, 3, 4)), ("tt", "3x3-d2-valid", (6, 18, 10)),
    ("tt", "1x7-s1-same-nobias", (3, 5, 4)), ("tt", "7x1-s2-valid", (5, 9, 7)), ("tt", "conv1d-k5-s2-same", (2, 4, 6)),
    ("tt", "1x1-s2-same", (4, 4, 2)),
    ("cp", "3x3-s2-same", (5,)), ("cp", "3x3-s2-valid-nobias", (2,)), ("cp", "3x3-d2-valid", (9,)),
    ("cp", "1x7-s1-same-nobias", (4,)), ("cp", "7x1-s2-valid", (6,)), ("cp", "conv1d-k3-d2-valid-nobias", (3,)),
    ("cp", "1x1-s2-same", (2,)),
]


@pytest.mark.parametrize("method,name,ranks", COST_CASES)
def test_cost_matches_built_chain(method, name, ranks):
    geom, mod = GEOMS[name], METHODS[method]
    factors = mod.decompose(random_layer(geom), geom, ranks)
    chain = chain_model(input_shape(geom), mod.stages(factors, geom, None), geom.spatial_rank)
    got = mod.cost(geom, ranks)
    assert (got.params, got.macs) == (chain.count_params(), keras_macs(chain))
    assert chain.output.shape[1:] == (*(geom.out_hw[1:] if geom.spatial_rank == 1 else geom.out_hw), geom.cout)


def test_cost_at_paper_formulas():
    geom = geometry((3, 3), in_hw=(8, 8), cin=32, cout=64, use_bias=False)
    assert tucker.cost(geom, (8, 16)).params == 32 * 8 + 9 * 8 * 16 + 16 * 64
    assert cp.cost(geom, (12,)).params == 12 * (32 + 3 + 3 + 64)
    strided = geometry((3, 3), in_hw=(12, 12), strides=(2, 2), cin=32, cout=64, use_bias=False)
    # 1x1 at 12x12, one 3x3 depthwise stage at stride 2 (6x6: what a 3x1 at 6x12 and a 1x3 at 6x6 cost together), 1x1
    assert cp.cost(strided, (12,)) == Cost(12 * (32 + 9 + 64), 12 * 144 * 32 + 12 * 36 * 9 + 12 * 36 * 64)
    assert tt.cost(geom, (8, 16, 12)).params == 32 * 8 + 3 * 8 * 16 + 3 * 16 * 12 + 12 * 64
    assert tucker.cost(geom, tucker.max_ranks(geom)).params > geom.params  # exact, not smaller
    assert cp.cost(geom, cp.max_ranks(geom)).params <= geom.params         # the cap: no larger than the layer


# --- rank reuse ---------------------------------------------------------------------------------

@pytest.mark.parametrize("method,ranks", [("tucker", [(2, 3), (5, 9), (6, 10)]),
                                          ("tt", [(2, 4, 3), (5, 12, 8), (6, 18, 10)])])
def test_truncate_reuses_prepare(method, ranks, monkeypatch):
    geom = GEOMS["3x3-s1-same"]
    mod, weights = METHODS[method], random_layer(geom)
    stats = conv_stats(random_input(geom, n=3) ** 2, geom)
    for st in (None, stats):
        prepared = mod.prepare(weights, geom, st)
        fresh = [reconstruct(mod.decompose(weights, geom, r, st)) for r in ranks]
        with monkeypatch.context() as m:  # truncate must not redo the channel eigendecompositions
            m.setattr(np.linalg, "eigh", lambda *a, **k: pytest.fail("eigh called in truncate"))
            reused = [reconstruct(mod.truncate(prepared, r)) for r in ranks]
        for a, b in zip(reused, fresh):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_tucker_truncation_is_hosvd_and_close_to_hooi():
    import tensorly as tl
    from tensorly.decomposition import partial_tucker

    geom = geometry((3, 3), cin=16, cout=16, use_bias=False)
    kernel = random_layer(geom, seed=3).kernel.astype(np.float64)
    got = reconstruct(tucker.decompose(LayerWeights(kernel), geom, (4, 6)))
    # HOSVD from scratch: leading singular vectors of the cin and cout unfoldings, projected
    u = np.linalg.svd(kernel.transpose(2, 0, 1, 3).reshape(16, -1))[0][:, :4]
    v = np.linalg.svd(kernel.reshape(-1, 16).T)[0][:, :6]
    np.testing.assert_allclose(got, np.einsum("ijco,ca,da,ob,eb->ijde", kernel, u, u, v, v), atol=1e-10)
    (core, facs), _ = partial_tucker(tl.tensor(kernel), rank=[4, 6], modes=[2, 3], n_iter_max=100)
    hooi = rel_err(tl.tenalg.multi_mode_dot(core, facs, modes=[2, 3]), kernel)
    print(f"\ntucker (4, 6) relative error: HOSVD {rel_err(got, kernel):.4f}, tensorly HOOI {hooi:.4f}")
    assert rel_err(got, kernel) < 1.05 * hooi


def test_tt_close_to_tt_svd():
    import tensorly as tl
    from tensorly.decomposition import tensor_train

    geom = geometry((3, 3), cin=16, cout=16, use_bias=False)
    kernel = random_layer(geom, seed=3).kernel.astype(np.float64)
    for ranks in [(4, 8, 4), (8, 20, 8)]:
        ours = rel_err(reconstruct(tt.decompose(LayerWeights(kernel), geom, ranks)), kernel)
        cores = tensor_train(tl.tensor(kernel.transpose(2, 0, 1, 3)), rank=[1, *ranks, 1])
        theirs = rel_err(tl.tt_to_tensor(cores).transpose(1, 2, 0, 3), kernel)
        print(f"\ntt {ranks} relative error: ours {ours:.4f}, tensorly TT-SVD {theirs:.4f}")
        assert ours < 1.03 * theirs


def test_tt_size_one_axes_collapse_ranks():
    geom = GEOMS["1x7-s1-same-nobias"]
    assert tt.max_ranks(geom) == (6, 6, 10)
    assert tt.effective_ranks(geom, (2, 5, 4)) == (2, 2, 4)
    assert tt.effective_ranks(GEOMS["7x1-s2-valid"], (3, 9, 4)) == (3, 4, 4)
    assert tt.effective_ranks(GEOMS["1x1-s2-same"], (5, 4, 3)) == (3, 3, 3)


# --- contract and errors --------------------------------------------------------------------------

def test_registry_order_and_contract():
    assert list(METHODS)[:3] == ["tucker", "cp", "tt"]
    for name in ("tucker", "cp", "tt"):
        mod = METHODS[name]
        assert (mod.NAME, mod.KIND) == (name, "conv")
        assert len(mod.max_ranks(GEOMS["3x3-s1-same"])) == mod.NUM_RANKS


@pytest.mark.parametrize("method", ["tucker", "cp", "tt"])
def test_rejects_grouped_and_bad_ranks(method):
    mod = METHODS[method]
    grouped = ConvGeometry(kernel=(3, 3), cin=8, cout=8, in_hw=(6, 6), out_hw=(4, 4), groups=2)
    with pytest.raises(ValueError, match="groups=2"):
        mod.max_ranks(grouped)
    geom = GEOMS["3x3-s1-same"]
    too_big = tuple(r + 1 for r in mod.max_ranks(geom))
    with pytest.raises(ValueError, match=r"received \("):
        mod.cost(geom, too_big)
    with pytest.raises(ValueError, match="kernel shape"):
        mod.prepare(LayerWeights(np.zeros((3, 3, 5, 10), np.float32), np.zeros(10, np.float32)), geom)


# --- statistics ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["3x3-s2-same", "3x3-d2-valid", "5x5-s2-valid", "conv1d-k5-s2-same"])
def test_patches_follow_the_layer(name):
    """Each im2col row times the kernel is the Keras conv output at its position (TF padding rules)."""
    geom = GEOMS[name]
    weights = random_layer(geom)
    x = random_input(geom, n=3)
    rows, where = patches(x, geom, max_positions=40)
    assert rows.shape == (min(40, 3 * geom.out_hw[0] * geom.out_hw[1]), geom.kernel[0] * geom.kernel[1] * geom.cin)
    y = run(reference(geom, weights, activation=None), x)
    y = y[:, None] if geom.spatial_rank == 1 else y
    want = y[where[:, 0], where[:, 1], where[:, 2]]
    got = rows @ weights.kernel.reshape(-1, geom.cout) + (weights.bias if geom.use_bias else 0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_stats_accumulate_over_batches():
    geom = GEOMS["3x3-s2-same"]
    x = random_input(geom, n=6)
    whole = conv_stats(x, geom, max_positions=10_000)
    merged = None
    for part in (x[:1], x[1:4], x[4:]):
        merged = accumulate(merged, conv_stats(part, geom, max_positions=10_000))
    assert merged.samples == whole.samples == 6 * 36
    np.testing.assert_allclose(merged.input_cov, whole.input_cov, atol=1e-12)
    np.testing.assert_allclose(merged.channel_cov, whole.channel_cov, atol=1e-12)
    taps = whole.input_cov.reshape(9, CIN, 9, CIN)
    np.testing.assert_allclose(whole.channel_cov, np.mean([taps[t, :, t] for t in range(9)], axis=0))
    one_by_one = GEOMS["1x1-s1"]  # every pixel read once: the plain pixel moment
    pixels = x.reshape(-1, CIN).astype(np.float64)
    np.testing.assert_allclose(conv_stats(x, one_by_one, max_positions=10_000).channel_cov,
                               pixels.T @ pixels / len(pixels), atol=1e-12)
    bounded = conv_stats(x, geom, max_positions=50)
    assert bounded.samples == 50 and bounded.input_cov.shape == (54, 54)

    tokens = np.random.default_rng(0).standard_normal((4, 5, 7))
    dense = dense_stats(tokens)
    np.testing.assert_allclose(dense.input_cov, tokens.reshape(20, 7).T @ tokens.reshape(20, 7) / 20)
    assert dense.samples == 20 and dense.channel_cov is dense.input_cov


# --- data-aware on real data ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits_layer():
    """A conv net trained briefly on sklearn digits; the 2nd conv layer, its weights and captured inputs."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inp)
    h = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(h)
    out = keras.layers.Dense(10)(keras.layers.Flatten()(keras.layers.MaxPooling2D()(h)))
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x[:1200], digits.target[:1200], epochs=3, batch_size=64, verbose=0)
    acc = model.evaluate(x[1200:], digits.target[1200:], verbose=0)[1]
    conv2 = model.get_layer("conv2")
    captured = np.asarray(keras.Model(inp, model.get_layer("conv1").output)(x))
    kernel, bias = (np.asarray(w) for w in conv2.get_weights())
    geom = geometry((3, 3), in_hw=(8, 8), cin=16, cout=32)
    stats = None
    for start in range(0, 1000, 250):  # calibration streams batches
        stats = accumulate(stats, conv_stats(captured[start:start + 250], geom, max_positions=2048))
    held_out = captured[1000:]
    return dict(geom=geom, weights=LayerWeights(kernel, bias), stats=stats, x=held_out,
                y=run(conv2, held_out), acc=acc)


def cosine(a, b) -> float:
    a, b = a.ravel(), b.ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("method,ranks", [("tucker", (4, 4)), ("tt", (4, 4, 4)), ("cp", (4,)), ("cp", (8,))])
def test_data_aware_beats_weight_only_on_digits(digits_layer, method, ranks):
    d, mod = digits_layer, METHODS[method]
    sims = {}
    for label, stats in (("weight-only", None), ("data-aware", d["stats"])):
        factors = mod.decompose(d["weights"], d["geom"], ranks, stats)
        assert factors.data_aware == (stats is not None)
        chain = chain_model((8, 8, 16), mod.stages(factors, d["geom"], "relu"), 2)
        sims[label] = cosine(run(chain, d["x"]), d["y"])
    print(f"\ndigits conv2 (3x3 16->32, net acc {d['acc']:.3f}), {method} {ranks}, output cosine on 797 "
          f"held-out images: weight-only {sims['weight-only']:.4f}, data-aware {sims['data-aware']:.4f}")
    assert sims["data-aware"] >= sims["weight-only"]
    if method in ("tucker", "tt"):
        assert sims["data-aware"] > sims["weight-only"] + 0.02


def test_cp_effort_is_bounded_on_big_layers_and_untouched_on_small_ones():
    """Ranks past 2 max(cin, cout) and sweeps past ALS_FLOPS go; the baselines' layers keep the full ALS."""
    big = ConvGeometry(kernel=(3, 3), cin=512, cout=512, in_hw=(7, 7), out_hw=(7, 7), padding="same")
    assert cp.max_ranks(big) == (1024,)  # the params-equal cap alone is 2,290
    assert cp.max_ranks(ConvGeometry(kernel=(1, 1), cin=512, cout=512, in_hw=(7, 7), out_hw=(7, 7))) == (255,)  # 512*512 // 1026
    assert cp.sweeps_for((128, 3, 3, 128), 256) == (cp.MAX_ITER, cp.MAX_ITER, False)  # the full schedule, restarts
    assert cp.sweeps_for((512, 3, 3, 512), 1024) == (cp.MIN_SWEEPS, 2, True)  # the floor: 15 sweeps of 14 GFLOP
    first, more, continued = cp.sweeps_for((256, 3, 3, 256), 512)
    sweep = 4 * 512 ** 3 + 4 * 256 * 9 * 256 * 512
    assert (first, more, continued) == (28, 5, True) and (first + len(cp.PENALTIES) * more) * sweep <= cp.ALS_FLOPS


def test_cp_fits_are_kept_and_read_back_from_disk_instead_of_refitted(tmp_path, monkeypatch):
    """ALS is deterministic: a fit asked for again comes from memory, and from the build's folder in a fresh process."""
    geom = geometry((3, 3), cin=16, cout=16)
    weights = random_layer(geom, seed=5)
    monkeypatch.setattr(cp, "_fits", type(cp._fits)())
    monkeypatch.setattr(cp, "_held", [0])
    cp.keep_fits_on_disk(tmp_path / "fits")
    try:
        first = cp.truncate(cp.prepare(weights, geom), (8,))
        files = list((tmp_path / "fits").glob("*.npz"))
        assert len(files) == 1 and not first.arrays[0].flags.writeable  # shared, so read-only
        calls = []
        monkeypatch.setattr(cp, "als", lambda *a, **k: calls.append(1) or (_ for _ in ()).throw(AssertionError("refit")))
        again = cp.truncate(cp.prepare(weights, geom), (8,))  # a new prepare of the same kernel: same content key
        assert again is first
        assert cp._held[0] == sum(a.nbytes for a in first.arrays)
        cp.forget_fits()  # a fresh process: memory empty, the file serves
        read = cp.truncate(cp.prepare(weights, geom), (8,))
        assert not calls and read.ranks == (8,) and read.data_aware is False
        for x, y in zip(read.arrays, first.arrays):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(read.bias, weights.bias)
        other = geometry((3, 3), cin=16, cout=16, strides=(2, 2))  # same weights, another layer: not the same fit
        assert cp.prepare(weights, other).key != cp.prepare(weights, geom).key
    finally:
        cp.keep_fits_on_disk(None)


@pytest.mark.parametrize("data_aware", [False, True])
def test_a_pointwise_cp_is_the_exact_rank_r_fit_the_svd_method_finds(data_aware, monkeypatch):
    """A 1x1 kernel's CP is a matrix fit: solved by the truncated SVD (no ALS), it matches the svd method's error."""
    from lrfc.decompose import LayerStats, svd

    monkeypatch.setattr(cp, "als", lambda *a, **k: (_ for _ in ()).throw(AssertionError("ALS on a 1x1 kernel")))
    geom = geometry((1, 1), cin=24, cout=12)
    weights = random_layer(geom, seed=7)
    stats = None
    if data_aware:
        rng = np.random.default_rng(1)
        x = rng.standard_normal((4000, 24)) @ rng.standard_normal((24, 24))
        cov = x.T @ x / len(x)
        stats = LayerStats(cov, cov, len(x))
    w = weights.kernel.reshape(24, 12).astype(np.float64)
    metric = np.eye(24) if stats is None else stats.input_cov

    def err(approx):
        d = approx - w
        return np.sqrt(np.trace(d.T @ metric @ d) / np.trace(w.T @ metric @ w))

    for rank in (2, 4, 7):  # 7: CP's cap here (no more parameters than the kernel)
        a, h, v, o = cp.truncate(cp.prepare(weights, geom, stats), (rank,)).arrays
        cp_w = np.einsum("cr,ir,jr,ro->co", a, h, v, o)
        svd_a, svd_b = svd.truncate(svd.prepare(weights, geom, stats), (rank,)).arrays
        assert err(cp_w) == pytest.approx(err(svd_a @ svd_b), rel=1e-6)


def test_fits_kept_in_memory_stay_within_their_bytes(monkeypatch):
    geom = geometry((3, 3), cin=16, cout=16)
    prepared = cp.prepare(random_layer(geom, seed=9), geom)
    monkeypatch.setattr(cp, "_fits", type(cp._fits)())
    monkeypatch.setattr(cp, "_held", [0])
    one = sum(a.nbytes for a in cp.truncate(prepared, (4,)).arrays)
    monkeypatch.setattr(cp, "FITS_KEPT", 3 * one)
    for rank in (2, 3, 5, 6, 7):
        cp.truncate(prepared, (rank,))
    kept = sum(sum(a.nbytes for a in f.arrays) for f in cp._fits.values())
    assert kept == cp._held[0] <= 3 * one and (prepared.key, 7, cp.MAX_ITER, cp.TOL) in cp._fits  # the latest stays
    assert (prepared.key, 4, cp.MAX_ITER, cp.TOL) not in cp._fits  # the oldest went


def test_cp_bounded_effort_contracts_in_float32_and_fits_as_well(monkeypatch):
    """Where ALS_FLOPS binds (ResNet50's big layers), the sweep's two contractions run in float32: the error they
    reach is the float64 one's to 1e-4; a layer under the budget keeps float64 throughout."""
    geom = geometry((3, 3), cin=24, cout=24)
    weights = random_layer(geom, seed=11)
    stats = conv_stats(random_input(geom, n=6, seed=4), geom)
    seen = []
    real = cp.als

    def spy(*args, **kwargs):
        seen.append(np.dtype(kwargs.get("contract", args[5] if len(args) > 5 else np.float64)))
        return real(*args, **kwargs)

    monkeypatch.setattr(cp, "als", spy)
    monkeypatch.setattr(cp, "_fits", type(cp._fits)())
    monkeypatch.setattr(cp, "_held", [0])
    prepared = cp.prepare(weights, geom, stats)
    full = cp.truncate(prepared, (20,))
    assert seen and set(seen) == {np.dtype(np.float64)}
    x = np.asarray(weights.kernel, np.float64).transpose(2, 0, 1, 3)

    def error(f):
        a, h, v, o = f.arrays
        return float(np.linalg.norm(np.einsum("cr,ir,jr,ro->cijo", a, h, v, o) - x) / np.linalg.norm(x))

    sweep = 4.0 * 20 ** 3 + 4.0 * x.size * 20
    for contract in (np.float64, np.float32):  # the same small budget (12 sweeps, continued) in each precision
        monkeypatch.setattr(cp, "ALS_FLOPS", 24 * sweep)
        monkeypatch.setattr(cp, "BOUNDED_CONTRACT", contract)
        monkeypatch.setattr(cp, "_fits", type(cp._fits)())
        seen.clear()
        bounded = cp.truncate(prepared, (20,))
        assert set(seen) == {np.dtype(contract)} and cp.sweeps_for(x.shape, 20)[2]
        if contract is np.float64:
            reference = error(bounded)
    assert abs(error(bounded) - reference) < 1e-4 and error(bounded) < 1.0 and full.ranks == (20,)


def test_a_cp_fit_kept_on_disk_reads_back_in_factor_order_and_a_damaged_one_is_refitted(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from lrfc.decompose.base import Factors

    monkeypatch.setattr(cp, "_fit_dir", [tmp_path])
    rng = np.random.default_rng(0)
    arrays = tuple(rng.standard_normal(shape) for shape in ((4, 3), (3, 3), (3, 3), (3, 5)))
    key = ("prep", 3, 50, 1e-6)
    cp._write_fit(Factors("cp", (3,), arrays, None, False), key)
    prepared = SimpleNamespace(bias=None, unwhiten=None)
    back = cp._read_fit(prepared, key)
    assert [a.shape for a in back.arrays] == [(4, 3), (3, 3), (3, 3), (3, 5)]
    assert all(np.array_equal(a, b) for a, b in zip(back.arrays, arrays)) and back.ranks == (3,)
    cp._fit_path(key).write_bytes(b"not a zip")
    assert cp._read_fit(prepared, key) is None
