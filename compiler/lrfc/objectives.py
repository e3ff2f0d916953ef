"""The objectives a build minimises, defined once: names, units and the static cost of a layer or chain.

* ``flops``: MACs of one sample.
* ``params``: parameter count.
* ``memory``: bytes of the weights in fp32, ``params * BYTES_PER_PARAM``.
* ``latency``: milliseconds on the target (``lrfc.cost``) when a candidate was
  priced; from counts alone its MACs stand in.

The CLI, the options, the target profiles, the selector and the report take
their lists and units from here.
"""

from __future__ import annotations

OBJECTIVES = ("latency", "flops", "params", "memory")
BYTES_PER_PARAM = 4  # fp32 weights; a quantized target's report should rescale


def check_objective(objective: str) -> None:
    """ValueError unless ``objective`` is one of ``OBJECTIVES``."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}; received {objective!r}")


def static_cost(cost, objective: str) -> float:
    """The objective from a ``Cost``'s counts alone (latency: MACs stand in)."""
    check_objective(objective)
    if objective == "params":
        return float(cost.params)
    if objective == "memory":
        return float(cost.params * BYTES_PER_PARAM)
    return float(cost.macs)  # flops, and latency without a measurement


def cost_key(objective: str) -> str:
    """The count an objective ranks by: ``params`` for params/memory, ``macs`` otherwise."""
    return "params" if objective in ("params", "memory") else "macs"
