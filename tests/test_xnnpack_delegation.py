"""Which operators LiteRT's XNNPACK delegate takes (runtime_bench.delegation), and lrfc's lowering into forms it
takes where it would leave one out (lower.xnnpack_forms, lower.xnnpack_int8): the same function, one part."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lrfc.cli import main
from lrfc.lower.tflite import export_tflite
from runtime_bench.delegation import delegation_line, litert_delegation, split_by_delegate
from runtime_bench.run import run_tflite


def _left_out_model(keras):
    """A residual ReLU beside its input, average pools (2x2; 3x3 'same' stride 1; 1x1 stride 2; 3x3 'same' stride
    2 on an odd map) and a concatenation of six tensors: each left to LiteRT's own kernels at int8 as converted."""
    keras.utils.set_random_seed(0)
    layers = keras.layers
    inp = keras.Input((15, 15, 3))
    x = layers.Conv2D(16, 3, padding="same")(inp)
    y = layers.ReLU()(x)  # x feeds the Add too: the converter cannot fuse this ReLU into the convolution
    x = layers.Add()([x, layers.Conv2D(16, 3, padding="same")(y)])
    a = layers.AveragePooling2D(3, strides=1, padding="same")(x)
    b = layers.AveragePooling2D(3, strides=2, padding="same")(x)
    c = layers.AveragePooling2D(1, strides=2)(x)
    d = layers.AveragePooling2D(2, padding="same")(x)
    e = layers.Conv2D(8, 1, strides=2, padding="same")(a)
    h = layers.Concatenate()([b, c, d, e, b, c])
    h = layers.AveragePooling2D(2)(layers.Conv2D(16, 1)(h))
    return keras.Model(inp, layers.Dense(10)(layers.Flatten()(h)))


def _run(path, x, reference_kernels: bool = False) -> np.ndarray:
    """Float outputs of a .tflite file on ``x`` (an int8 file's I/O quantized by its own numbers), as the gate runs
    it; ``reference_kernels``: on LiteRT's own kernels, no XNNPACK, one sample at a time."""
    if not reference_kernels:
        return run_tflite(path, x)
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_path=str(path),
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    scale, zero = inp["quantization"]
    rows = []
    for sample in x:
        feed = np.clip(np.round(sample[None] / scale + zero), -128, 127).astype(np.int8) if scale else sample[None]
        interp.set_tensor(inp["index"], feed)
        interp.invoke()
        rows.append(_output(interp))
    return np.concatenate(rows)


def _output(interp) -> np.ndarray:
    out = interp.get_output_details()[0]
    y = interp.get_tensor(out["index"]).astype(np.float32)
    scale, zero = out["quantization"]
    return (y - zero) * scale if scale else y


@pytest.fixture(scope="module")
def lowered(keras, tmp_path_factory):
    """The model, samples, its Keras outputs, and its files: fp32 and int8, as before (xnnpack=False) and now."""
    work = tmp_path_factory.mktemp("xnnpack")
    model = _left_out_model(keras)
    x = np.random.default_rng(0).standard_normal((48, 15, 15, 3)).astype(np.float32)
    files = {}
    for precision in ("fp32", "int8"):
        for xnnpack in (False, True):
            files[precision, xnnpack] = export_tflite(model, work / f"{precision}.{xnnpack}.tflite", precision,
                                                      representative=x[:32], xnnpack=xnnpack)
    return model, x[32:], np.asarray(model.predict(x[32:], verbose=0)), files


def test_the_delegation_of_a_node_listing():
    # op 0 and 1 inside the one partition, op 2 (a RELU) after it on LiteRT's kernel, fed by the partition's output
    nodes = [{"index": 0, "op_name": "CONV_2D", "inputs": [0, 1, -1], "outputs": [2]},
             {"index": 1, "op_name": "ADD", "inputs": [2, 0], "outputs": [3]},
             {"index": 2, "op_name": "RELU", "inputs": [3], "outputs": [4]},
             {"index": 3, "op_name": "DELEGATE", "inputs": [0, 1], "outputs": [3]}]
    summary = split_by_delegate(nodes)
    assert summary == {"operators": 3, "delegated": 2, "partitions": 1, "not_delegated": {"RELU": 1}}
    line = delegation_line({"path": "out/model.int8.tflite", "delegation": summary})
    assert line == "model.int8.tflite: XNNPACK runs 2 of its 3 operators in 1 part; on LiteRT's own kernels: RELU"
    whole = {"operators": 3, "delegated": 3, "partitions": 1, "not_delegated": {}}
    assert delegation_line({"path": "m.tflite", "delegation": whole}) is None
    assert delegation_line({"path": "m.onnx"}) is None


