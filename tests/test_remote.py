"""runtime_bench.remote against a real sshd on loopback: real keys, real ssh, real artifacts.

The fixture starts Debian's ``/usr/sbin/sshd`` (package openssh-server) on a
free port of 127.0.0.1 with throw-away host and client keys. ``make test``
installs it, so a missing or silent sshd fails these tests (with sshd's own
message); it is never a reason to skip them.
The device's Python is this interpreter (``python=sys.executable``): the
system python3 may lack numpy and the runtimes.
"""

from __future__ import annotations

import getpass
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import pytest

from runtime_bench.remote import SshDevice, bench_remote, parse_device, run_bench

SSHD = "/usr/sbin/sshd"


@dataclass
class Server:
    url: str
    identity: str
    stranger: str  # a key sshd does not know
    ssh_options: tuple


def _keygen(path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "runtime_bench-test", "-f", str(path)],
                   check=True, capture_output=True)
    return str(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    if not os.access(SSHD, os.X_OK) or not shutil.which("ssh") or not shutil.which("ssh-keygen"):
        pytest.fail(f"{SSHD}, ssh or ssh-keygen missing (Debian packages openssh-server, openssh-client; "
                    "`make setup` installs them)")
    d = tmp_path_factory.mktemp("sshd")
    host, client, stranger = (_keygen(d / name) for name in ("host_key", "client_key", "stranger_key"))
    shutil.copy(client + ".pub", d / "authorized_keys")
    port = _free_port()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {open(host + '.pub').read()}")
    (d / "sshd_config").write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host}", f"AuthorizedKeysFile {d / 'authorized_keys'}",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
        f"PidFile {d / 'sshd.pid'}", "PermitRootLogin prohibit-password", ""]))
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    options = (f"UserKnownHostsFile={d / 'known_hosts'}", "IdentitiesOnly=yes", "ConnectTimeout=5")
    url = f"ssh://{getpass.getuser()}@127.0.0.1:{port}"
    log = open(d / "sshd.log", "wb")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stdout=log, stderr=subprocess.STDOUT)
    try:
        probe = ["ssh", "-p", str(port), "-o", "BatchMode=yes", "-i", client,
                 *(x for o in options for x in ("-o", o)), "--", f"{getpass.getuser()}@127.0.0.1", "true"]
        deadline, res = time.monotonic() + 60, None  # a loaded machine can take a while to start sshd
        while time.monotonic() < deadline and proc.poll() is None:
            res = subprocess.run(probe, capture_output=True, text=True, timeout=10)
            if res.returncode == 0:
                break
            time.sleep(0.2)
        if proc.poll() is not None or res is None or res.returncode != 0:
            lines = (d / "sshd.log").read_text(errors="replace").strip().splitlines() or [res.stderr if res else ""]
            pytest.fail(f"sshd did not start on 127.0.0.1:{port}: {lines[-1]}")
        yield Server(url, client, stranger, options)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def write_onnx(path, hidden: int = 10) -> str:
    """Conv + Relu + Flatten + Gemm written with onnx.helper (as in test_runtime_bench)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    init = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "conv_w"),
            numpy_helper.from_array(rng.standard_normal((8 * 16 * 16, hidden)).astype(np.float32), "gemm_w")]
    nodes = [helper.make_node("Conv", ["input", "conv_w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("Gemm", ["f", "gemm_w"], ["out"])]
    graph = helper.make_graph(nodes, "conv_gemm", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 16, 16])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", hidden])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return str(path)


@pytest.fixture(scope="session")
def models(tmp_path_factory, keras):
    """Two ONNX files with the same basename in different folders, and one TFLite file."""
    from lrfc.lower.tflite import export_tflite

    a, b = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(keras.layers.Conv2D(4, 3)(inputs)))
    tflite = export_tflite(keras.Model(inputs, outputs), a / "tiny.tflite")
    return write_onnx(a / "model.onnx"), write_onnx(b / "model.onnx", hidden=64), str(tflite)


def _remote(server: Server, paths, **kw) -> dict:
    return bench_remote(server.url, paths, python=sys.executable, identity=server.identity,
                        ssh_options=server.ssh_options, **kw)


def _workdirs() -> set:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "runtime_bench-*")))


# ------------------------------------------------------------------- parsing


def test_parse_device_accepts_ssh_urls():
    assert parse_device("ssh://jetson") == SshDevice(None, "jetson", 22)
    assert parse_device("ssh://pi@10.0.0.7:2222") == SshDevice("pi", "10.0.0.7", 2222)
    assert parse_device("ssh://root@[::1]:22/") == SshDevice("root", "[::1]", 22)
    assert parse_device("ssh://pi@rpi.local:2222").url == "ssh://pi@rpi.local:2222"
    assert parse_device("ssh://[::1]").target == "::1"


@pytest.mark.parametrize("url, problem", [
    ("ssh://-oProxyCommand=x", "not a host name"),
    ("ssh://a b", "not a host name"),
    ("http://x", "only ssh://"),
    ("ssh://h:70000", "not a number in 1..65535"),
    ("ssh://h:0", "not a number in 1..65535"),
    ("ssh://h;rm", "not a host name"),
    ("ssh://", "the host is empty"),
    ("ssh://-u@h", "not a plain login name"),
    ("ssh://u$(id)@h", "not a plain login name"),
    ("ssh://h/path", "nothing after the port"),
])
def test_parse_device_rejects(url, problem):
    with pytest.raises(ValueError, match=problem) as info:
        parse_device(url)
    assert repr(url) in str(info.value)


def test_bench_remote_checks_python_and_files_before_ssh(tmp_path):
    path = write_onnx(tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="not a plain executable"):
        bench_remote("ssh://h", [path], python="python3; rm -rf ~")
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        bench_remote("ssh://h", [str(tmp_path / "missing.onnx")])
    with pytest.raises(TypeError, match="unexpected options timeout_s"):
        bench_remote("ssh://h", [path], timeout_s=3)


# --------------------------------------------------------------- over ssh


def test_bench_remote_onnx_returns_the_callers_paths_and_cleans_up(sshd, models):
    first, second, _ = models
    before = _workdirs()
    report = _remote(sshd, [first, second], runs=4, warmup=1, rounds=2)
    device = report["device"]
    assert device["transport"] == sshd.url and len(device["id"]) == 16 and device["runtime"] == "onnxruntime-cpu"
    assert not os.path.exists(device["workdir"]) and _workdirs() == before
    assert [r["path"] for r in report["results"]] == [first, second]  # same basename: shipped as two files
    assert [r["name"] for r in report["results"]] == ["model.onnx", "model.onnx"]
    assert report["results"][0]["file_bytes"] < report["results"][1]["file_bytes"]
    for r in report["results"]:
        # 4 runs in 2 rounds; on several threads, a round run with the cores far apart is left out (runtime_bench.cores)
        assert r["runs"] in ((2, 4) if r["core_round_trip_us"] else (4,)) and r["min_ms"] > 0
        assert r["peak_rss_mb"] > r["load_rss_mb"] > 20


def test_bench_remote_sweeps_threads_with_the_callers_paths(sshd, models):
    first, second, _ = models
    report = _remote(sshd, [first, second], runs=2, warmup=0, rounds=1, threads=[1, 2])
    assert [(r["path"], r["threads"]) for r in report["results"]] == [(first, 1), (first, 2), (second, 1), (second, 2)]


def test_bench_remote_tflite_without_memory(sshd, models):
    report = run_bench([models[2]], device=sshd.url, python=sys.executable, identity=sshd.identity,
                       ssh_options=sshd.ssh_options, runs=3, rounds=1, warmup=0, memory=False, batch=2)
    r = report["results"][0]
    assert report["device"]["runtime"] == "litert" and r["path"] == models[2] and r["peak_rss_mb"] is None
    assert r["inputs"][0]["shape"] == [2, 8, 8, 3]


def test_a_wrong_key_names_the_device(sshd, models):
    with pytest.raises(RuntimeError, match=rf"^{sshd.url}: .*Permission denied"):
        bench_remote(sshd.url, [models[0]], python=sys.executable, identity=sshd.stranger,
                     ssh_options=sshd.ssh_options)


def test_an_agent_error_comes_back_as_one_line_and_the_device_is_cleaned(sshd, models, tmp_path):
    """A file the device cannot load is named by the caller's path (``FileRefused``, as a local run names it); any
    other error of the agent is one line that starts with the device's URL."""
    from runtime_bench.runners import FileRefused

    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a flatbuffer")
    before = _workdirs()
    with pytest.raises(FileRefused, match=rf"^{broken}: ValueError: .*[Ff]latbuffer") as info:
        _remote(sshd, [str(broken)], runs=1, rounds=1)
    assert "\n" not in str(info.value) and info.value.refused == {str(broken): str(info.value)}
    with pytest.raises(RuntimeError, match=rf"^{sshd.url}: runtime_bench: error: runtime onnxruntime-cuda is "
                                           "unavailable: ") as info:
        _remote(sshd, [models[0]], runs=1, rounds=1, runtime="onnxruntime-cuda")
    assert "\n" not in str(info.value)
    assert _workdirs() == before


