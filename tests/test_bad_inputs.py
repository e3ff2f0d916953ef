"""The bad-input corpus: every mistake a user can make gets its documented exit status and one line, no traceback,
and nothing half-written.

Each case runs the real command line in-process (``lrfc.cli.main``, fds captured) on real files made here.
Status 2 is bad input; the line names the problem. Output folders a case names must not appear (or, when they
existed, must be unchanged): a refused run leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from lrfc.cli import main


@dataclass
class Files:
    root: Path
    tiny: Path        # trained 1 epoch: ~75% on Fashion-MNIST, inputs in [0, 1]
    untrained: Path   # random weights: chance on any data
    rescaling: Path   # starts with its own Rescaling(1/255): takes raw 0-255 pixels


def _npz(path: Path, **arrays) -> str:
    np.savez(path, **arrays)
    return str(path)


def _png(keras, path: Path, shape=(28, 28, 1)) -> None:
    import tensorflow as tf

    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(len(str(path))).integers(0, 256, shape, dtype=np.uint8)
    tf.io.write_file(str(path), tf.io.encode_png(img))


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_model_path, untrained_model_path, rescaling_model_path, keras) -> Files:
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 28, 28, 1), dtype=np.uint8)
    y = rng.integers(0, 10, 40)
    _npz(root / "no_y.npz", x=x)  # random pixels: a trained model answers one class for all of them
    from lrfc.frontend.data import read_fashion_mnist

    _npz(root / "fashion_no_y.npz", x=read_fashion_mnist()[0][:300])
    _npz(root / "short_y.npz", x=x, y=y[:30])
    _npz(root / "nan.npz", x=np.where(x > 250, np.nan, x.astype(np.float32)), y=y)
    _npz(root / "labels12.npz", x=x, y=np.full(40, 12))
    _npz(root / "labels_nine_names.npz", x=x, y=np.array([f"class {v}" for v in np.minimum(y, 8)]))
    fashion, truth = read_fashion_mnist()[2:]  # Fashion-MNIST's test images, their classes named and sorted by name
    names = np.array(["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"])
    _npz(root / "labels_sorted_names.npz", x=fashion[:400], y=names[truth[:400]])
    _npz(root / "labels_3d.npz", x=x, y=np.zeros((40, 2, 5)))
    multi_hot = np.eye(10, dtype=np.uint8)[y]
    multi_hot[3, (y[3] + 1) % 10] = 1  # a second class on one sample: multi-label
    _npz(root / "multi_hot.npz", x=x, y=multi_hot)
    _npz(root / "five_channels.npz", x=rng.integers(0, 256, (40, 28, 28, 5), dtype=np.uint8), y=y)
    _npz(root / "flat7.npz", x=rng.random((40, 7)).astype(np.float32), y=y)
    _npz(root / "five_samples.npz", x=x[:5], y=y[:5])
    _npz(root / "normalised.npz", x=rng.standard_normal((40, 28, 28, 1)).astype(np.float32) * 3, y=y)
    _npz(root / "huge.npz", x=np.full((500, 28, 28, 1), 1e37, np.float32), y=np.arange(500) % 10)
    (root / "data.csv").write_text("image,label\nflat_dir/a.png,1\nflat_dir/b.png,2\n")  # b.png is not there
    (root / "data.txt").write_text("1,2,3\n")
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(root / "raw.tfrecord")) as w:  # raw pixels, not an encoded image
        w.write(tf.train.Example(features=tf.train.Features(feature={
            "image_raw": tf.train.Feature(bytes_list=tf.train.BytesList(value=[bytes(784)])),
            "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[3]))})).SerializeToString())
    (root / "flat_dir").mkdir()
    (root / "flat_dir" / "a.png").write_bytes(b"")
    for cls in ("cat", "dog", "eel"):
        _png(keras, root / "three_classes" / cls / "0.png")
    _png(keras, root / "class12" / "12" / "0.png")
    (root / "undecodable" / "0").mkdir(parents=True)
    (root / "undecodable" / "0" / "broken.png").write_bytes(b"not a png")
    (root / "empty_classes" / "0").mkdir(parents=True)
    (root / "empty_classes" / "0" / "readme.txt").write_text("no images here")
    (root / "model.txt").write_text("not a model")
    (root / "corrupt.keras").write_bytes(os.urandom(2048))
    weights_only = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    weights_only.save_weights(root / "weights.weights.h5")
    os.replace(root / "weights.weights.h5", root / "weights_only.h5")
    inp = keras.Input((28, 28, 1))
    lam = keras.layers.Lambda(lambda t: t * 2.0)(inp)
    keras.Model(inp, keras.layers.Dense(10)(keras.layers.Flatten()(lam))).save(root / "lambda.keras")
    h = keras.layers.Flatten()(inp)
    keras.Model(inp, [keras.layers.Dense(10)(h), keras.layers.Dense(3)(h)]).save(root / "two_outputs.keras")
    conv = keras.layers.Conv2D(4, 3)(inp)
    one = keras.layers.Dense(1, activation="relu")(keras.layers.Flatten()(conv))  # a regression: no sigmoid, no logit
    keras.Model(inp, one).save(root / "one_unit.keras")
    softmax1 = keras.layers.Dense(1, activation="softmax")(keras.layers.Flatten()(conv))  # always 1.0
    keras.Model(inp, softmax1).save(root / "softmax_unit.keras")
    logit = keras.layers.Dense(1)(keras.layers.Flatten()(conv))  # a binary classifier's logit
    keras.Model(inp, logit).save(root / "binary_logit.keras")
    keras.Model(inp, keras.layers.Conv2D(10, 1, activation="softmax")(conv)).save(root / "per_pixel.keras")  # segmentation
    d = keras.layers.DepthwiseConv2D(3, depth_multiplier=10)(inp)  # 10 classes: nothing else wrong with it
    keras.Model(inp, keras.layers.Softmax()(keras.layers.GlobalAveragePooling2D()(d))).save(root / "no_factorizable.keras")
    (root / "a_file").write_text("I am a file")
    (root / "not_sqlite.db").write_text("definitely not sqlite")
    (root / "cost_dir").mkdir()
    (root / "plan_bad.json").write_text("{not json")
    (root / "plan_unknown_layer.json").write_text(json.dumps({"layers": [{"layer": "fc9", "method": "svd", "ranks": [2]}]}))
    (root / "plan_bad_ranks.json").write_text(json.dumps({"layers": [{"layer": "fc1", "method": "svd", "ranks": [999]}]}))
    (root / "profile.toml").write_text('description = "x"\nruntimes = ["litert"]\nprecision = "fp32"\nthreads = 1\n'
                                       'memory_budget_mb = 10\nwarp_drive = true\n')
    (root / "gpu.toml").write_text(  # a GPU board whose profile says nothing of its CPU
        'description = "x"\nruntimes = ["onnxruntime-cuda", "litert"]\nprecision = "fp32"\nthreads = 1\n'
        'memory_budget_mb = 4096\n[peak_gflops.fp32]\nvalue = 1000\nsource = "s"\n'
        '[memory_bandwidth_gbps]\nvalue = 100\nsource = "s"\n')
    (root / "report.json").write_text("[1, 2")
    (root / "model.pb").write_bytes(b"x")
    with zipfile.ZipFile(root / "nested.zip", "w") as z:  # Kaggle's dogs-vs-cats.zip: train.zip, test1.zip
        z.writestr("train.zip", b"PK\x05\x06" + bytes(18))
        z.writestr("test1.zip", b"PK\x05\x06" + bytes(18))
    return Files(root, tiny_model_path, untrained_model_path, rescaling_model_path)


def _build(f: Files, *extra: str, model: Path | None = None, data: str = "fashion-mnist") -> list[str]:
    return ["build", str(model or f.tiny), "--data", data, "--out", str(f.root / "out"), "--cache-dir",
            str(f.root / "cache"), "--bench-runs", "0", *extra]


def _npzdata(f: Files, name: str) -> str:
    return str(f.root / name)


# (id, argv builder, expected status, expected words in the one line)
CASES = [
    # --- the model
    ("model-missing", lambda f: _build(f, model=f.root / "nowhere.keras"), 2, "model not found"),
    ("model-url", lambda f: _build(f, model="https://example.com/models/mobilenet.keras"), 2,
     "model is a URL (https://example.com/models/mobilenet.keras); lrfc reads local files: download it"),
    ("model-bad-suffix", lambda f: _build(f, model=f.root / "model.txt"), 2, "unsupported model format '.txt'"),
    ("model-corrupt-archive", lambda f: _build(f, model=f.root / "corrupt.keras"), 2, "not a readable .keras model archive"),
    ("model-weights-only-h5", lambda f: _build(f, model=f.root / "weights_only.h5"), 2, "holds weights only"),
    ("model-lambda-untrusted", lambda f: _build(f, model=f.root / "lambda.keras"), 2, "pass --trust-model"),
    ("model-two-outputs", lambda f: _build(f, model=f.root / "two_outputs.keras"), 2,
     "single-input, single-output classifier; this one has 1 input and 2 outputs"),
    ("build-input-shape-text", lambda f: _build(f, "--input-shape", "28,a"), 2, "--input-shape: received '28,a'"),
    ("model-one-output-unit", lambda f: _build(f, model=f.root / "one_unit.keras"), 2,
     "its output is one unit (shape (None, 1)) from a Dense with activation 'relu'"),
    ("model-softmax-over-one-unit", lambda f: _build(f, model=f.root / "softmax_unit.keras"), 2,
     "its output is one unit after a softmax (shape (None, 1)), which is 1.0 for every input"),
    ("binary-model-ten-class-data", lambda f: _build(f, model=f.root / "binary_logit.keras"), 2,
     "labels span 0..9; the model has 2 classes"),
    ("model-per-pixel-output", lambda f: _build(f, model=f.root / "per_pixel.keras"), 2,
     "its output has shape (None, 26, 26, 10)"),
    ("model-nothing-to-factorize", lambda f: _build(f, model=f.root / "no_factorizable.keras"), 2, "nothing to factorize"),
    ("model-at-chance", lambda f: _build(f, model=f.untrained), 2, "chance is 10.0%"),
    # --- the data and how it meets the model
    ("data-missing", lambda f: _build(f, data=str(f.root / "nowhere.npz")), 2, "data not found"),
    ("data-url", lambda f: _build(f, data="https://storage.googleapis.com/download.tensorflow.org/example_images/"
                                          "flower_photos.tgz"), 2,
     "data is a URL (https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz); lrfc "
     "reads local files: download it (curl -LO"),
    ("data-unsupported", lambda f: _build(f, data=str(f.root / "data.txt")), 2, "unsupported data format '.txt'"),
    ("data-archive-of-archives", lambda f: _build(f, data=str(f.root / "nested.zip")), 2,
     "holds only other archives (test1.zip, train.zip); extract it and pass the archive (or folder) that holds the data"),
    ("data-tfrecord-raw-pixels", lambda f: _build(f, data=str(f.root / "raw.tfrecord")), 2,
     "bytes feature 'image_raw' holds no encoded image (raw or serialized tensors): write the images with "
     "tf.io.encode_png"),
    ("data-csv-missing-image", lambda f: _build(f, data=str(f.root / "data.csv")), 2,
     "1 of 2 listed images are not there (first: 'flat_dir/b.png' on line 3"),
    ("unlabelled-double-scaling", lambda f: _build(f, "--input-range", "0-1", model=f.rescaling,
                                                   data=_npzdata(f, "fashion_no_y.npz")), 2,
     "with --input-range 0-255 its answers vary"),
    ("unlabelled-noise", lambda f: _build(f, data=_npzdata(f, "no_y.npz")), 2,
     "the original model answers class"),
    ("npz-length-mismatch", lambda f: _build(f, data=_npzdata(f, "short_y.npz")), 2, "40 samples but 30 labels"),
    ("npz-nan", lambda f: _build(f, data=_npzdata(f, "nan.npz")), 2, "NaN or Inf"),
    ("labels-beyond-outputs", lambda f: _build(f, data=_npzdata(f, "labels12.npz")), 2, "labels span 12..12"),
    ("labels-names-count", lambda f: _build(f, data=_npzdata(f, "labels_nine_names.npz")), 2,
     "9 class names (class 0, class 1, class 2, class 3, ...) but the model has 10 classes"),
    ("labels-names-in-another-order", lambda f: _build(f, data=_npzdata(f, "labels_sorted_names.npz")), 2,
     "with its classes in another order: the labels look numbered in another order than the model's outputs"),
    ("labels-3d", lambda f: _build(f, data=_npzdata(f, "labels_3d.npz")), 2, "labels have shape (40, 2, 5)"),
    ("labels-multi-hot", lambda f: _build(f, data=_npzdata(f, "multi_hot.npz")), 2,
     "label rows (N, 10) are not one-hot: 1 of 40 sum to 2, not 1 (row 3)"),
    ("wrong-channel-count", lambda f: _build(f, data=_npzdata(f, "five_channels.npz")), 2, "images have 5 channels"),
    ("unmappable-shape", lambda f: _build(f, data=_npzdata(f, "flat7.npz")), 2, "cannot be mapped to the model input"),
    ("tiny-dataset", lambda f: _build(f, data=_npzdata(f, "five_samples.npz")), 2, "5 samples; at least 10"),
    ("folder-flat-undecodable", lambda f: _build(f, data=str(f.root / "flat_dir")), 2,
     "none of its 1 image files decodes"),
    ("folder-class-count", lambda f: _build(f, data=str(f.root / "three_classes")), 2, "3 class folders"),
    ("folder-label-beyond", lambda f: _build(f, data=str(f.root / "class12")), 2, "names class 12"),
    ("folder-undecodable", lambda f: _build(f, data=str(f.root / "undecodable")), 2, "cannot decode image"),
    ("folder-no-images", lambda f: _build(f, data=str(f.root / "empty_classes")), 2, "hold no images"),
    ("double-scaling", lambda f: _build(f, "--input-range", "0-1", model=f.rescaling), 2,
     "with --input-range 0-255 the model scores"),
    ("wrong-range-above-chance", lambda f: _build(f, "--input-range", "-1-1"), 2,
     "the input values look wrong. Pass --input-range 0-1"),  # 0-255 scores alike: the inferred 0-1 is named
    ("input-range-unknown", lambda f: _build(f, "--input-range", "0-100"), 2, "--input-range: received '0-100'"),
    ("input-mean-count", lambda f: _build(f, "--input-mean", "0.4,0.4,0.4"), 2, "--input-mean: received 3 values"),
    ("input-std-zero", lambda f: _build(f, "--input-std", "0"), 2, "--input-std: received 0"),
    ("input-mean-text", lambda f: _build(f, "--input-mean", "grey"), 2, "--input-mean: received 'grey'"),
    ("bgr-on-grey", lambda f: _build(f, "--channel-order", "bgr"), 2, "--channel-order bgr"),
    ("range-flag-on-normalised-data", lambda f: _build(f, "--input-range", "0-1", data=_npzdata(f, "normalised.npz")),
     2, "not pixel values"),
    ("overflowing-data", lambda f: _build(f, data=_npzdata(f, "huge.npz")), 2,
     "the data is already normalised, so lrfc could not try other input ranges"),
    # --- paths that cannot be written or read
    ("out-under-a-file", lambda f: _build(f)[:-4] + ["--out", str(f.root / "a_file" / "sub"), "--bench-runs", "0"],
     2, "a part of the path is a file"),
    ("out-is-a-file", lambda f: _build(f)[:-4] + ["--out", str(f.root / "a_file"), "--bench-runs", "0"],
     2, "expected a directory (it exists as a file)"),
    ("out-unwritable", lambda f: _build(f)[:-4] + ["--out", "/proc/lrfc-out", "--bench-runs", "0"], 2, "cannot be written"),
    ("cache-dir-is-a-file", lambda f: _build(f, "--cache-dir", str(f.root / "a_file")), 2, "exists and is not a folder"),
    ("cost-db-not-sqlite", lambda f: _build(f, "--objective", "latency", "--cost-db", str(f.root / "not_sqlite.db")),
     2, "not an SQLite file"),
    ("cost-db-is-a-folder", lambda f: _build(f, "--cost-db", str(f.root / "cost_dir")), 2, "is a folder"),
    # --- options
    ("device-trailing-newline", lambda f: _build(f, "--device", "ssh://user@host\n"), 2,
     "host 'host\\n' is not a host name or IP address"),
    ("device-bad-scheme", lambda f: _build(f, "--device", "http://host"), 2, "only ssh:// is supported"),
    ("identity-file-missing", lambda f: _build(f, "--device", "ssh://u@h", "--identity-file", str(f.root / "nokey")),
     2, "--identity-file: no such file"),
    ("plan-missing", lambda f: _build(f, "--plan", str(f.root / "noplan.json")), 2, "plan not found"),
    ("plan-not-json", lambda f: _build(f, "--plan", str(f.root / "plan_bad.json")), 2, "not readable JSON"),
    ("plan-unknown-layer", lambda f: _build(f, "--plan", str(f.root / "plan_unknown_layer.json")), 2,
     "layer 'fc9' is not a factorizable layer"),
    ("plan-ranks-out-of-range", lambda f: _build(f, "--plan", str(f.root / "plan_bad_ranks.json")), 2, "out of range"),
    ("threshold", lambda f: _build(f, "--threshold", "2"), 2, "--threshold: received 2.0"),
    ("step", lambda f: _build(f, "--step", "0"), 2, "--step: received 0.0"),
    ("methods", lambda f: _build(f, "--methods", "tucker,nmf"), 2, "--methods: received 'tucker,nmf'"),
    ("objective", lambda f: _build(f, "--objective", "speed"), 2, "--objective: received 'speed'"),
    ("target", lambda f: _build(f, "--target", "jetson-tx9"), 2, "unknown profile 'jetson-tx9'"),
    ("target-toml-unknown-key", lambda f: _build(f, "--target", str(f.root / "profile.toml")), 2, "warp_drive"),
    ("formats", lambda f: _build(f, "--formats", "tflite,pb"), 2, "--formats: received 'tflite,pb'"),
    ("formats-the-target-cannot-run", lambda f: _build(f, "--target", "coral-edgetpu", "--formats", "onnx"), 2,
     "--formats onnx: target coral-edgetpu runs none of them (its runtimes: litert, which run tflite)"),
    ("formats-on-a-cpu-the-profile-does-not-describe",
     lambda f: _build(f, "--target", str(f.root / "gpu.toml"), "--formats", "tflite", "--objective", "latency"), 2,
     "--formats tflite: target gpu runs litert on its CPU, but its figures are its GPU's and it has no [cpu] "
     "figures to estimate the CPU from; pass --device to measure it, --objective flops, or add a [cpu] table"),
    ("opset-too-old", lambda f: _build(f, "--opset", "11"), 2,
     "--opset: received 11, expected 13 to 18 (int8 files need opset 13's per-channel QuantizeLinear"),
    ("calib-samples", lambda f: _build(f, "--calib-samples", "0"), 2, "--calib-samples: received 0"),
    ("memory-budget-not-a-size", lambda f: _build(f, "--memory-budget", "lots"), 2, "--memory-budget: 'lots' is not a size"),
    ("memory-budget-too-small", lambda f: _build(f, "--memory-budget", "300M"), 2,
     "--memory-budget: 0.29 GB (--memory-budget) cannot hold this build"),
    ("epochs", lambda f: _build(f, "--epochs", "-1"), 2, "--epochs: received -1"),
    ("batch-size", lambda f: _build(f, "--batch-size", "0"), 2, "--batch-size: received 0"),
    ("distill-features-negative", lambda f: _build(f, "--distill-features", "-0.5"), 2,
     "--distill-features: received -0.5; expected a weight >= 0 (0: off)"),
    ("distill-features-with-qat", lambda f: _build(f, "--target", "host-int8", "--qat", "--distill-features", "1"), 2,
     "--distill-features and --qat do not go together"),
    ("max-acc-drop", lambda f: _build(f, "--max-acc-drop", "200"), 2, "--max-acc-drop: received 200.0"),
    ("missing-data-option", lambda f: ["build", str(f.tiny)], 2, "Missing option '--data'"),
    ("unknown-option", lambda f: _build(f, "--turbo"), 2, "No such option: --turbo"),
    # --- the other commands
    ("decompose-bigger-model", lambda f: ["decompose", str(f.tiny), "--method", "svd", "--rank", "500", "-o",
                                          str(f.root / "out" / "d.keras")], 2, "make the model bigger"),
    ("decompose-unknown-layer", lambda f: ["decompose", str(f.tiny), "--method", "svd", "--layers", "fc9", "-o",
                                           str(f.root / "out" / "d.keras")], 2, "no layer 'fc9'"),
    ("decompose-unknown-method", lambda f: ["decompose", str(f.tiny), "--method", "nmf", "-o",
                                            str(f.root / "out" / "d.keras")], 2, "--method: received 'nmf'"),
    ("decompose-out-not-keras", lambda f: ["decompose", str(f.tiny), "--method", "svd", "-o", str(f.root / "out" / "d.h5")],
     2, "expected a path ending in .keras"),
    ("export-int8-without-data", lambda f: ["export", str(f.tiny), "--target", "host", "--precision", "int8", "--out",
                                            str(f.root / "out")], 2, "--data is required for int8"),
    ("export-precision", lambda f: ["export", str(f.tiny), "--target", "host", "--precision", "int4", "--out",
                                    str(f.root / "out")], 2, "--precision: received 'int4'"),
    ("export-at-chance", lambda f: ["export", str(f.untrained), "--target", "host", "--data", "fashion-mnist", "--out",
                                    str(f.root / "out")], 2, "chance is 10.0%"),
    ("export-out-under-a-file", lambda f: ["export", str(f.tiny), "--target", "host", "--out",
                                           str(f.root / "a_file" / "x")], 2, "a part of the path is a file"),
    ("verify-missing-artifact", lambda f: ["verify", str(f.root / "none.tflite"), "--model", str(f.tiny)], 2, "no such file"),
    ("verify-wrong-suffix", lambda f: ["verify", str(f.root / "model.pb"), "--model", str(f.tiny)], 2,
     "expected a .tflite or .onnx file"),
    ("verify-without-model", lambda f: ["verify", str(f.root / "model.pb")], 2, "ARTIFACT --model MODEL"),
    ("verify-report-missing", lambda f: ["verify", "--report", str(f.root / "nowhere.json")], 2, "no such file"),
    ("verify-report-not-json", lambda f: ["verify", "--report", str(f.root / "report.json")], 2, "not readable JSON"),
    ("bench-missing-file", lambda f: ["bench", str(f.root / "none.onnx")], 2, "no such file"),
    ("bench-ssh-options-without-device", lambda f: ["bench", str(f.root / "model.txt"), "--device-python", "python3.8"],
     2, "--device-python, --identity-file and --ssh-option apply to --device"),
    ("inspect-input-shape-text", lambda f: ["inspect", str(f.tiny), "--input-shape", "28,a"], 2, "--input-shape: received"),
    ("inspect-input-shape-rank", lambda f: ["inspect", str(f.tiny), "--input-shape", "28"], 2,
     "--input-shape 28: the model cannot take it"),
]


def test_the_corpus_is_big_enough():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name, argv, status, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_with_one_line_and_leaves_nothing(name, argv, status, words, files, capfd):
    out = files.root / "out"
    shutil.rmtree(out, ignore_errors=True)  # every case starts without it, so any output is this case's
    before = {p: p.read_bytes() for p in (files.root / "a_file", files.root / "not_sqlite.db")}
    code = main(argv(files))
    captured = capfd.readouterr()
    lines = captured.err.splitlines()
    assert code == status, captured.err
    assert len(lines) == 1 and lines[0].startswith("lrfc: error: "), captured.err
    assert words in lines[0], lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert not out.exists(), sorted(p.name for p in out.rglob("*"))  # nothing half-written
    assert all(p.read_bytes() == data for p, data in before.items())  # nothing of the user's changed


def test_data_that_overflows_a_layer_is_one_error_line(files, capfd):
    """Past the sanity gate (--allow-low-accuracy), finite but huge values overflow a factorized layer: exit 2 with
    one error line naming the layer, no NaN in the score cache, no traceback, nothing written."""
    out = files.root / "out"
    shutil.rmtree(out, ignore_errors=True)
    code = main(_build(files, "--allow-low-accuracy", "--finetune", "none", data=_npzdata(files, "huge.npz")))
    err = capfd.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("lrfc: error:")]
    assert code == 2 and len(errors) == 1 and "overflows on this data" in errors[0], err
    assert "Traceback" not in err and not out.exists()
