"""runtime_bench: real models in real runtimes, real worker processes, real peak memory.

ONNX models are written with ``onnx.helper`` (no TensorFlow); the TFLite
model comes from a tiny Keras model through ``lrfc.lower.tflite``. Only the
tests import TensorFlow: runtime_bench itself must not (checked in a clean
interpreter).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from runtime_bench.device import fingerprint
from runtime_bench.measure import _schedule, bench, cores_note, format_table
from runtime_bench.runners import RUNNERS, UnavailableError, get_runner, random_feeds, runtime_for

RESULT_KEYS = {"path", "name", "runtime", "runtime_version", "threads", "batch", "runs", "warmup", "rounds",
               "p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "throughput_ips", "peak_rss_mb", "load_rss_mb",
               "file_bytes", "inputs", "device_id", "lifetimes", "io", "rounds_far", "cores_far", "core_round_trip_us"}
FAST = dict(runs=6, warmup=1, rounds=2)


def write_onnx(path, hidden: int = 10, input_shape=("N", 3, 16, 16)):
    """Conv(3→8, 3x3, same) + Relu + Flatten + Gemm(→hidden); the Gemm weight sets the file size."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    conv = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "conv_w")
    gemm = numpy_helper.from_array(rng.standard_normal((8 * 16 * 16, hidden)).astype(np.float32), "gemm_w")
    nodes = [helper.make_node("Conv", ["input", "conv_w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("Gemm", ["f", "gemm_w"], ["out"])]
    graph = helper.make_graph(nodes, "conv_gemm", [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(input_shape))],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [input_shape[0], hidden])],
                              [conv, gemm])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


@pytest.fixture(scope="session")
def onnx_models(tmp_path_factory):
    """A small (80 KB) and a big (64 MB of Gemm weights) model of the same graph."""
    d = tmp_path_factory.mktemp("onnx")
    return write_onnx(d / "small.onnx"), write_onnx(d / "big.onnx", hidden=8192)


@pytest.fixture(scope="session")
def tflite_model(tmp_path_factory, keras):
    from lrfc.lower.tflite import export_tflite

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(x))
    path = tmp_path_factory.mktemp("tflite") / "tiny.tflite"
    export_tflite(keras.Model(inputs, outputs), path)
    return str(path)


def _children() -> set[int]:
    """Child processes of this test process, zombies included (they were not reaped).

    Compare before/after: a session fixture (the sshd of test_remote) may own one.
    """
    me, found = os.getpid(), set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status") as f:
                if f"\nPPid:\t{me}\n" in f.read():
                    found.add(int(pid))
        except OSError:
            pass
    return found


# ------------------------------------------------------------------ registry


def test_schedule_alternates_the_order_every_round():
    assert _schedule(3, 4) == [[0, 1, 2], [2, 1, 0], [0, 1, 2], [2, 1, 0]]
    assert _schedule(1, 2) == [[0], [0]]


def test_registry_names_and_default_runtimes():
    assert set(RUNNERS) == {"litert", "onnxruntime-cpu", "onnxruntime-cuda", "onnxruntime-tensorrt"}
    assert runtime_for("m.tflite") == "litert" and runtime_for("dir/M.ONNX") == "onnxruntime-cpu"
    with pytest.raises(ValueError, match=r"m\.pb.*\.tflite or \.onnx"):
        runtime_for("m.pb")
    with pytest.raises(ValueError, match="unknown runtime 'tvm'.*litert, onnxruntime-cpu, onnxruntime-cuda"):
        get_runner("tvm")
    assert RUNNERS["litert"].available() is None and RUNNERS["onnxruntime-cpu"].available() is None
    assert RUNNERS["onnxruntime-cpu"].version().count(".") >= 1


def test_gpu_runners_say_why_they_are_unavailable(onnx_models):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA")
    reason = RUNNERS["onnxruntime-cuda"].available()
    assert reason and "CUDAExecutionProvider" in reason
    assert "TensorrtExecutionProvider" in RUNNERS["onnxruntime-tensorrt"].available()
    with pytest.raises(UnavailableError, match="onnxruntime-cuda is unavailable"):
        bench([onnx_models[0]], runtime="onnxruntime-cuda")


