"""Low-rank factorizations of Conv and Dense layers, one module per method.

Every method module has the same small surface (the contract test in
tests/test_decompose_contract.py runs each registry entry through it):

  NAME: str                      registry key ("tucker", "cp", ...)
  KIND: "conv" | "dense"         what it factorizes; dense methods also take
                                 pointwise convolutions (geometry.as_dense())
  NUM_RANKS: int                 length of a rank tuple
  max_ranks(geom) -> tuple       ranks at which the chain is exact (CP: a cap)
  cost(geom, ranks) -> Cost      closed-form params and MACs of the chain
  prepare(weights, geom, stats=None) -> object
                                 the expensive part, done once per layer; it
                                 is truncated for every candidate rank
  truncate(prepared, ranks) -> Factors
  stages(factors, geom, activation) -> list[Stage]

``decompose`` is prepare + truncate for a single rank.
"""

from __future__ import annotations

from types import ModuleType

from lrfc.decompose.base import Cost, Factors, LayerStats, LayerWeights, Stage
from lrfc.decompose import cp, tt, tucker
from lrfc.decompose import qr, svd, ttm

# The registry: one entry per method module, in the order reports list them.
# Adding a method = a new module + its name in this import and this tuple.
# (conv methods: tucker, cp, tt; dense methods: svd, qr, ttm)
_MODULES: tuple[ModuleType, ...] = (tucker, cp, tt, svd, qr, ttm)

METHODS: dict[str, ModuleType] = {m.NAME: m for m in _MODULES}


def get(name: str) -> ModuleType:
    """The method module called ``name``; a clear error for an unknown one."""
    try:
        return METHODS[name]
    except KeyError:
        raise KeyError(f"unknown decomposition method {name!r}; known: {', '.join(METHODS)}") from None


def decompose(method: str, weights: LayerWeights, geom, ranks: tuple[int, ...], stats: LayerStats | None = None) -> Factors:
    """Factorize one layer with one method at one rank."""
    mod = get(method)
    return mod.truncate(mod.prepare(weights, geom, stats), tuple(ranks))


__all__ = ["METHODS", "Cost", "Factors", "LayerStats", "LayerWeights", "Stage", "decompose", "get"]
