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

One forward pass, not one per layer. The layers are refit in graph order
(``frontend.graph.layer_nodes``: a topological order), and the graph is cut
just before each refit stage: the *frontier* there is every tensor computed
before the cut that something after it reads (the stage's own input, a
residual shortcut). A segment model takes one frontier's values to the
next's, so each layer runs once over the calibration samples, with every
earlier refit already in place (ResNet50: 53 refits cost about one forward
pass instead of ~27). Where the frontier's values would take more than
``FRONTIER_BYTES`` (wide maps at large inputs) or a segment cannot be cut,
each layer's input is computed from the model input as before.
"""

from __future__ import annotations

import numpy as np

MAX_ROWS = 200_000  # positions x samples used per least-squares fit (a seeded subset beyond that)
RIDGE = 1e-6
FRONTIER_BYTES = 1 << 30  # the frontier's values held at once, at most; beyond that, one prefix pass per layer


def _last_stage(model, layer: str):
    """The last layer of ``layer``'s chain in the compressed model, or None when it cannot be refit."""
    import keras

    from lrfc.decompose.chain import stage_of

    stages = [(stage[1], l.name) for l in model.layers if (stage := stage_of(l.name)) and stage[0] == layer]
    if len(stages) < 2:
        return None  # a one-stage chain (TT-matrix): nothing between the input and the last stage to fit against
    last = model.get_layer(max(stages)[1])
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
    z, y = z.reshape(-1, z.shape[-1]), y.reshape(-1, y.shape[-1])
    if len(z) > MAX_ROWS:  # the subset first: float64 copies of every row were most of a fit's time and memory
        pick = np.random.default_rng(seed).choice(len(z), MAX_ROWS, replace=False)
        z, y = z[pick], y[pick]
    z, y = z.astype(np.float64), y.astype(np.float64)
    if with_bias:
        z = np.concatenate([z, np.ones((len(z), 1))], axis=1)
    gram = z.T @ z
    gram[np.diag_indices_from(gram)] += RIDGE * max(np.trace(gram) / len(gram), 1e-12)
    w = np.linalg.solve(gram, z.T @ y)
    return (w[:-1], w[-1]) if with_bias else (w, None)


def reconstruct(compressed, tasks: dict, layers, x_calib: np.ndarray) -> list[str]:
    """Refit, in graph order, the last factor of each named factorized layer; returns the layers refit.

    Args:
        compressed: the factorized model (``factorize.rewrite``), changed in place.
        tasks: ``search.scoring.LayerTask`` per layer: their captured inputs are
            the first ``len(task.inputs)`` calibration samples, and their
            ``reference`` the original's linear response to them.
        layers: the factorized layers to refit.
        x_calib: the calibration samples.
    """
    from lrfc.frontend.graph import layer_nodes

    position = {name: i for i, name in enumerate(layer_nodes(compressed))}
    stages = [(name, last) for name in layers if (last := _last_stage(compressed, name)) is not None]
    stages.sort(key=lambda item: position[item[1].name])
    if not stages:
        return []
    counts = {name: len(tasks[name].inputs) for name, _ in stages}
    x = np.asarray(x_calib[:max(counts.values())], dtype=np.float32)
    walk = _segments(compressed, [last for _, last in stages], len(x))
    stop_inputs = walk(x) if walk is not None else None
    done = []
    for name, last in stages:
        if stop_inputs is not None:  # the next segment runs now, with every refit so far in place
            z = next(stop_inputs)[:counts[name]]
        else:  # one prefix pass per layer
            z = _inputs_of(compressed, last, x[:counts[name]])
        task = tasks[name]
        y = task.reference + (0.0 if task.weights.bias is None else task.weights.bias)
        weights = last.get_weights()
        kernel, bias = solve_last_factor(z, y, with_bias=len(weights) > 1)
        new = [kernel.reshape(weights[0].shape).astype(np.float32)]
        if bias is not None:
            new.append(bias.astype(np.float32))
        last.set_weights(new)
        done.append(name)
    return done


def _segments(model, stops, samples: int):
    """A generator function over ``x``: yields each stop layer's input, in order, after the caller refit the last one.

    One forward pass cut before each stop (``frontend.graph.frontier_walk``);
    None when that walk cannot be had (the caller then taps each stop from
    the model input).
    """
    from lrfc.frontend.graph import frontier_walk, layer_nodes

    walk = frontier_walk(model, [stop.name for stop in stops], samples, FRONTIER_BYTES)
    if walk is None:
        return None
    nodes = layer_nodes(model)

    def inputs(x):
        for stop, front in zip(stops, walk(x)):
            target = nodes[stop.name].input_tensors[0]
            yield next(values for t, values in front if t is target)

    return inputs