def test_files_the_device_refuses_are_named_by_the_callers_paths(sshd, keras, tmp_path, monkeypatch):
    """Over ssh as here: the agent names every file the device's runtime would not load, by the caller's own path
    (two refused files share a basename: shipped under two names), so the price stage drops those chains and times
    the rest. Before, one refused chain failed the remote device's whole price stage in one line."""
    from conftest import cancelling_model
    from lrfc.cost import latency
    from lrfc.cost.devices import DeviceLink
    from lrfc.lower.tflite import export_tflite
    from runtime_bench.runners import FileRefused

    model, calibration = cancelling_model(keras)
    fine = str(export_tflite(model, tmp_path / "fine.tflite", "fp32"))
    refused = [str(export_tflite(model, tmp_path / f"{d}" / "chain.tflite", "int8", calibration, xnnpack=False))
               for d in ("a", "b")]
    before = _workdirs()
    with pytest.raises(FileRefused) as err:
        _remote(sshd, [fine, *refused], runs=1, rounds=1, warmup=0, memory=False)
    assert err.value.path == refused[0] and list(err.value.refused) == refused
    assert all(m.startswith(f"{p}: ") and "failed to create XNNPACK runtime" in m for p, m in err.value.refused.items())
    assert _workdirs() == before

    files = [fine, refused[0], fine]
    monkeypatch.setattr(latency, "lower_chain", lambda chain, path, precision, *rest: shutil.copy(files[chain], path))
    link = DeviceLink(sshd.url, sys.executable, sshd.identity, tuple(sshd.ssh_options))
    result = latency.time_chains(link, "litert", "int8", 1, [0, 1, 2])
    assert [r is None for r in result["results"]] == [False, True, False]
    assert all(r["p50_ms"] > 0 for r in result["results"] if r is not None)
    assert result["refused"][1].startswith("cannot allocate tensors at batch 1: ")
    assert result["device"]["transport"] == sshd.url


