"""The GPU machine's half of ``bench.gpu``: weights drawn again, CUDA checked against CPU, each group timed.

Needs numpy, onnx and onnxruntime-gpu; never TensorFlow (nor lrfc). Writes
``OUT/gpu.json`` after every group, so a run cut short still returns what it
measured.

    python -m bench.gpu_device PACK OUT [--runtime onnxruntime-cuda] [--runs 300] [--groups vgg,...]

(``sh bench/gpu_device.sh PACK OUT ...`` puts the CUDA libraries on the library path first.)

``--runtime onnxruntime-cpu`` runs the same steps on any machine (a dry run of the pipeline, not a GPU figure).

The check runs one batch through the CUDA and the CPU provider on the same
weights (a softmax's logits compared too), and through a replayed CUDA graph. Timing is runtime_bench's
(``measure.bench``: a worker process per file, alternating rounds) on ``onnxruntime-cuda``, once per io mode
(``runners.IO_MODES``): ``host``, numpy in and out, each run copying the input to the GPU and the output back
as a caller holding numpy arrays pays; ``device``, inputs and outputs left on the GPU (IO binding: what the
network costs there); ``graph``, that and a CUDA graph replayed (one launch per run, as a latency deployment
runs and TensorRT does). TensorRT is tried too and, where it cannot start, the reason is recorded.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BATCHES = (1, 32, 256)  # latency at 1; throughput where a GPU's arithmetic, not its launches, sets the pace
IO = ("host", "device", "graph")  # runtime_bench's io modes, each timed at every batch
RUNS, WARMUP, ROUNDS = 300, 30, 6
CHECK_SAMPLES = 4
PROVIDERS = {"onnxruntime-cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
             "onnxruntime-cpu": ["CPUExecutionProvider"]}


def restore(src: Path, dst: Path, seed: int) -> int:
    """``src`` with each initializer the pack left behind drawn again (He-normal on its fan-in), saved whole as
    ``dst``; how many were drawn."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src), load_external_data=False)
    rng = np.random.default_rng(seed)
    drawn = 0
    for tensor in model.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        shape = tuple(tensor.dims)
        fan_in = math.prod(shape[1:]) if len(shape) > 2 else shape[0]  # conv OIHW; MatMul (in, out)
        dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type)
        values = (rng.standard_normal(shape) * math.sqrt(2.0 / max(fan_in, 1))).astype(dtype)
        tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
        drawn += 1
    onnx.save_model(model, str(dst))
    return drawn


def input_batch(session, batch: int, seed: int = 0) -> tuple[str, np.ndarray]:
    inp = session.get_inputs()[0]
    shape = [batch if i == 0 else d for i, d in enumerate(inp.shape)]
    if not all(isinstance(d, int) for d in shape):
        raise ValueError(f"{inp.name}: a dimension other than the batch is not fixed: {inp.shape}")
    return inp.name, np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def with_logits(path: Path) -> bytes:
    """The model with, where an output comes from a Softmax, that Softmax's input as one more output: drawn
    weights saturate a softmax (one class 1, the rest 0), which would hide any difference."""
    import onnx

    model = onnx.load(str(path))
    producers = {out: node for node in model.graph.node for out in node.output}
    for output in list(model.graph.output):
        node = producers.get(output.name)
        if node is not None and node.op_type == "Softmax":
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(node.input[0]))
    return model.SerializeToString()


