"""Which machine a result came from: its description, a short label for tables, and the stamp every row carries.

The benchmark machine changes between sessions (an AVX2-only AMD EPYC, an
Intel Xeon with AVX-512 and AMX): rows measured on different machines sit in
one results file, so each row names its own machine (``stamp``) and each file
keeps every machine its rows ran on (``note_machine``), not only the latest.
"""

from __future__ import annotations

import os
import platform
import time

FAMILIES = ("EPYC", "Xeon", "Ryzen", "Core", "Graviton", "Neoverse")


def machine() -> dict:
    """The CPU (model name and vector extensions: two machines both called "AMD EPYC" ran 1.3-1.7x apart), cores and
    the pinned versions."""
    import numpy as np

    from lrfc.provenance import package_versions
    from runtime_bench.device import cpu_flags, cpu_name, vector_isa

    isa = vector_isa()
    isa = "AVX2, no AVX-512" if isa == "AVX2" else isa
    pinned = ("tensorflow-cpu", "keras", "ai-edge-litert", "onnxruntime", "tf2onnx", "onnx", "tensorly")
    versions = {dist: v for dist, v in package_versions().items() if dist in pinned}
    return {"cpu": cpu_name(), "isa": isa, "amx": "amx_tile" in cpu_flags(), "cores": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__, "versions": versions}


def label(m: dict) -> str:
    """A machine's short name for a table column: its CPU family and widest vector extensions, e.g. "EPYC (AVX2)"."""
    cpu = m.get("cpu") or "?"
    family = next((word for word in FAMILIES if word in cpu), cpu)
    isa = m.get("isa") or ""
    isa = "AVX2" if isa.startswith("AVX2") else "AVX-512" if isa.startswith("AVX-512") else isa
    extensions = [x for x in (isa, "AMX" if m.get("amx") else "") if x]
    return f"{family} ({', '.join(extensions)})" if extensions else family


def stamp(key: str = "date") -> dict:
    """What every results row records about when and where it ran: ``{key: now (UTC), "machine": this machine's label}``."""
    return {key: time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": label(machine())}


def note_machine(results: dict) -> None:
    """Record this machine in a results document: ``machines`` (label -> description) gains it, ``machine`` becomes it.

    A document from before ``machines`` existed keeps its one ``machine``
    under that machine's label, so the first row from another machine does
    not erase where the earlier rows ran.
    """
    machines = results.setdefault("machines", {})
    if results.get("machine"):
        machines.setdefault(label(results["machine"]), results["machine"])
    here = machine()
    machines[label(here)] = here
    results["machine"] = here
