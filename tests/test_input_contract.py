"""The input contract: how data values reach a model, inferred from its graph or given, applied everywhere;
the sanity gate that stops a run whose original model scores at chance."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from conftest import run_cli
from lrfc.errors import UserError
from lrfc.frontend.contract import InputContract, given_contract, infer_contract
from lrfc.frontend.data import Dataset, load_data, read_fashion_mnist, to_unit
from lrfc.frontend.splits import make_splits


# ------------------------------------------------------------------ the contract itself


def test_apply_and_unapply_are_inverse_for_every_range_and_convention():
    unit = np.random.default_rng(0).random((4, 5, 5, 3)).astype(np.float32)
    for contract in (InputContract("0-1"), InputContract("0-255"), InputContract("-1-1"),
                     InputContract("0-255", (103.939, 116.779, 123.68), None, "bgr"),
                     InputContract("0-1", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))):
        np.testing.assert_allclose(contract.unapply(contract.apply(unit)), unit, atol=1e-5)
    assert InputContract("0-255").apply(np.ones((1, 2), np.float32)).tolist() == [[255.0, 255.0]]
    assert InputContract("-1-1").apply(np.array([[0.0, 0.5, 1.0]], np.float32)).tolist() == [[-1.0, 0.0, 1.0]]
    caffe = InputContract("0-255", (103.939, 116.779, 123.68), None, "bgr").apply(np.array([[[[1.0, 0.0, 0.0]]]]))
    np.testing.assert_allclose(caffe.ravel(), [-103.939, -116.779, 255 - 123.68], atol=1e-4)  # red is last in BGR


def test_given_flags_and_their_errors():
    assert given_contract(None, None, None, None) is None
    torch = given_contract(None, "0.485,0.456,0.406", "0.229,0.224,0.225", None)
    assert torch.range == "0-1" and torch.source == "given" and torch.std == (0.229, 0.224, 0.225)
    assert given_contract(None, "103.9,116.8,123.7", None, "bgr").range == "0-255"  # the mean's scale says so
    assert given_contract("-1-1", None, None, None).flags() == "--input-range -1-1"
    with pytest.raises(UserError, match="--input-range: received '0-100'"):
        given_contract("0-100", None, None, None)
    with pytest.raises(UserError, match="--input-std: received 0"):
        given_contract("0-1", None, "0", None)
    with pytest.raises(UserError, match="expected 1 or 3"):
        given_contract("0-1", "1,2", None, None).check_channels(3)


def test_inferred_from_the_graph(keras):
    layers = keras.layers
    inp = keras.Input((8, 8, 3))

    def head(x):
        return keras.Model(inp, layers.Dense(2)(layers.Flatten()(x)))

    assert infer_contract(head(layers.Rescaling(1 / 255.0)(inp))).range == "0-255"
    assert infer_contract(head(layers.Rescaling(1 / 127.5, offset=-1)(inp))).range == "0-255"
    assert infer_contract(head(layers.Rescaling(2.0, offset=-1)(inp))).range == "0-1"  # [0, 1] -> [-1, 1]
    assert infer_contract(head(layers.Normalization(mean=[120.0] * 3, variance=[900.0] * 3)(inp))).range == "0-255"
    assert infer_contract(head(layers.Normalization(mean=[0.45] * 3, variance=[0.05] * 3)(inp))).range == "0-1"
    assert infer_contract(head(layers.Lambda(lambda t: t / 127.5 - 1)(inp))).range == "0-255"
    # keras.applications' preprocess_input on the symbolic input: operations, not layers, probed as one
    # (Keras numbers an operation's name when the process made one before: true_divide_3)
    for module, reads in ((keras.applications.mobilenet_v2, r"operations \(true_divide(_\d+)?, subtract(_\d+)?\) that "
                                                            r"map 0\.\.255 to -1\.\.1:"),
                          (keras.applications.resnet50, r"operations \(get_item(_\d+)?, get_item_\d+, get_item_\d+, "
                                                        r"stack(_\d+)?, \.\.\.\) that map 0\.\.255 to -115\.\.140:"),
                          (keras.applications.densenet, r"that map 0\.\.255 to -1\.99\.\.2\.44:")):
        contract = infer_contract(head(module.preprocess_input(inp)))
        assert contract.range == "0-255" and re.search(reads, contract.reason), contract.reason
    assert infer_contract(head(inp * 2.0 - 1.0)).range == "0-1"  # [0, 1] -> [-1, 1]: not raw pixels
    plain = infer_contract(head(layers.Conv2D(2, 3)(inp)))
    assert plain.range == "0-1" and plain.source == "inferred" and "no Rescaling/Normalization" in plain.reason
    # augmentation, dropout and resampling before the preprocessing leave the values alone at inference
    augmented = infer_contract(head(layers.Rescaling(1 / 255.0)(layers.RandomTranslation(0.1, 0.1)(
        layers.RandomFlip("horizontal")(inp)))))
    assert augmented.range == "0-255" and augmented.reason.startswith(
        "the model starts with RandomFlip, RandomTranslation (no change to the pixel values at inference), then "
        "Rescaling(scale=0.003922")
    resized = layers.Resizing(16, 16)(layers.GaussianNoise(0.1)(layers.Dropout(0.2)(inp)))
    probed = infer_contract(head(layers.Lambda(lambda t: t / 127.5 - 1)(resized)))  # probed at the Lambda's 16x16
    assert probed.range == "0-255" and "GaussianNoise" in probed.reason and "a Lambda layer" in probed.reason
    assert infer_contract(head(layers.Normalization(mean=[0.45] * 3, variance=[0.05] * 3)(
        layers.RandomContrast(0.2)(inp)))).range == "0-1"
    # a BatchNormalization on the pixels says it by its moving mean; an untrained one says nothing
    bn = layers.BatchNormalization()
    on_raw = head(bn(inp))
    bn.moving_mean.assign([72.9, 70.1, 68.0])
    assert infer_contract(on_raw).range == "0-255" and "BatchNormalization (moving mean up to 72.9)" in infer_contract(
        on_raw).reason
    bn.moving_mean.assign([0.29, 0.28, 0.3])
    assert infer_contract(on_raw).reason.endswith("BatchNormalization (moving mean up to 0.3), trained on [0, 1] values")
    assert "never trained" in infer_contract(head(layers.BatchNormalization()(inp))).reason
    plain = infer_contract(head(layers.Conv2D(2, 3)(layers.RandomRotation(0.1)(inp))))
    assert plain.range == "0-1" and "no Rescaling/Normalization" in plain.reason
    # keras.applications models that carry their own preprocessing
    assert infer_contract(keras.applications.MobileNetV3Small(weights=None, input_shape=(32, 32, 3))).range == "0-255"
    assert infer_contract(keras.applications.EfficientNetB0(weights=None, input_shape=(32, 32, 3))).range == "0-255"


def test_values_are_brought_to_unit_pixels_by_their_scale():
    assert to_unit(np.array([[0, 255]], np.uint8), "d")[0].tolist() == [[0.0, 1.0]]
    assert to_unit(np.array([[0, 65535]], np.uint16), "d")[0].tolist() == [[0.0, 1.0]]
    assert to_unit(np.array([[0.0, 127.5, 255.0]], np.float32), "d")[0].tolist() == [[0.0, 0.5, 1.0]]
    assert to_unit(np.array([[-1.0, 0.0, 1.0]], np.float32), "d")[0].tolist() == [[0.0, 0.5, 1.0]]
    values, described = to_unit(np.array([[-3.0, 2.5]], np.float32), "d")
    assert values.tolist() == [[-3.0, 2.5]] and described.startswith("as given")
    with pytest.raises(UserError, match="integer samples span -3..4"):
        to_unit(np.array([[-3, 4]]), "d")


def test_data_reaches_the_model_in_its_units_and_zero_padding_is_black():
    raw = read_fashion_mnist()[0][0].astype(np.float32)
    ds = load_data("fashion-mnist", (32, 32, 1), 10, InputContract("-1-1"))
    assert ds.values == "uint8 0..255" and ds.contract.range == "-1-1"
    np.testing.assert_allclose(ds.x[0, 2:30, 2:30, 0], raw / 127.5 - 1, atol=1e-5)
    assert ds.x[0, 0, 0, 0] == -1.0  # the padding is black in the model's units, not 0


def test_image_folder_with_class_indices_keeps_labels_when_a_class_is_missing(keras, tmp_path):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    for cls in ("0", "1", "3"):  # class 2 has no folder
        (tmp_path / cls).mkdir()
        for i in range(4):
            tf.io.write_file(str(tmp_path / cls / f"{i}.png"), tf.io.encode_png(rng.integers(0, 256, (8, 8, 1), dtype=np.uint8)))
    ds = load_data(str(tmp_path), (8, 8, 1), 4)
    assert sorted(set(ds.y.tolist())) == [0, 1, 3] and ds.classes == ("0", "1", "", "3")
    assert len(ds.notes) == 1 and "no folder for class 2" in ds.notes[0]


def test_splits_shrink_calibration_instead_of_evaluating_nothing():
    ds = Dataset("d", np.zeros((100, 4), np.float32), np.arange(100) % 10)
    s = make_splits(ds, calib_samples=1000, seed=0, finetune=True)
    assert (len(s.x_calib), len(s.x_train), len(s.x_val)) == (60, 20, 20) and s.validation_source == "held out"
    assert "--calib-samples 1000" in s.notes[0]
    s = make_splits(ds, calib_samples=10, seed=0, finetune=False)
    assert (len(s.x_calib), len(s.x_val), s.notes) == (10, 90, ())  # no fine-tuning: the rest validates
    with pytest.raises(UserError, match="too few to split"):
        make_splits(Dataset("d", np.zeros((1, 4), np.float32), np.zeros(1, int)), 10, 0, True)


def test_samples_that_repeat_a_validation_or_test_sample_are_left_out_of_calibration_and_training():
    """Web-collected photo sets repeat images; a repeat of a judged sample must not be tuned on."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (400, 6, 6), dtype=np.uint8)
    x_test = rng.integers(0, 256, (100, 6, 6), dtype=np.uint8)
    x[:30] = x_test[:30]  # 30 training images that are also test images
    x[30:40] = x[200]  # and 11 copies of one training image among themselves: not a leak
    ds = Dataset("d", x, np.arange(400) % 10, x_test=x_test, y_test=np.arange(100) % 10)
    s = make_splits(ds, calib_samples=100, seed=0, finetune=True)
    judged = {row.tobytes() for row in x_test}
    tuned = [row.tobytes() for row in np.asarray(s.x_calib, np.float32)] + [x[i].tobytes() for i in s.x_train.index]
    assert len(tuned) == 370 and len(s.x_val) + len(s.x_test) == 100
    assert not judged & {row.tobytes() for row in x[s.x_train.index]}
    assert not {row.astype(np.float32).tobytes() for row in x_test} & set(tuned[:len(s.x_calib)])  # as mapped
    assert s.notes == (f"{100 - len(s.x_calib)} calibration and {300 - len(s.x_train)} training samples had the same "
                       "bytes as a validation or test sample (an image the data repeats) and were left out, so the "
                       "model is never tuned on a sample it is judged on",)
    clean = make_splits(Dataset("d", x[30:], np.arange(370) % 10, x_test=x_test, y_test=np.arange(100) % 10), 100, 0,
                        True)
    assert clean.notes == () and len(clean.x_calib) == 100 and len(clean.x_train) == 270