def against_cpu(path: Path, providers: list[str]) -> dict:
    """One batch through ``providers`` and through the CPU provider alone, every output (a softmax's logits
    too): the largest difference (absolute, and relative to that output's largest magnitude on the CPU), top-1
    agreement of the first output, and the session's providers and their options."""
    import onnxruntime as ort

    model = with_logits(path)
    session = ort.InferenceSession(model, providers=providers)
    if session.get_providers()[0] != providers[0]:  # ORT falls back to the CPU silently
        raise RuntimeError(f"{path}: {providers[0]} did not start (the session runs on {session.get_providers()})")
    cpu = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    name, x = input_batch(cpu, CHECK_SAMPLES)
    got, want = session.run(None, {name: x}), cpu.run(None, {name: x})
    diffs = [float(np.abs(a - b).max()) for a, b in zip(got, want)]
    relative = [d / max(float(np.abs(b).max()), 1e-12) for d, b in zip(diffs, want)]
    a, b = got[0], want[0]
    options = session.get_provider_options().get(providers[0], {})
    return {"providers": session.get_providers(), "outputs": len(got), "max_abs_diff": max(diffs),
            "relative": max(relative),
            "top1_agreement": float((a.reshape(len(a), -1).argmax(1) == b.reshape(len(b), -1).argmax(1)).mean()),
            "options": {k: options[k] for k in ("use_tf32", "cudnn_conv_algo_search", "device_id") if k in options}}


def placed_against_numpy(path: Path, runtime: str, io: str) -> dict:
    """The first output of a run placed as ``io`` says (a CUDA graph replayed, on ``graph``), after three runs,
    against a numpy run of the same session kind: the largest difference relative to the output's largest
    magnitude; or why that io mode did not start."""
    from runtime_bench.runners import get_runner, random_feeds

    try:
        session = get_runner(runtime).load(str(path), batch=CHECK_SAMPLES, io=io)
        feeds = random_feeds(session.inputs, seed=1)
        placed = session.place(feeds)
        for _ in range(3):  # ONNX Runtime captures the graph after its first runs, then replays it
            session.run(placed)
    except Exception as exc:  # noqa: BLE001 - the mode not starting is the answer
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}
    import onnxruntime as ort

    got = placed[0].get_outputs()[0].numpy()
    plain = ort.InferenceSession(str(path), providers=PROVIDERS[runtime])
    want = plain.run(None, dict(zip([name for name, _, _ in session.inputs], feeds)))[0]
    return {"relative": float(np.abs(got - want).max() / max(float(np.abs(want).max()), 1e-12))}


def tensorrt_status(path: Path) -> str | None:
    """None when the TensorRT provider starts on ``path``, else why not (its libraries, or ORT's own words)."""
    import ctypes

    try:
        ctypes.CDLL("libnvinfer.so.10")
    except OSError as exc:
        return f"TensorRT's library is not on this machine ({exc})"
    from runtime_bench.runners import get_runner

    runner = get_runner("onnxruntime-tensorrt")
    try:
        runner.load(str(path), threads=None)
    except Exception as exc:  # noqa: BLE001 - any failure to start is the answer
        return f"{type(exc).__name__}: {exc}"
    return None


def machine() -> dict:
    import onnx
    import onnxruntime as ort

    from runtime_bench.device import cpu_name, vector_isa

    gpu = _smi("name,driver_version,memory.total")
    info = getattr(ort.capi, "build_and_package_info", None)
    return {"gpu": gpu, "cpu": cpu_name(), "isa": vector_isa(), "cores": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__,
            "versions": {"onnxruntime-gpu": ort.__version__, "onnx": onnx.__version__,
                         "cuda (onnxruntime build)": getattr(info, "cuda_version", None)}}


