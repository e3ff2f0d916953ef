"""Data without labels: the original's answers stand in for them, the budget holds the share of answers changed,
and the sanity gate stops an original that answers one class for nearly everything (``frontend.unlabelled``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lrfc.cli import main
from lrfc.errors import UserError
from lrfc.frontend.contract import InputContract

GIVEN_0_1 = InputContract("0-1", None, None, "rgb", "given", "from the command line")


@pytest.fixture(scope="module")
def images():
    """Fashion-MNIST's first 1,200 training images as uint8 (N, 28, 28, 1) and their labels (kept for checking)."""
    from lrfc.frontend.data import read_fashion_mnist

    x, y, _, _ = read_fashion_mnist()
    return x[:1200, ..., None], y[:1200]


def test_splits_of_unlabelled_data_are_labelled_with_the_original_answers(tiny_model_path, keras, images):
    from lrfc.frontend.data import load_data
    from lrfc.frontend.samples import predict
    from lrfc.frontend.splits import make_splits
    from lrfc.frontend.unlabelled import label_with_original

    model = keras.saving.load_model(tiny_model_path)
    ds = load_data((images[0], None), (28, 28, 1), 10, labels=False)
    splits = make_splits(ds, 200, 0, True)
    assert splits.y_calib is None and splits.y_train is None and splits.y_val is None
    labelled, val, train = label_with_original(model, splits)
    for x, y in ((labelled.x_calib, labelled.y_calib), (labelled.x_train, labelled.y_train),
                 (labelled.x_val, labelled.y_val)):
        assert y.dtype == np.int64 and len(y) == len(x)
        np.testing.assert_array_equal(y, predict(model, x).argmax(-1))
    np.testing.assert_array_equal(val.argmax(-1), labelled.y_val)
    assert train.shape == (len(labelled.x_train), 10)  # the distillation's teacher, not computed twice
    untrained, _, none = label_with_original(model, splits, train=False)  # no fine-tuning reads the training split
    assert untrained.y_train is None and none is None
    np.testing.assert_array_equal(untrained.y_val, labelled.y_val)
    assert len(set(labelled.y_val.tolist())) >= 5  # a trained model's answers vary over the classes


def test_the_gate_stops_an_unlabelled_original_that_answers_one_class_and_names_the_range(rescaling_model_path,
                                                                                          keras, images):
    """A model with its own Rescaling(1/255) fed 0..1 (the values divided twice) answers one class for everything;
    without labels that is all the gate can see, and under 0-255 its answers vary, so the line names it."""
    from lrfc.frontend.samples import predict
    from lrfc.frontend.sanity import check_unlabelled

    model = keras.saving.load_model(rescaling_model_path)
    x = images[0][:300].astype(np.float32) / 255  # the contract "0-1" applied to 8-bit pixels
    outputs = predict(model, x)
    with pytest.raises(UserError) as info:
        check_unlabelled(model, x, outputs, GIVEN_0_1)
    said = str(info.value)
    assert "answers class" in said and "no labels" in said
    assert "with --input-range 0-255 its answers vary" in said and "--allow-low-accuracy" in said
    warned = []
    check_unlabelled(model, x, outputs, GIVEN_0_1, allow_low=True, log=warned.append)  # the way on
    assert len(warned) == 1 and warned[0].startswith("lrfc: warning: the original model answers class")
    right = predict(model, x * 255)  # fed as trained: no class takes most answers, so it passes quietly
    assert np.bincount(right.argmax(-1), minlength=10).max() < 0.5 * len(x)
    check_unlabelled(model, x * 255, right, InputContract("0-255", None, None, "rgb", "inferred", ""),
                     log=warned.append)
    assert len(warned) == 1