def test_validation_is_half_the_test_split_the_original_never_saw():
    """A model scores its training samples from memory; the budget is measured on samples it was not trained on."""
    x, x_test = np.arange(100, dtype=np.float32)[:, None], 1000 + np.arange(40, dtype=np.float32)[:, None]
    ds = Dataset("d", x, np.arange(100) % 10, x_test=x_test, y_test=np.arange(40) % 10)
    s = make_splits(ds, calib_samples=30, seed=0, finetune=True)
    assert s.validation_source == "test split" and (len(s.x_calib), len(s.x_train), len(s.x_val), len(s.x_test)) == (30, 70, 20, 20)
    assert set(s.x_val[:, 0]).isdisjoint(s.x_test[:, 0]) and set(s.x_val[:, 0]) | set(s.x_test[:, 0]) == set(x_test[:, 0])
    assert s.x_calib.max() < 1000 and s.x_train.max() < 1000  # nothing of the test split is trained or calibrated on
    again = make_splits(ds, calib_samples=30, seed=0, finetune=True)
    assert np.array_equal(again.x_val, s.x_val) and not np.array_equal(make_splits(ds, 30, 1, True).x_val, s.x_val)

# ------------------------------------------------------------------ the sanity gate on real models


def test_a_model_with_its_own_rescaling_reaches_its_real_accuracy(rescaling_model_path, keras, tmp_path):
    """The defect that started it: a Rescaling(1/255) model fed uint8 images was scaled twice and scored 10%."""
    from lrfc.frontend.load import load_model

    x, _, x_test, y_test = read_fashion_mnist()
    correct = load_model(rescaling_model_path).predict(x_test[..., None].astype("float32"), verbose=0).argmax(1) == y_test
    # the build reports the test half of the test split (the other half validates): these samples, for seed 0
    which = make_splits(Dataset("i", np.arange(len(x)), np.zeros(len(x), int), x_test=np.arange(len(x_test)),
                                y_test=np.zeros(len(x_test), int)), 200, 0, True).x_test.index
    keras_acc = float(np.mean(correct[which]))
    assert keras_acc > 0.6  # the model is real: this is the accuracy lrfc must see

    res = run_cli("build", str(rescaling_model_path), "--data", "fashion-mnist", "--objective", "flops", "--epochs", "1",
                  "--threshold", "0.98",
                  "--train-samples", "2000", "--calib-samples", "200", "--step", "10", "--max-rounds", "1",
                  "--methods", "tucker,svd", "--bench-runs", "0", "--formats", "tflite", "--out", str(tmp_path / "b"),
                  "--cache-dir", str(tmp_path / "cache"), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["input"]["range"] == "0-255" and report["input"]["source"] == "inferred"
    assert "Rescaling" in report["input"]["reason"] and report["input"]["data_values"] == "uint8 0..255"
    assert report["input"]["data_fit"] is None  # Fashion-MNIST has the model's 28x28 shape
    assert report["original"]["test_accuracy"] == pytest.approx(keras_acc, abs=1e-6)
    assert report["original"]["accuracy"] > 0.6  # on the validation split the build holds out: also far above chance
    assert report["accuracy_budget"]["met"]  # and the published model keeps within the budget of it
    html = (tmp_path / "b" / "report.html").read_text()
    assert ("200 calibration, 2,000 training, 5,000 validation samples (half the given test split), "
            "5,000 test (the other half, reported only)") in html

    res = run_cli("export", str(rescaling_model_path), "--target", "host", "--precision", "int8", "--data",
                  "fashion-mnist", "--out", str(tmp_path / "e"), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["input"]["range"] == "0-255"
    for artifact in doc["artifacts"]:
        assert artifact["precision"] == "int8" and artifact["passed"]
        assert artifact["reference_accuracy"] > 0.6 and abs(artifact["accuracy"] - artifact["reference_accuracy"]) < 0.05


def test_a_model_built_on_keras_preprocess_input_reads_raw_pixels(keras, tmp_path):
    """Keras' transfer-learning recipe, ``x = preprocess_input(inputs)`` then the network: operations, not layers,
    start the graph (a traceback in the load stage before); the build reads them as the model's own preprocessing
    of raw 0-255 pixels and the original scores its real accuracy."""
    x, y, _, _ = read_fashion_mnist()
    keras.utils.set_random_seed(0)
    layers = keras.layers
    inp = keras.Input((28, 28, 1))
    h = layers.Conv2D(8, 3, activation="relu")(keras.applications.mobilenet_v2.preprocess_input(inp))
    h = layers.Conv2D(16, 3, strides=2, activation="relu")(layers.MaxPooling2D()(h))
    model = keras.Model(inp, layers.Dense(10)(layers.Dense(32, activation="relu")(layers.Flatten()(h))))
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:6000, ..., None].astype("float32"), y[:6000], batch_size=128, epochs=1, verbose=0)
    model.save(tmp_path / "ops.keras")
    res = run_cli("build", str(tmp_path / "ops.keras"), "--data", "fashion-mnist", "--objective", "flops", "--finetune",
                  "none", "--calib-samples", "200", "--step", "25", "--bench-runs", "0", "--formats", "tflite,onnx",
                  "--out", str(tmp_path / "b"), "--cache-dir", str(tmp_path / "cache"), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["input"]["range"] == "0-255" and re.search(r"operations \(true_divide(_\d+)?, subtract(_\d+)?\) that "
                                                            r"map 0\.\.255 to -1\.\.1", report["input"]["reason"])
    assert report["original"]["accuracy"] > 0.6
    assert all(a["passed"] and a["reference_accuracy"] > 0.6 for a in report["artifacts"]), report["artifacts"]


def test_chance_on_imbalanced_labels_is_the_common_class_share(keras):
    """95 % negatives: a model that answers class 0 for everything scores 95 %, which the balanced rule (chance 50 %
    + 5 points) passed, and every compression of it "kept" it. Now chance is the common class's share, a model at it
    that answers one class is stopped, and the input ranges it could have been fed are compared by balanced accuracy
    (an all-black input that collapses the model onto class 0 does not look better)."""
    from lrfc.frontend.sanity import at_chance, balanced_accuracy, chance_level, check_original

    y = np.array([0] * 95 + [1] * 5)
    assert chance_level(y, 2) == (0.95, "95.0%, the share of class 0, the most common")
    assert chance_level(np.arange(100) % 10, 10) == (0.1, "10.0%")  # balanced: as before
    assert chance_level(np.array([0] * 14 + [1] * 6), 2)[0] == 0.5  # 70 %: not 1.5 x 50 %
    constant, varied = np.zeros(100, int), np.array([0] * 80 + [1] * 20)
    assert at_chance(0.95, 0.95, 2, constant) and not at_chance(0.96, 0.95, 2, constant)
    assert not at_chance(0.85, 0.95, 2, varied)  # tells the classes apart, if poorly: weak, not broken
    assert balanced_accuracy(constant, y) == 0.5 and balanced_accuracy(y, y) == 1.0

    inp = keras.Input((4, 4, 1))
    model = keras.Model(inp, keras.layers.Dense(2, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(
        [1.0, 0.0]))(keras.layers.Flatten()(inp)))  # class 0 for every input
    x = np.random.default_rng(0).random((200, 4, 4, 1)).astype(np.float32)
    labels = np.array([0] * 190 + [1] * 10)
    with pytest.raises(UserError, match=r"scores 95\.0% top-1 .* chance is 95\.0%, the share of class 0, the most "
                                        r"common\): .*balanced accuracy.* the model predicts class 0 for 100% of samples"):
        check_original(model, x, labels, InputContract("0-1"))
    assert check_original(model, x, np.array([0] * 100 + [1] * 100), InputContract("0-1"),
                          allow_low=True) == pytest.approx(0.5)  # balanced labels: at chance, as before (warned)


def test_stating_the_wrong_range_stops_and_names_the_right_one(rescaling_model_path, tmp_path):
    res = run_cli("export", str(rescaling_model_path), "--target", "host", "--precision", "int8", "--data",
                  "fashion-mnist", "--input-range", "0-1", "--out", str(tmp_path / "e"))
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "scores" in res.stderr and "Pass --input-range 0-255" in res.stderr
    assert not (tmp_path / "e").exists()


def test_a_range_that_is_clearly_worse_but_above_chance_stops_the_run_too(tiny_model_path, keras):
    """Fed [-1, 1] instead of [0, 1], the tiny model still beats chance, by far less: 20 points or more below
    another range is as wrong as chance (the VGG-style baseline given --input-range 0-255 scored 30 % and was
    compressed against that, 'gaining' 11 points, until 2026-12-06), so the gate stops and names the fix;
    --allow-low-accuracy makes it a warning. (Fed 0-255 the tiny model loses only a few points: a ReLU net without
    normalisation is nearly scale-invariant.)"""
    from lrfc.frontend.load import load_flat
    from lrfc.frontend.sanity import check_original

    model = load_flat(tiny_model_path)
    wrong = InputContract("-1-1", source="given")
    ds = load_data("fashion-mnist", (28, 28, 1), 10, wrong)
    with pytest.raises(UserError) as info:
        check_original(model, ds.x_test, ds.y_test, wrong)
    said = str(info.value)
    assert "on 128 of them as fed (pixel values -1-1, given), but" in said and "with --input-range 0-1" in said
    assert "the input values look wrong. Pass --input-range 0-1; or pass --allow-low-accuracy" in said
    warnings = []
    accuracy = check_original(model, ds.x_test, ds.y_test, wrong, allow_low=True, log=warnings.append)
    assert accuracy > 0.15 and len(warnings) == 1 and "Pass --input-range 0-1" in warnings[0], warnings


def test_at_chance_the_message_says_how_the_data_was_reshaped(tiny_model_path, tmp_path, keras):
    """Images of another size and channel count reach the model through the mapping rule; at chance, the one
    line says so beside the range and labels (a wrong size is as likely a cause). Every image is the same grey
    square, so the model gives every one the same class, and none is labelled with it: top-1 is 0, whatever
    the split."""
    import tensorflow as tf

    grey = np.full((24, 24, 3), 128, np.uint8)
    fitted = np.pad(np.full((1, 24, 24, 1), 128 / 255, np.float32), ((0, 0), (2, 2), (2, 2), (0, 0)))
    predicted = int(np.argmax(keras.models.load_model(tiny_model_path).predict(fitted, verbose=0)))
    for cls in range(10):
        (tmp_path / "imgs" / str(cls)).mkdir(parents=True)
        for i in range(0 if cls == predicted else 6):
            tf.io.write_file(str(tmp_path / "imgs" / str(cls) / f"{i}.png"), tf.io.encode_png(grey))
    res = run_cli("build", str(tiny_model_path), "--data", str(tmp_path / "imgs"), "--target", "host",
                  "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "scores 0.0% top-1" in res.stderr
    assert ("and the data was reshaped: 24x24x3 images fitted to the model's 28x28x1: converted to grey (BT.601 "
            "luma), zero-padded, centred; or pass --allow-low-accuracy") in res.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("cap", [None, 8])
def test_at_chance_from_stale_batchnorm_statistics_the_message_says_so(keras, monkeypatch, cap):
    """keras.applications builds BatchNorm with momentum 0.999: after a short training its moving statistics are
    still near their start, so the model scores at chance in inference mode whatever its training accuracy
    (bench.foreign: a MobileNetV2 trained one epoch, 36% in training, 10% after). Here the statistics are made
    stale on purpose: moving means far above every activation, so each ReLU after a BatchNorm outputs 0 and the
    model gives every sample one class, while on each batch's own statistics it is the model it was trained to be."""
    from lrfc.frontend.sanity import check_original

    x, y, x_test, y_test = read_fashion_mnist()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(16, 3, strides=2),
                              keras.layers.BatchNormalization(momentum=0.999), keras.layers.ReLU(),
                              keras.layers.Conv2D(32, 3, strides=2), keras.layers.BatchNormalization(momentum=0.999),
                              keras.layers.ReLU(), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:4000, ..., None] / 255.0, y[:4000], batch_size=128, epochs=2, verbose=0)
    x_val, y_val, contract = x_test[:1000, ..., None] / 255.0, y_test[:1000], InputContract("0-1")
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for bn in norms:
        bn.moving_mean.assign(np.full(bn.moving_mean.shape, 1e3, np.float32))
    stale = [np.array(bn.moving_mean) for bn in norms]
    from lrfc.frontend import samples

    seen, call = [], keras.layers.BatchNormalization.call

    def spy(self, inputs, *args, **kwargs):
        seen.append(inputs.shape[0])
        return call(self, inputs, *args, **kwargs)

    monkeypatch.setattr(keras.layers.BatchNormalization, "call", spy)
    samples.cap_batches(cap)  # a build's memory plan caps every batch: ResNet101 at 224x224 holds 230 MB a sample
    try:
        with pytest.raises(UserError) as err:
            check_original(model, x_val, y_val, contract)
    finally:
        samples.cap_batches(None)
    if cap is None:
        assert 128 in seen  # the diagnosis's training-mode call: its 128 samples in one batch
    else:
        assert max(n for n in seen if n is not None) == cap  # every call under the cap, the training-mode ones too
    message = str(err.value)
    assert "predicts class" in message and "for 100% of samples" in message, message
    trained = float(message.split("(training mode) it scores ")[1].split("%")[0])
    assert trained > 50, message  # the weights are fine: this is the model's real skill, measured on a batch
    assert "BatchNorm moving statistics do not match its weights" in message and "momentum (0.999)" in message
    for bn, before in zip(norms, stale):  # training mode updated the moving statistics: they were put back
        np.testing.assert_array_equal(np.array(bn.moving_mean), before)


