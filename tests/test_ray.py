"""``--executor ray`` on a real Ray head that the tests start themselves, and the device farm.

The module's head runs ``ray start --head --block`` with 2 CPUs and the lane
resources of two devices (``lrfc-device-0``, ``lrfc-device-1``), on a free
port, with its own temp dir, as a process group of its own that teardown
stops (never ``ray stop``, which would stop every Ray on the machine). Its
nodes carry the test-only kill hook's variable (``common.executor``): a test
arms it by creating the file, and the first task to take the file kills its
worker process. ``make test`` installs Ray (``lrfc[ray]``), so a missing Ray
fails these tests; it never skips them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from test_remote import sshd  # noqa: F401  (the loopback sshd fixture: two URLs of it are the farm's devices)

RAY = Path(sys.executable).parent / "ray"
# A small real build: the tiny Fashion-MNIST CNN on 1,000 + 1,000 of its images (``small_data``), 64 calibration
# samples, two methods, no fine-tuning or benchmark.
SMALL = dict(objective="flops", finetune="none", calib_samples=64, step=10.0, methods=("tucker", "svd"),
             max_rounds=1, bench_runs=0, formats=("tflite",), cache=False)


@dataclass
class Head:
    address: str
    armed: Path        # the kill hook's file: create it to kill the next task's worker once
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head():
    if not RAY.exists():
        pytest.fail(f"{RAY} missing: Ray is an extra of lrfc (pip install -e '.[test,ray]'; `make setup` installs it)")
    tmp = Path(tempfile.mkdtemp(prefix="lrfc-ray-"))  # short: Ray's socket paths live under it
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
           "RAY_USAGE_STATS_ENABLED": "0", "LRFC_TEST_KILL_WORKER_ONCE": str(tmp / "kill-armed")}
    log = tmp / "head.log"
    proc = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
         "--num-cpus", "2", "--resources", json.dumps({"lrfc-device-0": 1, "lrfc-device-1": 1}),
         "--object-store-memory", str(512 * 2**20), "--temp-dir", str(tmp), "--disable-usage-stats",
         "--include-dashboard", "false"],
        stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while "block forever" not in log.read_text(errors="replace"):  # printed once every process is up
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start did not come up: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
        yield Head(f"127.0.0.1:{port}", tmp / "kill-armed", log)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the head's own process group: nothing else
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        subprocess.run(["rm", "-rf", str(tmp)], check=False)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> str:
    """1,000 training and 1,000 test images of Fashion-MNIST: evaluating 500 validation images keeps builds short."""
    from lrfc.frontend.data import read_fashion_mnist

    x, y, x_test, y_test = read_fashion_mnist()
    path = tmp_path_factory.mktemp("data") / "fmnist-2k.npz"
    np.savez(path, x=x[:1000], y=y[:1000], x_test=x_test[:1000], y_test=y_test[:1000])
    return str(path)


@pytest.fixture(scope="module")
def ray_driver(ray_head):
    """This process connected to the head once, as a Python API user would be: builds keep the connection (and
    its warm workers)."""
    import logging

    import ray

    from lrfc.common.executor import WORKER_ENV

    ray.init(address=ray_head.address, runtime_env={"env_vars": dict(WORKER_ENV)}, logging_level=logging.ERROR,
             log_to_driver=False)
    yield ray_head
    ray.shutdown()


def _choices(result) -> list:
    return result.plan.to_json()["layers"]


@pytest.fixture(scope="module")
def in_process(tiny_model_path, small_data, tmp_path_factory):
    import lrfc

    result = lrfc.build(str(tiny_model_path), small_data, out=tmp_path_factory.mktemp("inprocess"), **SMALL)
    assert result.report["executor"]["name"] == "inprocess"
    assert _choices(result), "the tiny model should get a factorized layer"
    return result


def test_walks_scored_in_threads_give_the_one_thread_candidates(in_process, tiny_model_path, small_data, tmp_path,
                                                                monkeypatch):
    import lrfc
    from lrfc.frontend import memory_plan

    threads = in_process.report["memory"]["score_threads"]
    assert threads == memory_plan.cores()  # one walk per core: the tiny build leaves room for every one
    workers = {t["worker"] for t in in_process.report["executor"]["phases"]["score"]["per_task"]}
    if threads >= 2:
        assert len({w.rsplit("/", 1)[-1] for w in workers}) >= 2 and all("/lrfc-job" in w for w in workers)
    monkeypatch.setattr(memory_plan, "cores", lambda: 1)
    one = lrfc.build(str(tiny_model_path), small_data, out=tmp_path / "one", **SMALL)
    assert one.report["memory"]["score_threads"] == 1
    assert all("/lrfc-job" not in t["worker"] for t in one.report["executor"]["phases"]["score"]["per_task"])
    assert one.report["search"]["candidates"] == in_process.report["search"]["candidates"]
    assert _choices(one) == _choices(in_process)


def test_a_build_on_two_ray_workers_gives_the_in_process_plan(ray_head, in_process, tiny_model_path, small_data,
                                                             tmp_path):
    res = run_cli("build", str(tiny_model_path), "--data", small_data, "--objective", "flops", "--finetune", "none",
                  "--calib-samples", "64", "--step", "10", "--methods", "tucker,svd", "--max-rounds", "1",
                  "--bench-runs", "0", "--formats", "tflite", "--no-cache", "--out", str(tmp_path / "ray"),
                  "--executor", "ray", "--ray-address", ray_head.address, "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert json.loads((tmp_path / "ray" / "plan.json").read_text())["layers"] == _choices(in_process)
    assert report["search"]["candidates"] == in_process.report["search"]["candidates"]
    assert report["cache"]["misses"] == in_process.report["cache"]["misses"]  # the same walks, scored once each
    executor = report["executor"]
    assert executor["name"] == "ray" and executor["address"] == ray_head.address and executor["workers"] == 2
    score = executor["phases"]["score"]
    targets = [e["name"] for e in report["layers"]]
    assert sorted(score["shipped_bytes"]) == sorted(targets)  # each layer's data put once, not once per method
    assert all(b > 64 * 4 for b in score["shipped_bytes"].values())  # the captured inputs went along
    assert score["tasks"] == len({(c["layer"], c["method"]) for c in report["search"]["candidates"]})


def test_a_worker_killed_mid_scoring_is_retried_and_the_plan_holds(ray_driver, in_process, tiny_model_path, small_data,
                                                                  tmp_path):
    import lrfc
    import ray

    ray_head = ray_driver
    ray_head.armed.write_text("")  # the next task's worker dies after its work, before it answers
    result = lrfc.build(str(tiny_model_path), small_data, out=tmp_path / "ray", executor="ray", **SMALL)
    assert ray.is_initialized()  # the caller's connection is left as it was
    killed = ray_head.armed.with_name(ray_head.armed.name + ".killed")
    assert not ray_head.armed.exists() and killed.exists(), "no worker took the armed kill"
    pid = int(killed.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # that worker process is gone
    workers = {t["worker"] for t in result.report["executor"]["phases"]["score"]["per_task"]}
    assert not any(w.endswith(f":{pid}") for w in workers)  # its task's result came from a retry elsewhere
    assert _choices(result) == _choices(in_process)
    assert result.report["search"]["candidates"] == in_process.report["search"]["candidates"]


# ------------------------------------------------------------------ device farm


def _chains(n: int) -> dict:
    from lrfc.cost.latency import Chain
    from lrfc.decompose.base import Stage

    rng = np.random.default_rng(0)
    return {i: Chain((8, 8, 4), [Stage("conv", (rng.standard_normal((3, 3, 4, 4 + i)).astype(np.float32),),
                                       (3, 3), padding="same")]) for i in range(n)}


def _farm_links(server):
    """Two devices of one board: the same loopback sshd under two URLs (with and without the user name)."""
    from lrfc.cost.devices import DeviceLink

    bare = "ssh://" + server.url.split("@", 1)[1]
    return [DeviceLink(url, sys.executable, server.identity, server.ssh_options) for url in (server.url, bare)]


def _never_two_at_once(busy) -> bool:
    spans = sorted(busy)
    return all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


@pytest.mark.parametrize("executor", ["inprocess", "ray"])
def test_a_farm_prices_on_every_device_one_run_per_device_at_a_time(sshd, tmp_path, monkeypatch, request, executor):  # noqa: F811
    from lrfc.common.executor import InProcess, RayExecutor
    from lrfc.cost import latency
    from lrfc.targets import load_profile

    monkeypatch.setattr(latency, "BATCH_LIMIT", 2)  # 8 chains -> 4 runtime_bench runs, 2 per device
    runner = InProcess() if executor == "inprocess" else RayExecutor(request.getfixturevalue("ray_driver").address,
                                                                      lanes=2)
    pricer = latency.Pricer(load_profile("host"), _farm_links(sshd), tmp_path / "costs.sqlite", executor=runner)
    try:
        ms = pricer.price(_chains(8))
        farm = pricer.info.to_json()["devices"]
        assert len(farm) == 2 and farm[0]["id"] == farm[1]["id"]  # one board: each chain measured once, on one of them
        assert [d["measured"] for d in farm] == [4, 4] and pricer.info.measured == 8
        assert all(len(d["busy"]) == 2 and _never_two_at_once(d["busy"]) for d in farm)
        assert sorted(ms) == list(range(8)) and all(v > 0 for v in ms.values())
        tasks = runner.to_json()["phases"]["price"]["per_task"]
        assert [t["label"] for t in tasks] == [d.link.label for d in pricer.info.farm] * 2  # lanes alternate
        again = pricer.price(_chains(8))  # the driver stored every row under the board's fingerprint
        assert again == ms and pricer.info.measured == 8 and pricer.info.reused == 8
    finally:
        pricer.close()
        runner.close()


# ------------------------------------------------------------------ options


def test_a_ray_address_where_nothing_listens_is_one_line_before_tensorflow(tmp_path):
    code = (
        "import sys\n"
        "from lrfc.cli import main\n"
        f"status = main(['build', {str(tmp_path / 'm.keras')!r}, '--data', 'fashion-mnist', '--executor', 'ray', "
        f"'--ray-address', '127.0.0.1:{_free_port()}', '--out', {str(tmp_path / 'out')!r}])\n"
        "print(status, 'tensorflow' in sys.modules)\n"
    )
    (tmp_path / "m.keras").write_bytes(b"")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.split() == ["2", "False"], res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "no Ray cluster answers there" in lines[0], res.stderr


@pytest.mark.parametrize("overrides, message", [
    ({"executor": "dask"}, "--executor: received 'dask'; expected one of inprocess, ray"),
    ({"ray_address": "auto"}, "--ray-address applies to --executor ray"),
    ({"executor": "ray", "ray_address": "head-node"}, "expected auto or HOST:PORT"),
    ({"device": ("local", "local")}, "--device: received 'local'; expected each device once"),
])
def test_executor_and_farm_options_fail_fast(tiny_model_path, overrides, message):
    from lrfc.errors import UserError
    from lrfc.options import BuildOptions

    with pytest.raises(UserError) as err:
        BuildOptions(model=str(tiny_model_path), data="fashion-mnist", **overrides).validate()
    assert message in str(err.value)


def test_executor_ray_without_ray_names_the_extra(tiny_model_path, monkeypatch):
    import importlib.util

    from lrfc.errors import UserError
    from lrfc.options import BuildOptions

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(UserError, match=r"pip install 'lrfc\[ray\]'"):
        BuildOptions(model=str(tiny_model_path), data="fashion-mnist", executor="ray").validate()


@pytest.mark.slow
def test_lrfc_build_prices_on_a_farm_of_two_ssh_devices_through_ray(sshd, ray_head, tiny_model_path, small_data,  # noqa: F811
                                                                    tmp_path):
    """The command line end to end: --device twice, --executor ray; the chains are measured on both devices."""
    urls = [link.url for link in _farm_links(sshd)]
    args = ["build", str(tiny_model_path), "--data", small_data, "--objective", "latency", "--finetune", "none",
            "--calib-samples", "64", "--step", "25", "--methods", "svd", "--max-sol", "1", "--bench-runs", "0",
            "--formats", "tflite", "--no-cache", "--cost-db", str(tmp_path / "costs.sqlite"),
            "--device-python", sys.executable, "--identity-file", sshd.identity, "--executor", "ray",
            "--ray-address", ray_head.address, "--out", str(tmp_path / "out"), "--json"]
    for url in urls:
        args += ["--device", url]
    for option in sshd.ssh_options:
        args += ["--ssh-option", option]
    res = run_cli(*args, timeout=600)
    assert res.returncode == 0, res.stderr
    costs = json.loads(res.stdout)["costs"]
    assert costs["device"]["transport"] == urls[0]  # the primary prices the plan
    assert [d["label"] for d in costs["devices"]] == urls
    assert all(d["measured"] > 0 and _never_two_at_once(d["busy"]) for d in costs["devices"])
    assert sum(d["measured"] for d in costs["devices"]) == costs["measured"]  # one board: each chain timed once
