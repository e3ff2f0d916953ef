"""Turn a list of ``Stage`` records into real Keras layers.

The only place where factorized chains meet Keras: every method describes
its chain as stages, and this module builds plain ``Conv2D`` /
``DepthwiseConv2D`` / ``Dense`` layers (``Conv1D`` / ``DepthwiseConv1D`` for
1-D convolutions) and, for TT-matrix, the ``TTMatrixDense`` layer. Plain
layers lower cleanly to TFLite builtins and ONNX.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lrfc.decompose.base import Stage


def layer_for(stage: Stage, spatial_rank: int, name: str):
    """The (unbuilt) Keras layer that computes one stage."""
    import keras

    act = stage.activation
    if stage.kind == "dense":
        return keras.layers.Dense(stage.weights[0].shape[1], use_bias=stage.use_bias, activation=act, name=name)
    if stage.kind == "ttm":
        from lrfc.decompose.ttm_layer import TTMatrixDense

        return TTMatrixDense(
            in_modes=tuple(stage.meta["in_modes"]),
            out_modes=tuple(stage.meta["out_modes"]),
            ranks=tuple(int(c.shape[-1]) for c in stage.weights[: len(stage.meta["in_modes"])][:-1]),
            use_bias=stage.use_bias,
            activation=act,
            name=name,
        )
    if spatial_rank == 2:
        common = dict(strides=stage.strides, dilation_rate=stage.dilation, padding=stage.padding,
                      use_bias=stage.use_bias, activation=act, name=name)
        if stage.kind == "conv":
            return keras.layers.Conv2D(stage.weights[0].shape[3], stage.kernel, **common)
        if stage.kind == "depthwise":  # kernel (kh, kw, channels, multiplier)
            return keras.layers.DepthwiseConv2D(stage.kernel, depth_multiplier=stage.weights[0].shape[3], **common)
    elif spatial_rank == 1:
        if stage.kernel[0] != 1 or stage.strides[0] != 1 or stage.dilation[0] != 1:
            raise ValueError(f"a 1-D chain cannot hold a stage with kernel {stage.kernel}, strides {stage.strides}")
        common = dict(strides=stage.strides[1], dilation_rate=stage.dilation[1], padding=stage.padding,
                      use_bias=stage.use_bias, activation=act, name=name)
        if stage.kind == "conv":
            return keras.layers.Conv1D(stage.weights[0].shape[3], stage.kernel[1], **common)
        if stage.kind == "depthwise":
            return keras.layers.DepthwiseConv1D(stage.kernel[1], depth_multiplier=stage.weights[0].shape[3], **common)
    raise ValueError(f"no Keras layer for stage kind {stage.kind!r} at spatial rank {spatial_rank}")


def keras_weights(stage: Stage, spatial_rank: int) -> list[np.ndarray]:
    """The stage's weights in the layout its Keras layer's ``set_weights`` takes."""
    w = [np.asarray(a, dtype=np.float32) for a in stage.weights]
    if spatial_rank == 1 and stage.kind in ("conv", "depthwise"):
        w[0] = w[0][0]  # (1, k, cin, cout) -> (k, cin, cout)
    return w


def stage_of(name: str) -> tuple[str, int] | None:
    """``(layer, i)`` for the name of a chain's stage, ``{layer}__{i}`` (``apply_chain``); None for any other name."""
    layer, sep, index = name.rpartition("__")
    return (layer, int(index)) if sep and layer and index.isdigit() else None


def apply_chain(x, stages: Sequence[Stage], spatial_rank: int, name: str, layers: list | None = None):
    """Call the chain's layers on Keras tensor ``x`` and load their weights.

    Layer names are ``{name}__{i}`` (``i`` = stage index), so a factorized
    layer's parts stay recognisable in the rewritten model and its exports.
    ``layers`` keeps one chain for a layer the model calls more than once
    (shared weights): an empty list receives the chain's layers, a filled
    one's layers are called again.

    Returns:
        The chain's output tensor.
    """
    if layers:
        for layer in layers:
            x = layer(x)
        return x
    for i, stage in enumerate(stages):
        layer = layer_for(stage, spatial_rank, f"{name}__{i}")
        x = layer(x)
        layer.set_weights(keras_weights(stage, spatial_rank))
        if layers is not None:
            layers.append(layer)
    return x


def chain_model(input_shape: tuple[int, ...], stages: Sequence[Stage], spatial_rank: int, name: str = "chain"):
    """A stand-alone Functional model of one chain (tests, micro-benchmarks)."""
    import keras

    inp = keras.Input(shape=input_shape, name="input")
    return keras.Model(inp, apply_chain(inp, stages, spatial_rank, name), name=name)
