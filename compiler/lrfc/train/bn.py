"""BatchNorm statistics re-estimated on calibration data (adaptive BN, Li et al. "EagleEye", 2020).

A factorized layer feeds its BatchNorm a slightly different distribution
than the original did, and the moving statistics the original trained are
then a little wrong at every BN downstream. Re-estimating them on a few
hundred samples, with no gradient step, recovers much of the accuracy the
factorization cost before any fine-tuning.

How: one pass over the samples in training mode with every BN's momentum
set to 0, so each batch normalises with its own statistics (which is what
the downstream layers should see) and leaves them in the moving variables;
those are averaged over the batches (the variance as E[x^2] - E[x]^2, so the
spread between batch means counts). Augmentation, dropout and noise layers
pass their input through for the pass (``common.training_only``: the
statistics are the inference-time samples'). Frozen BN layers
(``trainable=False``) are left as they are.
"""

from __future__ import annotations

import numpy as np

BATCH = 128


def reestimate_bn(model, x: np.ndarray, batch_size: int = BATCH) -> int:
    """Replace every trainable BatchNormalization's moving mean and variance by their values on ``x``.

    Returns:
        How many BN layers were re-estimated (0: the model has none).
    """
    import keras

    from lrfc.common.training_only import inference_only
    from lrfc.frontend.samples import batch_for

    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]
    if not bns or not len(x):
        return 0
    batch_size = batch_for(batch_size)  # the memory plan's cap: a training-mode call holds every activation
    momenta = [layer.momentum for layer in bns]
    sums = [[0.0, 0.0] for _ in bns]
    try:
        for layer in bns:
            layer.momentum = 0.0
        with inference_only(model):
            for start in range(0, len(x), batch_size):
                batch = np.asarray(x[start:start + batch_size], dtype=np.float32)
                model(batch, training=True)
                for layer, acc in zip(bns, sums):
                    mean = np.asarray(layer.moving_mean, dtype=np.float64)
                    var = np.asarray(layer.moving_variance, dtype=np.float64)
                    acc[0] = acc[0] + len(batch) * mean
                    acc[1] = acc[1] + len(batch) * (var + mean * mean)
    finally:
        for layer, momentum in zip(bns, momenta):
            layer.momentum = momentum
    for layer, (first, second) in zip(bns, sums):
        mean = first / len(x)
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign(np.maximum(second / len(x) - mean * mean, 0.0).astype(np.float32))
    return len(bns)
