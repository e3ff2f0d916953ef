"""docs/BENCHMARKS.md's per-layer table: a layer against its chains at fp32 and int8 (bench/results/chains.json)."""

from __future__ import annotations

from bench.render_common import machine_line, machine_of
from bench.render_speed import RUNTIMES


def _fastest(timed: dict) -> tuple[str, float] | None:
    """The fastest chain (name, min ms) of one precision's timings, the layer itself left out."""
    chains = [(k, v["min_ms"]) for k, v in timed.items() if k != "layer" and v]
    return min(chains, key=lambda kv: kv[1]) if chains else None


def summary(rows: list[dict], precision: str) -> dict:
    """Per-layer sums (each distinct layer times its count): the layers as they are, each as its fastest chain, and
    each as the faster of the two (what a plan that keeps a layer wherever its chain loses can reach at these ranks);
    the layers whose chain wins and loses."""
    layer = chain = either = 0.0
    wins, losses = [], []
    for r in rows:
        timed = r.get(precision) or {}
        best = _fastest(timed)
        if not timed.get("layer") or best is None:
            continue
        layer += r["layers"] * timed["layer"]["min_ms"]
        chain += r["layers"] * best[1]
        either += r["layers"] * min(best[1], timed["layer"]["min_ms"])
        (wins if best[1] < timed["layer"]["min_ms"] else losses).append(r)
    return {"layer_ms": layer, "chain_ms": chain, "either_ms": either, "wins": wins, "losses": losses}


def _narrow_side(rows: list[dict]) -> str:
    """The range of the layers' smaller channel counts: "32" or "32-64"."""
    sides = sorted({min(r["cin"], r["cout"]) for r in rows})
    return str(sides[0]) if len(sides) == 1 else f"{sides[0]}-{sides[-1]}"


def chains(record: dict) -> list[str]:
    runs = record.get("runs") or {}
    if not runs:
        return []
    lines = ["## A layer against its factorized chains, at fp32 and int8", "",
             f"Machine: {machine_line(record)}.",
             "Each distinct convolution and Dense layer of a model, lowered alone as it is and as its chains (Tucker-2 "
             "for a k x k layer at a quarter and an eighth of its channels, 3 operators; SVD for a 1x1 or Dense layer "
             "at a quarter and an eighth, 2 operators), timed through the build's own pricing path (LiteRT, 2 threads, batch 1, random "
             "inputs, int8 calibrated on random inputs; ONNX Runtime at fp32 only; the fastest of each candidate's runs, as the pricer stores "
             "it). 'x' = the layer's time / its fastest chain's (above 1: the chain wins). The per-layer sums "
             "weigh each distinct layer by how many layers share it; they leave out everything that is not a "
             "factorizable layer (pooling, batch norm, activations, adds).", ""]
    for key, run in runs.items():
        rows = run["rows"]
        lines += [f"### {key.split('/')[0]} on {RUNTIMES.get(run['runtime'], run['runtime'])}, {machine_of(run)}", "",
                  "| layer | kernel | channels | map | layers | MACs | fp32 layer ms | fp32 fastest chain | fp32 x | "
                  "int8 layer ms | int8 fastest chain | int8 x | int8 / fp32 of the layer |",
                  "|---|---|---|---|---:|---:|---:|---|---:|---:|---|---:|---:|"]
        for r in rows:
            cells = []
            for precision in ("fp32", "int8"):
                timed = r.get(precision) or {}
                best, own = _fastest(timed), timed.get("layer")
                if own and best:
                    cells += [f"{own['min_ms']:.4f}", f"{best[0]}: {best[1]:.4f}", f"{own['min_ms'] / best[1]:.2f}"]
                else:
                    cells += ["-", "-", "-"]
            fp, i8 = (r.get("fp32") or {}).get("layer"), (r.get("int8") or {}).get("layer")
            ratio = f"{i8['min_ms'] / fp['min_ms']:.2f}" if fp and i8 else "-"
            dense = r["kernel"] == "dense"
            kernel = "dense" if dense else "x".join(map(str, r["kernel"])) + (f"/{r['strides'][0]}" if r["strides"][0] > 1 else "")
            lines.append(f"| {r['name']} | {kernel} | {r['cin']} -> {r['cout']} | "
                         f"{'-' if dense else 'x'.join(map(str, r['in_hw']))} | {r['layers']} | {r['macs']:,} | "
                         f"{' | '.join(cells)} | {ratio} |")
        lines.append("")
        for precision in ("fp32", "int8"):
            s = summary(rows, precision)
            if not s["layer_ms"]:
                continue
            text = (f"- {precision}: per-layer sum {s['layer_ms']:.3f} ms as they are, {s['chain_ms']:.3f} ms with "
                    f"each layer's fastest chain ({s['layer_ms'] / s['chain_ms']:.2f}x); the chain wins on "
                    f"{len(s['wins'])} of {len(s['wins']) + len(s['losses'])} distinct layers")
            if s["wins"] and s["losses"]:
                text += (f" (it wins where the layer's narrower side has {_narrow_side(s['wins'])} channels, "
                         f"loses where it has {_narrow_side(s['losses'])})")
            lines.append(text + f"; each layer as the faster of the two, {s['either_ms']:.3f} ms "
                                f"({s['layer_ms'] / s['either_ms']:.2f}x).")
        lines += [f"- Command: `{run['command']}` ({run['date']}, {run['seconds']} s).", ""]
    return lines
