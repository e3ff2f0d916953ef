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
    maximum are capped at it, and ``resolve`` says so.
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

    def resolve(self, max_ranks: tuple[int, ...], where: str) -> tuple[tuple[int, ...], bool]:
        """The ranks for one layer, and whether any was capped at the layer's maximum."""
        if self.values is None:
            return tuple(max_ranks), False
        values = self.values * len(max_ranks) if len(self.values) == 1 else self.values
        if len(values) != len(max_ranks):
            raise UserError(f"{where}: --rank gives {len(self.values)} values; this method takes 1 or {len(max_ranks)}")
        ranks = tuple(min(v, m) for v, m in zip(values, max_ranks))
        return ranks, ranks != tuple(values)


def _targets(rows: dict, method: str, layers: list[str] | None, model: str) -> list[str]:
    """The layers to factorize: the ones named (each must take the method), or every one that takes it."""
    if not layers:
        targets = [n for n, r in rows.items() if method in r.methods]
        if not targets:
            raise UserError(f"method {method!r} applies to no layer of {model}")
        return targets
    for name in layers:
        if name not in rows:
            raise UserError(f"--layers: the model has no layer {name!r}")
        if method not in rows[name].methods:
            raise UserError(f"--layers: method {method!r} does not apply to layer {name!r} ({rows[name].type}: "
                            f"{rows[name].note or 'takes ' + (', '.join(rows[name].methods) or 'no method')})")
    return list(layers)


def _layer_entries(plan: Plan, rows: dict, capped: set[str]) -> list[dict]:
    """Per factorized layer: ranks and closed-form params/MACs before and after (known before factorizing)."""
    entries = []
    for choice in plan.choices:
        info = rows[choice.layer]
        after = info.factorized_cost(choice.method, choice.ranks)
        entries.append({"name": choice.layer, "method": choice.method, "ranks": list(choice.ranks),
                        "capped": choice.layer in capped, "params_before": info.params, "params_after": after.params,
                        "macs_before": info.macs, "macs_after": after.macs})
    return entries


def _check_not_larger(entries: list[dict]) -> None:
    before = sum(e["params_before"] for e in entries), sum(e["macs_before"] for e in entries)
    after = sum(e["params_after"] for e in entries), sum(e["macs_after"] for e in entries)
    if after[0] > before[0]:
        raise UserError(f"the factorized layers would have {after[0]:,} parameters ({after[1]:,} MACs) against the "
                        f"original's {before[0]:,} ({before[1]:,} MACs): these ranks make the model bigger, not "
                        "smaller; lower --rank, or pass --allow-larger to write it anyway")


def _similarities(flat, rows: dict, plan: Plan, data: str, data_aware: bool, calib_samples: int, seed: int,
                  contract) -> tuple[dict, dict]:
    """Calibrate on ``data`` as a build does: the layers' statistics and each choice's output similarity."""
    from lrfc.frontend.contract import resolve
    from lrfc.frontend.data import load_data
    from lrfc.search.cache import Cache
    from lrfc.search.scoring import similarity
    from lrfc.search.stage import capture_tasks

    contract = resolve(flat, contract)
    ds = load_data(data, tuple(flat.inputs[0].shape[1:]), int(flat.outputs[0].shape[-1]), contract, labels=False)
    pick = np.random.default_rng(seed).permutation(len(ds.x))[:calib_samples]
    tasks = capture_tasks(flat, rows, [c.layer for c in plan.choices], ds.x[pick], data_aware)
    cache = Cache(enabled=False)
    sims = {c.layer: round(similarity(tasks[c.layer], c.method, c.ranks, c.data_aware, cache), 6) for c in plan.choices}
    return {n: t.stats for n, t in tasks.items() if t.stats is not None}, sims


def _checked(method: str, rank: str, data: str | None, data_aware: bool, out) -> RankSpec:
    """Every argument checked before the model loads; the parsed ``--rank``."""
    from lrfc import decompose
    from lrfc.options import check_data_spec

    if method not in decompose.METHODS:
        raise UserError(f"--method: received {method!r}; expected one of {', '.join(decompose.METHODS)}")
    if data_aware and not data:
        raise UserError("--data-aware needs --data (the samples the factors are fit to)")
    if Path(out).suffix != ".keras":
        raise UserError(f"-o/--out: received {str(out)!r}; expected a path ending in .keras")
    if data:
        check_data_spec(data)
    return RankSpec.parse(rank)


def decompose_model(model: str, method: str, rank: str = "full", layers: list[str] | None = None,
                    data: str | None = None, data_aware: bool = False, out: str | Path = "decomposed.keras",
                    calib_samples: int = 256, seed: int = 0, trust: bool = False, allow_larger: bool = False,
                    contract=None) -> dict:
    """Factorize a model's layers with one method and save the result.

    Args:
        model: the model file.
        method: a registry name (tucker, cp, tt, svd, qr, ttm).
        rank: a ``RankSpec`` string; ranks above a layer's maximum are capped
            (the layer's entry says ``capped``).
        layers: layer names; None = every layer the method applies to.
        data: a ``--data`` spec for similarity scores and data-aware fits.
        data_aware: fit factors to the layers' outputs on ``data``.
        out: the `.keras` file to write (atomically).
        calib_samples: calibration samples drawn from ``data``.
        seed: seed of the calibration sample draw.
        trust: allow Lambda layers.
        allow_larger: write a result with more parameters and MACs than the
            original layers (refused otherwise, before any factorization).
        contract: the input contract for ``data`` (None: inferred from the model).

    Returns:
        The report: per layer name, method, ranks, params/MACs before and
        after, similarity (with data); and totals.
    """
    from lrfc import decompose
    from lrfc.common.atomic import atomic_path
    from lrfc.factorize.rewrite import apply_plan
    from lrfc.frontend.catalogue import describe_model
    from lrfc.frontend.load import load_flat

    spec = _checked(method, rank, data, data_aware, out)
    flat = load_flat(model, trust)
    rows = {r.name: r for r in describe_model(flat)}
    mod = decompose.get(method)
    resolved = {n: spec.resolve(mod.max_ranks(rows[n].geometry), f"layer '{n}'") for n in _targets(rows, method, layers, model)}
    plan = Plan(tuple(LayerChoice(n, method, ranks, data_aware) for n, (ranks, _) in resolved.items()))
    entries = _layer_entries(plan, rows, {n for n, (_, capped) in resolved.items() if capped})
    if not allow_larger:
        _check_not_larger(entries)
    stats, sims = _similarities(flat, rows, plan, data, data_aware, calib_samples, seed, contract) if data else ({}, {})
    new_model = apply_plan(flat, plan, stats)
    with atomic_path(out) as tmp:
        new_model.save(tmp)
    for entry in entries:
        if entry["name"] in sims:
            entry["similarity"] = sims[entry["name"]]
    macs_before = sum(r.macs for r in rows.values())
    return {
        "model": str(model), "out": str(out), "method": method, "data_aware": data_aware, "layers": entries,
        "total_params_before": sum(r.params for r in rows.values()),
        "total_params_after": int(new_model.count_params()),
        "total_macs_before": macs_before,
        "total_macs_after": macs_before + sum(e["macs_after"] - e["macs_before"] for e in entries),
    }
