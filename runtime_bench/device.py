"""Which machine and runtime a measurement came from.

A latency is only comparable with latencies from the same CPU (or GPU), core
count and runtime version, so every report carries a fingerprint and its
``id``: a short hash of exactly those fields, the key a cost database files
measurements under. The OS, Python version and host name are reported but
left out of the id (they rarely change the numbers and change often).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from typing import Optional

_CPUINFO_KEYS = ("model name", "Hardware", "Model", "cpu model")  # x86, older ARM, Raspberry Pi, MIPS


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else ``platform.processor()``, else ``"unknown"``."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    for key in _CPUINFO_KEYS:
        for line in lines:
            name, _, value = line.partition(":")
            if name.strip() == key and value.strip():
                return value.strip()
    return platform.processor() or "unknown"


def vector_isa() -> str:
    """The widest x86 vector extension in /proc/cpuinfo's flags (``isa_from_flags``), else "".

    Two machines that both call themselves "AMD EPYC" ran the same build 1.3-1.7x apart, one with AVX-512 VNNI and
    one with AVX2 only (docs/BENCHMARKS.md), so the fingerprint tells them apart by this too.
    """
    return isa_from_flags(cpu_flags())


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            line = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return set()
    return set(line.partition(":")[2].split())


def isa_from_flags(flags: set[str]) -> str:
    """The x86 vector extension a set of Linux CPU flags names: "AVX-512 VNNI", "AVX-512", "AVX-VNNI" (AVX2 with the
    256-bit VNNI of Intel's client CPUs from Alder Lake on), "AVX2" or "".

    VNNI is named because ONNX Runtime's int8 kernels differ by it: with VNNI
    (``avx512_vnni``, or ``avx_vnni`` on a CPU without AVX-512) they multiply
    and add u8 x s8 in int32 (VPDPBUSD); without it in int16 pairs
    (VPMADDUBSW), which saturate (``lrfc.lower.artifacts.saturates_int8``).
    An AVX-512 CPU without ``avx512_vnni`` runs MLAS's AVX-512 core kernel,
    which saturates whatever ``avx_vnni`` says (MLAS's platform.cpp picks
    kernels in that order).
    """
    if "avx512f" in flags:
        return "AVX-512 VNNI" if "avx512_vnni" in flags else "AVX-512"
    if "avx2" in flags:
        return "AVX-VNNI" if "avx_vnni" in flags else "AVX2"
    return ""


def gpu_name() -> Optional[str]:
    """The first GPU's name from ``nvidia-smi``; None when there is none or it does not answer."""
    try:
        proc = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    names = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    return names[0] if proc.returncode == 0 and names else None


def fingerprint(runtime: str) -> dict:
    """Describe this machine and ``runtime`` (a key of ``runners.RUNNERS``).

    Returns:
        ``machine``, ``cpu``, ``isa`` (``vector_isa``), ``cores``, ``system``,
        ``python``, ``runtime``, ``runtime_version``, ``gpu`` (GPU runtimes
        only, when nvidia-smi answers) and ``id``: the first 16 hex digits of
        the SHA-256 of the canonical JSON of cpu, isa (when known), cores,
        machine, runtime, runtime_version (and gpu when present).
    """
    from runtime_bench.runners import get_runner

    info = {
        "machine": platform.machine(),
        "cpu": cpu_name(),
        "isa": vector_isa(),
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "runtime": runtime,
        "runtime_version": get_runner(runtime).version(),
    }
    if get_runner(runtime).gpu:
        gpu = gpu_name()
        if gpu:
            info["gpu"] = gpu
    keyed = {k: info[k] for k in ("cpu", "isa", "cores", "machine", "runtime", "runtime_version", "gpu") if info.get(k)}
    canonical = json.dumps(keyed, sort_keys=True, separators=(",", ":"))
    info["id"] = hashlib.sha256(canonical.encode()).hexdigest()[:16]
    return info
