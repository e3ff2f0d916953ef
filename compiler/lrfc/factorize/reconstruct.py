"""Sequential reconstruction: refit each factorized layer's last factor to the original layer's output.

A factorization is fit to the original layer on the original layer's inputs;
inside the compressed model its inputs come from the already-factorized
layers before it, so errors add up. Asymmetric reconstruction (Zhang et al.,
"Accelerating Very Deep Convolutional Networks for Classification and
Detection", 2015) fits, in model order, each layer's chain to the *original*
layer's output given the inputs the *compressed* prefix produces:

    min over (W, b) of || Z W + b - Y ||^2

with ``Z`` the input of the chain's last stage (a 1x1 convolution or a dense
layer in every method but TT-matrix) and ``Y`` the original layer's
pre-activation output on the original model's inputs. It is a least-squares
problem in closed form (ridge-regularised by ``1e-6`` of the mean eigenvalue),
solved on the calibration samples the search captured; the bias is refit only
where the layer has one. Layers whose chain ends otherwise (TT-matrix) are
left as they are.
"""

from __future__ import annotations

import numpy as np

MAX_ROWS = 200_000  # positions x samples used per least-squares fit (a seeded subset beyond that)
RIDGE = 1e-6


def _last_stage(model, layer: str):
    """The last layer of ``layer``'s chain in the compressed model, or None when it cannot be refit."""
    import keras

    names = [l.name for l in model.layers if l.name.startswith(f"{layer}__") and l.name[len(layer) + 2:].isdigit()]
    if len(names) < 2:
        return None  # a one-stage chain (TT-matrix): nothing between the input and the last stage to fit against
    last = model.get_layer(max(names, key=lambda n: int(n.rsplit("__", 1)[1])))
    if isinstance(last, keras.layers.Dense) or (isinstance(last, (keras.layers.Conv1D, keras.layers.Conv2D))
                                               and all(k == 1 for k in last.kernel_size)
                                               and not isinstance(last, keras.layers.DepthwiseConv2D)):
        return last
    return None


def _inputs_of(model, layer, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """What ``layer`` receives when ``x`` runs through ``model`` (a prefix model, run in batches).

    The batch is capped by the build's memory plan: an eager call holds every
    activation of the prefix until it returns (ResNet50 at 64x64, 256 samples
    at once: 2.9 GB).
    """
    import keras

    from lrfc.frontend.graph import layer_nodes
    from lrfc.frontend.samples import batch_for

    batch = batch_for(batch)
    tap = keras.Model(model.input, layer_nodes(model)[layer.name].input_tensors[0])
    return np.concatenate([np.asarray(tap(x[i:i + batch], training=False)) for i in range(0, len(x), batch)])


def solve_last_factor(z: np.ndarray, y: np.ndarray, with_bias: bool, seed: int = 0):
    """Ridge least squares ``z @ W (+ b) ~= y`` over rows; ``(W, b or None)``."""
    z = z.reshape(-1, z.shape[-1]).astype(np.float64)
    y = y.reshape(-1, y.shape[-1]).astype(np.float64)
    if len(z) > MAX_ROWS:
        pick = np.random.default_rng(seed).choice(len(z), MAX_ROWS, replace=False)
        z, y = z[pick], y[pick]
    if with_bias:
        z = np.concatenate([z, np.ones((len(z), 1))], axis=1)
    gram = z.T @ z
    gram[np.diag_indices_from(gram)] += RIDGE * max(np.trace(gram) / len(gram), 1e-12)
    w = np.linalg.solve(gram, z.T @ y)
    return (w[:-1], w[-1]) if with_bias else (w, None)


def reconstruct(compressed, tasks: dict, layers, x_calib: np.ndarray) -> list[str]:
    """Refit, in model order, the last factor of each named factorized layer; returns the layers refit.

    Args:
        compressed: the factorized model (``factorize.rewrite``), changed in place.
        tasks: ``search.scoring.LayerTask`` per layer: their captured inputs are
            the first ``len(task.inputs)`` calibration samples, and their
            ``reference`` the original's linear response to them.
        layers: the factorized layers to refit, in model order.
        x_calib: the calibration samples.
    """
    done = []
    for name in layers:
        last = _last_stage(compressed, name)
        task = tasks[name]
        if last is None:
            continue
        n = len(task.inputs)
        z = _inputs_of(compressed, last, x_calib[:n])
        y = task.reference + (0.0 if task.weights.bias is None else task.weights.bias)
        weights = last.get_weights()
        kernel, bias = solve_last_factor(z, y, with_bias=len(weights) > 1)
        new = [kernel.reshape(weights[0].shape).astype(np.float32)]
        if bias is not None:
            new.append(bias.astype(np.float32))
        last.set_weights(new)
        done.append(name)
    return done
