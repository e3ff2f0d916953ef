"""What each method's chain lowers to, counted: every operator of TFLite (fp32, int8) and ONNX (fp32, QDQ int8).

Real rewrites (``factorize.rewrite.apply_plan``) of a small Conv+BatchNorm+ReLU,
Dense+ReLU model and real converters. The lists are pinned: BatchNorm folds
into the chain's last factor, ReLU fuses into it (TFLite) or follows it alone
(ONNX, where ONNX Runtime fuses it at load), no Transpose/Reshape/Cast
appears around a chain except TT-matrix's own contractions, and the int8
files carry no float island: TFLite is integer from input to output (no
QUANTIZE/DEQUANTIZE at all), every ONNX Conv/MatMul reads quantized inputs
and ONNX Runtime runs the file integer between one QuantizeLinear and one
DequantizeLinear, and weights are quantized per output channel (symmetric) in both.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from conftest import onnx_runtime_ops
from lrfc.common.quiet import import_keras

keras = import_keras()

from lrfc.factorize.rewrite import apply_plan  # noqa: E402
from lrfc.lower.onnx import export_onnx, quantize_onnx_int8  # noqa: E402
from lrfc.lower.tflite import export_tflite  # noqa: E402
from lrfc.plan import LayerChoice, Plan  # noqa: E402

HEAD_TFL = ["MEAN"]                                       # GlobalAveragePooling2D
HEAD_ONNX = ["Relu", "GlobalAveragePool", "Squeeze"]      # the conv chain's ReLU, then the pooling
TTM_TFL = ["RESHAPE", "TRANSPOSE", "RESHAPE", "FULLY_CONNECTED"] * 3 + ["RESHAPE", "ADD"]  # bias, ReLU fused
TTM_ONNX = ["Reshape", "Transpose", "Reshape", "MatMul"] * 3 + ["Reshape", "Add", "Relu"]

# (conv method, ranks, dense method, ranks) -> (TFLite ops, ONNX ops after the input Transpose)
CASES = {
    "original": (None, None, None, None,
                 ["CONV_2D", *HEAD_TFL, "FULLY_CONNECTED", "FULLY_CONNECTED"],
                 ["Conv", *HEAD_ONNX, "MatMul", "Add", "Relu", "MatMul", "Add"]),
    "tucker+svd": ("tucker", (8, 16), "svd", (8,),
                   ["CONV_2D"] * 3 + HEAD_TFL + ["FULLY_CONNECTED"] * 3,
                   ["Conv"] * 3 + HEAD_ONNX + ["MatMul", "MatMul", "Add", "Relu", "MatMul", "Add"]),
    "cp+qr": ("cp", (12,), "qr", (8,),
              ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", *HEAD_TFL] + ["FULLY_CONNECTED"] * 3,  # 3x1, 1x3 as one 3x3
              ["Conv"] * 3 + HEAD_ONNX + ["MatMul", "MatMul", "Add", "Relu", "MatMul", "Add"]),
    "tt+ttm": ("tt", (8, 8, 16), "ttm", (4, 4),
               ["CONV_2D"] * 4 + HEAD_TFL + TTM_TFL + ["FULLY_CONNECTED"],
               ["Conv"] * 4 + HEAD_ONNX + TTM_ONNX + ["MatMul", "Add"]),
}


@pytest.fixture(scope="module")
def model():
    layers = keras.layers
    x = keras.Input((16, 16, 32))
    h = layers.Conv2D(64, 3, padding="same", use_bias=False, name="conv")(x)
    h = layers.BatchNormalization(name="bn")(h)
    h = layers.ReLU()(h)
    h = layers.GlobalAveragePooling2D()(h)
    h = layers.Dense(96, activation="relu", name="fc")(h)
    m = keras.Model(x, layers.Dense(10, name="logits")(h))
    rng = np.random.default_rng(0)
    m.get_layer("bn").set_weights([rng.uniform(0.5, 1.5, 64), rng.normal(0, 0.1, 64), rng.normal(0, 0.1, 64),
                                   rng.uniform(0.5, 1.5, 64)])
    for name in ("fc", "logits"):  # non-zero biases: a converter may drop an add of zeros
        kernel, bias = m.get_layer(name).get_weights()
        m.get_layer(name).set_weights([kernel, rng.normal(0, 0.1, bias.shape).astype(np.float32)])
    return m


def tflite_ops(path) -> list[str]:
    from ai_edge_litert.interpreter import Interpreter

    return [op["op_name"] for op in Interpreter(model_path=str(path))._get_ops_details()]


def onnx_graph(path):
    import onnx

    return onnx.load(str(path)).graph


@pytest.mark.parametrize("case", list(CASES))
def test_each_chain_lowers_to_the_pinned_operators(case, model, tmp_path):
    conv, conv_ranks, dense, dense_ranks, want_tfl, want_onnx = CASES[case]
    choices = () if conv is None else (LayerChoice("conv", conv, conv_ranks, False),
                                       LayerChoice("fc", dense, dense_ranks, False))
    factorized = apply_plan(model, Plan(choices))
    rng = np.random.default_rng(1)
    calibration = rng.uniform(0, 1, (16, 16, 16, 32)).astype(np.float32)

    fp32 = tflite_ops(export_tflite(factorized, tmp_path / "m.tflite"))
    assert fp32 == want_tfl
    int8_path = export_tflite(factorized, tmp_path / "m8.tflite", "int8", representative=calibration)
    assert tflite_ops(int8_path) == want_tfl  # the same kernels, integer: no QUANTIZE/DEQUANTIZE island
    _assert_tflite_int8_per_channel(int8_path)

    onnx_path = export_onnx(factorized, tmp_path / "m.onnx")
    ops = [n.op_type for n in onnx_graph(onnx_path).node]
    assert ops[0] == "Transpose" and ops[1:] == want_onnx  # one NHWC -> NCHW at the input, none around chains
    assert "Cast" not in ops and "BatchNormalization" not in ops
    int8_onnx = quantize_onnx_int8(onnx_path, tmp_path / "m8.onnx", calibration)
    _assert_onnx_int8_has_no_float_island(int8_onnx)
    runs = onnx_runtime_ops(int8_onnx, tmp_path)  # what ONNX Runtime runs: integer between one Q and one DQ
    assert runs["QuantizeLinear"] == 1 and runs["DequantizeLinear"] == 1, runs
    assert not {"Conv", "MatMul", "Gemm", "Add", "Relu"} & set(runs), runs


def test_batchnorm_after_a_biased_conv_folds_into_it_in_onnx(tmp_path):
    """keras.applications' convolutions carry a bias before their BatchNorm; Keras 3 runs the BatchNorm as a
    multiply and an add, which tf2onnx left beside a biased Conv (47 Mul and 48 Add in ResNet50's quarter-rank
    plan). lrfc folds them into the Conv, original and chain alike, and the file computes what Keras does."""
    import onnxruntime as ort

    layers = keras.layers
    x = keras.Input((16, 16, 32))
    h = layers.Conv2D(64, 3, padding="same", use_bias=True, name="conv")(x)
    h = layers.BatchNormalization(name="bn")(h)
    h = layers.ReLU()(layers.Add()([h, layers.Conv2D(64, 1, name="skip")(x)]))
    m = keras.Model(x, layers.Dense(10, name="logits")(layers.GlobalAveragePooling2D()(h)))
    rng = np.random.default_rng(0)
    m.get_layer("bn").set_weights([rng.uniform(0.5, 1.5, 64), rng.normal(0, 0.1, 64), rng.normal(0, 0.1, 64),
                                   rng.uniform(0.5, 1.5, 64)])
    kernel, _ = m.get_layer("conv").get_weights()
    m.get_layer("conv").set_weights([kernel, rng.normal(0, 0.1, 64).astype(np.float32)])
    x_test = rng.uniform(0, 1, (4, 16, 16, 32)).astype(np.float32)
    for name, plan in (("original", Plan(())), ("tucker", Plan((LayerChoice("conv", "tucker", (8, 16), False),)))):
        model = apply_plan(m, plan)
        path = export_onnx(model, tmp_path / f"{name}.onnx")
        ops = [n.op_type for n in onnx_graph(path).node]
        convs = 2 if name == "original" else 4  # the skip's 1x1, and the layer or its Tucker-2 chain of three
        # no Mul; the one Add is the residual one (the converter drops the logits' all-zero bias)
        assert Counter(ops) == Counter({"Transpose": 1, "Conv": convs, "Add": 1, "Relu": 1, "GlobalAveragePool": 1,
                                        "Squeeze": 1, "MatMul": 1}), ops
        got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x_test})[0]
        np.testing.assert_allclose(got, model.predict(x_test, verbose=0), rtol=1e-4, atol=1e-4)


def test_only_a_per_channel_scale_and_shift_of_a_convs_sole_output_is_folded():
    """Hand-written graphs: a Mul whose constant varies along the width, or a Conv whose output is read twice,
    stays as it is; a per-channel Mul then Add are both folded, into fresh initializers (the old ones dropped)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from lrfc.lower.onnx import _fold_scale_and_shift

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")

    def graph(nodes, consts):
        inits = [w] + [numpy_helper.from_array(v.astype(np.float32), k) for k, v in consts.items()]
        return helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)

    conv = helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv")
    along_width = graph([conv, helper.make_node("Mul", ["c", "s"], ["y"])], {"s": rng.random((1, 1, 1, 8))})
    assert _fold_scale_and_shift(along_width) == 0 and len(along_width.node) == 2
    read_twice = graph([conv, helper.make_node("Mul", ["c", "s"], ["m"]), helper.make_node("Add", ["m", "c"], ["y"])],
                       {"s": rng.random((1, 4, 1, 1))})
    assert _fold_scale_and_shift(read_twice) == 0
    folded = graph([conv, helper.make_node("Mul", ["s", "c"], ["m"]), helper.make_node("Add", ["m", "t"], ["y"])],
                   {"s": rng.random((4, 1, 1)), "t": rng.random((1, 4, 1, 1)), "unrelated": rng.random(3)})
    model = helper.make_model(folded, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    import onnxruntime as ort

    x = rng.random((1, 3, 8, 8)).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert _fold_scale_and_shift(model.graph) == 2
    assert [n.op_type for n in model.graph.node] == ["Conv"] and model.graph.node[0].output[0] == "y"
    names = sorted(t.name for t in model.graph.initializer)  # what it replaced is dropped, nothing else
    assert len(names) == 3 and names[2] == "unrelated" and all(n.startswith("conv_folded_") for n in names[:2]), names
    onnx.checker.check_model(model, full_check=True)
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _assert_tflite_int8_per_channel(path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    assert interp.get_input_details()[0]["dtype"] == np.int8 and interp.get_output_details()[0]["dtype"] == np.int8
    for op in interp._get_ops_details():
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            weight = tensors[op["inputs"][1]]
            q = weight["quantization_parameters"]
            assert weight["dtype"] == np.int8 and not np.any(q["zero_points"])  # symmetric
            channels = weight["shape"][3] if op["op_name"] == "DEPTHWISE_CONV_2D" else weight["shape"][0]
            if op["op_name"] != "FULLY_CONNECTED":  # TFLite quantizes FULLY_CONNECTED per tensor
                assert len(q["scales"]) == channels, (op["op_name"], weight["shape"], len(q["scales"]))


def _assert_onnx_int8_has_no_float_island(path) -> None:
    graph = onnx_graph(path)
    producer = {out: n for n in graph.node for out in n.output}
    counts = Counter(n.op_type for n in graph.node)
    assert counts["QuantizeLinear"] >= 1 and counts["DequantizeLinear"] >= counts["Conv"] + counts["MatMul"]
    for node in graph.node:
        if node.op_type in ("Conv", "MatMul"):  # both the activation and the weight arrive quantized
            sources = [producer.get(i) for i in node.input[:2]]
            assert all(s is not None and s.op_type == "DequantizeLinear" for s in sources), node.name
            weight_scale = next(t for t in graph.initializer if t.name == sources[1].input[1])
            if node.op_type == "Conv":
                assert weight_scale.dims and weight_scale.dims[0] > 1  # per output channel


def test_flatten_and_reshape_lower_to_constant_reshapes(tmp_path):
    """No shape arithmetic (SHAPE/STRIDED_SLICE/PACK, Shape/Gather/Slice/Concat/Cast) for a fixed-shape head."""
    from lrfc.lower.twin import converter_twin
    from lrfc.lower.verify import run_artifact

    layers = keras.layers
    x = keras.Input((8, 8, 3))
    h = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(x)
    h = layers.MaxPooling2D(name="pool")(h)
    h = layers.Reshape((16, 8), name="rows")(h)      # a Reshape layer: kept, at a constant shape
    h = layers.Flatten(name="flatten")(h)
    m = keras.Model(x, layers.Dense(5, name="logits")(h))
    twin = converter_twin(m)
    assert twin is not m and all(twin.get_layer(n) is m.get_layer(n) for n in ("conv", "pool", "logits"))  # shared
    assert type(twin.get_layer("flatten")) is not type(m.get_layer("flatten"))
    pooled = keras.Model(x, layers.GlobalAveragePooling2D()(layers.Conv2D(4, 1)(x)))
    assert converter_twin(pooled) is pooled  # nothing to make constant: the model itself

    batch = np.random.default_rng(2).uniform(0, 1, (3, 8, 8, 3)).astype(np.float32)  # a batch of 3: -1 resolves
    want = m.predict(batch, verbose=0)
    tfl_path = export_tflite(m, tmp_path / "m.tflite")
    assert tflite_ops(tfl_path) == ["CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED"]  # the two merged
    np.testing.assert_allclose(run_artifact(tfl_path, "tflite", batch), want, atol=1e-5)
    onnx_path = export_onnx(m, tmp_path / "m.onnx")
    ops = [n.op_type for n in onnx_graph(onnx_path).node]
    assert not {"Shape", "Gather", "Slice", "Concat", "Cast"} & set(ops), ops
    np.testing.assert_allclose(run_artifact(onnx_path, "onnx", batch), want, atol=1e-5)


def test_a_flattened_models_shared_layers_lower_to_constant_reshapes_too(tmp_path):
    """``lrfc export`` and the build's original lower the flattened model, whose layers the loaded model shares:
    each has a node in both models, and the twin reads this model's (the original's files kept SHAPE/STRIDED_SLICE/
    PACK before, the compressed model's, built from copies, did not)."""
    from lrfc.frontend.graph import rebuild

    x = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, name="conv")(x)
    m = keras.Model(x, keras.layers.Dense(5, name="logits")(keras.layers.Flatten(name="flatten")(h)))
    flat = rebuild(m)
    assert flat.get_layer("flatten") is m.get_layer("flatten") and len(m.get_layer("flatten")._inbound_nodes) == 2
    path = export_tflite(flat, tmp_path / "flat.tflite")
    assert tflite_ops(path) == ["CONV_2D", "RESHAPE", "FULLY_CONNECTED"]
    ops = [n.op_type for n in onnx_graph(export_onnx(flat, tmp_path / "flat.onnx")).node]
    assert not {"Shape", "Gather", "Slice", "Concat", "Cast"} & set(ops), ops


def _convnext_block(name="block"):
    """ConvNeXt's block as keras.applications writes it: a 7x7 convolution with groups = channels, LayerNorm,
    pointwise Dense layers on the 4-D map with the exact GELU between them, a residual add."""
    layers = keras.layers
    x = keras.Input((6, 6, 8))
    h = layers.Conv2D(8, 7, padding="same", groups=8, name="dw")(x)
    h = layers.LayerNormalization(epsilon=1e-6, name="ln")(h)
    h = layers.Dense(32, name="pw1")(h)
    h = layers.Activation("gelu", name="gelu")(h)
    h = layers.Dense(8, name="pw2")(h)
    h = layers.Conv2D(12, 3, padding="same", groups=4, name="grouped")(layers.Add(name="residual")([x, h]))
    model = keras.Model(x, layers.Dense(3, activation="gelu", name="head")(layers.GlobalAveragePooling2D()(h)),
                        name=name)
    rng = np.random.default_rng(3)
    for layer in model.layers:  # non-zero biases: a dropped bias would show
        if layer.weights:
            layer.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in layer.get_weights()])
    return model