def _smi(fields: str) -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pack", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--runtime", default="onnxruntime-cuda")
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--groups", help="comma list of the pack's groups to run (default: all)")
    args = parser.parse_args(argv)
    pack, out = args.pack, args.out
    import onnxruntime as ort

    from runtime_bench.device import fingerprint
    from runtime_bench.measure import bench
    from runtime_bench.runners import get_runner

    if args.runtime not in PROVIDERS:
        parser.error(f"--runtime: one of {', '.join(PROVIDERS)}")
    providers = PROVIDERS[args.runtime]
    modes = [m for m in IO if m in get_runner(args.runtime).io_modes]  # host first

    manifest = json.loads((pack / "manifest.json").read_text())
    if args.groups:
        wanted = args.groups.split(",")
        if set(wanted) - set(manifest["groups"]):
            parser.error(f"--groups: the pack has {', '.join(manifest['groups'])}")
        manifest["groups"] = {g: manifest["groups"][g] for g in wanted}
    work = Path(tempfile.mkdtemp(prefix="lrfc-gpu-"))
    try:
        record = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  "command": f"python -m bench.gpu_device {pack} OUT --runtime {args.runtime} --runs {args.runs}"
                             + (f" --groups {args.groups}" if args.groups else ""),
                  "machine": machine(), "runtime": args.runtime, "device": fingerprint(args.runtime),
                  "providers": ort.get_available_providers(),
                  "timing": {"runs": args.runs, "warmup": WARMUP, "rounds": ROUNDS, "batches": list(BATCHES),
                             "io": modes},
                  "tensorrt": None, "groups": {}}
        out.mkdir(parents=True, exist_ok=True)
        for seed, (group, entry) in enumerate(manifest["groups"].items()):
            files = {}
            row = {"files": {}, "check": {}, "batches": {}}
            for role, e in entry.items():
                files[role] = work / e["file"]
                drawn = restore(pack / e["file"], files[role], seed)
                kept = {k: e.get(k) for k in ("source", "source_bytes", "macs", "operators")}
                row["files"][role] = {**kept, "weights_drawn": drawn}
                row["check"][role] = against_cpu(files[role], providers)
                for io in modes[1:]:
                    row["check"][role][io] = placed_against_numpy(files[role], args.runtime, io)
            if record["tensorrt"] is None:
                record["tensorrt"] = tensorrt_status(files["original"]) or "started"
            for io in modes:
                timed = row["batches"] if io == "host" else row.setdefault("io", {}).setdefault(io, {})
                for batch in BATCHES:
                    try:
                        report = bench([str(p) for p in files.values()], runtime=args.runtime, runs=args.runs,
                                       warmup=WARMUP, rounds=ROUNDS, batch=batch, io=io)
                    except (ValueError, RuntimeError) as exc:  # a mode that does not start on this group: say why
                        if io == "host":  # the plain way failing is a failure of the run
                            raise
                        row.setdefault("io_errors", {})[io] = str(exc).splitlines()[0][:500]
                        print(group, io, "failed:", row["io_errors"][io], flush=True)
                        break
                    timed[str(batch)] = {role: {k: r[k] for k in ("p50_ms", "p90_ms", "p99_ms", "throughput_ips",
                                                                 "peak_rss_mb", "file_bytes")}
                                         for role, r in zip(files, report["results"])}
                    print(group, io, batch, {role: r["p50_ms"] for role, r in timed[str(batch)].items()}, flush=True)
            record["groups"][group] = row
            (out / "gpu.json").write_text(json.dumps(record, indent=2) + "\n")
        if (pack / "probe" / "probe.json").is_file() and not args.groups:
            record["probe"] = run_probe(pack / "probe", work / "probe", out, args.runtime)
            (out / "gpu.json").write_text(json.dumps(record, indent=2) + "\n")
    finally:  # the restored files are the pack's again: nothing of them stays behind
        shutil.rmtree(work, ignore_errors=True)
    return 0


def run_probe(src: Path, work: Path, out: Path, runtime: str) -> dict:
    """``lrfc profiles probe --export``'s models, weights drawn again, timed by the command its manifest names
    (run in their folder, as a user runs it on a board; on ``runtime``, the dry run's in place of the
    manifest's); ``OUT/probe-results.json`` is what comes back."""

    work.mkdir()
    for path in src.iterdir():
        if path.suffix == ".onnx":
            restore(path, work / path.name, 0)
        else:
            shutil.copy(path, work / path.name)
    manifest = json.loads((work / "probe.json").read_text())
    command = manifest["command"].replace(f"--runtime {manifest['runtime']} ", f"--runtime {runtime} ")
    start = time.perf_counter()
    subprocess.run(command, shell=True, cwd=work, check=True)
    shutil.copy(work / "results.json", out / "probe-results.json")
    print(f"probe: {time.perf_counter() - start:.0f} s", flush=True)
    return {"command": command, "seconds": round(time.perf_counter() - start, 1)}


if __name__ == "__main__":
    sys.exit(main())