def test_labels_in_another_order_than_the_outputs_stop_the_run_above_chance(tiny_model_path, keras):
    """Fashion-MNIST's classes named and sorted by name (as class folders are numbered): the tiny model scores
    well above chance on them, yet far better under one relabelling. The gate stops it and names the
    ``--class-names`` that fits; rightly numbered labels pass without a word."""
    from lrfc.frontend.load import load_flat
    from lrfc.frontend.sanity import check_original

    model = load_flat(tiny_model_path)
    names = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
    ds = load_data("fashion-mnist", (28, 28, 1), 10)
    x, truth = ds.x_test[:1000], ds.y_test[:1000]
    by_name = np.argsort(np.argsort(names))[truth]  # each image's class numbered in sorted-name order
    sorted_names = tuple(sorted(names))
    contract = InputContract("0-1")
    said = []
    right = check_original(model, x, truth, contract, log=said.append, class_names=names)
    assert right > 0.6 and said == []
    wrong = float(np.mean(model.predict(x, verbose=0).argmax(-1) == by_name))
    assert 0.15 < wrong < right - 0.3  # above chance: only the relabelling tells
    with pytest.raises(UserError) as info:
        check_original(model, x, by_name, contract, class_names=sorted_names)
    message = str(info.value)
    relabelled = re.search(r"\(1,000 samples\) but ([0-9.]+)% with its classes in another order", message)
    assert f"scores {100 * wrong:.1f}% on the validation split" in message
    assert relabelled and float(relabelled.group(1)) >= round(100 * right, 1)  # at least the right labels' score
    assert f"its answers fit --class-names {','.join(names)})" in message and "--allow-low-accuracy" in message
    assert check_original(model, x, by_name, contract, allow_low=True, log=said.append) == pytest.approx(wrong)
    assert len(said) == 1 and "its answers fit label 0 as output" in said[0] and "(--allow-low-accuracy)" in said[0]
    shifted = tuple(names[(k - 1) % 10] for k in range(10))  # every class one place on: at chance, the same fix
    with pytest.raises(UserError) as info:
        check_original(model, x, (truth + 1) % 10, contract, class_names=shifted)
    assert "chance is 10.0%" in str(info.value) and f"its answers fit --class-names {','.join(names)})" in str(info.value)


def test_many_classes_few_samples_each_are_not_taken_for_labels_in_another_order():
    """1,000 classes, 500 samples, a 60 % model rightly labelled: a relabelling found and scored on the same samples
    reads about 80 % (one sample per class is easy to match), so it is found on half and scored on the other, and the
    gate passes the model; the same predictions against labels in another order still read at chance."""
    from lrfc.frontend.sanity import check_original

    rng = np.random.default_rng(0)
    y = rng.integers(0, 1000, 500)
    pred = np.where(rng.random(500) < 0.6, y, rng.integers(0, 1000, 500))
    outputs = np.eye(1000, dtype=np.float32)[pred]
    said = []
    assert check_original(None, np.zeros((500, 4)), y, InputContract("0-1"), passthrough=True, outputs=outputs,
                          log=said.append) == pytest.approx(np.mean(pred == y))
    assert said == []
