"""`lrfc inspect FILE.tflite|.onnx`: what a lowered file takes and gives, what it says about itself, its operators,
and in a quantized file the operators left in float."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lrfc.cli import main


@pytest.fixture(scope="module")
def int8_export(tiny_model_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("inspect") / "e"
    assert main(["export", str(tiny_model_path), "--target", "host", "--precision", "int8", "--data", "fashion-mnist",
                 "--out", str(out)]) == 0
    return out


def test_an_int8_file_says_what_it_takes_and_that_it_has_no_float_island(int8_export, capsys):
    capsys.readouterr()
    assert main(["inspect", str(int8_export / "model.tflite")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("model.tflite: tflite, ") and "sha256 " in lines[0]
    assert lines[1] == ("input     input: int8 [1, 28, 28, 1], scale 0.00392157, zero point -128 "
                        "(8-bit pixels p: q = p - 128)")
    assert lines[2].startswith("output    ") and ": int8 [1, 10], scale " in lines[2]
    assert "contract  pixel values 0-1 (inferred): --input-range 0-1" in lines
    assert "float     none: every operator's output is quantized" in lines
    assert main(["inspect", str(int8_export / "model.tflite"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    # the tiny baseline: two convolutions, a pooling, two dense layers
    assert info["operators"]["CONV_2D"] == 2 and info["operators"]["FULLY_CONNECTED"] == 2
    assert info["float_ops"] == {} and info["stamp"]["lrfc.version"]
    assert info["labels"] == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                              "Bag", "Ankle boot"]  # the built-in Fashion-MNIST's class names, carried by the file
    assert info["int8_weights_only"] is False  # int8 activations too: a fully quantized file
    assert main(["inspect", str(int8_export / "model.onnx"), "--json"]) == 0  # QDQ inside, float at its edges
    onnx_info = json.loads(capsys.readouterr().out)
    assert onnx_info["operators"]["QuantizeLinear"] >= 1 and onnx_info["float_ops"] is None
    assert onnx_info["contract"]["range"] == "0-1" and onnx_info["io"]["inputs"][0]["dtype"] == "float32"


@pytest.mark.filterwarnings("ignore:Statistics for quantized inputs were expected")  # float I/O, as intended
def test_a_float_island_in_someone_elses_quantized_file_is_listed(keras, tmp_path, capsys):
    """TensorFlow's own int8 conversion with float fallback (its default): an operator with no int8 kernel (SIN)
    stays float between a DEQUANTIZE and a QUANTIZE. A file lrfc did not write carries no contract."""
    import tensorflow as tf

    inp = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, name="conv")(inp)
    h = keras.layers.Lambda(tf.math.sin, name="sin")(h)
    model = keras.Model(inp, keras.layers.Dense(3)(keras.layers.Flatten()(h)))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    converter.representative_dataset = lambda: ([rng.random((1, 8, 8, 1), np.float32)] for _ in range(8))
    (tmp_path / "f.tflite").write_bytes(converter.convert())
    capsys.readouterr()  # the converter's own lines
    assert main(["inspect", str(tmp_path / "f.tflite"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["float_ops"] == {"SIN": 1} and info["operators"]["DEQUANTIZE"] >= 1
    assert info["contract"] is None and info["stamp"] == {}
    assert main(["inspect", str(tmp_path / "f.tflite")]) == 0
    text = capsys.readouterr().out
    assert "float     1 operator outputs float32 in this quantized file: SIN" in text
    assert "contract  none recorded in the file" in text


def test_a_dynamic_range_file_is_told_from_an_int8_one(keras, tmp_path, capsys):
    """TensorFlow's dynamic-range quantization (no representative data): int8 weights, float activations."""
    import tensorflow as tf

    inp = keras.Input((8, 8, 4))
    model = keras.Model(inp, keras.layers.Dense(10)(keras.layers.Dense(64)(keras.layers.Flatten()(inp))))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    (tmp_path / "d.tflite").write_bytes(converter.convert())
    (tmp_path / "f.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "d.tflite"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["int8_weights_only"] is True and info["float_ops"] is None
    assert info["io"]["inputs"][0]["dtype"] == "float32"
    assert main(["inspect", str(tmp_path / "d.tflite")]) == 0
    assert "float     int8 weights only (dynamic-range quantization)" in capsys.readouterr().out
    assert main(["inspect", str(tmp_path / "f.tflite"), "--json"]) == 0  # the same model in float: neither
    plain = json.loads(capsys.readouterr().out)
    assert plain["int8_weights_only"] is False and plain["float_ops"] is None


def test_a_damaged_file_is_one_line(tmp_path, capsys):
    (tmp_path / "bad.tflite").write_bytes(b"not a flatbuffer" * 10)
    assert main(["inspect", str(tmp_path / "bad.tflite")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"lrfc: error: {tmp_path / 'bad.tflite'}: not a readable tflite")
