"""What made a result: lrfc's version, the command, when, the packages that lowered and timed it, the machine.

A report read a week later, or attached to a bug, has to say where its numbers came from: the same build on
another TensorFlow, tf2onnx or LiteRT can lower to other operators and time differently, and the same
command on another CPU measures other latencies (docs/BENCHMARKS.md shows 1.3-1.7x between two machines that
both call themselves "AMD EPYC"). ``provenance()`` is that record, kept in report.json and export.json under
``provenance``; ``version_text()`` is what ``lrfc --version`` prints. Nothing here imports TensorFlow: package
versions come from the installed distributions' metadata.

The command is the one the CLI was given (``record_command``, called by ``lrfc.cli.main``); a result made
through the Python API (``lrfc.api``) records None there.
"""

from __future__ import annotations

import platform
import shlex
import time
from importlib import metadata

PACKAGES = ("tensorflow-cpu", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "onnxruntime-gpu",
            "ai-edge-litert", "tensorly", "numpy")
"""The distributions whose versions shape a result, in the order shown; those not installed are left out."""

_command: list[str] | None = None


def record_command(argv: list[str] | None) -> None:
    """Remember the arguments the ``lrfc`` command was run with (None: not run from the command line)."""
    global _command
    _command = None if argv is None else [str(a) for a in argv]


def command() -> str | None:
    """The recorded command as a shell line (``lrfc build model.keras --data ...``), or None."""
    return None if _command is None else shlex.join(["lrfc", *_command])


def lrfc_version() -> str:
    """lrfc's own version (the package's ``__version__``, which pyproject.toml's matches)."""
    from lrfc import __version__

    return __version__


def package_versions() -> dict[str, str]:
    """``{distribution: version}`` for each of ``PACKAGES`` that is installed."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def machine() -> dict:
    """The CPU (model and widest vector extension), its cores and the operating system."""
    import os

    from runtime_bench.device import cpu_name, vector_isa

    return {"cpu": cpu_name(), "isa": vector_isa() or None, "cores": os.cpu_count(),
            "system": f"{platform.system()} {platform.release()}"}


def provenance() -> dict:
    """``{"lrfc", "command", "created_at", "python", "packages", "machine"}`` for a result written now."""
    return {"lrfc": lrfc_version(), "command": command(),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "python": platform.python_version(), "packages": package_versions(), "machine": machine()}


def version_text() -> str:
    """What ``lrfc --version`` prints: lrfc's version, then the packages it lowers and times with."""
    packages = ", ".join(f"{name} {version}" for name, version in package_versions().items())
    return f"lrfc {lrfc_version()}\n{packages}; Python {platform.python_version()}"


def provenance_line(record: dict | None) -> str | None:
    """One line of a report's ``provenance`` for people: who, when, with what, from which command."""
    if not record:
        return None
    packages = record.get("packages") or {}
    shown = ", ".join(f"{name} {packages[name]}" for name in ("tensorflow-cpu", "tensorflow", "tf2onnx",
                                                              "ai-edge-litert", "onnxruntime") if name in packages)
    host = record.get("machine") or {}
    where = f" on {host['cpu']}" + (f" ({host['isa']}, {host['cores']} cores)" if host.get("isa") else "")
    run = record.get("command") or "the Python API"
    return (f"lrfc {record.get('lrfc', '?')}, {record.get('created_at', '?')}{where if host.get('cpu') else ''}; "
            f"{shown}; {run}")
