"""Chain equalization before int8 (``factorize.equalize``): the same function, one range per inner tensor, less
int8 rounding noise."""

from __future__ import annotations

import numpy as np
import pytest

from lrfc.plan import LayerChoice, Plan
from test_rewrite import _flat, _mixed_model

PLANS = {  # method per layer; ranks: half of each layer's largest
    "tucker+svd": [("stem", "tucker"), ("inner_conv", "tucker"), ("sep", "svd"), ("pw", "svd"), ("tok_dense", "svd"),
                   ("head", "svd")],
    "cp+qr": [("stem", "cp"), ("inner_conv", "cp"), ("pw", "qr"), ("head", "qr")],
    "tt": [("stem", "tt"), ("inner_conv", "tt")],
}


def _factorized(keras, methods):
    from lrfc import decompose
    from lrfc.factorize.rewrite import apply_plan
    from lrfc.frontend.catalogue import describe_model

    keras.utils.set_random_seed(0)
    flat = _flat(_mixed_model(keras))
    rows = {r.name: r for r in describe_model(flat)}
    plan = Plan(tuple(LayerChoice(n, m, tuple(max(1, r // 2) for r in decompose.get(m).max_ranks(rows[n].geometry)))
                      for n, m in methods))
    return apply_plan(flat, plan)


@pytest.mark.parametrize("plan_name", sorted(PLANS))
def test_equalization_keeps_the_function_and_gives_every_inner_channel_one_range(keras, plan_name):
    from lrfc.factorize.equalize import MAX_SCALE, chain_links, channel_ranges, equalize_chains

    model = _factorized(keras, PLANS[plan_name])
    rng = np.random.default_rng(1)
    x = rng.normal(size=(48, 16, 16, 3)).astype("float32")
    links = chain_links(model)
    # every chain of n stages has n - 1 links (all their first stages are linear): a Tucker chain 2, CP 3, SVD 1
    stages = {}
    for layer in model.layers:
        if "__" in layer.name and layer.name.rsplit("__", 1)[1].isdigit():
            stages[layer.name.rsplit("__", 1)[0]] = stages.get(layer.name.rsplit("__", 1)[0], 0) + 1
    assert len(links) == sum(n - 1 for n in stages.values()) > 0
    before = channel_ranges(model, [t for _, _, t in links], x)
    assert max(m.max() / m[m > 0].min() for m in before) > 1.5  # the inner channels differ: there is something to do
    ref = np.asarray(model(x, training=False))
    done = equalize_chains(model, x)
    assert (done.links, done.chains) == (len(links), len(stages))
    assert done.max_scale > 1.5 and done.median_spread > 1.0
    out = np.asarray(model(x, training=False))
    assert np.abs(out - ref).max() <= 1e-4 * np.abs(ref).max()
    after = channel_ranges(model, [t for _, _, t in chain_links(model)], x)
    for m, was in zip(after, before):  # each inner tensor's live channels now span one range (its widest one's)
        live = was > was.max() / MAX_SCALE
        np.testing.assert_allclose(m[live], m.max(), rtol=1e-4)
        np.testing.assert_allclose(m[~live], MAX_SCALE * was[~live], rtol=1e-4)  # near-silent ones: the cap, no more


def test_a_stage_whose_activation_does_not_commute_with_scaling_is_not_a_link(keras):
    """Only ReLU (or none) commutes with a positive scale; a chain built by hand with a swish inside keeps it."""
    from lrfc.factorize.equalize import chain_links, equalize_chains

    L = keras.layers
    inp = keras.Input((6, 6, 4))
    x = L.Conv2D(3, 1, activation="swish", name="a__0")(inp)
    x = L.Conv2D(5, 3, padding="same", name="a__1")(x)
    y = L.Conv2D(3, 1, activation="relu", name="b__0")(inp)
    y = L.Conv2D(5, 1, name="b__1")(y)
    z = L.Conv2D(3, 1, name="c__0")(inp)  # read by two layers: not a chain's inner tensor
    z = L.Add(name="join")([L.Conv2D(5, 1, name="c__1")(z), L.Conv2D(5, 1, name="other")(z)])
    g = L.Conv2D(4, 1, name="g__0")(inp)  # a user's layers that happen to be named so: grouped, not a chain stage
    g = L.Conv2D(5, 1, groups=1, name="g__1")(L.Conv2D(4, 3, padding="same", groups=2, name="grouped")(g))
    w = L.Conv2D(4, 1, name="w__0")(inp)
    w = L.Conv2D(6, 3, padding="same", groups=2, name="w__1")(w)  # its kernel reads 2 channels per group
    model = keras.Model(inp, L.Concatenate()([x, y, z, g, w]))
    assert [(a.name, b.name) for a, b, _ in chain_links(model)] == [("b__0", "b__1")]
    assert chain_links(model, names={"a", "c"}) == []  # a plan's layers only, when it is known
    x = np.random.default_rng(0).normal(size=(8, 6, 6, 4)).astype("float32")
    ref = np.asarray(model(x))
    assert equalize_chains(model, x).links == 1
    np.testing.assert_allclose(np.asarray(model(x)), ref, rtol=1e-4, atol=1e-5)


def test_a_model_without_chains_is_left_as_it_is(keras):
    from lrfc.factorize.equalize import equalize_chains

    model = _flat(_mixed_model(keras))
    before = [w.copy() for w in model.get_weights()]
    done = equalize_chains(model, np.zeros((4, 16, 16, 3), "float32"))
    assert (done.links, done.chains) == (0, 0)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_equalization_cuts_int8_rounding_noise_in_litert_and_onnx_runtime(keras, tmp_path):
    """A Tucker-2 chain whose inner channels span 1:300 (an HOSVD basis ordered by energy, exaggerated): int8 of the
    equalized chain stays nearer its float output, in both runtimes, than int8 of the chain as factorized."""
    from lrfc.factorize.equalize import equalize_chains
    from lrfc.lower.onnx import export_onnx, quantize_onnx_int8
    from lrfc.lower.tflite import export_tflite
    from lrfc.lower.verify import run_artifact

    L = keras.layers
    rng = np.random.default_rng(0)
    inp = keras.Input((8, 8, 8))
    x = L.Conv2D(6, 1, use_bias=False, name="t__0")(inp)
    x = L.Conv2D(6, 3, padding="same", use_bias=False, name="t__1")(x)
    model = keras.Model(inp, L.Conv2D(8, 1, name="t__2")(x))
    spread = np.geomspace(1.0, 1 / 300, 6)
    first, core, last = (w.copy() for w in (model.get_layer("t__0").get_weights()[0],
                                            model.get_layer("t__1").get_weights()[0],
                                            model.get_layer("t__2").get_weights()[0]))
    model.get_layer("t__0").set_weights([first * spread])                       # weak inner channels ...
    model.get_layer("t__1").set_weights([core / spread[:, None] * spread])     # ... carried on as weak ...
    model.get_layer("t__2").set_weights([last / spread[:, None], np.zeros(8, "float32")])  # ... and amplified back
    calib = rng.normal(size=(64, 8, 8, 8)).astype("float32")
    x = rng.normal(size=(128, 8, 8, 8)).astype("float32")

    def int8_errors(tag):
        ref = np.asarray(model(x)).reshape(len(x), -1)
        tfl, onnx_fp32, onnx_int8 = tmp_path / f"{tag}.tflite", tmp_path / f"{tag}.onnx", tmp_path / f"{tag}.int8.onnx"
        export_tflite(model, tfl, "int8", representative=calib)
        export_onnx(model, onnx_fp32)
        quantize_onnx_int8(onnx_fp32, onnx_int8, calib)
        return [float(np.abs(run_artifact(f, fmt, x).reshape(len(x), -1) - ref).mean() / np.abs(ref).mean())
                for f, fmt in ((tfl, "tflite"), (onnx_int8, "onnx"))]

    plain = int8_errors("plain")
    assert equalize_chains(model, calib).links == 2
    equalized = int8_errors("equalized")
    for before, after in zip(plain, equalized):  # measured: 0.85 of the output's mean size before, 0.023 after
        assert after < before / 3, (plain, equalized)


def test_the_price_stages_int8_chain_files_are_equalized_so_xnnpack_prepares_them(keras, tmp_path):
    """An inner channel 1e5 times wider than the rest, which the next stage all but ignores (what data-aware
    Tensor-Train fits of an untrained keras.applications ResNet50V2 looked like), sets that tensor's int8 step and
    puts the next convolution's requantization scale past what XNNPACK prepares: the chain's file as the price stage
    lowered it is refused, and its candidate was dropped although the published model, equalized, runs it."""
    from lrfc.cost.latency import Chain, lower_chain
    from lrfc.decompose.base import Stage
    from lrfc.decompose.chain import chain_model
    from lrfc.lower.tflite import export_tflite
    from lrfc.lower.verify import first_run_refused

    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((1, 1, 3, 4)).astype(np.float32)
    w1 = rng.standard_normal((3, 1, 4, 4)).astype(np.float32)
    w1[..., 0] *= 1e5
    w2 = rng.standard_normal((1, 3, 4, 4)).astype(np.float32) * 1e-2
    w2[:, :, 0, :] *= 1e-5
    w3 = rng.standard_normal((1, 1, 4, 8)).astype(np.float32)
    chain = Chain((8, 8, 3), [Stage("conv", (w0,)), Stage("conv", (w1,), (3, 1), padding="same"),
                              Stage("conv", (w2,), (1, 3), padding="same"),
                              Stage("conv", (w3, np.zeros(8, np.float32)), use_bias=True)], 2)
    rep = np.random.default_rng(0).standard_normal((8, 8, 8, 3)).astype(np.float32)  # lower_chain's own samples
    as_it_was = export_tflite(chain_model(chain.input_shape, chain.stages, 2), tmp_path / "plain.tflite", "int8", rep)
    assert "failed to create XNNPACK runtime" in first_run_refused(as_it_was, "tflite", "int8")
    assert first_run_refused(lower_chain(chain, tmp_path / "chain.tflite", "int8"), "tflite", "int8") is None


def test_the_measure_stages_int8_rungs_are_equalized_and_the_original_left_alone(keras, monkeypatch, tmp_path):
    """The whole models the measure stage times at int8 are the published model's kind: each rung's chains
    equalized on the calibration samples (``cost.measure.timed_ms``); the original is never touched."""
    import contextlib
    from types import SimpleNamespace

    import lrfc.cost.measure as measure
    import lrfc.lower.artifacts as artifacts
    from lrfc.factorize.equalize import MAX_SCALE, chain_links, channel_ranges

    x = np.random.default_rng(1).normal(size=(16, 16, 16, 3)).astype("float32")
    original = _flat(_mixed_model(keras))
    before = [w.copy() for w in original.get_weights()]
    rung = _factorized(keras, PLANS["tt"])
    plan = Plan(tuple(LayerChoice(n, "tt", (2, 2, 2)) for n in ("stem", "inner_conv")))
    spreads = {}

    def export_file(model, fmt, path, precision, calibration, onnx_int8="u8s8", opset=17):
        links = chain_links(model)
        ranges = channel_ranges(model, [t for _, _, t in links], x) if links else []
        live = [m[m > m.max() / MAX_SCALE] for m in ranges]  # a dead channel stays dead
        spreads[path.name] = max((float(m.max() / m.min()) for m in live), default=None)
        path.write_bytes(b"lowered")
        return path

    monkeypatch.setattr(artifacts, "export_file", export_file)
    monkeypatch.setattr(measure, "time_files", lambda link, paths, runtime, threads, guess: [
        {"p50_ms": 1.0, "p90_ms": 1.0, "runs": 10} for _ in paths])
    pricer = SimpleNamespace(recall=lambda sigs, precision: {}, remember=lambda rows, precision, replace: None)
    state = SimpleNamespace(pricer=pricer, binary=None, profile=SimpleNamespace(precision="int8", threads=2, runtimes=("litert",), onnx_opset=17),
                            link=object(), flat=original, splits=SimpleNamespace(x_calib=x), original_ms={"a": 0.5},
                            progress=lambda *a: contextlib.nullcontext(SimpleNamespace(update=lambda *a: None)))
    measure.timed_ms(state, [(Plan(()), lambda: original), (plan, lambda: rung)], "tflite", "litert", tmp_path)
    assert spreads["model0.tflite"] is None  # the original has no chains
    assert spreads["model1.tflite"] == pytest.approx(1.0, rel=1e-3)  # every inner channel at the widest one's range
    assert all(np.array_equal(a, b) for a, b in zip(before, original.get_weights()))
