"""End-to-end effect of one candidate: the model's outputs with only that layer factorized.

Per-layer feature-map similarity says how well a chain reproduces its layer;
it does not say how much the network's prediction cares. The global
allocator needs the second: for each candidate, the mean KL divergence
``KL(p_original || p_candidate)`` of the model's output distributions on a
probe set of calibration samples, with every other layer original. Values
are in nats per sample, cached by content (the model's weights, the probe
samples, the layer, method, ranks and fit).

No model is rebuilt per candidate. The graph is cut once per layer
(``Cut``): a *prefix* model gives, on the probe set, the layer's input and
every other tensor the rest of the network reads (a residual shortcut, say);
a *suffix* model takes the layer's output and those tensors to the model's
output. A candidate is then its chain run on the stored input (the same
stages the rewrite inserts, activation and bias included) and the suffix run
on the result: the layers after the cut, not the whole network, and no
Keras rebuild (ResNet50 at 64x64: 1-2 s a rebuild, against 0.2 s for the
chain and half a forward pass).

The probe holds ``PROBE_SAMPLES`` samples, fewer when a cut's stored tensors
would not fit ``memory_bytes``, and fewer when one forward pass of the model
over them would cost more than ``PROBE_MACS`` multiply-adds (at least
``MIN_PROBE``): a measurement costs a suffix's forward over the probe, so
its size bounds what each one takes, about a second on this machine's 2
cores. Every Fashion-MNIST baseline (44-81 M MACs a sample) keeps 256;
keras.applications ResNet50 at 64x64 (315 M) gets 76: its select stage took
50 s against 162 with 256 samples, the same 108 candidates measured (the
scale row's command up to select, the two versions back to back,
2026-12-02 00:20-00:32 UTC, docs/SCALING.md). The candidates of one layer
are compared on the same samples, so fewer samples cost less in their
order than in each value.

Not every candidate of a layer's front is measured (``along_front``): the
front is ordered by similarity, and the effect falls as similarity rises, so
its two ends are measured and an interval between two measured candidates is
split (its middle measured) only while their effects differ by more than a
factor ``SPREAD`` and are not both negligible; a candidate inside a settled
interval gets its effect interpolated, log-linearly in ``1 - similarity``.
ResNet50's early layers cost a suffix forward of about 2 s each on this
machine's 2 cores, so a long front measured in full was most of the select
stage.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from lrfc.search.cache import content_hash

PROBE_SAMPLES = 256
PROBE_MACS = 24e9    # one forward of the model over the probe, at most (multiply-adds); never under MIN_PROBE samples
MIN_PROBE = 32
_EPS = 1e-7
SPREAD = 4.0         # an interval of a front is split while its ends' effects differ by more than this factor
NEGLIGIBLE = 1e-4    # nats per sample: an interval whose ends both stay below this is settled
_FLOOR = 1e-12       # effects and 1 - similarity below this are taken as this, for the logarithms


def along_front(similarities: Sequence[float], measure: Callable[[int], float],
                spread: float = SPREAD) -> tuple[list[float], list[bool]]:
    """Every front candidate's effect, measuring as few as the front's shape allows (see the module doc).

    Args:
        similarities: the front's similarities, strictly increasing (``search.allocate.front``'s order).
        measure: the effect of the candidate at an index (called at most once per index).
        spread: split an interval while its ends' effects differ by more than this factor.

    Returns:
        The effects, and per candidate whether it was measured (False: interpolated).
    """
    n = len(similarities)
    measured: dict[int, float] = {}

    def at(i: int) -> float:
        if i not in measured:
            measured[i] = float(measure(i))
        return measured[i]

    def gap(s: float) -> float:
        return math.log(max(1.0 - s, _FLOOR))

    effects = [0.0] * n
    todo = [(0, n - 1)] if n else []
    while todo:
        i, j = todo.pop()
        a, b = at(i), at(j)
        if j - i < 2:
            continue
        if not (math.isfinite(a) and math.isfinite(b)
                and (max(a, b) <= NEGLIGIBLE or max(a, b) <= spread * max(min(a, b), _FLOOR))):
            m = (i + j) // 2
            todo += [(m, j), (i, m)]
            continue
        u0, u1 = gap(similarities[i]), gap(similarities[j])
        v0, v1 = math.log(max(a, _FLOOR)), math.log(max(b, _FLOOR))
        for k in range(i + 1, j):
            t = (gap(similarities[k]) - u0) / (u1 - u0) if u1 != u0 else (k - i) / (j - i)
            effects[k] = math.exp(v0 + t * (v1 - v0))
    for i, e in measured.items():
        effects[i] = e
    return effects, [i in measured for i in range(n)]


def to_probabilities(out: np.ndarray, are_probabilities: bool) -> np.ndarray:
    """Model outputs as class probabilities (a softmax over logits; probabilities as they are), float64, clipped."""
    out = np.asarray(out, dtype=np.float64).reshape(len(out), -1)
    if are_probabilities:
        return np.clip(out, _EPS, 1.0)
    out = out - out.max(axis=1, keepdims=True)
    e = np.exp(out)
    return np.clip(e / e.sum(axis=1, keepdims=True), _EPS, 1.0)


def _run(model, xs: list[np.ndarray], batch: int) -> np.ndarray:
    """``model`` on the inputs ``xs`` (one array per model input), in batches."""
    parts = []
    for i in range(0, len(xs[0]), batch):
        args = [x[i:i + batch] for x in xs]
        out = model(args if len(args) > 1 else args[0], training=False)
        parts.append(np.asarray(out[0] if isinstance(out, (list, tuple)) else out))
    return np.concatenate(parts)


def probabilities(model, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """The model's class probabilities on ``x``."""
    from lrfc.frontend.samples import batch_for
    from lrfc.train.finetune import outputs_probabilities

    return to_probabilities(_run(model, [x], batch_for(batch)), outputs_probabilities(model))


