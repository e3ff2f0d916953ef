"""`lrfc export`: a small trained model file lowered through `lrfc.cli.main`, real converters and runtimes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import residual_cnn
from lrfc.cli import main

SHAPE = (16, 16, 1)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory, keras):
    """A residual CNN (logits) trained on digits at 16x16x1, saved as .keras.

    Its 8 channels pooled before the Dense learn digits slowly: 12 epochs at batch 64 left it at 36 % on an AVX-512
    EPYC (2026-12-06; training's numerics differ by CPU), 30 at batch 32 at 63 %."""
    from lrfc.frontend.data import load_data

    ds = load_data("digits", SHAPE, 10)
    model = residual_cnn(keras, SHAPE, "cli_cnn")
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(np.asarray(ds.x), ds.y, epochs=30, batch_size=32, verbose=0)
    path = tmp_path_factory.mktemp("export_model") / "cnn.keras"
    model.save(path)
    return path


def test_export_int8_writes_verified_artifacts_and_export_json(model_path, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["export", str(model_path), "--target", "host", "--precision", "int8", "--data", "digits",
                 "--out", str(out)])
    printed = capsys.readouterr().out
    print(printed)
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "model.onnx", "model.tflite"]
    doc = json.loads((out / "export.json").read_text())
    assert doc["target"] == "host" and doc["precision"] == "int8" and doc["model"] == str(model_path)
    assert doc["formats"] == ["tflite", "onnx"] and doc["calibration_samples"] == 256
    assert doc["provenance"]["command"] == (f"lrfc export {model_path} --target host --precision int8 --data digits "
                                            f"--out {out}")
    assert "int8_equalization" not in doc  # no factorized chains: nothing to equalize
    assert doc["verification_data"] == "digits, 512 samples disjoint from calibration"
    for art, fmt in zip(doc["artifacts"], ("tflite", "onnx")):
        assert art["format"] == fmt and art["precision"] == "int8" and art["passed"]
        assert art["samples"] == 512 and art["top1_agreement"] >= 0.9
        assert art["bytes"] == (out / f"model.{fmt}").stat().st_size
    # this machine is the host target's device: on x86 without VNNI its ONNX Runtime saturates 8-bit products
    from lrfc.lower.artifacts import ONNX_7_BITS_NOTE, saturates_int8
    from runtime_bench.device import fingerprint

    seven = saturates_int8(fingerprint("onnxruntime-cpu"))
    assert (doc["artifacts"][1].get("note") == ONNX_7_BITS_NOTE) == seven, doc["artifacts"][1]
    assert doc["artifacts"][0].get("note") is None
    assert doc["onnx_opset"] == 17 and doc["artifacts"][1]["opset"] == 17 and "opset" not in doc["artifacts"][0]
    lines = printed.splitlines()
    assert lines[0].split() == ["format", "precision", "size", "max_abs_diff", "top1_agreement", "passed"]
    assert lines[2].startswith("tflite") and lines[2].endswith("yes") and lines[3].startswith("onnx")
    assert "verified on digits, 512 samples disjoint from calibration" in printed


