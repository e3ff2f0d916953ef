"""Fine-tuning's BatchNormalization through TensorFlow's fused kernel: the same function as Keras' call, and undone."""

from __future__ import annotations

import numpy as np
import pytest

from lrfc.train.fused_bn import fused_batchnorm


def _model(keras):
    """Conv -> BN (fusable), a renorm BN and a channels-first BN (not), then Dense -> BN over 2-D features (not)."""
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv")(inp)
    x = keras.layers.BatchNormalization(name="bn", momentum=0.9)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.BatchNormalization(name="bn_no_scale", scale=False, center=False)(x)
    x = keras.layers.BatchNormalization(name="bn_renorm", renorm=True)(x)
    x = keras.layers.BatchNormalization(name="bn_axis1", axis=1)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(5, name="fc")(x)
    x = keras.layers.BatchNormalization(name="bn_dense")(x)
    model = keras.Model(inp, x)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # statistics away from 0 / 1, so an update that is wrong shows
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(size=c).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, size=c).astype(np.float32))
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, size=c).astype(np.float32))
    return model


def _step(keras, model, x, y):
    """One training-mode pass: outputs, the loss's gradients, and every non-trainable variable after it."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        out = model(x, training=True)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, out, from_logits=True))
    grads = tape.gradient(loss, model.trainable_variables)
    return out.numpy(), [g.numpy() for g in grads], [v.numpy().copy() for v in model.non_trainable_variables]


def test_fused_training_step_is_keras_batchnorm(keras):
    model = _model(keras)
    start = model.get_weights()
    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 3.0, size=(16, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 5, 16)
    out, grads, stats = _step(keras, model, x, y)
    model.set_weights(start)
    with fused_batchnorm(model) as swapped:
        assert swapped == 2  # bn and bn_no_scale: renorm, axis 1 and the 2-D one keep Keras' call
        assert "call" in model.get_layer("bn").__dict__ and "call" not in model.get_layer("bn_renorm").__dict__
        fused_out, fused_grads, fused_stats = _step(keras, model, x, y)
    np.testing.assert_allclose(fused_out, out, rtol=1e-4, atol=1e-4)
    for g, f in zip(grads, fused_grads):
        assert np.linalg.norm(f - g) <= 1e-3 * np.linalg.norm(g) + 1e-6
    # Moved towards the batch by 1 - momentum, and by the same: the fused kernel's variance update uses the
    # unbiased batch variance, n / (n - 1) = 1.001 here (16 x 8 x 8 pixels a channel), so 1e-3 of the batch's share.
    for s, f in zip(stats, fused_stats):
        np.testing.assert_allclose(f, s, rtol=1e-3, atol=1e-5)
    bn = model.get_layer("bn")
    before = start[next(i for i, w in enumerate(model.weights) if w is bn.moving_mean)]
    assert np.abs(bn.moving_mean.numpy() - before).max() > 0.05


def test_inference_inside_the_block_and_everything_after_it_is_unchanged(keras, tmp_path):
    model = _model(keras)
    x = np.random.default_rng(2).normal(size=(4, 8, 8, 3)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    with fused_batchnorm(model):
        np.testing.assert_array_equal(model(x, training=False).numpy(), expected)
    assert not any("call" in layer.__dict__ for layer in model.layers)
    model.save(tmp_path / "m.keras")
    np.testing.assert_array_equal(keras.models.load_model(tmp_path / "m.keras").predict(x, verbose=0), expected)


def test_the_swap_is_undone_when_training_raises(keras):
    model = _model(keras)
    with pytest.raises(RuntimeError):
        with fused_batchnorm(model) as swapped:
            assert swapped == 2
            raise RuntimeError("interrupted")
    assert not any("call" in layer.__dict__ for layer in model.layers)


def test_finetune_trains_through_the_fused_kernel(keras, monkeypatch):
    """``finetune`` wraps its ``fit`` in the swap: the BN layer's call during training is the fused one."""
    import tensorflow as tf

    from lrfc.train.finetune import FinetuneConfig, finetune

    model = _model(keras)
    seen = []
    real = tf.compat.v1.nn.fused_batch_norm

    def spy(*args, **kwargs):
        seen.append(kwargs.get("is_training"))
        return real(*args, **kwargs)

    monkeypatch.setattr(tf.compat.v1.nn, "fused_batch_norm", spy)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 8, 8, 3)).astype(np.float32)
    y = rng.integers(0, 5, 64)
    finetune(model, x, y, FinetuneConfig(epochs=1, batch_size=32, distill=False))
    assert seen and all(seen)  # traced for the training step, in training mode
    assert not any("call" in layer.__dict__ for layer in model.layers)
