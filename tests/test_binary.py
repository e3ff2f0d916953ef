"""Binary classifiers with one output unit (a sigmoid or a logit), as Keras' own examples end them.

The compiler scores them as two classes (``frontend.binary``) and publishes them with their one unit; their files
are verified at the unit's threshold, not by an argmax over one column (which agrees with anything).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from lrfc.frontend.binary import as_two_class, binary_kind, predicted, user_form
from lrfc.lower.verify import compare
from lrfc.options import BuildOptions


def _small(keras, end: str):
    L = keras.layers
    inp = keras.Input((12, 12, 1))
    h = L.GlobalAveragePooling2D()(L.Conv2D(6, 3, activation="relu")(inp))
    if end == "dense-sigmoid":
        out = L.Dense(1, activation="sigmoid")(h)
    elif end == "activation-sigmoid":
        out = L.Activation("sigmoid")(L.Dense(1)(h))
    elif end == "logit":
        out = L.Dense(1)(h)
    elif end == "relu":
        out = L.Dense(1, activation="relu")(h)
    elif end in ("conv-pool", "sigmoid-conv-pool"):  # a one-channel map averaged: a logit, or an average probability
        maps = L.Conv2D(6, 3, activation="relu")(inp)
        out = L.GlobalAveragePooling2D()(L.Conv2D(1, 1, activation="sigmoid" if end[0] == "s" else None)(maps))
    else:  # two softmax units: an ordinary classifier
        out = L.Dense(2, activation="softmax")(h)
    return keras.Model(inp, out)


def test_predicted_reads_one_unit_at_its_threshold_and_scores_by_argmax():
    unit = np.array([[0.2], [0.6], [-0.1], [0.5]], np.float32)
    assert predicted(unit, "sigmoid").tolist() == [0, 1, 0, 0]
    assert predicted(unit, "logit").tolist() == [1, 1, 0, 1]
    assert predicted(np.array([[0.1, 0.9], [2.0, -1.0]]), None).tolist() == [1, 0]


def test_the_gate_sees_a_flipped_binary_answer_that_an_argmax_cannot():
    ref = np.array([[0.4], [0.45], [0.7], [0.9]], np.float32)
    out = np.array([[0.55], [0.45], [0.7], [0.9]], np.float32)  # the first sample crosses 0.5
    assert compare(ref, out, "int8")["top1_agreement"] == 1.0  # argmax over one column: always 0
    result = compare(ref, out, "int8", binary="sigmoid")
    assert result["top1_agreement"] == 0.75 and not result["passed"]


@pytest.mark.parametrize("end,kind", [("dense-sigmoid", "sigmoid"), ("activation-sigmoid", "sigmoid"),
                                      ("logit", "logit"), ("conv-pool", "logit"), ("relu", None),
                                      ("sigmoid-conv-pool", None), ("softmax", None)])
def test_one_unit_as_two_classes_and_back(keras, end, kind):
    from lrfc.frontend.inspect import inspect_model
    from lrfc.frontend.load import load_flat

    keras.utils.set_random_seed(1)
    model = _small(keras, end)
    flat = load_flat(model)
    assert binary_kind(flat) == kind and inspect_model(model)["binary_output"] == kind
    if kind is None:
        return
    x = np.random.default_rng(0).random((32, 12, 12, 1)).astype(np.float32) * 4
    unit = np.asarray(model(x))[:, 0]
    logits = np.asarray(as_two_class(flat, kind)(x))
    assert logits.shape == (32, 2)
    p1 = np.exp(logits[:, 1]) / np.exp(logits).sum(axis=1)
    want = unit if kind == "sigmoid" else 1 / (1 + np.exp(-unit))
    np.testing.assert_allclose(p1, want, atol=1e-6)
    assert (logits.argmax(axis=1) == predicted(unit[:, None], kind)).all()
    published = user_form(as_two_class(flat, kind), kind)
    assert tuple(published.outputs[0].shape) == (None, 1)
    np.testing.assert_allclose(np.asarray(published(x))[:, 0], unit, atol=1e-6)


@pytest.fixture(scope="module")
def shirts(tmp_path_factory, keras):
    """Fashion-MNIST's T-shirts (class 0) against its shirts (class 1 here): 4,000 training and 1,000 test images,
    and a small CNN trained on them twice, ending in a sigmoid unit and in a logit."""
    from lrfc.frontend.data import read_fashion_mnist

    x, y, xt, yt = read_fashion_mnist()

    def pick(x, y, n):
        keep = np.flatnonzero((y == 0) | (y == 6))[:n]
        return x[keep], (y[keep] == 6).astype(np.int64)

    (x, y), (xt, yt) = pick(x, y, 4000), pick(xt, yt, 1000)
    root = tmp_path_factory.mktemp("shirts")
    np.savez(root / "shirts.npz", x=x, y=y, x_test=xt, y_test=yt)
    L, models = keras.layers, {}
    for kind in ("sigmoid", "logit"):
        keras.utils.set_random_seed(0)
        inp = keras.Input((28, 28, 1))
        h = L.Conv2D(16, 3, padding="same", activation="relu")(L.Rescaling(1 / 255)(inp))
        h = L.Conv2D(32, 3, padding="same", activation="relu")(L.MaxPooling2D()(h))
        h = L.Dense(32, activation="relu")(L.GlobalAveragePooling2D()(L.MaxPooling2D()(h)))
        model = keras.Model(inp, L.Dense(1, activation="sigmoid" if kind == "sigmoid" else None)(h))
        model.compile("adam", keras.losses.BinaryCrossentropy(from_logits=kind == "logit"))
        model.fit(x[..., None].astype(np.float32), y, epochs=3, batch_size=64, verbose=0)
        models[kind] = root / f"shirts_{kind}.keras"
        model.save(models[kind])
    return root, models, xt[..., None].astype(np.float32), yt


def _tflite_outputs(path, x):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.resize_tensor_input(0, list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


@pytest.mark.parametrize("kind", ["sigmoid", "logit"])
def test_a_binary_classifier_builds_and_is_published_with_its_one_unit(shirts, keras, kind):
    from lrfc import pipeline

    root, models, x_test, y_test = shirts
    out = root / f"out-{kind}"
    opts = BuildOptions(model=str(models[kind]), data=str(root / "shirts.npz"), finetune="oneshot", epochs=1,
                        train_samples=2000, calib_samples=100, step=25, objective="flops", bench_runs=0,
                        max_acc_drop=3.0, out=str(out), cache=False)
    lines = []
    pipeline.run_build(opts, log=lines.append)
    report = json.loads((out / "report.json").read_text())
    assert report["binary_output"] == kind
    from lrfc.report.text import summary_table

    said = f"a binary classifier with one {'sigmoid ' if kind == 'sigmoid' else ''}unit"
    assert f"output      {said}" in summary_table(report) and f"output: {said}" in (out / "report.html").read_text()
    assert any(line.startswith(f"model: a binary classifier with one {'sigmoid ' if kind == 'sigmoid' else ''}unit")
               for line in lines), lines
    # scored as two classes, not as an argmax over one column (which would be the share of class 0, about half)
    assert report["original"]["accuracy"] > 0.7
    assert any(layer.get("method") for layer in report["layers"]), report["layers"]
    published = keras.saving.load_model(out / "model.keras")
    assert tuple(published.outputs[0].shape) == (None, 1)
    unit = np.asarray(published.predict(x_test, verbose=0))
    tflite = _tflite_outputs(out / "model.tflite", x_test)
    assert tflite.shape == (len(x_test), 1)
    if kind == "sigmoid":
        assert 0.0 <= tflite.min() and tflite.max() <= 1.0
    else:
        assert tflite.min() < 0.0 < tflite.max()  # logits, not probabilities
    np.testing.assert_allclose(tflite, unit, atol=1e-4)
    # the published files score the test images as the build's compressed model does: validation and test are the
    # two halves of the given test split, so their mean over both halves is the file's accuracy on all of it
    splits = report["splits"]
    n_val, n_test = splits["validation"], splits["test"]
    both = (report["compressed"]["accuracy"] * n_val + report["compressed"]["test_accuracy"] * n_test) / (n_val + n_test)
    assert float(np.mean(predicted(tflite, kind) == y_test)) == pytest.approx(both, abs=0.003)  # a unit at its
    # threshold may round either way in float; an argmax over one column would score the share of class 0 (~50 %)
    for artifact in report["artifacts"]:
        assert artifact["passed"] and artifact["top1_agreement"] >= 0.99, artifact
