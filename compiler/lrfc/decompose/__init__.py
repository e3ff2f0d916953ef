"""Low-rank factorizations of Conv and Dense layers, one module per method, named in one registry.

Every method module has the same small surface (tests/test_chain_export.py
runs each registry entry's chain through both runtimes, whatever it holds):

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
  baseline(kernel, geom, rank_of) -> tuple
                                 ranks from the weights alone: ``rank_of`` (VBMF
                                 or an energy rule) applied to the method's own
                                 unfoldings of the kernel
  unsupported(geom) -> str | None     (optional)
                                 why the method cannot take a layer its KIND
                                 covers (CP: unequal strides); the catalogue
                                 leaves it out of that layer's methods
  attach(prepared, stats) -> object   (optional)
                                 a prepared factorization that borrows part of
                                 the layer's statistics leaves it out when
                                 pickled (the score cache's files, a Ray job);
                                 this puts it back (``search.scoring.prepared_for``)

Shared helpers live beside them: ``common`` (rank checks, eigenbases),
``conv_chain`` (the convolution methods' chains), ``dense_chain`` (the dense
methods'), ``stats`` (input statistics), ``chain`` (stages -> Keras layers).

The registry is the one list of method names. The CLI's ``--methods``, the
options, the catalogue (which layers take which method, by ``KIND``), the
selector's tie-break order and the weight-only rank rules all read it, so a
new method is one module plus one line in ``_REGISTRY``. Modules are imported
on first use: reading the names costs nothing (the CLI's help needs them).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import replace
from types import ModuleType

from lrfc.decompose.base import Cost, Factors, LayerStats, LayerWeights, Stage

# The registry, in the order reports list methods (conv methods, then dense): name -> module.
_REGISTRY: dict[str, str | ModuleType] = {
    "tucker": "lrfc.decompose.tucker",
    "cp": "lrfc.decompose.cp",
    "tt": "lrfc.decompose.tt",
    "svd": "lrfc.decompose.svd",
    "qr": "lrfc.decompose.qr",
    "ttm": "lrfc.decompose.ttm",
}


class _Methods(Mapping):
    """``name -> method module``, imported on first access, in registry order."""

    def __getitem__(self, name: str) -> ModuleType:
        entry = _REGISTRY[name]
        if isinstance(entry, str):
            entry = _REGISTRY[name] = importlib.import_module(entry)
        return entry

    def __iter__(self) -> Iterator[str]:
        return iter(list(_REGISTRY))

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __contains__(self, name) -> bool:
        return name in _REGISTRY


METHODS = _Methods()


def names() -> tuple[str, ...]:
    """Every registered method's name, in registry order (no module is imported)."""
    return tuple(_REGISTRY)


def of_kind(kind: str) -> tuple[str, ...]:
    """The methods that factorize ``conv`` or ``dense`` layers."""
    return tuple(name for name in _REGISTRY if METHODS[name].KIND == kind)


def applicable(kind: str, geom) -> tuple[str, ...]:
    """The methods of ``kind`` that can factorize a layer of geometry ``geom`` (``unsupported``, where a method has it)."""
    return tuple(name for name in of_kind(kind)
                 if getattr(METHODS[name], "unsupported", lambda g: None)(geom) is None)


def register(module: ModuleType | str, name: str | None = None) -> str:
    """Add a method (a module with the surface above, or its import path); returns its name.

    For plugins and tests; lrfc's own methods are the ``_REGISTRY`` lines.
    """
    if isinstance(module, str):
        module = importlib.import_module(module)
    name = name or module.NAME
    if module.KIND not in ("conv", "dense"):
        raise ValueError(f"method {name!r}: KIND must be 'conv' or 'dense', received {module.KIND!r}")
    _REGISTRY[name] = module
    return name


def unregister(name: str) -> None:
    """Remove a method ``register`` added."""
    _REGISTRY.pop(name, None)


def get(name: str) -> ModuleType:
    """The method module called ``name``; a clear error for an unknown one."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown decomposition method {name!r}; known: {', '.join(_REGISTRY)}")
    return METHODS[name]


def decompose(method: str, weights: LayerWeights, geom, ranks: tuple[int, ...], stats: LayerStats | None = None) -> Factors:
    """Factorize one layer with one method at one rank."""
    mod = get(method)
    return mod.truncate(mod.prepare(weights, geom, stats), tuple(ranks))


def chain_stages(method: str, prepared, ranks, geom, activation: str | None = None, bias: bool = True) -> list[Stage]:
    """The chain of stages of a prepared factorization at ``ranks``: the one way factors become a chain.

    ``bias=False`` drops the layer's bias (similarity is measured on the linear response).
    """
    mod = get(method)
    factors = mod.truncate(prepared, tuple(ranks))
    if not bias:
        factors = replace(factors, bias=None)
    return mod.stages(factors, geom, activation)


__all__ = ["METHODS", "Cost", "Factors", "LayerStats", "LayerWeights", "Stage", "applicable", "chain_stages", "decompose",
           "get", "names", "of_kind", "register", "unregister"]