def test_a_build_on_a_folder_without_labels_holds_the_share_of_answers_changed(tiny_model_path, keras, images,
                                                                               tmp_path, capfd):
    """A flat folder of real images, an int8 target: the budget is the share of the original's answers the published
    model changes, every file is scored so, the report calls none of it accuracy, and on the true labels (which the
    build never saw) the drop is within that share. The budget is judged on the int8 files (``lower.judge``): on
    these 180 validation images the factorized model's files changed 5 answers (2.78 points) where its Keras model
    changed 0 or 1 and the original's int8 file 1, so at --max-acc-drop 2 the original was published; 4 leaves a
    factorized plan within it."""
    import tensorflow as tf

    from lrfc.frontend.data import load_data
    from lrfc.frontend.samples import predict
    from lrfc.frontend.splits import make_splits
    from lrfc.report.text import summary_table

    x, y = images
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, image in enumerate(x[:1000]):
        tf.io.write_file(str(folder / f"{i:04d}.png"), tf.io.encode_png(image))
    out = tmp_path / "out"
    code = main(["build", str(tiny_model_path), "--data", str(folder), "--target", "host-int8", "--objective",
                 "flops", "--calib-samples", "100", "--epochs", "1", "--max-acc-drop", "4", "--bench-runs", "0",
                 "--no-cache", "--out", str(out)])
    err = capfd.readouterr().err
    assert code == 0, err
    assert f"lrfc: warning: {folder} has no labels, so lrfc cannot check that the original works" in err
    assert "no labels: the original's answers are the labels" in err
    report = json.loads((out / "report.json").read_text())
    assert report["labels"] == "original"
    assert report["original"]["accuracy"] is None and report["compressed"]["accuracy"] is None
    agreement, budget = report["compressed"]["agreement"], report["accuracy_budget"]
    assert budget["labels"] == "original" and budget["drop"] == pytest.approx(100 * (1 - agreement), abs=1e-3)
    assert budget["met"] and budget["drop"] <= 4.0
    assert all(d["met"] and d["drop"] <= 4.0 for d in budget["deliverables"])
    assert any(layer.get("method") for layer in report["layers"]), report["layers"]
    assert report["accuracy_budget"]["deliverables"], report["accuracy_budget"]  # the int8 files, scored the same way
    for d in report["accuracy_budget"]["deliverables"]:
        assert d["drop"] == pytest.approx(100 * (1 - d["accuracy"]), abs=1e-3)
    assert all(a.get("accuracy") is None for a in report["artifacts"])  # no file claims a top-1 against no labels
    # the build's validation split again: the agreement is the published model's against the original, and on the
    # images' true labels the top-1 drop is within the share of answers changed
    ds = load_data(str(folder), (28, 28, 1), 10, labels=False)
    val = make_splits(ds, 100, 0, True).x_val
    original, published = keras.saving.load_model(tiny_model_path), keras.saving.load_model(out / "model.keras")
    before, after = predict(original, val).argmax(-1), predict(published, val).argmax(-1)
    assert len(val) == budget["validation_samples"]
    assert float(np.mean(before == after)) == pytest.approx(agreement, abs=1e-6)
    index = {row.tobytes(): i for i, row in enumerate(np.asarray(ds.x))}  # the files are 0000.png, 0001.png, ...
    truth = y[[index[row.tobytes()] for row in np.asarray(val)]]
    assert np.mean(before == truth) > 0.6  # the original works on the folder as read (the gate could not check it)
    drop = 100 * (np.mean(before == truth) - np.mean(after == truth))
    assert drop <= budget["drop"] + 1e-9  # true for any labels given the agreement above: the bound, on real ones
    summary = summary_table(report)
    assert "agreement   " in summary and "of the original's answers kept" in summary
    assert "\naccuracy    " not in summary
    assert "points of the original's answers changed" in summary.rpartition("budget      ")[2]
    assert "<b>agreement</b>" not in (out / "report.html").read_text()  # a card's title is muted text, its value bold
    assert "agreement</span>" in (out / "report.html").read_text()


def test_a_train_and_val_folder_of_images_without_classes_is_an_unlabelled_split(images, tmp_path):
    """``DIR/train/*.png`` beside ``DIR/val/*.png``: the training data and the held-out split, unlabelled (they were
    read as two classes named 'train' and 'val')."""
    import tensorflow as tf

    from lrfc.frontend.data import load_data

    for part, rows in (("train", range(0, 60)), ("val", range(60, 90))):
        (tmp_path / part).mkdir()
        for i in rows:
            tf.io.write_file(str(tmp_path / part / f"{i:03d}.png"), tf.io.encode_png(images[0][i]))
    ds = load_data(str(tmp_path), (28, 28, 1), 10, labels=False)
    assert ds.y is None and ds.y_test is None and (len(ds.x), len(ds.x_test)) == (60, 30)
    np.testing.assert_allclose(np.asarray(ds.x_test)[0], images[0][60] / 255, atol=1e-6)
    with pytest.raises(UserError, match="no class subfolders"):
        load_data(str(tmp_path), (28, 28, 1), 10)  # where labels are needed, one line says what is missing