def kl(p: np.ndarray, q: np.ndarray) -> float:
    """Mean over rows of KL(p || q), in nats."""
    return float(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=1)))


@dataclass
class Cut:
    """One layer's cut of the graph, evaluated on the probe set."""

    layer: str
    chain_input: np.ndarray      # what the layer's chain reads (after a separable layer's kept depthwise part)
    others: list[np.ndarray]     # the other tensors the suffix reads, in its input order
    suffix: object | None        # keras.Model (layer output, *others) -> model output; None: the layer is the output


def cut_tensors(flat, name: str) -> tuple[object, list]:
    """The layer's input tensor, and the suffix's inputs: the layer's output, then every other tensor read after it."""
    from lrfc.frontend.graph import layer_nodes

    nodes = layer_nodes(flat)
    consumers: dict[int, list[str]] = {}
    producer: dict[int, str] = {}
    for lname, node in nodes.items():
        for t in node.input_tensors:
            consumers.setdefault(id(t), []).append(lname)
        for t in node.outputs:
            producer[id(t)] = lname
    y = nodes[name].outputs[0]
    below, todo = set(), [y]
    while todo:
        for c in consumers.get(id(todo.pop()), []):
            if c not in below:
                below.add(c)
                todo.extend(nodes[c].outputs)
    frontier, seen = [y], {id(y)}
    for lname in nodes:  # graph order, so the suffix's inputs come in a stable order
        if lname in below:
            for t in nodes[lname].input_tensors:
                if id(t) not in seen and producer.get(id(t)) not in below:
                    frontier.append(t)
                    seen.add(id(t))
    return nodes[name].input_tensors[0], frontier


