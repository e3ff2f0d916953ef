"""`lrfc verify`: the gate on existing files, reports checked by sha256; `lrfc bench` warns about a changed file;
a corrupt cache is set aside and rebuilt; a trusted Lambda model builds."""

from __future__ import annotations

import json
import re
import shutil
import zipfile

import numpy as np
import pytest

from conftest import run_cli
from lrfc.cli import main
from lrfc.frontend.data import FASHION_MNIST_CLASSES
from lrfc.lower.records import sha256_of
from lrfc.lower.stamp import read_stamp


@pytest.fixture(scope="module")
def exported(tiny_model_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("verify") / "e"
    res = run_cli("export", str(tiny_model_path), "--target", "host", "--data", "fashion-mnist", "--out", str(out))
    assert res.returncode == 0, res.stderr
    return out


def _tamper(path) -> None:
    """Change bytes in the middle of the file (weights), keeping its size."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes((b + 97) % 256 for b in data[middle:middle + 64])
    path.write_bytes(bytes(data))


def test_verify_passes_on_the_exported_files_and_reports_both_accuracies(exported, tiny_model_path, capsys):
    assert main(["verify", str(exported / "model.tflite"), "--model", str(tiny_model_path), "--data", "fashion-mnist",
                 "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["passed"] and record["precision"] == "fp32" and record["samples"] == 512
    assert record["reference_accuracy"] > 0.6 and abs(record["accuracy"] - record["reference_accuracy"]) < 0.01
    doc = json.loads((exported / "export.json").read_text())
    assert record["sha256"] == next(a["sha256"] for a in doc["artifacts"] if a["format"] == "tflite")
    assert main(["verify", "--report", str(exported / "export.json")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["model.tflite  match", "model.onnx    match"]


def test_a_tampered_artifact_of_the_same_size_is_caught(exported, tiny_model_path, tmp_path, capsys):
    copy = tmp_path / "e"
    shutil.copytree(exported, copy)
    size = (copy / "model.tflite").stat().st_size
    _tamper(copy / "model.tflite")
    assert (copy / "model.tflite").stat().st_size == size
    assert main(["verify", "--report", str(copy / "export.json")]) == 1
    captured = capsys.readouterr()
    assert "model.tflite  changed" in captured.out and "model.onnx    match" in captured.out
    assert captured.err == "lrfc: error: model.tflite: changed\n"
    # the gate itself catches it too: the changed weights no longer reproduce the Keras model (or do not load)
    assert main(["verify", str(copy / "model.tflite"), "--model", str(tiny_model_path), "--data", "fashion-mnist"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lrfc: error: model.tflite (fp32) ")
    # and `lrfc bench` says the file is not the one its report describes
    assert main(["bench", str(copy / "model.tflite"), "--runs", "2", "--rounds", "1", "--warmup", "0"]) in (0, 2)
    assert "differs from the file" in capsys.readouterr().err


def test_verify_reads_the_precision_from_the_file(tiny_model_path, tmp_path, capsys):
    out = tmp_path / "q"
    assert main(["export", str(tiny_model_path), "--target", "host", "--precision", "int8", "--data", "fashion-mnist",
                 "--formats", "tflite", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["verify", str(out / "model.tflite"), "--model", str(tiny_model_path), "--data", "fashion-mnist"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("model.tflite (int8): passed: abs diff ") and "at least 90%" in text
    judged = re.search(r"abs diff (\S+) at the 99th percentile sample \(bound (\S+); max (\S+)\)", text)
    assert judged and float(judged[1]) <= float(judged[2]) and float(judged[1]) <= float(judged[3])
    assert main(["verify", str(out / "model.tflite"), "--model", str(tiny_model_path)]) == 2
    assert "needs --data" in capsys.readouterr().err


def test_a_corrupt_score_cache_is_set_aside_and_rebuilt(tiny_model_path, tmp_path, capfd):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "scores.sqlite").write_bytes(b"garbage, not a database" * 40)
    argv = ["build", str(tiny_model_path), "--data", "fashion-mnist", "--finetune", "none", "--calib-samples", "100",
            "--step", "25", "--methods", "svd", "--objective", "flops", "--bench-runs", "0", "--formats", "tflite",
            "--out", str(tmp_path / "o"), "--cache-dir", str(cache)]
    assert main(argv) == 0
    err = capfd.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("lrfc: warning:")]
    assert len(warnings) == 1 and "the score cache" in warnings[0] and "was corrupt" in warnings[0], err
    aside = list(cache.glob("scores.sqlite.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"garbage")
    assert (cache / "scores.sqlite").read_bytes().startswith(b"SQLite format 3\x00")
    assert main(argv) == 0  # the rebuilt cache serves the second build
    assert "warning" not in capfd.readouterr().err


def test_a_trusted_lambda_model_builds(keras, tmp_path):
    """--trust-model used to crash in factorize after the whole search (the Lambda was re-deserialized in safe mode)."""
    from lrfc.frontend.data import read_fashion_mnist

    x, y, _, _ = read_fashion_mnist()
    keras.utils.set_random_seed(0)
    inp = keras.Input((28, 28, 1))
    h = keras.layers.Lambda(lambda t: t / 255.0, name="scale")(inp)  # its own preprocessing: takes raw pixels
    h = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(h)
    h = keras.layers.Flatten()(keras.layers.MaxPooling2D(4)(h))
    model = keras.Model(inp, keras.layers.Dense(10, name="logits")(h))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:4000, ..., None].astype("float32"), y[:4000], epochs=1, verbose=0)
    model.save(tmp_path / "lambda.keras")
    res = run_cli("build", str(tmp_path / "lambda.keras"), "--trust-model", "--data", "fashion-mnist", "--objective",
                  "flops", "--finetune", "none", "--calib-samples", "100", "--step", "25", "--bench-runs", "0",
                  "--max-acc-drop", "50",  # a budget some plan surely meets: what is tested is that factorizing works
                  "--formats", "tflite", "--out", str(tmp_path / "o"), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["input"]["range"] == "0-255" and "Lambda" in report["input"]["reason"]
    assert report["original"]["accuracy"] > 0.5 and (tmp_path / "o" / "model.tflite").exists()
    assert any(layer["method"] for layer in report["layers"])
    np.testing.assert_array_equal(sorted(p.name for p in (tmp_path / "o").iterdir())[:2], ["model.keras", "model.tflite"])


@pytest.fixture(scope="module")
def offset_model_path(tiny_model_path, keras, tmp_path_factory):
    """The tiny model taking raw pixel values less 128, with no layer that says so (its first convolution rescaled
    to match, exactly: 'valid' padding): as a model trained on mean-subtracted 0-255 images. Read as [0, 1] it
    scores at chance; only ``--input-range 0-255 --input-mean 128`` describe it."""
    model = keras.models.load_model(tiny_model_path)
    kernel, bias = model.get_layer("conv1").get_weights()
    model.get_layer("conv1").set_weights([kernel / 255, bias + kernel.sum(axis=(0, 1, 2)) * 128 / 255])
    path = tmp_path_factory.mktemp("offset") / "offset.keras"
    model.save(path)
    return path


def test_a_builds_files_keep_the_input_flags_it_was_given(offset_model_path, tmp_path, capsys):
    """`lrfc verify`/`lrfc export` of what a build wrote with input flags read them from its report.json (matched by
    the file's sha256) or the file's own metadata instead of refusing the files until the flags are repeated."""
    import onnx
    import onnxruntime as ort

    flags = ["--input-range", "0-255", "--input-mean", "128"]
    out = tmp_path / "b"
    res = run_cli("build", str(offset_model_path), "--data", "fashion-mnist", "--finetune", "none", "--calib-samples",
                  "100", "--step", "25", "--methods", "svd", "--objective", "flops", "--bench-runs", "0", "--formats",
                  "tflite", "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--json", *flags)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["input"]["mean"] == [128] and report["original"]["accuracy"] > 0.6
    assert report["keras_model"]["sha256"] == sha256_of(out / "model.keras")

    verify = ["verify", str(out / "model.tflite"), "--model", str(out / "model.keras"), "--data", "fashion-mnist"]
    assert main([*verify, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["passed"] and record["reference_accuracy"] > 0.6
    assert f"input pixel values 0-255 (mean 128), given: as {out / 'report.json'} recorded it" in record["note"]
    assert main(["verify", "--report", str(out / "report.json")]) == 0
    assert capsys.readouterr().out.splitlines() == ["model.tflite     match", "original.tflite  match",
                                                    "model.keras      match"]

    # export of the build's model.keras: the same contract, recorded again in export.json for its own files
    assert main(["export", str(out / "model.keras"), "--target", "host", "--data", "fashion-mnist", "--formats", "onnx", "--out",
                 str(tmp_path / "e"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["input"]["mean"] == [128] and doc["artifacts"][0]["passed"]
    assert doc["artifacts"][0]["reference_accuracy"] > 0.6
    assert main(["verify", str(tmp_path / "e" / "model.onnx"), "--model", str(out / "model.keras"), "--data",
                 "fashion-mnist"]) == 0
    assert "export.json recorded it" in capsys.readouterr().out

    # flags given win, and a warning says the report recorded others
    assert main([*verify, "--input-range", "0-1"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (f"lrfc: warning: {out / 'report.json'} recorded the input as --input-range 0-255 --input-mean "
                      "128; using the flags given (--input-range 0-1)")
    assert len(err) == 2 and err[1].startswith("lrfc: error: ") and "--input-range 0-255" in err[1], err

    # a file away from its report carries the contract in its own metadata (lower.stamp), in both formats
    stamped = json.loads(read_stamp(out / "model.tflite")["lrfc.input"])
    assert stamped["flags"] == "--input-range 0-255 --input-mean 128" and stamped["source"] == "given"
    meta = ort.InferenceSession(str(tmp_path / "e" / "model.onnx")).get_modelmeta().custom_metadata_map
    assert json.loads(meta["lrfc.input"])["mean"] == [128]
    assert json.loads(meta["lrfc.labels"]) == list(FASHION_MNIST_CLASSES)  # the built-in data's names travel too
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("model.tflite", "model.keras"):
        shutil.copy(out / name, bare / name)
    assert main(["verify", str(bare / "model.tflite"), "--model", str(bare / "model.keras"), "--data",
                 "fashion-mnist"]) == 0
    assert "given: as model.tflite's own metadata recorded it" in capsys.readouterr().out
    # the model.keras alone too (a lrfc.json member of its archive): exported and built again without the flags
    assert json.loads(read_stamp(bare / "model.keras")["lrfc.input"])["mean"] == [128]
    assert main(["export", str(bare / "model.keras"), "--target", "host", "--data", "fashion-mnist", "--formats",
                 "tflite", "--out", str(bare / "e"), "--json"]) == 0
    assert "model.keras's own metadata" in json.loads(capsys.readouterr().out)["input"]["reason"]
    res = run_cli("build", str(bare / "model.keras"), "--data", "fashion-mnist", "--finetune", "none",
                  "--calib-samples", "100", "--step", "25", "--methods", "svd", "--objective", "flops", "--bench-runs",
                  "0", "--formats", "tflite", "--out", str(bare / "b"), "--cache-dir", str(tmp_path / "cache"), "--json")
    assert res.returncode == 0, res.stderr
    again = json.loads(res.stdout)
    assert again["input"]["mean"] == [128] and again["original"]["accuracy"] > 0.6
    # and files that carry none (their entries stripped) are inferred as [0, 1]: refused, the right flag named
    proto = onnx.load(str(tmp_path / "e" / "model.onnx"))
    del proto.metadata_props[:]
    onnx.save(proto, str(bare / "model.onnx"))
    with zipfile.ZipFile(bare / "model.keras") as source, zipfile.ZipFile(bare / "plain.keras", "w") as target:
        for item in source.infolist():
            if item.filename != "lrfc.json":
                target.writestr(item, source.read(item.filename))
    assert main(["verify", str(bare / "model.onnx"), "--model", str(bare / "plain.keras"), "--data",
                 "fashion-mnist"]) == 2
    assert "--input-range 0-255" in capsys.readouterr().err


def test_a_file_carries_the_class_names_of_an_image_folder(tiny_model_path, tmp_path, capsys):
    """Class folders named by words: their names, by output index, travel in every file (lower.stamp)."""
    import onnxruntime as ort
    import tensorflow as tf

    from lrfc.frontend.data import read_fashion_mnist

    names = ["c0-tshirt", "c1-trouser", "c2-pullover", "c3-dress", "c4-coat", "c5-sandal", "c6-shirt",
             "c7-sneaker", "c8-bag", "c9-boot"]  # sorted, they are the labels' order
    _, _, x_test, y_test = read_fashion_mnist()
    for label, name in enumerate(names):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in np.flatnonzero(y_test == label)[:30]:
            tf.io.write_file(str(tmp_path / "imgs" / name / f"{i}.png"), tf.io.encode_png(x_test[i][..., None]))
    assert main(["export", str(tiny_model_path), "--target", "host", "--data", str(tmp_path / "imgs"),
                 "--out", str(tmp_path / "e")]) == 0
    capsys.readouterr()
    assert json.loads(read_stamp(tmp_path / "e" / "model.tflite")["lrfc.labels"]) == names
    meta = ort.InferenceSession(str(tmp_path / "e" / "model.onnx")).get_modelmeta().custom_metadata_map
    assert json.loads(meta["lrfc.labels"]) == names and meta["lrfc.version"]
    assert json.loads(meta["lrfc.input"])["range"] == "0-1"


def test_class_folders_named_in_another_order_than_the_outputs_take_class_names(tiny_model_path, tmp_path, capsys):
    """Class folders named by words whose sorted order is not the model's: export (and verify) refuse, naming the
    ``--class-names`` the model's answers fit; given it, the files pass and carry the names in the outputs' order."""
    import tensorflow as tf

    from lrfc.frontend.data import read_fashion_mnist

    names = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
    _, _, x_test, y_test = read_fashion_mnist()
    for label, name in enumerate(names):
        (tmp_path / "imgs" / name).mkdir(parents=True)
        for i in np.flatnonzero(y_test == label)[:40]:  # 400 images: 144 verify after 256 calibrate
            tf.io.write_file(str(tmp_path / "imgs" / name / f"{i}.png"), tf.io.encode_png(x_test[i][..., None]))
    export = ["export", str(tiny_model_path), "--target", "host", "--formats", "onnx", "--data", str(tmp_path / "imgs"),
              "--out", str(tmp_path / "e")]
    assert main(export) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"its answers fit --class-names {','.join(names)})" in err, err
    assert not (tmp_path / "e").exists()
    assert main([*export, "--class-names", ",".join(names)]) == 0
    capsys.readouterr()
    assert json.loads(read_stamp(tmp_path / "e" / "model.onnx")["lrfc.labels"]) == names
    verify = ["verify", str(tmp_path / "e" / "model.onnx"), "--model", str(tiny_model_path), "--data",
              str(tmp_path / "imgs")]
    assert main(verify) == 2 and "--class-names" in capsys.readouterr().err
    assert main([*verify, "--class-names", ",".join(names)]) == 0


def test_an_int8_file_records_its_io_quantization_and_the_8_bit_pixel_rule(tiny_model_path, tmp_path, capsys):
    """A fully-integer .tflite takes q = round(x / scale) + zero point of the Keras model's input x: export.json
    records both numbers, and the line says what 8-bit pixels become; fed that rule's integers straight, the file
    gives what it gives the float path."""
    from ai_edge_litert.interpreter import Interpreter

    from lrfc.frontend.data import read_fashion_mnist
    from runtime_bench.run import run_tflite

    out = tmp_path / "q"
    assert main(["export", str(tiny_model_path), "--target", "host", "--precision", "int8", "--data", "fashion-mnist",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    doc = json.loads((out / "export.json").read_text())
    tflite = next(a for a in doc["artifacts"] if a["format"] == "tflite")
    (inp,), (logits,) = tflite["io"]["inputs"], tflite["io"]["outputs"]
    assert inp["dtype"] == logits["dtype"] == "int8" and inp["shape"] == [1, 28, 28, 1]
    assert inp["scale"] == pytest.approx(1 / 255) and inp["zero_point"] == -128  # calibrated on 0..255 images
    assert logits["scale"] > 0 and -128 <= logits["zero_point"] <= 127
    assert (f"int8 I/O: model.tflite takes int8 (scale 0.00392157, zero point -128; from 8-bit pixels p: q = p - 128) "
            f"and gives int8 (scale {logits['scale']:.6g}, zero point {logits['zero_point']})") in text
    onnx = next(a for a in doc["artifacts"] if a["format"] == "onnx")  # QDQ inside, float at its edges
    assert onnx["io"]["inputs"][0]["dtype"] == "float32" and "scale" not in onnx["io"]["inputs"][0]

    _, _, x_test, _ = read_fashion_mnist()
    pixels = x_test[:64, ..., None]  # uint8
    interp = Interpreter(model_path=str(out / "model.tflite"))
    interp.resize_tensor_input(0, list(pixels.shape))
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], (pixels.astype(np.int16) - 128).astype(np.int8))
    interp.invoke()
    direct = interp.get_tensor(interp.get_output_details()[0]["index"]).astype(np.float32)
    floats = run_tflite(out / "model.tflite", pixels.astype(np.float32) / 255)  # quantized by the file's own numbers
    np.testing.assert_array_equal(logits["scale"] * (direct - logits["zero_point"]), floats)

    assert main(["verify", str(out / "model.tflite"), "--model", str(tiny_model_path), "--data", "fashion-mnist"]) == 0
    assert "int8 I/O: model.tflite takes int8 (scale 0.00392157, zero point -128; from 8-bit pixels p: q = p - 128)" \
        in capsys.readouterr().out


def test_the_8_bit_pixel_rule_is_the_contract_then_the_input_quantization():
    """``pixel_affine``: round(a * p + b) equals round(contract.apply(p / 255) / scale) + zero point for every 8-bit
    value, per channel, for the contracts users state."""
    from lrfc.frontend.contract import InputContract
    from lrfc.lower.io_spec import pixel_affine, pixel_rule

    contracts = [InputContract("0-1"), InputContract("-1-1", channel_order="bgr"),
                 InputContract("0-255", (103.939, 116.779, 123.68), None, "bgr"),
                 InputContract("0-1", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]
    p = np.arange(256, dtype=np.float32)
    for contract, scale, zero in zip(contracts, (1 / 255, 1 / 127.5, 0.97, 0.0187), (-128, 0, 7, -3)):
        pairs = pixel_affine({"dtype": "int8", "scale": scale, "zero_point": zero}, contract)
        # (256, 1, 1, 3): each value in every channel, so BGR's reversal (which the rule asks for first) moves none;
        # the rule's pairs are per model channel, as the contract's mean and std are
        unit = np.repeat((p / 255)[:, None], 3, axis=1)[:, None, None, :]
        want = contract.apply(unit).reshape(256, 3) / scale + zero
        for c in range(3):
            a, b = pairs[c % len(pairs)]
            np.testing.assert_allclose(a * p + b, want[:, c], rtol=1e-5, atol=1e-3)
    assert pixel_rule({"dtype": "int8", "scale": 1 / 255, "zero_point": -128}, contracts[0]) == "q = p - 128"
    assert pixel_rule({"dtype": "int8", "scale": 1.0, "zero_point": 0}, InputContract("0-255", (128.0,))) == "q = p - 128"
    assert pixel_rule({"dtype": "int8", "scale": 1 / 127.5, "zero_point": 0}, contracts[1]) == (
        "q = round(p - 127.5), clipped to -128..127; reverse the channels to BGR first")
    assert pixel_rule({"dtype": "float32"}, contracts[0]) is None


def test_class_folders_named_by_index_add_no_labels():
    """Folders named 0..N-1 (a class missing leaves its name empty) say nothing the output index does not."""
    from lrfc.frontend.contract import InputContract
    from lrfc.lower.stamp import stamp_entries

    assert "lrfc.labels" not in stamp_entries(InputContract(), ("0", "1", "2"))
    assert "lrfc.labels" not in stamp_entries(InputContract(), ("0", "", "2"))
    assert "lrfc.labels" not in stamp_entries(InputContract(), None)
    assert json.loads(stamp_entries(InputContract(), ("0", "", "cat"))["lrfc.labels"]) == ["0", "", "cat"]
