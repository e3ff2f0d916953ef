"""A depthwise kh x 1 then 1 x kw pair (CP's spatial factors) reaches both converters as one kh x kw depthwise layer.

Real Keras models, the real converter twin and both real converters: the
twin computes what the model computes, the files hold one depthwise
operator where the model has two, and a pair that is not one function of
one layer (a bias or an activation between, a tensor read twice, a model
output, unequal strides) is left as it is.
"""

from __future__ import annotations

import numpy as np
import pytest

from lrfc.common.quiet import import_keras

keras = import_keras()

from lrfc.lower.onnx import export_onnx  # noqa: E402
from lrfc.lower.separable_depthwise import merged_pairs  # noqa: E402
from lrfc.lower.tflite import export_tflite  # noqa: E402
from lrfc.lower.twin import converter_twin  # noqa: E402

CHANNELS = 6


def _pair_model(first=(3, 1), second=(1, 3), padding="same", strides=((1, 1), (1, 1)), dilation=((1, 1), (1, 1)),
                first_bias=False, first_activation=None, tap=None, seed=0):
    """Input -> 1x1 conv -> depthwise ``first`` -> depthwise ``second`` (bias, ReLU) -> 1x1 conv; random weights.

    ``tap``: "add" reads the first depthwise output a second time (added to the second's), "shared" by a layer's
    second call, "output" makes it a second model output."""
    layers = keras.layers
    x = keras.Input((12, 11, 4))
    h = layers.Conv2D(CHANNELS, 1, use_bias=False, name="c__0")(x)
    a = layers.DepthwiseConv2D(first, strides=strides[0], dilation_rate=dilation[0], padding=padding,
                               use_bias=first_bias, activation=first_activation, name="c__1")(h)
    b = layers.DepthwiseConv2D(second, strides=strides[1], dilation_rate=dilation[1], padding=padding,
                               activation="relu", name="c__2")(a)
    if tap == "add":
        b = layers.Add()([b, a])
    if tap == "shared":  # one layer called twice, its second call reading the first depthwise layer's output
        shared = layers.Conv2D(CHANNELS, 1, name="shared")
        b = layers.Add()([b, shared(h), shared(a)])
    y = layers.Conv2D(5, 1, name="c__3")(b)
    m = keras.Model(x, [y, a] if tap == "output" else y)
    rng = np.random.default_rng(seed)
    for layer in m.layers:
        if layer.weights:
            layer.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in layer.get_weights()])
    return m


def _depthwise(model) -> list:
    return [layer for layer in model.layers if type(layer) is keras.layers.DepthwiseConv2D]


@pytest.mark.parametrize("first,second,padding,dilation", [
    ((3, 1), (1, 3), "same", ((1, 1), (1, 1))),
    ((1, 3), (3, 1), "same", ((1, 1), (1, 1))),       # columns first
    ((3, 1), (1, 3), "valid", ((1, 1), (1, 1))),
    ((5, 1), (1, 3), "same", ((2, 1), (1, 1))),       # unequal sizes, the rows dilated
])
def test_the_pair_is_one_depthwise_layer_computing_the_same(first, second, padding, dilation):
    m = _pair_model(first, second, padding, dilation=dilation)
    twin = converter_twin(m)
    (merged,) = [layer for layer in _depthwise(twin) if layer.kernel_size != (1, 1)]
    rows, cols = (first[0], second[1]) if first[1] == 1 else (second[0], first[1])
    assert tuple(merged.kernel_size) == (rows, cols)
    assert tuple(merged.dilation_rate) == (dilation[0][0], 1)
    assert merged.name == "c__2" and merged.use_bias and merged.activation.__name__ == "relu"
    x = np.random.default_rng(1).uniform(-1, 1, (8, 12, 11, 4)).astype(np.float32)
    want = m.predict(x, verbose=0)
    assert want.shape[1:3] == twin.predict(x, verbose=0).shape[1:3]
    np.testing.assert_allclose(twin.predict(x, verbose=0), want, atol=2e-5, rtol=1e-5)


def test_the_files_hold_one_depthwise_operator(tmp_path):
    """LiteRT and ONNX Runtime run the files: one DEPTHWISE_CONV_2D, one grouped Conv, the model's outputs."""
    import onnx
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    m = _pair_model()
    x = np.random.default_rng(2).uniform(-1, 1, (1, 12, 11, 4)).astype(np.float32)
    want = m.predict(x, verbose=0)

    tfl = export_tflite(m, tmp_path / "m.tflite")
    interp = Interpreter(model_path=str(tfl))
    ops = [op["op_name"] for op in interp._get_ops_details()]
    assert ops == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D"], ops
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    np.testing.assert_allclose(interp.get_tensor(interp.get_output_details()[0]["index"]), want, atol=2e-5)

    path = export_onnx(m, tmp_path / "m.onnx")
    graph = onnx.load(str(path)).graph
    convs = [n for n in graph.node if n.op_type == "Conv"]
    groups = [next((a.i for a in n.attribute if a.name == "group"), 1) for n in convs]
    assert sorted(groups) == [1, 1, CHANNELS] and not [n for n in graph.node if n.op_type == "Identity"]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, want, atol=2e-5)


@pytest.mark.parametrize("case", ["first bias", "first relu", "read twice", "read by a shared layer", "model output",
                                  "unequal strides", "same axis"])
def test_a_pair_that_is_not_one_layer_is_left_alone(case):
    kwargs = {"first bias": dict(first_bias=True), "first relu": dict(first_activation="relu"),
              "read twice": dict(tap="add"), "read by a shared layer": dict(tap="shared"),
              "model output": dict(tap="output"),
              "unequal strides": dict(strides=((2, 1), (1, 1)), padding="valid"),
              "same axis": dict(second=(3, 1))}[case]
    m = _pair_model(**kwargs)
    assert merged_pairs(m) == {}
    twin = converter_twin(m)
    assert len(_depthwise(twin)) == 2