def test_random_feeds_follow_dtype_and_seed():
    inputs = [("f", (2, 3), np.dtype(np.float32)), ("q", (4096,), np.dtype(np.int8)), ("u", (4096,), np.dtype(np.uint8))]
    f, q, u = random_feeds(inputs)
    assert f.dtype == np.float32 and f.shape == (2, 3) and 0 <= f.min() and f.max() < 1
    assert q.dtype == np.int8 and q.min() == -128 and q.max() == 127
    assert u.dtype == np.uint8 and u.min() == 0 and u.max() == 255
    assert np.array_equal(random_feeds(inputs)[0], f)


def test_fingerprint_id_is_the_hash_of_hardware_and_runtime():
    fp = fingerprint("onnxruntime-cpu")
    assert fp["cores"] == os.cpu_count() and fp["cpu"] and fp["machine"] and fp["runtime"] == "onnxruntime-cpu"
    keyed = {k: fp[k] for k in ("cpu", "isa", "cores", "machine", "runtime", "runtime_version") if fp[k]}
    assert fp["isa"] in ("AVX-512 VNNI", "AVX-512", "AVX-VNNI", "AVX2", "")  # this machine: "AVX2"
    expected = hashlib.sha256(json.dumps(keyed, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
    assert fp["id"] == expected and fingerprint("onnxruntime-cpu")["id"] == expected
    assert fingerprint("litert")["id"] != expected


def test_the_isa_names_vnni_wherever_onnx_runtime_runs_its_int8_kernels_on_it():
    from runtime_bench.device import isa_from_flags

    base = {"sse4_2", "avx", "fma", "avx2"}
    assert isa_from_flags(base) == "AVX2"                                   # AMD Zen 2/3: VPMADDUBSW
    assert isa_from_flags(base | {"avx_vnni"}) == "AVX-VNNI"                # Alder Lake and later client parts
    assert isa_from_flags(base | {"avx512f", "avx512bw"}) == "AVX-512"       # Skylake-SP: MLAS's AVX-512 core kernel
    assert isa_from_flags(base | {"avx512f", "avx_vnni"}) == "AVX-512"       # that kernel wins over AVX-VNNI in MLAS
    assert isa_from_flags(base | {"avx512f", "avx512_vnni", "avx_vnni"}) == "AVX-512 VNNI"
    assert isa_from_flags({"sse4_2", "avx"}) == isa_from_flags(set()) == ""


# ---------------------------------------------------------------- measuring


def _kept(r, runs: int, rounds: int) -> bool:
    """``runs`` timed in ``rounds``; where some rounds ran with the cores far apart, whole rounds of them
    (``measure._timed_rounds`` leaves those out where others were near)."""
    per = math.ceil(runs / rounds)
    if r["rounds_far"] == 0:  # no probe, no probe answer, or every round near: all rounds kept
        return r["runs"] == per * rounds and r["cores_far"] is False
    # some round ran far (a probe around it answered; under load, the probes around the rounds kept may not have)
    return r["runs"] % per == 0 and per <= r["runs"] <= per * rounds


def _check_throughput(r):
    """throughput = batch * 1000 / mean, within the rounding of both to 4 decimals (each is rounded on its own)."""
    high, low = (r["batch"] * 1000 / (r["mean_ms"] + d) for d in (-5e-5, 5e-5))
    assert low - 5e-5 <= r["throughput_ips"] <= high + 5e-5, r


def test_throughput_check_allows_for_both_roundings():
    """The case that failed under load: mean_ms rounded to 19.0364 and throughput to 52.5311 (bound 52.531078)."""
    _check_throughput({"batch": 1, "mean_ms": 19.0364, "throughput_ips": 52.5311})
    with pytest.raises(AssertionError):
        _check_throughput({"batch": 1, "mean_ms": 19.0364, "throughput_ips": 52.54})


def test_bench_onnx_fields_percentiles_and_per_artifact_memory(onnx_models):
    small, big = onnx_models
    before = _children()
    report = bench([small, big], runs=10, warmup=2, rounds=2)
    assert report["device"]["runtime"] == "onnxruntime-cpu" and len(report["device"]["id"]) == 16
    a, b = report["results"]
    for r, path in ((a, small), (b, big)):
        assert set(r) == RESULT_KEYS
        assert r["path"] == path and r["name"] == os.path.basename(path) and r["runtime"] == "onnxruntime-cpu"
        assert _kept(r, 10, 2) and r["warmup"] == 2 and r["rounds"] == 2 and r["batch"] == 1 and r["threads"] is None
        assert r["min_ms"] > 0
        _check_throughput(r)
        assert isinstance(r["peak_rss_mb"], float) and r["peak_rss_mb"] > r["load_rss_mb"] > 20
        assert r["file_bytes"] == os.path.getsize(path)
        assert r["inputs"] == [{"name": "input", "shape": [1, 3, 16, 16], "dtype": "float32"}]
    # 64 MB of weights: its own worker, its own peak. And the timings are of the files: the big one does ~200x the
    # MACs, so even on a loaded machine its fastest run is far slower than the small one's.
    assert b["peak_rss_mb"] - a["peak_rss_mb"] > 50, (a["peak_rss_mb"], b["peak_rss_mb"])
    assert b["min_ms"] > 5 * a["min_ms"], (a["min_ms"], b["min_ms"])
    assert "small.onnx" in format_table(report) and "big.onnx" in format_table(report)
    assert _children() <= before


def test_peak_memory_is_the_workers_not_the_callers(onnx_models):
    """A worker's wait4 ru_maxrss includes the caller's RSS at spawn; the reported peak must not."""
    ballast = np.ones(400 * 2**20 // 8)  # 400 MiB resident in this process
    r = bench([onnx_models[0]], **FAST)["results"][0]
    assert ballast[-1] == 1 and r["peak_rss_mb"] < 300, r["peak_rss_mb"]


def test_bench_without_memory_shares_one_worker(onnx_models):
    report = bench(list(onnx_models), runs=7, warmup=0, rounds=3, memory=False)
    for r in report["results"]:
        assert r["peak_rss_mb"] is None and r["load_rss_mb"] is None
        assert r["runs"] == 3 * math.ceil(7 / 3) and r["rounds"] == 3


def test_a_turn_is_timed_after_its_warm_up_and_a_worker_per_file_warms_longer(onnx_models, monkeypatch):
    """A turn runs untimed inferences for the worker's warm-up first (100 ms with a worker per file: another
    worker's ONNX Runtime threads spin for about 38 ms after its turn, and this one's spread over the cores
    only after that; 10 ms at one thread, or where many micro-benchmarks share one worker), then the timed ones."""
    import time

    from runtime_bench import measure, worker

    session = get_runner("onnxruntime-cpu").load(onnx_models[0], 1)
    feeds = session.place(random_feeds(session.inputs))
    calls = []

    class Counting:
        def run(self, x):
            calls.append(time.perf_counter())
            session.run(x)

    start = time.perf_counter()
    assert len(worker._timed(Counting(), feeds, 5, 0.05)) == 5
    assert time.perf_counter() - start >= 0.05 + worker.TURN_PAUSE_S and len(calls) > 6
    assert calls[-5] - start >= 0.05 + worker.TURN_PAUSE_S  # the five timed runs came after the pause and warm-up
    calls.clear()
    assert len(worker._timed(Counting(), feeds, 5, 0.0)) == 5 and len(calls) == 6  # one untimed run at least
    warmed = []

    class Recording(measure._Worker):
        def __init__(self, *args, warm_ms, **kwargs):
            warmed.append(warm_ms)
            super().__init__(*args, warm_ms=warm_ms, **kwargs)
            assert self.proc.args[self.proc.args.index("--warm-ms") + 1] == f"{warm_ms:g}"

    monkeypatch.setattr(measure, "_Worker", Recording)
    bench(list(onnx_models), runs=2, warmup=0, rounds=1, threads=2)
    bench(list(onnx_models), runs=2, warmup=0, rounds=1, memory=False)
    bench([onnx_models[0]], runs=2, warmup=0, rounds=1, threads=1)  # one thread: nothing to spread
    assert warmed == [measure.WARM_MS] * 2 + [measure.WARM_MS_SHARED] * 2 == [100.0, 100.0, 10.0, 10.0]


def test_bench_tflite_at_batch_2_with_threads(tflite_model):
    report = bench([tflite_model], batch=2, threads=1, **FAST)
    r = report["results"][0]
    assert report["device"]["runtime"] == "litert" and r["runtime"] == "litert" and r["threads"] == 1
    assert r["inputs"][0]["shape"] == [2, 8, 8, 3] and r["inputs"][0]["dtype"] == "float32"
    _check_throughput(r)
    assert r["peak_rss_mb"] > r["load_rss_mb"] > 20


def test_a_thread_sweep_times_every_file_at_each_count_in_one_run(onnx_models, tflite_model):
    """``threads=[1, 2]``: a row per file and count, a file's counts together, each its own worker (peak memory)."""
    report = bench([onnx_models[0], tflite_model], threads=[1, 2], **FAST)
    rows = report["results"]
    assert [(r["name"], r["threads"]) for r in rows] == [("small.onnx", 1), ("small.onnx", 2), ("tiny.tflite", 1),
                                                         ("tiny.tflite", 2)]
    assert all(_kept(r, 6, 2) and r["p50_ms"] > 0 and r["peak_rss_mb"] > 20 for r in rows)
    table = format_table(report)
    assert table.splitlines()[1].split()[:3] == ["name", "runtime", "threads"]
    lines = table.splitlines()
    assert [line.split()[2] for line in lines[2:2 + len(rows)]] == ["1", "2", "1", "2"]
    note = cores_note(rows)  # a last line only where rounds run with the cores far apart were left out
    assert lines[2 + len(rows):] == ([note] if note else [])
    # two workers at a time: a group per count (both files at one count side by side), rows still file by file
    grouped = bench([onnx_models[0], tflite_model], threads=[1, 2], max_workers=2, **FAST)["results"]
    assert [(r["name"], r["threads"]) for r in grouped] == [(r["name"], r["threads"]) for r in rows]
    shared = bench([onnx_models[0]], threads=[2, 1], runs=4, warmup=0, rounds=2, memory=False)  # one worker a count
    assert [r["threads"] for r in shared["results"]] == [2, 1]
    with pytest.raises(ValueError, match="distinct counts"):
        bench([tflite_model], threads=[2, 2])
    with pytest.raises(ValueError, match="integers >= 1, received 0"):
        bench([tflite_model], threads=[1, 0])
    with pytest.raises(ValueError, match="empty list"):
        bench([tflite_model], threads=[])


def test_a_tflite_and_an_onnx_file_alternate_each_in_its_own_runtime(onnx_models, tflite_model):
    before = _children()
    report = bench([onnx_models[0], tflite_model], **FAST)
    onnx_row, tflite_row = report["results"]
    assert (onnx_row["runtime"], tflite_row["runtime"]) == ("onnxruntime-cpu", "litert")
    assert onnx_row["device_id"] != tflite_row["device_id"]  # the fingerprint includes the runtime and its version
    assert onnx_row["runs"] == tflite_row["runs"] and _kept(onnx_row, 6, 2)  # one group: the same rounds kept
    assert onnx_row["peak_rss_mb"] and tflite_row["peak_rss_mb"]
    assert "onnxruntime-cpu" in format_table(report) and "litert" in format_table(report)
    assert _children() <= before


def test_bench_rejects_bad_requests(tmp_path, onnx_models, tflite_model):
    small = onnx_models[0]
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        bench([str(tmp_path / "missing.onnx")])
    with pytest.raises(ValueError, match=r"litert runs \.tflite files"):
        bench([small], runtime="litert")
    with pytest.raises(ValueError, match="runs must be an integer >= 1, received 0"):
        bench([small], runs=0)
    with pytest.raises(ValueError, match="unknown runtime"):
        bench([small], runtime="tensorrt")


def test_device_io_binds_the_inputs_once_and_computes_what_a_host_run_does(onnx_models):
    """io "device": the inputs copied into ONNX Runtime's memory once and the outputs bound there (IO binding);
    every run then computes exactly what a numpy run does, into the same bound output."""
    import onnxruntime as ort

    runner = get_runner("onnxruntime-cpu")
    session = runner.load(onnx_models[0], threads=1, batch=3, io="device")
    feeds = random_feeds(session.inputs, seed=4)
    placed = session.place(feeds)
    assert placed is not feeds and len(placed) == 2
    session.run(placed)
    bound = placed[1][-1]  # the one output's OrtValue, allocated once at its batch-3 shape
    assert bound.shape() == [3, 10] and bound.device_name() == "cpu"
    want = ort.InferenceSession(onnx_models[0], providers=["CPUExecutionProvider"]).run(None, {"input": feeds[0]})[0]
    np.testing.assert_allclose(bound.numpy(), want, rtol=1e-5, atol=1e-5)
    first = bound.numpy().copy()
    session.run(placed)
    np.testing.assert_array_equal(bound.numpy(), first)

    report = bench([onnx_models[0]], runtime="onnxruntime-cpu", io="device", batch=3, **FAST)
    assert report["results"][0]["io"] == "device" and _kept(report["results"][0], 6, 2)


def test_io_modes_a_runtime_lacks_are_refused_before_any_worker(onnx_models, tflite_model):
    assert get_runner("litert").io_modes == ("host",)
    assert get_runner("onnxruntime-cpu").io_modes == ("host", "device")
    assert get_runner("onnxruntime-cuda").io_modes == ("host", "device", "graph")
    before = _children()
    with pytest.raises(ValueError, match=r"runtime litert times with io 'host', received 'device'"):
        bench([tflite_model], io="device")
    with pytest.raises(ValueError, match=r"onnxruntime-cpu times with io 'host' or 'device', received 'graph'"):
        bench([onnx_models[0]], io="graph")
    with pytest.raises(ValueError, match="io is one of host, device, graph"):
        bench([onnx_models[0]], io="pinned")
    with pytest.raises(ValueError, match="received 'device'"):
        get_runner("litert").load(tflite_model, io="device")
    assert _children() <= before


def test_dynamic_spatial_dims_are_an_error_naming_the_input(tmp_path):
    path = write_onnx(tmp_path / "dyn.onnx", input_shape=("N", 3, "H", "W"))
    before = _children()
    with pytest.raises(ValueError, match="input 'input' has dynamic dimensions"):
        bench([path], **FAST)
    assert _children() <= before


def test_a_failing_worker_raises_and_leaves_no_process(tmp_path, onnx_models):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"this is not a protobuf")
    before = _children()
    with pytest.raises(RuntimeError, match="broken.onnx"):
        bench([onnx_models[0], str(broken), onnx_models[1]], **FAST)
    assert _children() <= before
    with pytest.raises(RuntimeError, match=r"no answer within 0\.001 s while loading"):
        bench([onnx_models[0]], timeout=0.001)
    assert _children() <= before


# ---------------------------------------------------------------- the agent


def _agent(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runtime_bench", *args], capture_output=True, text=True, timeout=300)


def test_agent_prints_json(onnx_models):
    res = _agent(onnx_models[0], "--runs", "4", "--rounds", "2", "--warmup", "1", "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["results"][0]["name"] == "small.onnx" and _kept(report["results"][0], 4, 2)


def test_agent_errors_are_one_line_exit_2(tmp_path, onnx_models):
    cases = [([str(tmp_path / "nope.onnx")], "nope.onnx: no such file"),
             ([onnx_models[0], "--runtime", "tvm"], "unknown runtime 'tvm'"),
             ([onnx_models[0], "--runs", "many"], "--runs"),
             ([onnx_models[0], "--threads", "1,x"], "a comma list of counts"),
             ([onnx_models[0], "--threads", "2,2"], "a sweep lists distinct counts"),
             ([onnx_models[0], "--io", "graph"], "onnxruntime-cpu times with io 'host' or 'device', received 'graph'")]
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        cases.append(([onnx_models[0], "--runtime", "onnxruntime-cuda"], "no CUDAExecutionProvider"))
    for args, needle in cases:
        res = _agent(*args)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1, res.stderr
        assert lines[0].startswith("runtime_bench: error:") and needle in lines[0], res.stderr


def test_runtime_bench_never_imports_tensorflow():
    """Every module of the package, listed from its folder (a new one is checked without an edit here)."""
    code = ("import importlib, pkgutil, runtime_bench, sys; "
            "names = [m.name for m in pkgutil.iter_modules(runtime_bench.__path__)]; "
            "assert {'measure', 'sandbox', 'delegation', 'worker'} <= set(names), names; "
            "[importlib.import_module('runtime_bench.' + n) for n in names]; "
            "assert not any(m.split('.')[0] in {'tensorflow','keras','tf2onnx','tensorly'} for m in sys.modules), "
            "sorted(m for m in sys.modules if m.split('.')[0] in {'tensorflow','keras','tf2onnx','tensorly'})")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


# --------------------------------------------------------------- lrfc bench


def test_lrfc_bench_json_and_table(onnx_models, capsys):
    from lrfc.cli import main

    assert main(["bench", onnx_models[0], "--runs", "4", "--rounds", "2", "--warmup", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["results"][0]["path"] == onnx_models[0] and _kept(report["results"][0], 4, 2)
    assert main(["bench", onnx_models[0], "--runs", "2", "--rounds", "1", "--no-memory"]) == 0
    out = capsys.readouterr().out
    assert "small.onnx" in out and "p50 ms" in out and "onnxruntime-cpu" in out
    assert main(["bench", onnx_models[0], "--runs", "2", "--rounds", "1", "--io", "device", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["io"] == "device"
    assert main(["bench", onnx_models[0], "--runs", "2", "--rounds", "1", "--threads", "2,1", "--json"]) == 0
    assert [r["threads"] for r in json.loads(capsys.readouterr().out)["results"]] == [2, 1]


def test_lrfc_bench_user_errors_are_one_line(tmp_path, onnx_models, capsys):
    from lrfc.cli import main

    for args, needle in [(["bench", str(tmp_path / "missing.onnx")], "missing.onnx: no such file"),
                         (["bench", onnx_models[0], "--device", "http://x"], "only ssh:// is supported"),
                         (["bench", onnx_models[0], "--runtime", "tvm"], "unknown runtime 'tvm'"),
                         (["bench", onnx_models[0], "--identity-file", "k"], "without a device"),
                         (["bench", onnx_models[0], "--io", "graph"], "received 'graph'"),
                         (["bench", onnx_models[0], "--threads", "1,a"], "a comma list of counts"),
                         (["bench", onnx_models[0], "--threads", "1,1"], "a sweep lists distinct counts")]:
        assert main(args) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lrfc: error:") and needle in lines[0], lines


def test_lifetimes_keep_each_files_lowest_median(onnx_models, monkeypatch):
    import runtime_bench.measure as measure

    small, big = onnx_models
    lives = iter([[{"p50_ms": 2.0, "life": 0, "runtime": "onnxruntime-cpu"}, {"p50_ms": 1.0, "life": 0, "runtime": "onnxruntime-cpu"}],
                  [{"p50_ms": 1.5, "life": 1, "runtime": "onnxruntime-cpu"}, {"p50_ms": 3.0, "life": 1, "runtime": "onnxruntime-cpu"}]])
    monkeypatch.setattr(measure, "_bench_group", lambda group, **plan: next(lives))
    rows = measure.bench([small, big], runs=4, lifetimes=2)["results"]
    assert [(r["p50_ms"], r["life"], r["lifetimes"]) for r in rows] == [(1.5, 1, 2), (1.0, 0, 2)]
    with pytest.raises(ValueError, match="lifetimes"):
        measure.bench([small], lifetimes=0)
    monkeypatch.undo()  # for real: two lifetimes of fresh workers, every row says so
    rows = bench([small, big], runs=4, warmup=1, rounds=2, lifetimes=2)["results"]
    assert all(r["lifetimes"] == 2 and _kept(r, 4, 2) and r["p50_ms"] > 0 for r in rows)


# What ONNX Runtime 1.11.1 and 1.8.1 (PyPI, x86, Python 3.8) said, word for word, when given lrfc's opset-17 file
# (docs/LOG.md, 2026-12-07): the board-side runtime of a Jetson Nano is of that age.
ORT_1_11_OPSET = ("[ONNXRuntimeError] : 1 : FAIL : Load model from /x/model.onnx failed:/onnxruntime_src/onnxruntime/"
                  "core/graph/model_load_utils.h:47 void onnxruntime::model_load_utils::ValidateOpsetForDomain(const "
                  "std::unordered_map<std::basic_string<char>, int>&, const onnxruntime::logging::Logger&, bool, const "
                  "string&, int) ONNX Runtime only *guarantees* support for models stamped with official released onnx "
                  "opset versions. Opset 17 is under development and support for this is limited. The operator schemas "
                  "and or other functionality may change before next ONNX release and in this case ONNX Runtime will "
                  "not guarantee backward compatibility. Current official support for domain ai.onnx is till opset 16.\n")
ORT_1_8_IR = ("[ONNXRuntimeError] : 1 : FAIL : Load model from /x/model.onnx failed:/onnxruntime_src/onnxruntime/core/"
              "graph/model.cc:111 onnxruntime::Model::Model(onnx::ModelProto&&, const PathString&, const "
              "IOnnxRuntimeOpSchemaRegistryList*, const onnxruntime::logging::Logger&) Unknown model file format "
              "version.\n")


def test_an_older_onnx_runtime_s_refusal_says_which_opset_to_lower_at():
    from lrfc.lower.opset import MIN
    from runtime_bench.runners import OLDEST_OPSET_WRITTEN, version_refusal

    assert OLDEST_OPSET_WRITTEN == MIN  # runtime_bench does not import lrfc: the one number kept twice

    assert version_refusal("/x/model.onnx", ORT_1_11_OPSET, "1.11.1") == (
        "/x/model.onnx: onnxruntime 1.11.1 reads ONNX opsets up to 16, and the file declares 17: lower it at opset 16 "
        "or older (lrfc build/export --opset 16)")
    assert version_refusal("/x/model.onnx", ORT_1_8_IR, "1.8.1").endswith(
        "lower it at opset 13 (IR version 7: lrfc build/export --opset 13)")
    older = ORT_1_11_OPSET.replace("till opset 16", "till opset 12")  # no opset lrfc writes is that old
    assert version_refusal("m.onnx", older, "1.5.3").endswith("update ONNX Runtime on the device")
    assert version_refusal("m.onnx", "[ONNXRuntimeError] : 10 : INVALID_GRAPH : bad node", "1.32.0") is None


def test_the_onnx_loader_turns_that_refusal_into_a_refused_file(monkeypatch, tmp_path):
    """The worker names a file the runtime refused (a ValueError) and times the rest: an old runtime's version
    refusal is that, in one line, where any other load failure stays what it was."""
    import onnxruntime as ort
    import pytest

    from runtime_bench.runners import get_runner

    def refuse(*args, **kwargs):
        raise RuntimeError(ORT_1_11_OPSET)

    monkeypatch.setattr(ort, "InferenceSession", refuse)
    with pytest.raises(ValueError, match=r"model.onnx: onnxruntime \S+ reads ONNX opsets up to 16, and the file "
                                         r"declares 17: lower it at opset 16"):
        get_runner("onnxruntime-cpu").load(tmp_path / "model.onnx", 1)

    def crash(*args, **kwargs):
        raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : out of memory")

    monkeypatch.setattr(ort, "InferenceSession", crash)
    with pytest.raises(RuntimeError, match="out of memory"):
        get_runner("onnxruntime-cpu").load(tmp_path / "model.onnx", 1)