def test_unlabelled_training_images_beside_labelled_held_out_ones_hold_the_budget_on_accuracy(tiny_model_path, keras,
                                                                                              images, tmp_path, capfd):
    """An npz of ``x``, ``x_test`` and ``y_test`` (no ``y``): validation keeps its labels, so the sanity gate and
    the budget are the labelled build's; the training and calibration images take the original's answers."""
    from lrfc.frontend.data import read_fashion_mnist

    _, _, x_test, y_test = read_fashion_mnist()
    np.savez(tmp_path / "held_out.npz", x=images[0], x_test=x_test[:1000], y_test=y_test[:1000])
    out = tmp_path / "out"
    code = main(["build", str(tiny_model_path), "--data", str(tmp_path / "held_out.npz"), "--objective", "flops",
                 "--calib-samples", "100", "--epochs", "1", "--bench-runs", "0", "--no-cache", "--out", str(out)])
    err = capfd.readouterr().err
    assert code == 0, err
    assert "the training samples have no labels: the original's answers are theirs" in err
    assert "has no labels" not in err  # nothing is unchecked: the held-out labels let the gate score the original
    report = json.loads((out / "report.json").read_text())
    assert report["labels"] == "held-out"
    before, after = report["original"]["accuracy"], report["compressed"]["accuracy"]
    assert 0.5 < before < 0.95 and after is not None and "agreement" not in report["compressed"]  # real top-1s
    assert report["accuracy_budget"]["drop"] == pytest.approx(100 * (before - after), abs=1e-3)
    assert report["original"]["test_accuracy"] is not None


def test_a_train_folder_without_classes_beside_a_val_folder_with_them(images, tmp_path):
    """``DIR/train/*.png`` and ``DIR/val/<class>/*.png``: the training images unlabelled, the held-out ones labelled
    by their folders, which name the classes."""
    import tensorflow as tf

    from lrfc.frontend.data import load_data

    x, y = images
    (tmp_path / "train").mkdir()
    for i in range(40):
        tf.io.write_file(str(tmp_path / "train" / f"{i:03d}.png"), tf.io.encode_png(x[i]))
    for i in range(40, 70):
        (tmp_path / "val" / str(y[i])).mkdir(parents=True, exist_ok=True)
        tf.io.write_file(str(tmp_path / "val" / str(y[i]) / f"{i:03d}.png"), tf.io.encode_png(x[i]))
    ds = load_data(str(tmp_path), (28, 28, 1), 10, labels=False)
    assert ds.y is None and len(ds.x) == 40
    order = sorted(range(40, 70), key=lambda i: (str(y[i]), f"{i:03d}"))  # folder by folder, files sorted
    np.testing.assert_array_equal(ds.y_test, y[order])
    np.testing.assert_allclose(np.asarray(ds.x_test), x[order] / 255, atol=1e-6)
    for i in range(40):  # the other way round: labelled training images, an unlabelled held-out folder
        (tmp_path / "train" / str(y[i])).mkdir(exist_ok=True)
        (tmp_path / "train" / f"{i:03d}.png").rename(tmp_path / "train" / str(y[i]) / f"{i:03d}.png")
    for i in range(40, 70):
        (tmp_path / "val" / str(y[i]) / f"{i:03d}.png").rename(tmp_path / "val" / f"{i:03d}.png")
    for folder in {str(y[i]) for i in range(40, 70)}:
        (tmp_path / "val" / folder).rmdir()
    ds = load_data(str(tmp_path), (28, 28, 1), 10, labels=False)
    assert ds.y_test is None and len(ds.x_test) == 30
    np.testing.assert_array_equal(ds.y, y[sorted(range(40), key=lambda i: (str(y[i]), f"{i:03d}"))])


def test_decompose_scores_on_unlabelled_data(tiny_model_path, images, tmp_path, capfd):
    """`lrfc decompose --data` reads only samples (its similarity is to the original layer's outputs): an npz of
    ``x`` alone serves (it asked for labels it never read)."""
    np.savez(tmp_path / "x.npz", x=images[0][:200])
    code = main(["decompose", str(tiny_model_path), "--method", "svd", "--layers", "fc1", "--rank", "8", "--data",
                 str(tmp_path / "x.npz"), "-o", str(tmp_path / "d.keras")])
    said = capfd.readouterr()
    assert code == 0, said.err
    similarity = float(said.out.split("similarity ")[1].split()[0])
    assert 0.5 < similarity < 1.0 and (tmp_path / "d.keras").exists()
