"""`lrfc decompose`: factorize chosen layers with one method at ranks the user sets.

No search and no fine-tuning: for users who want to pick ranks themselves,
and for checking a method on a model. With ``--data`` each layer's output
cosine similarity on captured calibration samples is reported (the same
measure `lrfc build` uses: the linear response, see ``scoring``), and
``--data-aware`` fits the factors to the layer's output on that data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lrfc.errors import UserError
from lrfc.plan import LayerChoice, Plan


@dataclass(frozen=True)
class RankSpec:
    """``--rank``: ``full`` (the method's maximum ranks) or integers.

    One integer applies to every rank of a multi-rank method; a comma list
    gives each (``8,16`` for Tucker's (R1, R2)). Values above the layer's
    maximum are capped at it.
    """

    values: tuple[int, ...] | None  # None = full

    @classmethod
    def parse(cls, text: str) -> "RankSpec":
        if text.strip().lower() == "full":
            return cls(None)
        try:
            values = tuple(int(p) for p in text.split(","))
        except ValueError:
            values = ()
        if not values or min(values) < 1:
            raise UserError(f"--rank: received {text!r}; expected 'full', a positive integer, or a comma list like 8,16")
        return cls(values)

    def resolve(self, max_ranks: tuple[int, ...], where: str) -> tuple[int, ...]:
        if self.values is None:
            return tuple(max_ranks)
        values = self.values * len(max_ranks) if len(self.values) == 1 else self.values
        if len(values) != len(max_ranks):
            raise UserError(f"{where}: --rank gives {len(self.values)} values; this method takes 1 or {len(max_ranks)}")
        return tuple(min(v, m) for v, m in zip(values, max_ranks))


def decompose_model(model: str, method: str, rank: str = "full", layers: list[str] | None = None,
                    data: str | None = None, data_aware: bool = False, out: str | Path = "decomposed.keras",
                    calib_samples: int = 256, seed: int = 0, trust: bool = False) -> dict:
    """Factorize a model's layers with one method and save the result.

    Args:
        model: the model file.
        method: a registry name (tucker, cp, tt, svd, qr, ttm).
        rank: a ``RankSpec`` string.
        layers: layer names; None = every layer the method applies to.
        data: a ``--data`` spec for similarity scores and data-aware fits.
        data_aware: fit factors to the layers' outputs on ``data``.
        out: the `.keras` file to write (atomically).
        calib_samples: calibration samples drawn from ``data``.
        seed: seed of the calibration sample draw.
        trust: allow Lambda layers.

    Returns:
        The report: per layer name, method, ranks, params/MACs before and
        after, similarity (with data); and totals.
    """
    from lrfc import decompose
    from lrfc.common.atomic import atomic_path
    from lrfc.frontend.catalogue import describe_model
    from lrfc.frontend.load import load_flat
    from lrfc.factorize.rewrite import apply_stages, plan_stages

    if method not in decompose.METHODS:
        raise UserError(f"--method: received {method!r}; expected one of {', '.join(decompose.METHODS)}")
    if data_aware and not data:
        raise UserError("--data-aware needs --data (the samples the factors are fit to)")
    if Path(out).suffix != ".keras":
        raise UserError(f"-o/--out: received {str(out)!r}; expected a path ending in .keras")
    spec = RankSpec.parse(rank)
    flat = load_flat(model, trust)
    rows = {r.name: r for r in describe_model(flat)}
    if layers:
        for name in layers:
            if name not in rows:
                raise UserError(f"--layers: the model has no layer {name!r}")
            if method not in rows[name].methods:
                raise UserError(f"--layers: method {method!r} does not apply to layer {name!r} ({rows[name].type}: "
                                f"{rows[name].note or 'takes ' + (', '.join(rows[name].methods) or 'no method')})")
        targets = list(layers)
    else:
        targets = [n for n, r in rows.items() if method in r.methods]
        if not targets:
            raise UserError(f"method {method!r} applies to no layer of {model}")
    mod = decompose.get(method)
    plan = Plan(tuple(
        LayerChoice(n, method, spec.resolve(mod.max_ranks(rows[n].geometry), f"layer '{n}'"), data_aware) for n in targets
    ))

    tasks = {}
    if data:
        from lrfc.search.calibrate import capture
        from lrfc.frontend.data import load_data
        from lrfc.search.scoring import make_task

        ds = load_data(data, tuple(flat.inputs[0].shape[1:]), int(flat.outputs[0].shape[-1]))
        rng = np.random.default_rng(seed)
        pick = rng.permutation(len(ds.x))[:calib_samples]
        # A separable layer's statistics are taken from its depthwise output by make_task.
        geoms = {n: rows[n].geometry for n in targets if not rows[n].type.startswith("Separable")} if data_aware else None
        cap = capture(flat, targets, ds.x[pick], stats_geometry=geoms)
        tasks = {n: make_task(flat.get_layer(n), rows[n], cap.inputs[n], cap.stats.get(n), data_aware) for n in targets}
    stats = {n: t.stats for n, t in tasks.items() if t.stats is not None}
    new_model = apply_stages(flat, plan_stages(flat, plan, stats))
    sims = {}
    if tasks:
        from lrfc.search.cache import Cache
        from lrfc.search.scoring import similarity

        cache = Cache(enabled=False)
        sims = {c.layer: similarity(tasks[c.layer], method, c.ranks, c.data_aware, cache) for c in plan.choices}
    with atomic_path(out) as tmp:
        new_model.save(tmp)

    report_layers = []
    for choice in plan.choices:
        info = rows[choice.layer]
        c = mod.cost(info.geometry, choice.ranks)
        entry = {
            "name": choice.layer, "method": method, "ranks": list(choice.ranks),
            "params_before": info.params, "params_after": info.params - info.geometry.params + c.params,
            "macs_before": info.macs, "macs_after": info.macs - info.geometry.macs + c.macs,
        }
        if choice.layer in sims:
            entry["similarity"] = round(sims[choice.layer], 6)
        report_layers.append(entry)
    total_before = sum(r.params for r in rows.values())
    macs_before = sum(r.macs for r in rows.values())
    return {
        "model": str(model), "out": str(out), "method": method, "data_aware": data_aware, "layers": report_layers,
        "total_params_before": total_before,
        "total_params_after": int(new_model.count_params()),
        "total_macs_before": macs_before,
        "total_macs_after": macs_before + sum(l["macs_after"] - l["macs_before"] for l in report_layers),
    }