def test_a_file_litert_refuses_has_no_delegation(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer")
    assert litert_delegation(bad) is None


def test_converted_as_before_int8_leaves_the_relu_the_pools_and_the_wide_concat_out(lowered):
    _, _, _, files = lowered
    before = litert_delegation(files["int8", False])
    assert before["not_delegated"] == {"AVERAGE_POOL_2D": 5, "RELU": 1, "CONCATENATION": 1}
    assert before["partitions"] >= 3
    fp32 = litert_delegation(files["fp32", False])  # at fp32 only the 1x1 strided pool and the six-way join
    assert fp32["not_delegated"] == {"AVERAGE_POOL_2D": 1, "CONCATENATION": 1}


def test_xnnpack_forms_put_every_operator_in_one_part_with_the_same_function(lowered):
    model, x, reference, files = lowered
    for precision in ("fp32", "int8"):
        after = litert_delegation(files[precision, True])
        assert after["not_delegated"] == {} and after["partitions"] == 1, (precision, after)
    # fp32: the depthwise pools (border counts corrected) and the nested joins compute what Keras computes
    assert np.abs(_run(files["fp32", True], x) - reference).max() < 1e-5
    # int8: as near Keras as the file converted as before (one more rounding where a 'same' pool is corrected)
    spread = float(np.std(reference))
    err_before = float(np.mean(np.abs(_run(files["int8", False], x) - reference))) / spread
    err_after = float(np.mean(np.abs(_run(files["int8", True], x) - reference))) / spread
    assert err_after < max(1.5 * err_before, 0.02), (err_before, err_after)


def test_the_int8_relu_as_leaky_relu_gives_the_same_integers(keras, tmp_path):
    from lrfc.lower.xnnpack_int8 import relus_as_leaky
    from lrfc.lower.tflite import export_tflite as export

    keras.utils.set_random_seed(1)
    layers = keras.layers
    inp = keras.Input((12, 12, 4))
    x = layers.Conv2D(16, 3, padding="same")(inp)
    for _ in range(3):  # Xception's middle flow: relu(x) beside x
        x = layers.Add()([x, layers.Conv2D(16, 3, padding="same")(layers.ReLU()(x))])
    model = keras.Model(inp, layers.Dense(10)(layers.GlobalAveragePooling2D()(layers.ReLU()(x))))
    rng = np.random.default_rng(1)
    path = export(model, tmp_path / "m.tflite", "int8", representative=rng.standard_normal((32, 12, 12, 4)),
                  xnnpack=False)
    plain = path.read_bytes()
    patched, n = relus_as_leaky(plain)
    assert n == 3  # the three beside their inputs (the last ReLU, its Add's only reader, is fused into it)
    (tmp_path / "leaky.tflite").write_bytes(patched)
    assert litert_delegation(path)["not_delegated"] == {"RELU": 3}
    assert litert_delegation(tmp_path / "leaky.tflite")["not_delegated"] == {}
    x = rng.standard_normal((24, 12, 12, 4)).astype(np.float32)
    same = _run(path, x, reference_kernels=True) == _run(tmp_path / "leaky.tflite", x, reference_kernels=True)
    assert same.all()  # LiteRT's own RELU and LEAKY_RELU kernels: equal to the bit
    assert relus_as_leaky(patched) == (patched, 0)  # nothing left to rewrite


def _operators(path) -> set[str]:
    """The operator types of a .tflite file's main subgraph."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    m = schema.Model.GetRootAs(bytearray(path.read_bytes()), 0)
    codes = [max(m.OperatorCodes(i).BuiltinCode(), m.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(m.OperatorCodesLength())]
    g = m.Subgraphs(0)
    return {names[codes[g.Operators(i).OpcodeIndex()]] for i in range(g.OperatorsLength())}


def test_without_the_forms_a_file_keeps_the_converter_s_relu_and_pools(lowered):
    _, _, _, files = lowered
    assert {"RELU", "AVERAGE_POOL_2D"} <= _operators(files["int8", False])  # the Edge TPU's own kernels take these
    assert not {"RELU", "AVERAGE_POOL_2D"} & _operators(files["int8", True])
    assert "LEAKY_RELU" in _operators(files["int8", True])


def test_inspect_says_what_xnnpack_leaves_out(lowered, capsys):
    _, _, _, files = lowered
    capsys.readouterr()
    assert main(["inspect", str(files["int8", False])]) == 0
    out = capsys.readouterr().out
    assert ("XNNPACK   " in out and "on LiteRT's own kernels: AVERAGE_POOL_2D x5, RELU, CONCATENATION" in out)
    assert main(["inspect", str(files["int8", True]), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["delegation"]["not_delegated"] == {} and info["delegation"]["partitions"] == 1
    assert main(["inspect", str(files["int8", True])]) == 0
    assert f"XNNPACK   all {info['delegation']['operators']} operators, in one part" in capsys.readouterr().out


def test_export_says_which_operators_run_on_litert_s_own_kernels(keras, tmp_path, capsys):
    keras.utils.set_random_seed(2)
    layers = keras.layers
    inp = keras.Input((28, 28, 1))
    h = layers.Conv2D(8, 3, activation="gelu")(inp)  # an int8 GELU: XNNPACK leaves it out
    h = layers.GlobalAveragePooling2D()(layers.Conv2D(8, 3, activation="relu")(h))
    logits = layers.Dense(10, kernel_initializer=keras.initializers.RandomNormal(stddev=3.0))(h)  # decisive top-1
    keras.Model(inp, layers.Softmax()(logits)).save(tmp_path / "m.keras")
    capsys.readouterr()
    assert main(["export", str(tmp_path / "m.keras"), "--target", "host", "--precision", "int8", "--formats", "tflite",
                 "--data", "fashion-mnist", "--allow-low-accuracy", "--out", str(tmp_path / "e")]) == 0
    out = capsys.readouterr().out
    (line,) = [l for l in out.splitlines() if l.startswith("LiteRT: ")]
    assert line.startswith("LiteRT: model.tflite: XNNPACK runs ") and line.endswith(
        "on LiteRT's own kernels: GELU, SOFTMAX"), line
    doc = json.loads((tmp_path / "e" / "export.json").read_text())
    assert doc["artifacts"][0]["delegation"]["not_delegated"] == {"GELU": 1, "SOFTMAX": 1}


def _hard_swish_model(keras):
    keras.utils.set_random_seed(3)
    layers = keras.layers
    inp = keras.Input((16, 16, 8))
    x = layers.Conv2D(24, 3, padding="same", activation="hard_swish")(inp)  # MobileNetV3's activation
    x = layers.Conv2D(24, 3, padding="same", activation="hard_swish")(x)
    return keras.Model(inp, layers.Dense(10)(layers.GlobalAveragePooling2D()(x)))


def test_an_int8_hard_swish_becomes_an_add_and_two_muls_xnnpack_takes(keras, tmp_path):
    model = _hard_swish_model(keras)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((96, 16, 16, 8)).astype(np.float32)
    reference = np.asarray(model.predict(x[32:], verbose=0))
    before = export_tflite(model, tmp_path / "before.tflite", "int8", representative=x[:32], xnnpack=False)
    after = export_tflite(model, tmp_path / "after.tflite", "int8", representative=x[:32])
    assert litert_delegation(before)["not_delegated"] == {"HARD_SWISH": 2}
    d = litert_delegation(after)
    assert d["not_delegated"] == {} and d["partitions"] == 1 and d["operators"] == litert_delegation(before)["operators"] + 4
    # not exact (the hard sigmoid is rounded to 256 levels before the product), as near Keras as the HARD_SWISH kernel
    spread = float(np.std(reference))
    err_before = float(np.mean(np.abs(_run(before, x[32:], reference_kernels=True) - reference))) / spread
    err_after = float(np.mean(np.abs(_run(after, x[32:], reference_kernels=True) - reference))) / spread
    err_xnnpack = float(np.mean(np.abs(_run(after, x[32:]) - reference))) / spread  # what a deployment runs
    print(f"error over the logits' spread: HARD_SWISH {err_before:.4f}, ADD/MUL {err_after:.4f}, on XNNPACK {err_xnnpack:.4f}")
    assert max(err_after, err_xnnpack) < 1.5 * err_before + 0.005, (err_before, err_after, err_xnnpack)


def test_a_hard_swish_whose_add_xnnpack_would_refuse_is_kept(keras, tmp_path):
    from lrfc.lower.xnnpack_int8 import hard_swish_as_add_mul, xnnpack_int8

    model = _hard_swish_model(keras)
    tiny = np.random.default_rng(3).standard_normal((32, 16, 16, 8)).astype(np.float32) * 1e-4  # vanishing maps
    path = export_tflite(model, tmp_path / "tiny.tflite", "int8", representative=tiny, xnnpack=False)
    assert hard_swish_as_add_mul(path.read_bytes())[1] == 0  # its ADD's input-to-output scale would be under 2^-10
    normal = export_tflite(model, tmp_path / "normal.tflite", "int8", representative=tiny * 1e4, xnnpack=False)
    assert xnnpack_int8(normal.read_bytes())[1] == {"HARD_SWISH": 2}


def test_the_edge_tpu_target_gets_the_converter_s_own_operators(keras, tmp_path):
    """`lrfc export --target coral-edgetpu` lowers without the XNNPACK forms (its compiler takes RELU and
    AVERAGE_POOL_2D, not LEAKY_RELU); the host's int8 file has them."""
    keras.utils.set_random_seed(4)
    layers = keras.layers
    inp = keras.Input((28, 28, 1))
    x = layers.Conv2D(8, 3, padding="same")(inp)
    x = layers.Add()([x, layers.Conv2D(8, 3, padding="same")(layers.ReLU()(x))])  # a ReLU beside its input
    x = layers.AveragePooling2D(2)(x)
    logits = layers.Dense(10, kernel_initializer=keras.initializers.RandomNormal(stddev=3.0))(
        layers.GlobalAveragePooling2D()(x))
    keras.Model(inp, logits).save(tmp_path / "m.keras")
    operators = {}
    for target in ("coral-edgetpu", "host"):
        assert main(["export", str(tmp_path / "m.keras"), "--target", target, "--precision", "int8", "--formats",
                     "tflite", "--data", "fashion-mnist", "--allow-low-accuracy",
                     "--out", str(tmp_path / target)]) == 0
        operators[target] = _operators(tmp_path / target / "model.tflite")
    assert {"RELU", "AVERAGE_POOL_2D"} <= operators["coral-edgetpu"] and "LEAKY_RELU" not in operators["coral-edgetpu"]
    assert "LEAKY_RELU" in operators["host"] and not {"RELU", "AVERAGE_POOL_2D"} & operators["host"]


def test_dilated_convolutions_become_one_operator_each_that_xnnpack_takes(keras, tmp_path):
    """Keras' dilated Conv2D, DepthwiseConv2D and SeparableConv2D lower through SPACE_TO_BATCH_ND and
    BATCH_TO_SPACE_ND, which XNNPACK leaves out; lowered with the XNNPACK forms each is one dilated operator, bias
    and activation fused, computing what Keras computes, at fp32 and int8."""
    keras.utils.set_random_seed(5)
    layers = keras.layers
    inp = keras.Input((15, 15, 4))  # odd maps: the shuffles pad and crop
    x = layers.Conv2D(8, 3, padding="same", dilation_rate=2, activation="relu")(inp)
    x = layers.DepthwiseConv2D(3, padding="same", dilation_rate=(2, 3), depth_multiplier=2)(x)
    x = layers.SeparableConv2D(8, 3, padding="same", dilation_rate=2, activation="relu")(x)
    x = layers.Conv2D(8, (3, 1), padding="valid", dilation_rate=(3, 1))(x)
    model = keras.Model(inp, layers.Dense(10)(layers.Flatten()(x)))
    rng = np.random.default_rng(5)
    x = rng.standard_normal((48, 15, 15, 4)).astype(np.float32)
    reference = np.asarray(model.predict(x[32:], verbose=0))
    files = {(p, f): export_tflite(model, tmp_path / f"{p}.{f}.tflite", p, representative=x[:32], xnnpack=f)
             for p in ("fp32", "int8") for f in (False, True)}
    before = litert_delegation(files["fp32", False])
    assert before["not_delegated"] == {"SPACE_TO_BATCH_ND": 4, "BATCH_TO_SPACE_ND": 4}, before
    for precision in ("fp32", "int8"):
        ops = _operators(files[precision, True])
        assert not {"SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND", "ADD", "RELU"} & ops, (precision, ops)
        after = litert_delegation(files[precision, True])
        assert after["partitions"] == 1 and after["not_delegated"] == {}, (precision, after)
    assert np.abs(_run(files["fp32", True], x[32:]) - reference).max() < 1e-4
    spread = float(np.std(reference))
    err_before = float(np.mean(np.abs(_run(files["int8", False], x[32:]) - reference))) / spread
    err_after = float(np.mean(np.abs(_run(files["int8", True], x[32:]) - reference))) / spread
    assert err_after < max(1.5 * err_before, 0.02), (err_before, err_after)
