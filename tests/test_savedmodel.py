"""Loading tf.keras 2 SavedModel directories into Keras 3 (lrfc.frontend.savedmodel).

The fixtures are real SavedModels written by tf.keras 2.15 (tests/fixtures/make_keras2_savedmodels.py);
`expected.npz` next to each holds an input, the tf.keras 2 output and the model's size.
Broken variants are made in tmp_path by re-encoding an edited keras_metadata.pb.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lrfc.errors import UserError
from lrfc.frontend.savedmodel import METADATA_FILE, _read_metadata, load_keras2_savedmodel

FIXTURES = Path(__file__).parent / "fixtures" / "keras2_savedmodel"


def _expected(name: str) -> dict:
    with np.load(FIXTURES / name / "expected.npz") as data:
        return {key: data[key] for key in data.files}


def _max_abs_diff(model, expected: dict) -> float:
    y = np.asarray(model(expected["x"], training=False))
    assert y.shape == expected["y"].shape
    return float(np.max(np.abs(y - expected["y"])))


@pytest.mark.parametrize("name", ["seq", "func"])
def test_fixture_matches_tf_keras2(keras, name):
    expected = _expected(name)
    model = load_keras2_savedmodel(FIXTURES / name)
    diff = _max_abs_diff(model, expected)
    print(f"{name}: max abs diff vs tf.keras 2 = {diff:.3g}")
    assert isinstance(model, keras.Model)
    assert diff < 1e-5
    assert model.count_params() == int(expected["count_params"])
    assert len(model.layers) == int(expected["n_layers"])
    assert [layer.name for layer in model.layers] == list(expected["layer_names"])


def test_nested_sequential_is_rebuilt_as_a_model(keras):
    model = load_keras2_savedmodel(FIXTURES / "func")
    block = model.get_layer("block")
    assert isinstance(block, keras.Sequential)
    assert [type(layer).__name__ for layer in block.layers] == ["Conv2D", "BatchNormalization", "DepthwiseConv2D"]


def test_lambda_is_refused_in_safe_mode():
    with pytest.raises(UserError, match=r"Lambda 'lambda'.*safe_mode=False"):
        load_keras2_savedmodel(FIXTURES / "lambda")


def test_lambda_loads_when_trusted():
    model = load_keras2_savedmodel(FIXTURES / "lambda", safe_mode=False)
    assert _max_abs_diff(model, _expected("lambda")) < 1e-5


def test_keras3_export_without_metadata_is_refused(keras, tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    exported = tmp_path / "exported"
    model.export(exported, format="tf_saved_model", verbose=False)
    with pytest.raises(UserError, match="without Keras metadata") as info:
        load_keras2_savedmodel(exported)
    assert str(exported) in str(info.value)
    assert "\n" not in str(info.value)


def test_directory_without_saved_model_is_refused(tmp_path):
    with pytest.raises(UserError, match="not a SavedModel directory"):
        load_keras2_savedmodel(tmp_path)


# --- broken copies of the `seq` fixture -------------------------------------------------------


def _copy(tmp_path: Path, name: str = "seq") -> Path:
    target = tmp_path / name
    shutil.copytree(FIXTURES / name, target)
    return target


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _rewrite_root_config(directory: Path, edit) -> None:
    """Re-encode keras_metadata.pb after ``edit(layers)`` changed the root model's layer configs."""
    nodes = _read_metadata(directory)
    encoded = b""
    for node in nodes:
        metadata = node.metadata
        if node.node_path == "root":
            root = json.loads(metadata)
            for holder in (root["config"], root["model_config"]["config"]):
                edit(holder["layers"])
            metadata = json.dumps(root)
        encoded += _length_delimited(1, _varint(2 << 3) + _varint(node.node_id)
                                     + _length_delimited(3, node.node_path.encode())
                                     + _length_delimited(4, node.identifier.encode())
                                     + _length_delimited(5, metadata.encode()))
    (directory / METADATA_FILE).write_bytes(encoded)


def _layer(layers: list, name: str) -> dict:
    return next(entry for entry in layers if entry["config"]["name"] == name)


def test_reencoded_metadata_still_loads(tmp_path):
    directory = _copy(tmp_path)
    _rewrite_root_config(directory, lambda layers: None)
    model = load_keras2_savedmodel(directory)
    assert _max_abs_diff(model, _expected("seq")) < 1e-5


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupted_metadata_is_refused(tmp_path, damage):
    directory = _copy(tmp_path)
    file = directory / METADATA_FILE
    data = file.read_bytes()
    file.write_bytes(b"this is not a protobuf" if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(UserError, match=r"keras_metadata\.pb"):
        load_keras2_savedmodel(directory)


def test_metadata_without_json_is_refused(tmp_path):
    directory = _copy(tmp_path)
    (directory / METADATA_FILE).write_bytes(_length_delimited(1, _length_delimited(3, b"root") + _length_delimited(5, b"{oops")))
    with pytest.raises(UserError, match="not JSON"):
        load_keras2_savedmodel(directory)


def test_unknown_layer_class_is_refused(tmp_path):
    directory = _copy(tmp_path)

    def rename(layers):
        _layer(layers, "flatten")["class_name"] = "NoSuchLayer"

    _rewrite_root_config(directory, rename)
    with pytest.raises(UserError, match="NoSuchLayer"):
        load_keras2_savedmodel(directory)


@pytest.mark.parametrize(
    ("layer", "key", "value", "message"),
    [
        ("conv2d_1", "use_bias", True, r"no saved value for weight 'seq_cnn/conv2d_1/bias'"),
        ("conv2d", "use_bias", False, r"have no place in the model.*layer_with_weights-0/bias"),
        ("dense", "units", 11, r"has shape \(72, 10\).*expects \(72, 11\)"),
    ],
)
def test_weights_that_do_not_fit_are_refused(tmp_path, layer, key, value, message):
    directory = _copy(tmp_path)

    def edit(layers):
        _layer(layers, layer)["config"][key] = value

    _rewrite_root_config(directory, edit)
    with pytest.raises(UserError, match=message):
        load_keras2_savedmodel(directory)
