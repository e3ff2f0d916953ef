"""Feature-map distillation: each factorized layer's output held near the original layer's during fine-tuning.

Logit distillation (``train.finetune``) tells the factorized model what the
original answers; this term also tells each factorized layer what the
original layer computed at its place, on the inputs the factorized prefix
gives it (the fit reconstruction made on calibration data, kept as a soft
constraint over the training split):

    features * mean over layers of  mean((chain(x) - original_layer(x_orig))^2) / var(original_layer(x_orig))

where ``chain`` is the layer's factorized chain (its last stage's output, the
activation included), both sides see the same image, and each layer's error is
scaled by the variance of the original's map over the batch, so that layers
weigh alike whatever their scale. The original cannot be run once ahead (its
maps for 60,000 images do not fit: the VGG-style model's first map is 100 KB a
sample), so its forward pass to the deepest matched layer runs inside every
training step, in inference mode, its weights frozen.

Off by default (``--distill-features 0``). Measured (docs/LOG.md, session 60:
one cold round of 2 epochs, paired seeds, the Fashion-MNIST baselines): at
W = 1 the VGG-style rungs moved within the seeds' own spread (validation drop
-0.30 to +0.36 points against logits alone, with all 59,500 training samples
or with 5,000, and at W = 5), the ResNet-style rung 59 lost 0.30 and 0.32 points
(a build's one round at its first rung: 0.44 against 0.46), and a round
trained 1.5-1.9x (VGG-style) and 1.7-3.1x (ResNet-style) as long.
"""

from __future__ import annotations

import contextlib


def feature_pairs(model, original) -> list[tuple[str, str]]:
    """``(chain's last layer in model, layer in original)`` for each factorized layer both call once with one
    output of the same shape: what the term compares."""
    from lrfc.decompose.chain import stage_of

    last: dict[str, tuple[int, str]] = {}
    for layer in model.layers:
        parsed = stage_of(layer.name)
        if parsed is not None and (parsed[0] not in last or parsed[1] > last[parsed[0]][0]):
            last[parsed[0]] = (parsed[1], layer.name)
    ours, theirs = single_outputs(model), single_outputs(original)
    return [(chain_end, name) for name, (_, chain_end) in sorted(last.items())
            if chain_end in ours and name in theirs and ours[chain_end].shape[1:] == theirs[name].shape[1:]]


def single_outputs(model) -> dict[str, object]:
    """``{layer name: its output tensor}`` for each layer *this* model calls once and that has one output (a layer
    shared with another model has a node in each; one called more than once has no one output to compare)."""
    from lrfc.frontend.graph import layer_calls, layer_nodes

    calls = layer_calls(model)
    return {name: node.outputs[0] for name, node in layer_nodes(model).items()
            if calls.get(name) == 1 and len(node.outputs) == 1}


def _gap_layer(keras, weight: float, count: int):
    """A layer on ``[logits, ours..., theirs...]`` that adds the term as a loss and passes the logits through."""
    from keras import ops

    class FeatureGap(keras.layers.Layer):
        def call(self, inputs):
            logits, ours, theirs = inputs[0], inputs[1:1 + count], inputs[1 + count:]
            total = 0.0
            for a, b in zip(ours, theirs):
                b = ops.stop_gradient(ops.cast(b, a.dtype))
                total = total + ops.mean(ops.square(a - b)) / (ops.var(b) + 1e-6)
            self.add_loss(weight * total / count)
            return logits

    return FeatureGap(name="feature_gap")


@contextlib.contextmanager
def frozen(model):
    """``model``'s layers not trainable inside the block; their flags put back as they were after it."""
    was = [(layer, layer.trainable) for layer in model.layers]
    try:
        for layer, _ in was:
            layer.trainable = False
        yield model
    finally:
        for layer, flag in was:
            layer.trainable = flag


def feature_trainer(keras, model, original, weight: float, pairs: list[tuple[str, str]]):
    """A training twin of ``model`` (its layers, its output) whose loss adds the feature term over ``pairs``; the
    original's part it runs is a sub-model of ``original``'s layers (call it under ``frozen(original)``)."""
    ours, theirs = single_outputs(model), single_outputs(original)
    teacher = keras.Model(original.inputs, [theirs[b] for _, b in pairs], name=f"{original.name}_maps")
    theirs = teacher(model.inputs[0] if len(model.inputs) == 1 else model.inputs, training=False)
    theirs = theirs if isinstance(theirs, (list, tuple)) else [theirs]
    out = _gap_layer(keras, weight, len(pairs))([model.outputs[0], *(ours[a] for a, _ in pairs), *theirs])
    return keras.Model(model.inputs, out, name=f"{model.name}_finetune")
