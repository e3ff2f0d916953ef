"""lower.int8_ranges: int8 activation ranges at a percentile of the per-sample extremes, the second try of an int8
file (TFLite or ONNX) that failed its gate with min/max ranges because one calibration sample lies far out."""

from __future__ import annotations

import numpy as np
import pytest

from lrfc.lower.tflite import export_tflite
from runtime_bench.run import run_tflite


@pytest.fixture(scope="module")
def model_and_data(tiny_model_path, keras):
    """The tiny baseline, 256 real calibration images of which one is 100 times too bright, 512 validation images."""
    from lrfc.frontend.data import read_fashion_mnist

    x, _, x_test, y_test = read_fashion_mnist()
    calibration = (x[:256, ..., None] / 255.0).astype(np.float32)
    calibration[17] *= 100.0  # one image far outside the rest: its min/max range sets every image's int8 step
    model = keras.models.load_model(tiny_model_path)
    return model, calibration, (x_test[:512, ..., None] / 255.0).astype(np.float32), y_test[:512]


def test_percentile_ranges_ignore_the_outlier_that_min_max_ranges_take(model_and_data, tmp_path):
    from lrfc.lower.io_spec import artifact_io

    model, calibration, x, _ = model_and_data
    reference = np.asarray(model.predict(x, verbose=0)).argmax(1)
    agree = {}
    for ranges in ("minmax", "percentile"):
        path = export_tflite(model, tmp_path / f"{ranges}.tflite", "int8", calibration, ranges=ranges)
        agree[ranges] = float(np.mean(run_tflite(path, x).argmax(1) == reference))
        io = artifact_io(path, "tflite")  # the same full-integer file: int8 in, int8 out
        assert [t["dtype"] for t in io["inputs"] + io["outputs"]] == ["int8", "int8"]
    (input_minmax,) = artifact_io(tmp_path / "minmax.tflite", "tflite")["inputs"]
    (input_percentile,) = artifact_io(tmp_path / "percentile.tflite", "tflite")["inputs"]
    assert input_minmax["scale"] > 50 * input_percentile["scale"]  # the input's range: 100 against about 1
    assert agree["minmax"] < 0.7 and agree["percentile"] > 0.95, agree  # 0.49 and 0.97 here
    with pytest.raises(ValueError, match="ranges must be one of minmax, percentile"):
        export_tflite(model, tmp_path / "x.tflite", "int8", calibration, ranges="entropy")


def test_onnx_percentile_ranges_too(model_and_data, tmp_path):
    from lrfc.lower.artifacts import saturates_here
    from lrfc.lower.onnx import export_onnx, quantize_onnx_int8
    from runtime_bench.run import run_onnx

    model, calibration, x, _ = model_and_data
    reference = np.asarray(model.predict(x, verbose=0)).argmax(1)
    fp32 = export_onnx(model, tmp_path / "fp32.onnx")
    agree = {}
    for ranges in ("minmax", "percentile"):
        path = quantize_onnx_int8(fp32, tmp_path / f"{ranges}.onnx", calibration, ranges=ranges,
                                  reduce_range=saturates_here())  # 7-bit weights where 8-bit products saturate
        agree[ranges] = float(np.mean(run_onnx(path, x).argmax(1) == reference))
    assert agree["minmax"] < 0.7 and agree["percentile"] > 0.95, agree


def test_the_gate_takes_the_second_try_only_when_the_first_fails(model_and_data, tmp_path):
    """``lower``: with the outlier the min/max file fails its gate and the percentile file is published with a note
    that says why; without it the first file passes and is the one published, as before."""
    from lrfc.lower.artifacts import lower

    model, calibration, x, y = model_and_data
    records = lower(model, tmp_path / "out", precision="int8", formats=("tflite", "onnx"), calibration=calibration,
                    verify_samples=x, verify_labels=y)
    for record in records:
        assert record.passed and (tmp_path / "out" / record.name).is_file()
        assert (  # after the 7-bit note where this CPU saturates 8-bit ONNX products (an AVX2-only EPYC)
            "activation ranges at the 99th percentile of the 256 calibration samples' extremes: with the quantizer's "
            f"min/max ranges it failed the gate ({record.name} (int8) failed verification: ") in record.note, record.note
    clean = np.delete(calibration, 17, axis=0)
    (plain,) = lower(model, tmp_path / "plain", precision="int8", formats=("tflite",), calibration=clean,
                     verify_samples=x, verify_labels=y)
    assert plain.passed and not (plain.note or "").startswith("activation ranges")
