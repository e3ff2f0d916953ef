"""Model loading, graph flattening and the layer catalogue (MACs by hand)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from lrfc.errors import UserError


def _single(keras, input_shape, layer):
    inp = keras.Input(input_shape)
    return keras.Model(inp, layer(inp))


def _row(keras, input_shape, layer):
    from lrfc.frontend.catalogue import describe_model
    from lrfc.frontend.graph import rebuild

    return describe_model(rebuild(_single(keras, input_shape, layer)))[0]


# (input shape, layer factory, hand-counted MACs, methods)
CASES = {
    "conv3x3_stride2_same": ((9, 9, 4), lambda L: L.Conv2D(8, 3, strides=2, padding="same"), 5 * 5 * 9 * 4 * 8, ("tucker", "cp", "tt")),
    "conv3x3_dilated_valid": ((11, 11, 3), lambda L: L.Conv2D(4, 3, dilation_rate=2), 7 * 7 * 9 * 3 * 4, ("tucker", "cp", "tt")),
    "conv5x5_valid_nobias": ((10, 10, 2), lambda L: L.Conv2D(3, 5, use_bias=False), 6 * 6 * 25 * 2 * 3, ("tucker", "cp", "tt")),
    "conv1x7_valid": ((12, 12, 3), lambda L: L.Conv2D(5, (1, 7)), 12 * 6 * 7 * 3 * 5, ("tucker", "cp", "tt")),
    "conv1x1": ((6, 6, 8), lambda L: L.Conv2D(4, 1), 36 * 8 * 4, ("svd", "qr", "ttm")),
    "conv1x1_stride2": ((6, 6, 8), lambda L: L.Conv2D(4, 1, strides=2), 9 * 8 * 4, ("tucker", "cp", "tt")),
    "dense_rank2": ((16,), lambda L: L.Dense(5), 16 * 5, ("svd", "qr", "ttm")),
    "dense_rank3": ((7, 16), lambda L: L.Dense(5), 7 * 16 * 5, ("svd", "qr", "ttm")),
    "conv1d": ((20, 4), lambda L: L.Conv1D(6, 3), 18 * 3 * 4 * 6, ("tucker", "cp", "tt")),
    "conv1d_causal": ((20, 4), lambda L: L.Conv1D(6, 3, padding="causal"), 20 * 3 * 4 * 6, ()),
    "depthwise": ((8, 8, 5), lambda L: L.DepthwiseConv2D(3, padding="same", depth_multiplier=2), 64 * 9 * 10, ()),
    "separable": ((8, 8, 5), lambda L: L.SeparableConv2D(7, 3, padding="same"), 64 * 9 * 5 + 64 * 5 * 7, ("svd", "qr", "ttm")),
    "grouped": ((6, 6, 4), lambda L: L.Conv2D(6, 3, padding="same", groups=2), 36 * 9 * 2 * 6, ()),
    "batchnorm": ((6, 6, 4), lambda L: L.BatchNormalization(), 0, ()),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_macs_and_methods_match_hand_counts(keras, case):
    shape, make, macs, methods = CASES[case]
    layer = make(keras.layers)
    row = _row(keras, shape, layer)
    assert row.macs == macs
    assert row.methods == methods
    assert row.params == layer.count_params()
    if row.geometry is not None and not case.startswith("separable"):
        assert row.geometry.macs == macs


def test_passthrough_layers_say_why(keras):
    assert "grouped" in _row(keras, (6, 6, 4), keras.layers.Conv2D(6, 3, groups=2)).note
    assert "depthwise" in _row(keras, (6, 6, 4), keras.layers.DepthwiseConv2D(3)).note
    assert "causal" in _row(keras, (9, 4), keras.layers.Conv1D(2, 3, padding="causal")).note


def test_attention_and_einsum_macs_are_counted_though_passed_through(keras):
    """A transformer block's attention holds most of its work: left out, MACs removed would look larger than they
    are (a small ViT's two attentions: 2.2 M of its 3.9 M MACs)."""
    from lrfc.frontend.catalogue import describe_model

    L = keras.layers
    q, v = keras.Input((5, 8)), keras.Input((7, 6))
    attention = L.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=4, name="mha")(q, v)
    rows = {r.name: r for r in describe_model(keras.Model([q, v], attention))}
    projections = 5 * 8 * 2 * 3 + 7 * 6 * 2 * 3 + 7 * 6 * 2 * 4 + 5 * 2 * 4 * 8  # query, key, value, output
    assert rows["mha"].macs == projections + 2 * 5 * 7 * (3 + 4) and rows["mha"].methods == ()
    assert rows["mha"].note.startswith("attention: passed through")
    inp = keras.Input((10, 8))
    einsum = L.EinsumDense("abc,cd->abd", output_shape=(None, 12), bias_axes="d", name="ein")(inp)
    row = next(r for r in describe_model(keras.Model(inp, einsum)) if r.name == "ein")
    assert row.macs == 10 * 8 * 12 and row.note == "EinsumDense: passed through"