class Sensitivity:
    """Measures candidates of one model on one probe set; see the module doc."""

    def __init__(self, flat, x_probe: np.ndarray, stats: dict, cache, memory_bytes: int | None = None,
                 macs: int | None = None):
        """``macs``: one sample's multiply-adds through ``flat`` (sizes the probe with ``PROBE_MACS``); None: not counted."""
        from lrfc.train.finetune import outputs_probabilities

        self.flat, self.stats, self.cache = flat, stats, cache
        n = min(PROBE_SAMPLES, len(x_probe))
        if macs:
            n = min(n, max(MIN_PROBE, int(PROBE_MACS // macs)))
        if memory_bytes is not None:  # the largest activation, stored about three times per cut (input, output, shortcut)
            from lrfc.frontend.graph import layer_nodes

            # this model's calls: a layer shared with the loaded model (--input-shape) has its undefined sizes there
            largest = max(4 * math.prod(int(d) for d in t.shape[1:])
                          for node in layer_nodes(flat).values() for t in node.outputs)
            n = min(n, max(MIN_PROBE, memory_bytes // max(1, 3 * largest)))
        self.x = np.asarray(x_probe[:n], dtype=np.float32)
        self.are_probabilities = outputs_probabilities(flat)
        self.reference = probabilities(flat, self.x)
        self._model_key = content_hash("kl-probe", *flat.get_weights(), self.x)
        self._cut: Cut | None = None
        self._walk = None  # (layers still ahead, the frontier walk over the probe set): see ``follow``
        self._budget = memory_bytes

    def follow(self, layers: Sequence[str]) -> list[str]:
        """Cut before each of ``layers`` in one forward pass, as far as they are asked in graph order; that order.

        ``frontend.graph.frontier_walk`` carries the probe set from one cut to
        the next, so ``cut`` costs the segment since the last one instead of
        a prefix model from the input each (ResNet50's 54 layers: about one
        forward pass instead of ~27). A layer asked out of order, or a graph
        the walk cannot cut, gets the prefix model as before.
        """
        from lrfc.frontend.graph import frontier_walk, layer_nodes

        where = {name: i for i, name in enumerate(layer_nodes(self.flat))}
        order = sorted(layers, key=lambda n: where.get(n, len(where)))
        budget = self._budget if self._budget is not None else 1 << 30
        walk = frontier_walk(self.flat, order, len(self.x), budget)
        self._walk = None if walk is None else (list(order), walk(self.x))
        return order

    def cut(self, layer_name: str) -> Cut:
        """The layer's cut on the probe set (kept until another layer's is asked for)."""
        if self._cut is not None and self._cut.layer == layer_name:
            return self._cut
        self._cut = None  # the previous layer's stored tensors go first
        self._cut = self._walked(layer_name) or self._prefixed(layer_name)
        return self._cut

    def _walked(self, layer_name: str) -> Cut | None:
        """The cut from the frontier walk (``follow``), when it has not passed the layer; None otherwise."""
        if self._walk is None or layer_name not in self._walk[0]:
            return None
        import keras

        from lrfc.frontend.graph import layer_nodes

        ahead, fronts = self._walk
        while ahead[0] != layer_name:  # layers never asked (an empty front): their cuts go by
            ahead.pop(0)
            next(fronts)
        ahead.pop(0)
        front = next(fronts)
        nodes = layer_nodes(self.flat)
        where = {name: i for i, name in enumerate(nodes)}
        here = where[layer_name]
        node = nodes[layer_name]
        later = {id(t) for name, n in nodes.items() if where[name] > here for t in n.input_tensors}
        others = [(t, v) for t, v in front if id(t) in later]  # what the rest reads besides the layer's output
        y = node.outputs[0]
        try:
            suffix = None if y is self.flat.outputs[0] else keras.Model(
                [y, *(t for t, _ in others)] if others else y, self.flat.outputs[0])
        except Exception:  # a suffix Keras will not build from these tensors: the prefix way
            self._walk = None
            return None
        x_in = node.input_tensors[0]
        chain_input = next(v for t, v in front if t is x_in)
        return Cut(layer_name, self._chain_input(layer_name, chain_input), [v for _, v in others], suffix)

    def _chain_input(self, layer_name: str, values: np.ndarray) -> np.ndarray:
        """What the layer's chain reads: its input, after a separable layer's kept depthwise part."""
        layer = self.flat.get_layer(layer_name)
        if not hasattr(layer, "pointwise_kernel"):
            return values
        from lrfc.decompose.base import Stage
        from lrfc.search.scoring import run_stages

        depthwise = Stage("depthwise", (np.asarray(layer.depthwise_kernel.numpy()),), tuple(layer.kernel_size),
                          tuple(layer.strides), tuple(layer.dilation_rate), layer.padding)
        return run_stages(values, [depthwise], 2)

    def _prefixed(self, layer_name: str) -> Cut:
        """The cut from a prefix model run on the probe set from the model input."""
        import keras

        from lrfc.frontend.samples import batch_for

        x_in, frontier = cut_tensors(self.flat, layer_name)
        prefix = keras.Model(self.flat.input, [x_in, *frontier[1:]])
        values = [np.asarray(v) for v in _outputs(prefix, self.x, batch_for(256))]
        last = id(frontier[0]) == id(self.flat.outputs[0])  # the layer's output is the model's: nothing after the cut
        suffix = None if last else keras.Model(frontier if len(frontier) > 1 else frontier[0], self.flat.outputs[0])
        return Cut(layer_name, self._chain_input(layer_name, values[0]), values[1:], suffix)

    def of(self, task, candidate) -> float:
        """KL of the model with ``candidate``'s chain in place of its layer (0 means no effect)."""
        from lrfc.factorize.rewrite import factorized_stages
        from lrfc.frontend.samples import batch_for
        from lrfc.geometry import chain_rank
        from lrfc.plan import LayerChoice
        from lrfc.search.scoring import prepared_for, run_stages

        aware = candidate.data_aware and task.stats is not None
        key = content_hash("kl", self._model_key, task.key(), candidate.method, tuple(candidate.ranks), aware)
        cached = self.cache.score(key)
        if cached is not None:
            return cached
        choice = LayerChoice(candidate.layer, candidate.method, tuple(candidate.ranks), aware)
        prepared = prepared_for(task, choice.method, aware, self.cache)
        layer = self.flat.get_layer(choice.layer)
        stages = factorized_stages(layer, task.info, choice, self.stats.get(choice.layer), prepared)
        cut = self.cut(choice.layer)
        z = run_stages(cut.chain_input, stages, chain_rank(task.info.geometry))
        out = z if cut.suffix is None else _run(cut.suffix, [z, *cut.others], batch_for(256))
        value = max(0.0, kl(self.reference, to_probabilities(out, self.are_probabilities)))
        if not np.isfinite(value):
            value = float("inf")
        else:
            self.cache.put_score(key, value)
        return value


def _outputs(model, x: np.ndarray, batch: int) -> list[np.ndarray]:
    """Every output of ``model`` on ``x``, batch by batch, concatenated per output."""
    parts: list[list[np.ndarray]] = []
    for i in range(0, len(x), batch):
        outs = model(x[i:i + batch], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        parts.append([np.asarray(o) for o in outs])
    return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]
