"""``lrfc profiles probe`` on this machine, once per runtime (issue 14): the figures the host profile rests on.

Each runtime of the ``host`` profile is probed at fp32 and int8 by the real
CLI (``lrfc profiles probe --runtime R --precisions fp32,int8 --json``,
writing a profile under ``bench/work/probe``); the row keeps what it
measured, keyed ``<machine>/<runtime>`` (``machine_key``), so one
machine's re-run replaces its own rows and leaves the other machines'. Run
it on a quiet machine: the probe times synthetic models, and a build beside
it moves every figure.

Results: ``bench/results/probe.json``; ``python -m bench.render`` writes
them into docs/BENCHMARKS.md.

    python -m bench.probe [--runtimes litert,onnxruntime-cpu]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.results_file import update_json

RESULTS = Path("bench/results/probe.json")
WORK = Path("bench/work/probe")
RUNTIMES = ("litert", "onnxruntime-cpu")


def machine_key() -> str:
    """The rows' prefix: the machine's label (``bench.machine.label``) in lower case, ``epyc-avx-512`` or
    ``xeon-avx-512-amx``: two machines both called "AMD EPYC" (AVX2 only, and AVX-512) are two machines. Rows
    from before 2026-12-07 are keyed by the CPU's maker alone (``xeon``, ``epyc``: the AVX2 EPYC)."""
    import re

    from bench.machine import label, machine

    return re.sub(r"[^a-z0-9]+", "-", label(machine()).lower()).strip("-") or "cpu"


def probe_command(runtime: str) -> list[str]:
    """The CLI words of one runtime's probe (its profile goes under ``WORK``)."""
    return ["profiles", "probe", "--target", "host", "--device", "local", "--runtime", runtime,
            "--precisions", "fp32,int8", "--out", str(WORK / f"host-{runtime}.toml"), "--json"]


def run_probe(runtime: str) -> tuple[dict, float]:
    """Run one probe through the CLI; (its JSON, wall seconds). A failed probe stops the run with its stderr."""
    WORK.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lrfc.cli", *probe_command(runtime)], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"lrfc profiles probe --runtime {runtime} failed ({proc.returncode})")
    return json.loads(proc.stdout), time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtimes", default=",".join(RUNTIMES))
    args = parser.parse_args(argv)
    key = machine_key()
    for runtime in [r for r in args.runtimes.split(",") if r]:
        if runtime not in RUNTIMES:
            raise SystemExit(f"--runtimes: {runtime!r} is not one of {', '.join(RUNTIMES)}")
        measured, wall = run_probe(runtime)
        name = f"{key}/{runtime}"
        row = {**measured, "wall_s": round(wall, 1), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        command = "lrfc " + " ".join(probe_command(runtime))

        def change(doc, name=name, row=row, command=command):
            doc.setdefault("runs", {})[name] = row
            doc.setdefault("command", {})[name] = command

        update_json(RESULTS, change)
        print(f"{name}: peak {measured['peak_gops']} GOP/s, multiples {measured['multiples']}, "
              f"{measured['bandwidth_gbps']} GB/s, {measured['op_overhead_us']} us/op ({wall:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
