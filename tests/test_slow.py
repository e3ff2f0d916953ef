"""Slower checks on models nobody here designed, run by `make bench` (marked `slow`, left out of `make test`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def apps(tmp_path_factory, keras):
    """keras.applications EfficientNetB0 and MobileNetV3Small (weights=None: random, at chance), 64x64x3, 10 classes."""
    root = tmp_path_factory.mktemp("apps")
    keras.utils.set_random_seed(0)
    keras.applications.EfficientNetB0(weights=None, input_shape=(64, 64, 3), classes=10).save(root / "effnet.keras")
    keras.applications.MobileNetV3Small(weights=None, input_shape=(64, 64, 3), classes=10).save(root / "mnv3.keras")
    return root


def test_efficientnet_exports_to_both_formats_with_its_normalization_folded(apps, tmp_path):
    """tf2onnx left the Normalization layer's constants as unfed graph inputs; both formats must now verify."""
    import onnx

    res = run_cli("export", str(apps / "effnet.keras"), "--target", "host", "--data", "fashion-mnist",
                  "--allow-low-accuracy", "--out", str(tmp_path / "e"), "--json", timeout=900)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert [(a["format"], a["passed"]) for a in doc["artifacts"]] == [("tflite", True), ("onnx", True)]
    assert doc["input"]["range"] == "0-255" and "Rescaling" in doc["input"]["reason"]
    assert [i.name for i in onnx.load(str(tmp_path / "e" / "model.onnx")).graph.input] == ["input"]
    assert "lrfc: warning: the original model scores" in res.stderr  # random weights: at chance, and it says so


def test_mobilenetv3_int8_export_takes_raw_pixels(apps, tmp_path):
    res = run_cli("export", str(apps / "mnv3.keras"), "--target", "host", "--precision", "int8", "--data",
                  "fashion-mnist", "--allow-low-accuracy", "--formats", "tflite", "--out", str(tmp_path / "q"), "--json",
                  timeout=900)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["input"]["range"] == "0-255" and doc["artifacts"][0]["passed"]


def test_a_keras2_h5_classifier_trained_on_raw_pixels_is_caught_and_the_flag_named(keras, tmp_path):
    """A legacy .h5 model with BatchNorm trained on raw 0-255 floats, no preprocessing layer: fed [0, 1] by
    default it collapses; lrfc stops and names --input-range 0-255, and with it the export verifies."""
    from lrfc.frontend.data import read_fashion_mnist

    x, y, _, _ = read_fashion_mnist()
    keras.utils.set_random_seed(0)
    layers = keras.layers
    model = keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(16, 3), layers.BatchNormalization(), layers.ReLU(),
                              layers.MaxPooling2D(), layers.Conv2D(32, 3), layers.BatchNormalization(), layers.ReLU(),
                              layers.GlobalAveragePooling2D(), layers.Dense(10)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:8000, ..., None].astype("float32"), y[:8000], epochs=2, verbose=0)
    model.save(tmp_path / "raw.h5")
    res = run_cli("export", str(tmp_path / "raw.h5"), "--target", "host", "--precision", "int8", "--data",
                  "fashion-mnist", "--out", str(tmp_path / "bad"))
    lines = res.stderr.strip().splitlines()
    if res.returncode == 2:  # at chance: stopped, with the fix named
        assert len(lines) == 1 and "--input-range 0-255" in lines[0], res.stderr
    else:  # above chance but clearly worse: warned, with the fix named
        assert any("pass --input-range 0-255" in line for line in lines), res.stderr
    res = run_cli("export", str(tmp_path / "raw.h5"), "--target", "host", "--precision", "int8", "--data",
                  "fashion-mnist", "--input-range", "0-255", "--out", str(tmp_path / "good"), "--json")
    assert res.returncode == 0, res.stderr
    for artifact in json.loads(res.stdout)["artifacts"]:
        assert artifact["reference_accuracy"] > 0.6 and abs(artifact["accuracy"] - artifact["reference_accuracy"]) < 0.05
    assert np.isfinite(artifact["max_abs_diff"])


def test_probe_measures_this_machine_and_writes_a_profile_that_loads(tmp_path):
    """`lrfc profiles probe` for real on this machine (about 2 minutes): plausible figures, a loadable profile."""
    import json

    from conftest import run_cli
    from lrfc.targets import load_profile

    out = tmp_path / "here.toml"
    res = run_cli("profiles", "probe", "--out", str(out), "--precisions", "fp32,int8", "--json", timeout=900)
    assert res.returncode == 0, res.stderr
    measured = json.loads(res.stdout)
    assert 5 < measured["peak_gops"]["fp32"] < 2000 and measured["peak_gops"]["int8"] > measured["peak_gops"]["fp32"]
    assert 0.5 < measured["bandwidth_gbps"] < 500 and 0 <= measured["op_overhead_us"] < 1000
    assert set(measured["multiples"]) == {"fp32", "int8"} and len(measured["sweep_ms"]["fp32"]) == 32
    p = load_profile(str(out))
    assert p.peak_gflops["fp32"].value == measured["peak_gops"]["fp32"]
    assert "Measured on" in p.peak_gflops["int8"].source and "probe" in p.rank_multiple_source
    assert p.multiple_for("litert", "int8") == measured["multiples"]["int8"]