def test_grouped_convolutions_dense_on_maps_and_exact_gelu_lower_to_both_formats(tmp_path):
    """What keras.applications ConvNeXt is made of: tf2onnx refused its grouped convolutions (Keras runs them as an
    XLA call) and its Erfc (the exact GELU); TFLite and ONNX computed each Dense on a map with shape arithmetic."""
    from lrfc.lower.twin import converter_twin
    from lrfc.lower.verify import run_artifact

    m = _convnext_block()
    twin = converter_twin(m)
    kinds = {n: type(twin.get_layer(n)).__name__ for n in ("dw", "grouped", "pw1", "pw2", "head", "ln")}
    assert kinds == {"dw": "DepthwiseConv2D", "grouped": "GroupedConvAsSplit", "pw1": "StaticDense",
                     "pw2": "StaticDense", "head": "Dense", "ln": "LayerNormalization"}
    assert twin.get_layer("ln") is m.get_layer("ln")  # untouched layers are shared, not copied
    batch = np.random.default_rng(4).normal(size=(5, 6, 6, 8)).astype(np.float32)
    want = m.predict(batch, verbose=0)
    np.testing.assert_allclose(twin.predict(batch, verbose=0), want, rtol=1e-5, atol=1e-5)

    tfl = tflite_ops(export_tflite(m, tmp_path / "m.tflite"))
    assert Counter(tfl)["DEPTHWISE_CONV_2D"] == 1 and Counter(tfl)["CONV_2D"] == 4  # the 4 groups' convolutions
    assert not {"SHAPE", "GATHER", "REDUCE_PROD", "PACK"} & set(tfl), tfl
    np.testing.assert_allclose(run_artifact(tmp_path / "m.tflite", "tflite", batch), want, rtol=1e-4, atol=1e-4)
    ops = Counter(n.op_type for n in onnx_graph(export_onnx(m, tmp_path / "m.onnx")).node)
    assert ops["Erf"] == 2 and ops["Conv"] == 5 and not {"Shape", "Gather", "ReduceProd", "Cast"} & set(ops), ops
    np.testing.assert_allclose(run_artifact(tmp_path / "m.onnx", "onnx", batch), want, rtol=1e-4, atol=1e-4)
