"""Quantization-aware fine-tuning (``train.qat``, ``--qat``): a twin that shares the model's variables and rounds like int8."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import run_cli


def _model(keras):
    layers = keras.layers
    x = keras.Input((12, 12, 3))
    h = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(x)
    h = layers.DepthwiseConv2D(3, padding="same", name="dw")(h)
    h = layers.BatchNormalization(name="bn")(h)
    h = layers.GlobalAveragePooling2D()(h)
    return keras.Model(x, layers.Dense(4, name="logits")(layers.Dense(16, activation="relu", name="fc")(h)))


def test_twin_shares_the_variables_and_rounds_weights_and_outputs(keras):
    from lrfc.train.qat import qat_twin

    keras.utils.set_random_seed(0)
    model = _model(keras)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (64, 12, 12, 3)).astype(np.float32)
    twin, names = qat_twin(model, x[:32])
    assert names == ["conv", "dw", "fc", "logits"]
    assert {id(v) for v in twin.trainable_weights} == {id(v) for v in model.trainable_weights}
    ref, fq = np.asarray(model(x, training=False)), np.asarray(twin(x, training=False))
    diff = float(np.abs(ref - fq).max())
    assert 0 < diff < 0.05 * float(np.abs(ref).max())  # rounded, and only by about int8's step


def test_a_qat_round_equalizes_the_chains_before_it_trains(keras):
    """The fake quantization trains at the ranges int8 will use: a chain's inner channels are equalized
    (``factorize.equalize``) before the round, so they leave it at one range (a tiny rate barely moves them)."""
    from lrfc.factorize.equalize import chain_links, channel_ranges
    from lrfc.train.finetune import FinetuneConfig, finetune

    keras.utils.set_random_seed(0)
    layers = keras.layers
    inp = keras.Input((8, 8, 3))
    h = layers.Conv2D(4, 1, use_bias=False, name="c__0")(inp)
    h = layers.Conv2D(6, 3, padding="same", activation="relu", name="c__1")(h)
    model = keras.Model(inp, layers.Dense(4, name="logits")(layers.GlobalAveragePooling2D()(h)))
    first, second = model.get_layer("c__0"), model.get_layer("c__1")
    spread = np.array([1.0, 0.3, 0.1, 0.01], np.float32)
    first.set_weights([first.get_weights()[0] * spread])
    second.set_weights([second.get_weights()[0] / spread[:, None], second.get_weights()[1]])
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (128, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 4, 128)
    tensor = [t for _, _, t in chain_links(model)]
    before = channel_ranges(model, tensor, x[:64])[0]
    assert before.max() / before.min() > 20
    finetune(model, x, y, FinetuneConfig(epochs=1, distill=False, qat=True, learning_rate=1e-9), calibration=x[:64])
    after = channel_ranges(model, tensor, x[:64])[0]
    np.testing.assert_allclose(after, after.max(), rtol=1e-3)


def test_qat_fine_tuning_trains_the_model_itself(keras):
    from lrfc.train.finetune import FinetuneConfig, finetune

    keras.utils.set_random_seed(0)
    model = _model(keras)
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (256, 12, 12, 3)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) * 8).astype(np.int64) % 4
    before = [w.copy() for w in model.get_weights()]
    result = finetune(model, x, y, FinetuneConfig(epochs=2, distill=False, qat=True), calibration=x[:64])
    assert result.epochs == 2 and len(result.history["loss"]) == 2
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))
    assert [layer.name for layer in model.layers if layer.name.endswith("__qat")] == []  # the model stays plain
    with pytest.raises(Exception, match="calibration samples"):
        finetune(model, x, y, FinetuneConfig(epochs=1, distill=False, qat=True))


@pytest.mark.parametrize("args, words", [
    (["--target", "host", "--qat"], "--qat trains for int8 rounding, but target host compiles for fp32"),
    (["--target", "host-int8", "--qat", "--finetune", "none"], "--qat: received 'with --finetune none"),
])
def test_qat_needs_an_int8_target_and_fine_tuning(args, words, tiny_model_path, tmp_path):
    res = run_cli("build", str(tiny_model_path), "--data", "fashion-mnist", *args, "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0 and words in res.stderr, res.stderr
