"""End-to-end effect of one candidate: the model's outputs with only that layer factorized.

Per-layer feature-map similarity says how well a chain reproduces its layer;
it does not say how much the network's prediction cares. The global
allocator needs the second: for each candidate, the mean KL divergence
``KL(p_original || p_candidate)`` of the model's output distributions on a
probe set of calibration samples, with every other layer original. Values
are in nats per sample, cached by content (the model's weights, the probe
samples, the layer, method, ranks and fit).
"""

from __future__ import annotations

import numpy as np

from lrfc.search.cache import content_hash

PROBE_SAMPLES = 256
_EPS = 1e-7


def probabilities(model, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """The model's class probabilities on ``x`` (a softmax over logits; probabilities as they are)."""
    from lrfc.train.finetune import outputs_probabilities

    out = np.concatenate([np.asarray(model(x[i:i + batch], training=False), dtype=np.float64)
                          for i in range(0, len(x), batch)])
    out = out.reshape(len(out), -1)
    if outputs_probabilities(model):
        return np.clip(out, _EPS, 1.0)
    out = out - out.max(axis=1, keepdims=True)
    e = np.exp(out)
    return np.clip(e / e.sum(axis=1, keepdims=True), _EPS, 1.0)


def kl(p: np.ndarray, q: np.ndarray) -> float:
    """Mean over rows of KL(p || q), in nats."""
    return float(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=1)))


class Sensitivity:
    """Measures candidates of one model on one probe set; see the module doc."""

    def __init__(self, flat, x_probe: np.ndarray, stats: dict, cache):
        self.flat, self.x = flat, np.asarray(x_probe[:PROBE_SAMPLES], dtype=np.float32)
        self.stats, self.cache = stats, cache
        self.reference = probabilities(flat, self.x)
        self._model_key = content_hash("kl-probe", *flat.get_weights(), self.x)

    def of(self, task, candidate) -> float:
        """KL of the model with ``candidate``'s chain in place of its layer (0 means no effect)."""
        from lrfc.factorize.rewrite import apply_plan
        from lrfc.plan import LayerChoice, Plan
        from lrfc.search.scoring import prepared_for

        aware = candidate.data_aware and task.stats is not None
        key = content_hash("kl", self._model_key, task.key(), candidate.method, tuple(candidate.ranks), aware)
        cached = self.cache.score(key)
        if cached is not None:
            return cached
        choice = LayerChoice(candidate.layer, candidate.method, tuple(candidate.ranks), aware)
        prepared = {(choice.layer, choice.method, aware): prepared_for(task, choice.method, aware, self.cache)}
        model = apply_plan(self.flat, Plan((choice,)), self.stats, prepared)
        value = max(0.0, kl(self.reference, probabilities(model, self.x)))
        if not np.isfinite(value):
            value = float("inf")
        else:
            self.cache.put_score(key, value)
        return value
