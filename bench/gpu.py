"""ONNX Runtime on an NVIDIA GPU (issue 14): lrfc's ONNX files, the original beside the compressed, on CUDA.

The GPU sits on another machine, one with no TensorFlow, so this runs in three steps:

    python -m bench.gpu pack [--out .gpu] [--groups G,...]  here: each group's files and a manifest (builds what
                                                            is missing)
    sh bench/gpu_device.sh .gpu OUT                         there: numpy, onnx and onnxruntime-gpu, no TensorFlow
                                                            (the CUDA libraries found, then bench/gpu_device.py)
    python -m bench.gpu collect OUT/gpu.json                here: into bench/results/gpu.json; then bench.render

Groups, each timed in one runtime_bench run (alternating rounds) at each of ``gpu_device.BATCHES``:

* ``vgg``            the Fashion-MNIST VGG-style original and lrfc's fp32 models from ``bench.speed``'s
                     ``vgg/latency`` and ``vgg/flops`` rows (``lrfc build --max-acc-drop 1.0 --target host``:
                     plans chosen for this CPU, not for the GPU);
* ``resnet50-plan``  keras.applications ResNet50 at 224x224x3 (weights=None) and ``bench.latency``'s
                     quarter-rank plan of it (``--plan``, no fine-tuning);
* ``vgg-plan``       the Fashion-MNIST VGG-style original at the same kind of quarter-rank plan (no fine-tuning:
                     its accuracy is not the point, only how its chains run on the GPU);
* ``vgg-h200``       the VGG-style budget build for this GPU: ``lrfc build --target nvidia-h200`` with the
                     measured profile below and no device at hand, so every price is a roofline estimate that pays
                     the measured per-operator overhead (``H200_COMMAND``);

and ``lrfc profiles probe --target nvidia-h200 --runtime onnxruntime-cuda --export``: the probe's models, timed
there by the command the export names; ``collect`` imports the result (``--import``) into
``profiles/nvidia-h200.toml``, whose peak, bandwidth, per-operator overhead and channel multiple then say
"measured on" that GPU.

Weights: an initializer over ``STRIP_BYTES`` leaves the pack as its name, shape and dtype (ONNX external data
whose file stays behind) and the device draws it again (He-normal, seeded). Latency does not depend on the
values, ResNet50's are random anyway (weights=None), and the pack has to travel beside onnxruntime-gpu in
the device tool's 64 MiB. The device checks each file's CUDA outputs against the CPU provider's on the
same weights, so a file that the CUDA provider runs wrongly shows up.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from bench.results_file import put_row, update_json

RESULTS = Path("bench/results/gpu.json")
SPEED = Path("bench/work/speed")
LATENCY = Path("bench/work/latency")
STRIP_BYTES = 16 * 1024  # initializers above this travel as shape only
PROBE_TARGET = "nvidia-h200"
PROFILE = Path("profiles/nvidia-h200.toml")
PROBE_WORK = Path("bench/work/gpu-probe")
H200_BUILD = Path("bench/work/gpu-build/vgg-h200")
# the VGG-style budget build for the GPU, priced by the measured profile's estimates (no device at hand)
H200_COMMAND = ["build", "models/vgg.keras", "--target", PROBE_TARGET, "--data", "fashion-mnist", "--max-acc-drop",
                "1.0", "--formats", "onnx", "--out", str(H200_BUILD), "--json"]


def groups() -> dict[str, dict[str, Path]]:
    """Each group's files by role, the original first."""
    return {
        "vgg": {"original": SPEED / "vgg-latency" / "original.onnx", "latency": SPEED / "vgg-latency" / "model.onnx",
                "flops": SPEED / "vgg-flops" / "model.onnx"},
        "resnet50-plan": {"original": LATENCY / "resnet50-plan" / "original.onnx",
                          "plan": LATENCY / "resnet50-plan" / "model.onnx"},
        "vgg-plan": {"original": LATENCY / "vgg-plan" / "original.onnx", "plan": LATENCY / "vgg-plan" / "model.onnx"},
        "vgg-h200": {"original": H200_BUILD / "original.onnx", "h200": H200_BUILD / "model.onnx"},
    }


def build_missing(files: dict[str, Path], group: str) -> str | None:
    """Build a group whose files are missing: ResNet50's plan and the GPU build here; the VGG-style CPU rows are
    bench.speed's (what to run is returned)."""
    if all(p.is_file() for p in files.values()):
        return None
    if group == "vgg":
        return ("vgg: run `python -m bench.speed --models vgg --rows latency,flops` first "
                f"(missing: {', '.join(str(p) for p in files.values() if not p.is_file())})")
    if group == "vgg-h200":
        from bench.latency import lrfc

        report = json.loads(lrfc(*H200_COMMAND))
        (H200_BUILD.parent / "vgg-h200.json").write_text(json.dumps(report, indent=2) + "\n")
        return None
    from bench.latency import _apps_model, _build, _fixed_plan, _small_data

    if group == "vgg-plan":
        vgg = Path("models/vgg.keras")
        if not vgg.is_file():
            return "vgg-plan: models/vgg.keras is missing (`make baselines`)"
        # a plan without fine-tuning misses any accuracy budget, and the contract would publish the original
        _build("vgg-plan", vgg, ["--data", "fashion-mnist", "--finetune", "none", "--calib-samples", "32",
                                 "--plan", str(_fixed_plan(vgg, 0.25)), "--formats", "onnx", "--max-acc-drop", "100"],
               runs=0)
        return None
    model = _apps_model("resnet50")
    plan = _fixed_plan(model, 0.25)
    _build("resnet50-plan", model, ["--data", str(_small_data()), "--finetune", "none", "--calib-samples", "32",
                                    "--plan", str(plan), "--formats", "onnx", "--allow-low-accuracy"], runs=0)
    return None