def test_lrfc_bench_over_ssh(sshd, models, capsys):
    from lrfc.cli import main

    args = ["bench", models[0], "--runs", "2", "--rounds", "1", "--warmup", "0", "--json", "--device", sshd.url,
            "--device-python", sys.executable, "--identity-file", sshd.identity]
    for option in sshd.ssh_options:
        args += ["--ssh-option", option]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["device"]["transport"] == sshd.url and report["results"][0]["path"] == models[0]


def test_describe_remote_reports_the_device_and_its_runtimes(sshd):
    from runtime_bench.device import fingerprint
    from runtime_bench.remote import describe_remote

    info = describe_remote(sshd.url, "onnxruntime-cpu", python=sys.executable, identity=sshd.identity,
                           ssh_options=sshd.ssh_options)
    assert info["device"]["transport"] == sshd.url and info["results"] == []
    assert info["device"]["id"] == fingerprint("onnxruntime-cpu")["id"]  # loopback: the same machine
    assert info["runtimes"]["litert"] is None and info["runtimes"]["onnxruntime-cpu"] is None
    assert "CUDA" in info["runtimes"]["onnxruntime-cuda"]


@pytest.mark.slow  # a whole build over ssh; make test keeps the ssh pricing farm (test_ray) and lrfc bench over ssh
def test_lrfc_build_measures_on_an_ssh_device(sshd, tiny_model_path, tmp_path):
    """--device ssh://...: micro-benchmarks and the final benchmark run over ssh; a rebuild measures nothing."""
    from conftest import run_cli

    before = _workdirs()
    args = ["build", str(tiny_model_path), "--data", "fashion-mnist", "--objective", "latency", "--finetune", "none",
            "--calib-samples", "200", "--step", "10", "--methods", "tucker,svd", "--bench-runs", "5",
            "--device", sshd.url, "--device-python", sys.executable, "--identity-file", sshd.identity,
            "--cache-dir", str(tmp_path / "cache"), "--cost-db", str(tmp_path / "costs.sqlite"), "--json"]
    for option in sshd.ssh_options:
        args += ["--ssh-option", option]
    reports = []
    for out in ("a", "b"):
        res = run_cli(*args, "--out", str(tmp_path / out), timeout=600)
        assert res.returncode == 0, res.stderr
        reports.append(json.loads(res.stdout))
    first, second = reports
    assert first["cost_source"] == "measured" and first["costs"]["device"]["transport"] == sshd.url
    assert first["costs"]["measured"] > 0 and second["costs"]["measured"] == 0
    assert first["benchmarks"]["status"] == "measured" and first["benchmarks"]["device"]["transport"] == sshd.url
    assert [r["runtime"] for r in first["benchmarks"]["runs"]] == ["litert", "onnxruntime-cpu"]
    assert _workdirs() == before  # the device was cleaned up after every session