def _nested(keras):
    inner = keras.Sequential([keras.Input((8, 8, 6)), keras.layers.Conv2D(6, 3, padding="same", name="inner_conv"),
                              keras.layers.BatchNormalization(name="inner_bn")], name="inner")
    inp = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(6, 3, padding="same", name="stem")(inp)
    y = inner(x)
    x = keras.layers.Add(name="add")([x, y])
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, keras.layers.Dense(4, name="head")(x), name="outer")


def test_flatten_inlines_nested_models_and_keeps_outputs(keras):
    from lrfc.frontend.catalogue import describe_model
    from lrfc.frontend.graph import rebuild

    model = _nested(keras)
    flat = rebuild(model)
    names = [r.name for r in describe_model(flat)]
    assert names == ["stem", "inner_conv", "inner_bn", "add", "gap", "head"]
    assert sum(r.params for r in describe_model(flat)) == model.count_params()
    x = np.random.default_rng(0).normal(size=(3, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(flat.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_load_keras_and_legacy_h5(keras, tmp_path):
    from lrfc.frontend.load import load_model

    model = _nested(keras)
    model.save(tmp_path / "m.keras")
    seq = keras.Sequential([keras.Input((10,)), keras.layers.Dense(7, activation="relu"), keras.layers.Dense(3)])
    seq.save(tmp_path / "m.h5")
    x = np.ones((2, 8, 8, 3), "float32")
    np.testing.assert_allclose(load_model(tmp_path / "m.keras").predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    loaded = load_model(tmp_path / "m.h5")
    assert loaded.count_params() == seq.count_params() == 10 * 7 + 7 + 7 * 3 + 3


def _lambda_model(keras):
    inp = keras.Input((4,))
    return keras.Model(inp, keras.layers.Lambda(lambda t: t * 2.0, name="double")(inp))


def test_a_mixed_precision_model_is_flattened_in_float32_and_converts(keras, tmp_path):
    """A model trained with mixed_float16 (layers computing in float16): the flat model computes in float32 with the
    same weights, says so once, and converts to TFLite (its float16 ops made the converter fail before)."""
    from lrfc.frontend.load import half_precision, load_flat
    from lrfc.lower.tflite import export_tflite
    from runtime_bench.run import run_tflite

    L = keras.layers
    inp = keras.Input((8, 8, 3))
    h = L.Conv2D(8, 3, padding="same", activation="relu", dtype="mixed_float16", name="c1")(inp)
    h = L.BatchNormalization(dtype="mixed_float16", name="bn")(h)
    h = L.GlobalAveragePooling2D(dtype="mixed_float16")(h)
    model = keras.Model(inp, L.Activation("softmax", dtype="float32")(L.Dense(3, dtype="mixed_float16", name="d")(h)))
    path = tmp_path / "mixed.keras"
    model.save(path)
    assert set(half_precision(model)) >= {"c1", "bn", "d"}
    said = []
    flat = load_flat(path, log=said.append)
    assert len(said) == 1 and "mixed_float16" in said[0] and "float32" in said[0]
    assert all(layer.dtype_policy.compute_dtype == "float32" for layer in flat.layers)
    np.testing.assert_array_equal(flat.get_layer("c1").get_weights()[0], model.get_layer("c1").get_weights()[0])
    x = np.random.default_rng(0).random((4, 8, 8, 3)).astype("float32")
    ref = model.predict(x, verbose=0)
    np.testing.assert_allclose(flat.predict(x, verbose=0), ref, atol=2e-3)  # float16 against float32 compute
    np.testing.assert_allclose(run_tflite(export_tflite(flat, tmp_path / "m.tflite"), x), ref, atol=2e-3)
    assert half_precision(flat) == {}


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_refused_unless_trusted(keras, tmp_path, suffix):
    from lrfc.frontend.load import load_model

    path = tmp_path / f"lam{suffix}"
    _lambda_model(keras).save(path)
    with pytest.raises(UserError, match=r"Lambda 'double'.*--trust-model"):
        load_model(path)
    model = load_model(path, trust=True)
    np.testing.assert_allclose(model.predict(np.ones((1, 4), "float32"), verbose=0), 2.0)


def test_bad_files_are_clear_errors(keras, tmp_path):
    from lrfc.frontend.load import load_model

    with pytest.raises(UserError, match="model not found"):
        load_model(tmp_path / "missing.keras")
    with pytest.raises(UserError, match=r"model is a URL \(hf://org/model.keras\); lrfc reads local files"):
        load_model("hf://org/model.keras")  # the API, past the CLI's preflight: the URL as given
    (tmp_path / "junk.keras").write_bytes(b"not a zip at all")
    with pytest.raises(UserError, match="not a readable .keras model archive"):
        load_model(tmp_path / "junk.keras")
    (tmp_path / "junk.h5").write_bytes(b"\x00" * 64)
    with pytest.raises(UserError, match="not a readable HDF5 model file"):
        load_model(tmp_path / "junk.h5")
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(UserError, match=r"unsupported model format '.onnx'"):
        load_model(tmp_path / "m.onnx")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(UserError, match="not a SavedModel"):
        load_model(tmp_path / "empty_dir")
    # A .keras archive naming a class Keras does not know.
    good = tmp_path / "good.keras"
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(good)
    with zipfile.ZipFile(good) as z:
        files = {n: z.read(n) for n in z.namelist()}
    cfg = json.loads(files["config.json"])
    cfg["config"]["layers"][1]["class_name"] = "MyMysteryLayer"
    cfg["config"]["layers"][1]["module"] = "nowhere"
    files["config.json"] = json.dumps(cfg).encode()
    bad = tmp_path / "mystery.keras"
    with zipfile.ZipFile(bad, "w") as z:
        for n, b in files.items():
            z.writestr(n, b)
    with pytest.raises(UserError, match=r"mystery.keras: cannot load model"):
        load_model(bad)


def test_subclassed_model_is_refused(keras):
    from lrfc.frontend.graph import rebuild

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = keras.layers.Dense(2)

        def call(self, x):
            return self.d(x)

    net = Net()
    net(np.ones((1, 3), "float32"))
    with pytest.raises(UserError, match="subclassed"):
        rebuild(net)


def test_undefined_spatial_size_needs_input_shape(keras):
    from lrfc.frontend.catalogue import describe_model
    from lrfc.frontend.graph import rebuild

    inp = keras.Input((None, None, 3))
    model = keras.Model(inp, keras.layers.Conv2D(4, 3, padding="same")(inp))
    row = describe_model(rebuild(model))[0]
    assert row.macs == 0 and "--input-shape" in row.note
    row = describe_model(rebuild(model, input_shape=(16, 16, 3)))[0]
    assert row.macs == 16 * 16 * 9 * 3 * 4 and row.methods == ("tucker", "cp", "tt")


@pytest.mark.parametrize("name", ["ResNet50", "MobileNetV2", "VGG16", "EfficientNetB0", "DenseNet121"])
def test_inspect_keras_applications(keras, tmp_path, name):
    from lrfc.frontend.inspect import inspect_model

    model = getattr(keras.applications, name)(weights=None)
    model.save(tmp_path / f"{name}.keras")
    report = inspect_model(str(tmp_path / f"{name}.keras"))
    assert report["total_params"] == model.count_params()
    expected_gmacs = {"ResNet50": 3.858, "MobileNetV2": 0.3008, "VGG16": 15.470, "EfficientNetB0": 0.3858, "DenseNet121": 2.834}
    assert report["total_macs"] / 1e9 == pytest.approx(expected_gmacs[name], rel=1e-3)
    assert report["factorizable_layers"] > 0
