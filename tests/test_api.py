"""The Python API: the README's example runs as written, and build takes a keras.Model and numpy arrays."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_example_runs(tmp_path):
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(import lrfc\n.*?)```", readme, re.S)
    assert block, "README.md has no ```python block starting with `import lrfc`"
    code = block.group(1)
    assert len(code.strip().splitlines()) <= 6
    code = code.replace('out="lrfc-out"', f'out={str(tmp_path / "out")!r}')
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "LRFC_CACHE_DIR": str(tmp_path / "cache")})
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "out" / "report.json").exists() and (tmp_path / "out" / "model.tflite").exists()
    assert res.stdout.strip(), "the example prints its result"


def test_build_takes_a_keras_model_and_arrays(tiny_model_path, keras, tmp_path):
    import lrfc
    from lrfc.frontend.data import Dataset, read_fashion_mnist
    from lrfc.frontend.load import load_model
    from lrfc.frontend.splits import make_splits

    model = load_model(tiny_model_path)
    before = [w.copy() for w in model.get_weights()]
    x, y, x_test, y_test = read_fashion_mnist()
    result = lrfc.build(model, (x[:3000], y[:3000], x_test[:2000], y_test[:2000]), target="host", objective="flops",
                        epochs=1, calib_samples=200, methods=("tucker", "svd"), step=10, max_rounds=1, bench_runs=0,
                        max_acc_drop=5.0,  # 1,000 validation samples and one short round: a budget it can meet
                        formats=("tflite",), out=tmp_path / "out", cache_dir=str(tmp_path / "cache"), log=lambda m: None)
    assert isinstance(result, lrfc.BuildResult) and isinstance(result.model, keras.Model)
    assert result.report["data"] == "arrays (3,000 samples)" and result.report["model"] == model.name
    assert result.report["input"]["data_values"] == "uint8 0..255" and result.report["splits"]["test"] == 1000
    # the test half of the 2,000 test images (the other half validates): the samples make_splits gives for seed 0
    which = make_splits(Dataset("i", np.arange(3000), np.zeros(3000, int), x_test=np.arange(2000),
                                y_test=np.zeros(2000, int)), 200, 0, True).x_test.index
    correct = model.predict(x_test[:2000, ..., None] / np.float32(255), verbose=0).argmax(1) == y_test[:2000]
    expected = float(np.mean(correct[which]))
    assert result.report["original"]["test_accuracy"] == pytest.approx(expected, abs=1e-6)
    assert set(result.outputs) >= {"model.keras", "model.tflite", "report.json"} and not result.failed
    assert result.plan.choices and result.report["compressed"]["params"] < result.report["original"]["params"]
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # the caller's model is untouched
    assert lrfc.inspect(model)["total_params"] == model.count_params()


def test_api_refuses_unknown_options_by_name(tiny_model_path):
    import lrfc
    from lrfc.errors import UserError

    with pytest.raises(UserError, match="unknown option 'thresold'"):
        lrfc.build(str(tiny_model_path), "fashion-mnist", thresold=0.9)
    with pytest.raises(UserError, match="data: a mapping needs 'x' and 'y'"):
        lrfc.build(str(tiny_model_path), {"images": np.zeros((3, 28, 28))}, out="/tmp/never", log=lambda m: None)


def test_a_failed_int8_baseline_is_not_a_failed_build():
    """The int8 baseline is the user's alternative, timed beside lrfc's model: its gate is reported, not fatal."""
    from lrfc.api import BuildResult
    from lrfc.lower.records import ArtifactRecord

    ok = ArtifactRecord("tflite", "model.tflite", "fp32", True)
    baseline = ArtifactRecord("tflite", "model.int8.tflite", "int8", False, error="failed", variant="int8 baseline")
    broken = ArtifactRecord("onnx", "model.onnx", "fp32", False, error="failed")
    assert BuildResult(None, {}, None, (ok, baseline), {}).failed == []
    assert BuildResult(None, {}, None, (ok, baseline, broken), {}).failed == [broken]