def strip(src: Path, dst: Path) -> list[str]:
    """``src`` written to ``dst`` with every initializer over ``STRIP_BYTES`` as external data left behind;
    the stripped initializers' names."""
    import onnx
    from onnx.external_data_helper import convert_model_to_external_data

    model = onnx.load(str(src))
    big = [t.name for t in model.graph.initializer if len(t.raw_data) > STRIP_BYTES]
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location=dst.name + ".data",
                                   size_threshold=STRIP_BYTES)
    onnx.save_model(model, str(dst))
    (dst.parent / (dst.name + ".data")).unlink(missing_ok=True)  # what stays behind
    return big


def _operators(path: Path) -> dict[str, int]:
    """The file's node count per operator type (what a runtime launches, before its own fusions)."""
    import collections

    import onnx

    return dict(collections.Counter(node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node))


def _macs(path: Path) -> int | None:
    """The MACs its build's report.json gives the file (``original.onnx``: the original's), else None."""
    report = path.parent / "report.json"
    if not report.is_file():
        return None
    side = json.loads(report.read_text())["original" if path.stem == "original" else "compressed"]
    return side.get("macs")


def pack_probe(out: Path) -> None:
    """The probe's export for the GPU, each model through ``strip``."""
    from bench.latency import lrfc

    if PROBE_WORK.exists():
        shutil.rmtree(PROBE_WORK)
    lrfc("profiles", "probe", "--target", PROBE_TARGET, "--runtime", "onnxruntime-cuda", "--precisions", "fp32",
         "--export", str(PROBE_WORK))
    out.mkdir()
    for path in PROBE_WORK.iterdir():
        if path.suffix == ".onnx":
            strip(path, out / path.name)
        else:
            shutil.copy(path, out / path.name)


def pack(out: Path, only: list[str] | None = None, probe: bool = True) -> dict:
    chosen = {g: f for g, f in groups().items() if not only or g in only}
    missing = [why for group, files in chosen.items() if (why := build_missing(files, group))]
    if missing:
        raise SystemExit("; ".join(missing))
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    manifest = {"groups": {}}
    for group, files in chosen.items():
        entry = {}
        for role, path in files.items():
            name = f"{group}-{role}.onnx"
            stripped = strip(path, out / name)
            entry[role] = {"file": name, "source": str(path), "source_bytes": path.stat().st_size,
                           "stripped": len(stripped), "macs": _macs(path), "operators": _operators(out / name)}
        manifest["groups"][group] = entry
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if probe:
        pack_probe(out / "probe")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"packed {sum(len(g) for g in manifest['groups'].values())} files, {total / 2 ** 20:.2f} MiB, in {out}")
    return manifest


def collect(path: Path) -> None:
    """The device's gpu.json into bench/results/gpu.json, one row per group (a row from another GPU kept)."""
    record = json.loads(path.read_text())

    gpu = (record["machine"].get("gpu") or "GPU ?").split(",")[0]  # "NVIDIA H200, <driver>, <memory>"

    def change(results: dict) -> None:
        for key in ("device", "providers", "tensorrt", "command", "timing", "machine"):
            results[key] = record[key]
        results.setdefault("machines", {})[gpu] = record["machine"]
        for group, row in record["groups"].items():
            put_row(results.setdefault("groups", {}), group, {**row, "machine": gpu, "date": record["date"]})

    update_json(RESULTS, change)
    print(f"wrote {RESULTS}")
    results = path.parent / "probe-results.json"
    if results.is_file():
        import_device_probe(results, record["date"])


def import_device_probe(results: Path, date: str) -> None:
    """The device's probe results into ``PROBE_WORK`` (beside the export's manifest) and ``lrfc profiles probe
    --import`` into ``PROFILE``; the figures into bench/results/gpu.json."""
    from bench.latency import lrfc

    shutil.copy(results, PROBE_WORK / "results.json")
    command = ["profiles", "probe", "--target", PROBE_TARGET, "--import", str(PROBE_WORK), "--out", str(PROFILE),
               "--json"]
    measured = json.loads(lrfc(*command))
    measured.pop("sweep_ms", None)

    def change(doc: dict) -> None:
        doc["probe"] = {**measured, "command": "lrfc " + " ".join(command[:-1]), "date": date}

    update_json(RESULTS, change)
    print(f"wrote {PROFILE}: fp32 {measured['peak_gops']['fp32']} GFLOP/s, {measured['bandwidth_gbps']} GB/s, "
          f"{measured['op_overhead_us']} us per operator, channel multiple {measured['multiples']['fp32']}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("pack", help="write the files the device times, and their manifest")
    p.add_argument("--out", type=Path, default=Path(".gpu"))
    p.add_argument("--groups", help=f"comma list of {', '.join(groups())} (default: all)")
    p.add_argument("--no-probe", action="store_true", help="leave the probe out")
    c = sub.add_parser("collect", help="merge the device's gpu.json into bench/results/gpu.json")
    c.add_argument("path", type=Path)
    args = parser.parse_args(argv)
    if args.step == "pack":
        only = args.groups.split(",") if args.groups else None
        if only and set(only) - set(groups()):
            parser.error(f"--groups: choose from {', '.join(groups())}")
        pack(args.out, only, probe=not args.no_probe)
    else:
        collect(args.path)


if __name__ == "__main__":
    main()