def test_export_int8_of_a_factorized_model_equalizes_its_chains(model_path, tmp_path, capsys, keras):
    """An lrfc model.keras (chains ``NAME__i``) exported at int8: its chains' inner channels are equalized first
    (``factorize.equalize``), export.json says so, and the files pass the int8 gate."""
    from lrfc import decompose
    from lrfc.factorize.rewrite import apply_plan
    from lrfc.frontend.catalogue import describe_model
    from lrfc.frontend.data import load_data
    from lrfc.frontend.graph import rebuild
    from lrfc.plan import LayerChoice, Plan

    flat = rebuild(keras.saving.load_model(model_path))
    convs = [r for r in describe_model(flat) if r.type == "Conv2D"]
    plan = Plan(tuple(LayerChoice(r.name, "tucker", tuple(max(1, k // 2) for k in
                                                           decompose.get("tucker").max_ranks(r.geometry)))
                      for r in convs))
    factorized = apply_plan(flat, plan)
    # fine-tuned, as lrfc's own output is: half the ranks of 8 channels, not fine-tuned, is at chance (13 %), and
    # lrfc export refuses a model at chance on its data
    ds = load_data("digits", SHAPE, 10)
    factorized.compile(optimizer=keras.optimizers.Adam(1e-3),
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    factorized.fit(np.asarray(ds.x), ds.y, epochs=4, batch_size=32, verbose=0)
    accuracy = float(np.mean(factorized.predict(np.asarray(ds.x), verbose=0).argmax(-1) == ds.y))
    assert accuracy >= 0.4, f"the test's factorized model learned too little ({accuracy:.2f}) to be exported"
    path = tmp_path / "factorized.keras"
    factorized.save(path)
    out = tmp_path / "out"
    assert main(["export", str(path), "--target", "host", "--precision", "int8", "--data", "digits",
                 "--out", str(out)]) == 0
    doc = json.loads((out / "export.json").read_text())
    assert doc["int8_equalization"]["chains"] == len(convs) == 2 and doc["int8_equalization"]["links"] == 4
    assert all(a["passed"] and a["top1_agreement"] >= 0.9 for a in doc["artifacts"])


def test_export_default_precision_verifies_on_random_inputs_without_data(model_path, tmp_path, capsys):
    out = tmp_path / "jetson"
    assert main(["export", str(model_path), "--target", "jetson", "--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == json.loads((out / "export.json").read_text())
    assert doc["target"] == "jetson-orin-nano" and doc["precision"] == "fp16" and doc["formats"] == ["onnx", "tflite"]
    assert doc["verification_data"] == "random pixel values mapped as 0-1, 64 samples" and doc["calibration_samples"] == 0
    assert doc["input"]["range"] == "0-1" and doc["input"]["source"] == "inferred"
    onnx_art, tflite_art = doc["artifacts"]
    assert onnx_art["precision"] == "fp32" and "fp16" in onnx_art["note"] and onnx_art["max_abs_diff"] < 1e-4
    assert tflite_art["precision"] == "fp16" and tflite_art["samples"] == 64 and tflite_art["passed"]


def test_export_int8_for_a_tensorrt_target_is_symmetric_and_says_so(model_path, tmp_path, capsys):
    """A Jetson's ONNX runtime is TensorRT first: its int8 file has zero points 0, and export.json says why."""
    import onnx
    from onnx import numpy_helper

    out = tmp_path / "trt"
    assert main(["export", str(model_path), "--target", "jetson-orin-nano", "--precision", "int8", "--formats", "onnx",
                 "--data", "digits", "--out", str(out), "--json"]) == 0
    (art,) = json.loads(capsys.readouterr().out)["artifacts"]
    assert art["precision"] == "int8" and art["passed"] and art["top1_agreement"] >= 0.9
    assert art["note"].startswith("int8 for TensorRT: activations int8 and symmetric (zero point 0)"), art
    proto = onnx.load(str(out / "model.onnx"))
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    zero_points = [inits[n.input[2]] for n in proto.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)


def test_export_formats_option_and_coral_rules(model_path, tmp_path, capsys):
    out = tmp_path / "only"
    assert main(["export", str(model_path), "--target", "host", "--formats", "onnx", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "model.onnx"]
    capsys.readouterr()
    code = main(["export", str(model_path), "--target", "coral-edgetpu", "--precision", "fp32", "--data", "digits",
                 "--out", str(tmp_path / "coral")])
    err = capsys.readouterr().err
    assert code == 2 and "runs fully int8 TFLite models only" in err and len(err.strip().splitlines()) == 1
    code = main(["export", str(model_path), "--target", "host", "--formats", "tflite,pb", "--out", str(tmp_path / "x")])
    assert code == 2 and "--formats: received 'tflite,pb'" in capsys.readouterr().err


def test_int8_without_data_is_a_one_line_error(model_path, tmp_path, capsys):
    out = tmp_path / "none"
    code = main(["export", str(model_path), "--target", "host", "--precision", "int8", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err == "lrfc: error: --data is required for int8 (calibration samples)\n"
    assert not out.exists()


def test_unknown_target_exits_2(model_path, tmp_path, capsys):
    code = main(["export", str(model_path), "--target", "no-such-board", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("lrfc: error: unknown profile 'no-such-board'") and err.count("\n") == 1


def test_failed_verification_exits_1_with_the_numbers(model_path, tmp_path, capsys, monkeypatch, keras):
    """The ONNX artifact is lowered from a copy whose last kernel got noise: a real mismatch, caught by the gate."""
    from lrfc.lower import artifacts

    real = artifacts._export_onnx

    def corrupted(model, path, precision, calibration, work, **options):
        bad = keras.models.clone_model(model)
        weights = model.get_weights()
        weights[-2] = weights[-2] + np.random.default_rng(1).standard_normal(weights[-2].shape).astype(np.float32)
        bad.set_weights(weights)
        return real(bad, path, precision, calibration, work, **options)

    monkeypatch.setitem(artifacts._EXPORTERS, "onnx", corrupted)
    out = tmp_path / "bad"
    code = main(["export", str(model_path), "--target", "host", "--data", "digits", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith("lrfc: error: model.onnx (fp32) failed verification: max_abs_diff ")
    assert "top1_agreement" in err and "on 512 samples" in err
    # formats are independent: the TFLite file passed and is published with export.json; the ONNX file is not
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "model.tflite"]
    doc = json.loads((out / "export.json").read_text())
    assert [(a["format"], a["passed"]) for a in doc["artifacts"]] == [("tflite", True), ("onnx", False)]


def test_export_help_imports_nothing_heavy():
    code = ("import sys; from lrfc.cli import main; main(['export', '--help']); "
            "bad = [m for m in ('numpy', 'tensorflow', 'keras', 'onnx') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, capture_output=True)


def test_int8_calibrates_on_unlabelled_data_and_says_what_it_did_not_check(model_path, tmp_path, capsys):
    """A representative dataset has no labels: an npz of x alone, a folder of images without class subfolders."""
    from PIL import Image
    from sklearn.datasets import load_digits

    images = (load_digits().images * 255 / 16).astype(np.uint8)  # 8x8 pixels 0..255, fitted to the model's 16x16
    np.savez(tmp_path / "x_only.npz", x=images[:600])
    folder = tmp_path / "calib"
    folder.mkdir()
    for i, image in enumerate(images[:40]):
        Image.fromarray(image).save(folder / f"{i:03d}.png")
    for data, formats, samples in ((tmp_path / "x_only.npz", "tflite,onnx", 256), (folder, "tflite", 40)):
        out = tmp_path / f"out_{samples}"
        code = main(["export", str(model_path), "--target", "host", "--precision", "int8", "--data", str(data),
                     "--formats", formats, "--out", str(out)])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        doc = json.loads((out / "export.json").read_text())
        assert doc["calibration_samples"] == samples
        assert doc["verification_data"] == (f"{data}, 344 samples disjoint from calibration, unlabelled" if samples == 256
                                            else f"{data}, the 40 calibration samples (no others left), unlabelled")
        assert all(a["passed"] and a["top1_agreement"] >= 0.9 and a.get("accuracy") is None for a in doc["artifacts"])
        assert f"{data} has no labels: the original's accuracy is not checked" in captured.err


def test_onnx_files_are_written_at_the_target_s_opset(model_path, tmp_path, capsys):
    """jetson-nano's TensorRT 8.2 reads ONNX up to opset 13 (its profile's onnx_opset): its file declares 13 (IR
    version 7, which older ONNX Runtimes read too) and passes the gate; ``--opset`` sets it for any target, int8's
    per-channel QDQ included."""
    from lrfc.lower.opset import declared

    out = tmp_path / "nano"
    assert main(["export", str(model_path), "--target", "jetson-nano", "--formats", "onnx", "--out", str(out),
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (art,) = doc["artifacts"]
    assert doc["onnx_opset"] == 13 and art["opset"] == 13 and art["passed"]
    assert declared(out / "model.onnx") == (13, 7)
    out = tmp_path / "int8"
    assert main(["export", str(model_path), "--target", "host", "--precision", "int8", "--data", "digits",
                 "--formats", "onnx", "--opset", "13", "--out", str(out), "--json"]) == 0
    (art,) = json.loads(capsys.readouterr().out)["artifacts"]
    assert art["precision"] == "int8" and art["opset"] == 13 and art["passed"] and art["top1_agreement"] >= 0.9
    assert declared(out / "model.onnx")[0] == 13
    assert main(["inspect", str(out / "model.onnx")]) == 0
    assert "onnx      opset 13, IR version 7" in capsys.readouterr().out.splitlines()[1]
