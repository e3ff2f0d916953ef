"""Time to factorize every Conv and Dense layer of keras.applications ResNet50.

Three ranks per layer (1/8, 1/4 and 1/2 of each rank component's maximum),
per method, with rank reuse (``prepare`` once, ``truncate`` per rank) and
without (``prepare`` + ``truncate`` for every rank). Weights are random
(``weights=None``), factorization is weight-only. Results go to
``bench/results/decompose_time.json`` and a section of docs/BENCHMARKS.md.

    python -m bench.decompose_time [--methods tucker,cp,...] [--layers N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench.machine import label, machine, note_machine

FRACTIONS = (0.125, 0.25, 0.5)


def _ranks(limits: tuple[int, ...], fraction: float) -> tuple[int, ...]:
    return tuple(max(1, round(fraction * m)) for m in limits)


def measure(methods: list[str], max_layers: int | None = None) -> dict:
    from lrfc import decompose
    from lrfc.frontend.catalogue import describe_model
    from lrfc.frontend.graph import rebuild
    from lrfc.common.quiet import import_keras
    from lrfc.frontend.catalogue import layer_weights

    keras = import_keras()
    flat = rebuild(keras.applications.ResNet50(weights=None))
    rows = [r for r in describe_model(flat) if r.methods][:max_layers]
    weights = {r.name: layer_weights(flat.get_layer(r.name)) for r in rows}
    results = {}
    for method in methods:
        mod = decompose.get(method)
        layers = [r for r in rows if method in r.methods]
        reuse = fresh = 0.0
        for r in layers:
            grid = [_ranks(mod.max_ranks(r.geometry), f) for f in FRACTIONS]
            t0 = time.perf_counter()
            prepared = mod.prepare(weights[r.name], r.geometry)
            for ranks in grid:
                mod.truncate(prepared, ranks)
            reuse += time.perf_counter() - t0
            t0 = time.perf_counter()
            for ranks in grid:
                mod.truncate(mod.prepare(weights[r.name], r.geometry), ranks)
            fresh += time.perf_counter() - t0
        results[method] = {"layers": len(layers), "with_reuse_s": round(reuse, 2), "without_reuse_s": round(fresh, 2),
                           "speedup": round(fresh / reuse, 2) if reuse else None}
        print(json.dumps({method: results[method]}), flush=True)
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Factorization time of ResNet50's layers per method.")
    parser.add_argument("--methods", default="tucker,cp,tt,svd,qr,ttm")
    parser.add_argument("--layers", type=int, default=None, help="only the first N factorizable layers")
    parser.add_argument("--out", default="bench/results/decompose_time.json")
    args = parser.parse_args(argv)
    start = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = measure(args.methods.split(","), args.layers)
    command = "python -m bench.decompose_time " + " ".join(argv if argv is not None else sys.argv[1:])
    out = Path(args.out)
    record = json.loads(out.read_text()) if out.exists() else {"results": {}}
    here = label(machine())
    for method, r in results.items():  # one file for all methods; each row keeps the command that measured it
        record["results"][method] = {**r, "command": command.strip(), "date": start, "machine": here,
                                     "layer_limit": args.layers}
    note_machine(record)
    record["ranks"] = "1/8, 1/4, 1/2 of each maximum rank"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
