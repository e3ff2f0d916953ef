"""Applying plans to whole models, and `lrfc decompose` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from lrfc.errors import UserError
from lrfc.plan import LayerChoice, Plan


def _mixed_model(keras):
    """Functional: conv, BN, residual add, operations between layers, depthwise, separable, 1x1, nested Sequential,
    dense on rank 3."""
    L = keras.layers
    inner = keras.Sequential([keras.Input((8, 8, 12)), L.Conv2D(12, 3, padding="same", name="inner_conv")], name="inner")
    inp = keras.Input((16, 16, 3), name="image")
    x = L.Conv2D(12, 3, strides=2, padding="same", activation="relu", name="stem")(inp)
    x = L.BatchNormalization(name="bn")(x)
    y = inner(x)
    y = L.DepthwiseConv2D(3, padding="same", name="dw")(y)
    x = L.Add(name="residual")([x, y])
    x = x * (L.ReLU(6.0, name="relu6")(x + 3.0) * (1.0 / 6.0))  # hard-swish as MobileNetV3 writes it: operations, not layers
    x = L.SeparableConv2D(10, 3, padding="same", name="sep")(x)
    x = L.Conv2D(8, 1, name="pw")(x)
    x = L.Reshape((64, 8), name="tokens")(x)
    x = L.Dense(6, activation="relu", name="tok_dense")(x)
    x = L.GlobalAveragePooling1D(name="gap")(x)
    return keras.Model(inp, L.Dense(5, name="head")(x), name="mixed")


@pytest.fixture(scope="module")
def mixed(keras):
    model = _mixed_model(keras)
    rng = np.random.default_rng(0)
    # Non-trivial BN statistics so that copying them matters.
    bn = model.get_layer("bn")
    bn.set_weights([rng.uniform(0.5, 1.5, 12), rng.normal(size=12), rng.normal(size=12), rng.uniform(0.5, 2, 12)])
    return model


def _flat(model):
    from lrfc.frontend.graph import rebuild

    return rebuild(model)


FULL_PLANS = {
    "tucker+svd": [("stem", "tucker"), ("inner_conv", "tucker"), ("sep", "svd"), ("pw", "svd"), ("tok_dense", "svd"), ("head", "svd")],
    "tt+qr": [("stem", "tt"), ("inner_conv", "tt"), ("sep", "qr"), ("pw", "qr"), ("tok_dense", "qr"), ("head", "qr")],
    "ttm": [("pw", "ttm"), ("tok_dense", "ttm"), ("head", "ttm")],
}


@pytest.mark.parametrize("plan_name", sorted(FULL_PLANS))
def test_full_rank_plan_reproduces_the_model_and_round_trips(keras, mixed, tmp_path, plan_name):
    from lrfc import decompose
    from lrfc.frontend.catalogue import describe_model
    from lrfc.factorize.rewrite import apply_plan

    flat = _flat(mixed)
    rows = {r.name: r for r in describe_model(flat)}
    plan = Plan(tuple(LayerChoice(n, m, decompose.get(m).max_ranks(rows[n].geometry)) for n, m in FULL_PLANS[plan_name]))
    new = apply_plan(flat, plan)
    x = np.random.default_rng(1).normal(size=(4, 16, 16, 3)).astype("float32")
    ref = mixed.predict(x, verbose=0)
    out = new.predict(x, verbose=0)
    assert np.abs(out - ref).max() / np.abs(ref).max() < 1e-4
    kept = {"bn", "dw", "residual", "gap", "tokens"}
    assert kept <= {layer.name for layer in new.layers}
    for name in ("bn", "dw"):  # copied, not shared
        assert new.get_layer(name) is not mixed.get_layer(name)
        for a, b in zip(new.get_layer(name).get_weights(), mixed.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    path = tmp_path / "m.keras"
    new.save(path)
    loaded = keras.saving.load_model(path)  # no custom_objects from the user
    np.testing.assert_allclose(loaded.predict(x, verbose=0), out, atol=1e-6)


def test_low_rank_plan_shrinks_and_keeps_names(keras, mixed):
    from lrfc.factorize.rewrite import apply_plan

    flat = _flat(mixed)
    plan = Plan((LayerChoice("stem", "tucker", (2, 4)), LayerChoice("head", "svd", (2,))))
    new = apply_plan(flat, plan)
    names = [layer.name for layer in new.layers]
    assert {"stem__0", "stem__1", "stem__2", "head__0", "head__1"} <= set(names)
    assert "stem" not in names and "head" not in names
    stem_params = 3 * 2 + 9 * 2 * 4 + 4 * 12 + 12
    head_params = 6 * 2 + 2 * 5 + 5
    original = mixed.get_layer("stem").count_params() + mixed.get_layer("head").count_params()
    assert new.count_params() == mixed.count_params() - original + stem_params + head_params


@pytest.mark.parametrize("kind", ["conv", "separable"])
def test_a_layer_called_twice_keeps_one_chain_and_counts_both_calls(keras, kind):
    """A layer applied twice (shared weights) becomes one chain applied twice, not two chains with one name; its MACs
    and its factorized MACs count both calls."""
    from lrfc import decompose
    from lrfc.factorize.rewrite import apply_plan
    from lrfc.frontend.catalogue import describe_model

    L = keras.layers
    shared = (L.Conv2D(8, 3, padding="same", activation="relu", name="shared") if kind == "conv"
              else L.SeparableConv2D(8, 3, padding="same", activation="relu", name="shared"))
    inp = keras.Input((10, 10, 8))
    model = keras.Model(inp, L.Dense(3, name="head")(L.GlobalAveragePooling2D()(shared(shared(inp)))))
    flat = _flat(model)
    rows = {r.name: r for r in describe_model(flat)}
    once = rows["shared"].geometry.macs
    assert rows["shared"].calls == 2 and rows["shared"].macs == 2 * (once if kind == "conv" else once + 10 * 10 * 9 * 8)
    assert "called 2 times" in rows["shared"].note
    method = "tucker" if kind == "conv" else "svd"
    ranks = decompose.get(method).max_ranks(rows["shared"].geometry)
    chain = decompose.get(method).cost(rows["shared"].geometry, ranks)
    assert rows["shared"].factorized_cost(method, ranks).macs == rows["shared"].macs + 2 * (chain.macs - once)
    new = apply_plan(flat, Plan((LayerChoice("shared", method, ranks),)))
    names = [layer.name for layer in new.layers]
    assert len(names) == len(set(names)) and "shared__0" in names
    x = np.random.default_rng(0).normal(size=(2, 10, 10, 8)).astype("float32")
    np.testing.assert_allclose(new.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-4)


def test_a_strided_cp_layer_is_one_depthwise_stage_and_runs(keras, mixed):
    """The strided stem as CP: 1x1, one 3x3 depthwise at strides (2, 2), 1x1; TensorFlow runs it whatever its
    kernels (its Eigen depthwise kernel refuses the unequal strides of a 3x1 + 1x3 split)."""
    from lrfc.decompose import cp
    from lrfc.factorize.rewrite import apply_plan
    from lrfc.frontend.catalogue import describe_model

    flat = _flat(mixed)
    geom = {r.name: r for r in describe_model(flat)}["stem"].geometry
    new = apply_plan(flat, Plan((LayerChoice("stem", "cp", (6,)),)))
    parts = [layer for layer in new.layers if layer.name.startswith("stem__")]
    assert [type(p).__name__ for p in parts] == ["Conv2D", "DepthwiseConv2D", "Conv2D"]
    assert parts[1].strides == (2, 2) and parts[1].kernel_size == (3, 3) and parts[0].strides == (1, 1)
    assert sum(p.count_params() for p in parts) == cp.cost(geom, (6,)).params == 6 * (3 + 9 + 12) + 12
    x = np.random.default_rng(1).normal(size=(4, 16, 16, 3)).astype("float32")
    assert new.predict(x, verbose=0).shape == (4, 5)


def test_plan_errors(keras, mixed, tmp_path):
    from lrfc.factorize.rewrite import apply_plan

    flat = _flat(mixed)
    with pytest.raises(UserError, match="plan names layer 'nope'"):
        apply_plan(flat, Plan((LayerChoice("nope", "svd", (1,)),)))
    with pytest.raises(UserError, match=r"layer 'dw' \(DepthwiseConv2D\): method 'tucker' does not apply"):
        apply_plan(flat, Plan((LayerChoice("dw", "tucker", (1, 1)),)))
    with pytest.raises(UserError, match=r"layer 'stem': tucker ranks \[99, 1\] out of range; expected 2 ranks within 1..\[3, 12\]"):
        apply_plan(flat, Plan((LayerChoice("stem", "tucker", (99, 1)),)))
    with pytest.raises(UserError, match="unknown method 'magic'"):
        apply_plan(flat, Plan((LayerChoice("stem", "magic", (1,)),)))
    plan = Plan((LayerChoice("stem", "tucker", (2, 4), True), LayerChoice("head", "svd", (2,))))
    (tmp_path / "plan.json").write_text(json.dumps(plan.to_json()))
    assert Plan.load(tmp_path / "plan.json") == plan
    (tmp_path / "bad.json").write_text('{"layers": [{"layer": "x"}]}')
    with pytest.raises(UserError, match="not a valid plan"):
        Plan.load(tmp_path / "bad.json")


def test_decompose_cli_end_to_end(tiny_model_path, tmp_path, capfd):
    out = tmp_path / "tiny-tucker.keras"
    res = run_cli("decompose", str(tiny_model_path), "--method", "tucker", "--rank", "4", "--data", "fashion-mnist",
                  "--data-aware", "--calib-samples", "128", "-o", str(out), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    layers = {entry["name"]: entry for entry in report["layers"]}
    assert set(layers) == {"conv1", "conv2"}
    assert layers["conv2"]["ranks"] == [4, 4]
    assert layers["conv2"]["params_after"] == 8 * 4 + 9 * 4 * 4 + 4 * 16 + 16
    assert layers["conv1"]["ranks"] == [1, 4] and layers["conv1"]["capped"]  # capped at cin = 1, and it says so
    assert not layers["conv2"]["capped"]
    assert 0.9 < layers["conv2"]["similarity"] <= 1.0
    assert out.exists() and not list(tmp_path.glob(".*partial*"))
    # the rest in-process (the same entry point, no interpreter start per call)
    from lrfc.cli import main

    def cli(*args):
        code = main(list(args))
        captured = capfd.readouterr()
        return code, captured.out, captured.err

    code, text, _ = cli("decompose", str(tiny_model_path), "--method", "tucker", "--rank", "4", "-o", str(out))
    assert code == 0 and "conv1: tucker ranks [1, 4]" in text and "(--rank capped at the layer's maximum [1, 4])" in text
    # A rank that makes the model bigger is refused before anything is written, unless asked for.
    big = tmp_path / "big.keras"
    code, _, err = cli("decompose", str(tiny_model_path), "--method", "svd", "--rank", "500", "-o", str(big))
    assert code == 2 and "make the model bigger" in err and err.count("\n") == 1
    assert not big.exists()
    code, _, _ = cli("decompose", str(tiny_model_path), "--method", "svd", "--rank", "500", "--allow-larger", "-o", str(big))
    assert code == 0 and big.exists()
    for args, words in ((["--layers", "conv1"], "method 'svd' does not apply to layer 'conv1'"),
                        (["--layers", "fc9"], "the model has no layer 'fc9'"), (["--rank", "0"], "--rank: received '0'")):
        code, _, err = cli("decompose", str(tiny_model_path), "--method", "svd", *args, "-o", str(tmp_path / "x.keras"))
        assert code == 2 and words in err
    assert not (tmp_path / "x.keras").exists()


def test_decomposed_model_runs_in_a_fresh_interpreter_with_plain_keras(tiny_model_path, tmp_path):
    """The README's promise: `import lrfc`, then plain keras.saving.load_model opens what lrfc wrote
    (TT-matrix layers included), and it computes what it computed here."""
    import subprocess
    import sys

    import numpy as np

    from lrfc.frontend.data import load_data
    from lrfc.frontend.load import load_model

    out = tmp_path / "tiny-ttm.keras"
    res = run_cli("decompose", str(tiny_model_path), "--method", "ttm", "--layers", "fc1", "--allow-larger", "-o", str(out))
    assert res.returncode == 0, res.stderr
    x = load_data("fashion-mnist", (28, 28, 1), 10).x_test[:64]
    np.save(tmp_path / "x.npy", x)
    script = ("import numpy as np, lrfc, keras; m = keras.saving.load_model(%r); "
              "np.save(%r, m.predict(np.load(%r), verbose=0))" % (str(out), str(tmp_path / "y.npy"), str(tmp_path / "x.npy")))
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=120)
    fresh = np.load(tmp_path / "y.npy")
    here = load_model(out).predict(x, verbose=0)
    np.testing.assert_allclose(fresh, here, atol=1e-5)
    original = load_model(tiny_model_path).predict(x, verbose=0)
    np.testing.assert_allclose(fresh, original, atol=1e-3)  # full-rank TT-matrix (bigger, hence --allow-larger): exact
