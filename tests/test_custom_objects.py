"""A model with the user's own layer class: `--custom-objects FILE.py` imports the code that defines it.

Without it the model cannot load (one line that names the flag, exit 2); with it the build runs, the custom layer
passed through and lowered with the rest.
"""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np

from conftest import run_cli

LAYERS = '''
import keras


class ChannelScale(keras.layers.Layer):
    """A trainable scale per channel: a class Keras does not know, saved unregistered."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")

    def call(self, x):
        return x * self.scale
'''


def test_a_model_with_a_custom_layer_loads_with_the_code_that_defines_it(keras, tmp_path):
    from lrfc.frontend.data import read_fashion_mnist

    code = tmp_path / "user_blocks.py"
    code.write_text(LAYERS)
    spec = importlib.util.spec_from_file_location("user_blocks", code)
    module = importlib.util.module_from_spec(spec)
    sys.modules["user_blocks"] = module
    spec.loader.exec_module(module)
    try:
        keras.utils.set_random_seed(0)
        L = keras.layers
        inp = keras.Input((28, 28, 1))
        h = module.ChannelScale(name="scale")(L.Conv2D(16, 3, activation="relu", name="conv1")(inp))
        h = L.Conv2D(32, 3, strides=2, activation="relu", name="conv2")(L.MaxPooling2D()(h))
        model = keras.Model(inp, L.Dense(10, name="logits")(L.Dense(32, activation="relu", name="fc")(L.Flatten()(h))))
        model.compile(keras.optimizers.Adam(2e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        x, y, _, _ = read_fashion_mnist()
        model.fit(x[:4000, ..., None] / np.float32(255), y[:4000], epochs=1, batch_size=128, verbose=0)
        model.save(tmp_path / "custom.keras")
    finally:
        del sys.modules["user_blocks"]  # the CLI's process never saw it: only --custom-objects can tell it

    refused = run_cli("inspect", str(tmp_path / "custom.keras"))
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "ChannelScale" in refused.stderr and "--custom-objects FILE.py" in refused.stderr

    res = run_cli("build", str(tmp_path / "custom.keras"), "--custom-objects", str(code), "--data", "fashion-mnist",
                  "--finetune", "none", "--objective", "flops", "--calib-samples", "200", "--step", "25",
                  "--bench-runs", "0", "--formats", "tflite,onnx", "--out", str(tmp_path / "out"), "--cache-dir",
                  str(tmp_path / "cache"), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert {"name": "scale", "type": "ChannelScale", "reason": "a layer of the model's own class: passed through, not "
            "looked inside (its MACs are not counted)"} in report["unfactorized"], report["unfactorized"]
    assert {layer["name"] for layer in report["layers"] if layer.get("method")} & {"conv1", "conv2", "fc"}
    from lrfc.report.text import summary_table

    removed = next(line for line in summary_table(report).splitlines() if line.startswith("removed"))
    assert removed.endswith("of MACs (of the MACs lrfc counts, not those of scale: a layer of the model's own "
                            "class, whose work it cannot see)"), removed
    assert "removed (not counting layers of the model's own classes)" in (tmp_path / "out" / "report.html").read_text()
    assert report["original"]["accuracy"] > 0.5
    assert report["artifacts"] and all(a["passed"] for a in report["artifacts"]), report["artifacts"]


def test_custom_objects_that_cannot_be_imported_are_one_line(tmp_path):
    (tmp_path / "broken.py").write_text("raise ZeroDivisionError('no layers here')\n")
    for spec, words in ((str(tmp_path / "missing.py"), "--custom-objects {}: no such file"),
                        (str(tmp_path / "broken.py"), "--custom-objects {}: importing it failed: ZeroDivisionError: "
                                                      "no layers here")):
        res = run_cli("inspect", str(tmp_path / "broken.py"), "--custom-objects", spec)
        assert res.returncode == 2 and res.stderr.strip() == f"lrfc: error: {words.format(spec)}", res.stderr
    res = run_cli("build", "nowhere.keras", "--data", "fashion-mnist", "--custom-objects", str(tmp_path / "missing.py"),
                  "--out", str(tmp_path / "out"))
    assert res.returncode == 2 and "model not found: nowhere.keras" in res.stderr  # preflight, before any import
