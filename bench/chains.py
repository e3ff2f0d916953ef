"""Per layer, a convolution or Dense layer against its factorized chains at fp32 and int8 on LiteRT (issue 14).

Where does factorization stop paying at int8? For each distinct convolution and Dense layer of a model (kernel,
channels, map size, stride; a count of the layers sharing it), the layer as it is and its chains are lowered alone
and timed through the build's own pricing path (``cost.latency.time_chains``: lowered as the pricer lowers
them, int8 calibrated on random inputs; runtime_bench on this machine, LiteRT, 2 threads, batch 1; random
inputs), every chain of one precision in one runtime_bench run, alternating. Chains: a k x k convolution as
Tucker-2 at a quarter and at an eighth of its channels (3 operators); a 1x1 convolution or a Dense layer as
SVD at a quarter and at an eighth of the smaller channel count (2 operators). Weights: the model's own (their values do not
change which kernels run).

``--runtime onnxruntime-cpu`` times both precisions too: since 2026-12-07 the pricer lowers an int8 target's
ONNX chains as int8 QDQ files (``cost.latency.lower_chain``; before, at fp32 whatever the precision, and rows
measured then have no int8 ONNX column).

Models: ``vgg`` (the ``make baselines`` VGG-style Fashion-MNIST model, 28x28x1) and ``resnet50-224``
(keras.applications ResNet50, weights=None, 224x224x3; the file ``bench.scale`` makes). Each row keeps
each candidate's fastest (``min_ms``, what the pricer stores) and median run; the table compares the layer
with its fastest chain. Results: ``bench/results/chains.json``.

    python -m bench.chains [--models vgg,resnet50-224] [--runtime litert]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from bench.machine import note_machine, stamp
from bench.results_file import update_json
from bench.scale import model_path

RESULTS = Path("bench/results/chains.json")
MODELS = ("vgg", "resnet50-224")
FRACTIONS = (4, 8)  # ranks: this fraction of the channels (a quarter, an eighth)
PRECISIONS = ("fp32", "int8")  # on either runtime, as the pricer lowers them (cost.latency.lower_chain)


def _candidates(geom) -> list[tuple[str, tuple[int, ...]]]:
    """(method, ranks) of the chains timed for one layer."""
    from lrfc.geometry import DenseGeometry

    if isinstance(geom, DenseGeometry) or geom.is_pointwise:
        narrow = min(geom.in_features, geom.out_features) if isinstance(geom, DenseGeometry) else min(geom.cin, geom.cout)
        return [("svd", (max(1, narrow // f),)) for f in FRACTIONS]
    return [("tucker", (max(1, geom.cin // f), max(1, geom.cout // f))) for f in FRACTIONS]


def _describe(geom) -> tuple[tuple, dict]:
    """A layer's key (layers that share it are timed once) and the row's geometry fields."""
    from lrfc.geometry import DenseGeometry

    if isinstance(geom, DenseGeometry):
        return (("dense", geom.in_features, geom.out_features, geom.tokens),
                {"kernel": "dense", "cin": geom.in_features, "cout": geom.out_features, "in_hw": [geom.tokens],
                 "strides": [1, 1]})
    return ((geom.kernel, geom.cin, geom.cout, geom.in_hw, geom.strides, geom.dilation, geom.padding),
            {"kernel": list(geom.kernel), "cin": geom.cin, "cout": geom.cout, "in_hw": list(geom.in_hw),
             "strides": list(geom.strides)})


def layer_chains(model_file: Path) -> list[dict]:
    """One entry per distinct factorizable layer: its geometry, how many layers share it, its chains to time."""
    from lrfc import decompose
    from lrfc.cost.latency import Chain
    from lrfc.frontend.catalogue import activation_of, describe_model, layer_weights
    from lrfc.frontend.load import load_flat
    from lrfc.geometry import ConvGeometry, DenseGeometry, chain_rank
    from lrfc.search.scoring import original_stage

    flat = load_flat(str(model_file), False)
    seen: dict[tuple, dict] = {}
    for info in describe_model(flat):
        geom = info.geometry
        if not isinstance(geom, (ConvGeometry, DenseGeometry)) or not info.methods:
            continue
        if isinstance(geom, DenseGeometry) and geom.tokens != 1:  # a dense layer over a sequence: not in CNN heads
            continue
        key, fields = _describe(geom)
        if key in seen:
            seen[key]["layers"] += 1
            continue
        layer = flat.get_layer(info.name)
        weights, act = layer_weights(layer), activation_of(layer)
        shape = (geom.in_features,) if isinstance(geom, DenseGeometry) else (*geom.in_hw, geom.cin)
        rank = chain_rank(geom)
        bias = () if weights.bias is None else (weights.bias,)
        original = original_stage(weights, geom)
        original = replace(original, weights=original.weights + bias, use_bias=bool(bias), activation=act)
        chains, chain_macs = {"layer": Chain(shape, [original], rank)}, {}
        for method, ranks in _candidates(geom):
            label = f"{method} {'x'.join(map(str, ranks))}"
            prepared = decompose.get(method).prepare(weights, geom)
            chains[label] = Chain(shape, decompose.chain_stages(method, prepared, ranks, geom, act), rank)
            chain_macs[label] = decompose.get(method).cost(geom, ranks).macs
        seen[key] = {"name": info.name, "layers": 1, **fields, "macs": geom.macs, "chains": chains,
                     "chain_macs": chain_macs}
    return list(seen.values())


def time_rows(rows: list[dict], runtime: str, precision: str, threads: int = 2) -> None:
    """Time every chain of ``rows`` at ``precision`` in one runtime_bench run; store ms under each row."""
    from lrfc.cost.devices import DeviceLink
    from lrfc.cost.latency import time_chains

    keys = [(i, k) for i, row in enumerate(rows) for k in row["chains"]]
    result = time_chains(DeviceLink(), runtime, precision, threads, [rows[i]["chains"][k] for i, k in keys])
    for (i, k), r in zip(keys, result["results"]):
        entry = rows[i].setdefault(precision, {})
        entry[k] = None if r is None else {"min_ms": round(r["min_ms"], 5), "p50_ms": round(r["p50_ms"], 5)}
    for j, why in result["refused"].items():
        i, k = keys[j]
        rows[i].setdefault("refused", {})[f"{precision} {k}"] = why


def main(argv=None) -> None:
    from lrfc.common.quiet import import_keras

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--runtime", default="litert", choices=("litert", "onnxruntime-cpu"))
    args = parser.parse_args(argv)
    models = args.models.split(",")
    if set(models) - set(MODELS):
        raise SystemExit(f"--models: unknown {', '.join(sorted(set(models) - set(MODELS)))}; choose from {', '.join(MODELS)}")
    import_keras()
    for name in models:
        start = time.perf_counter()
        rows = layer_chains(model_path(name))
        for precision in PRECISIONS:
            time_rows(rows, args.runtime, precision)
        for row in rows:
            row.pop("chains")
        record = {"rows": rows, "runtime": args.runtime, "threads": 2, "seconds": round(time.perf_counter() - start, 1),
                  "command": f"python -m bench.chains --models {name} --runtime {args.runtime}",
                  **stamp()}
        print(f"{name}: {len(rows)} distinct layers in {record['seconds']} s", flush=True)
        update_json(RESULTS, lambda doc: (doc.setdefault("runs", {}).__setitem__(f"{name}/{args.runtime}", record),
                                          note_machine(doc)))


if __name__ == "__main__":
    main()
