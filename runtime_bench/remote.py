"""Run the benchmark on another machine over ssh; ``run_bench`` picks local or remote.

How a device is reached is kept apart from how a model is run: this module
only ships files and a constant bootstrap, and the device runs the same
``python -m runtime_bench`` agent as a local measurement.

One ssh call does everything. Its stdin carries a length-prefixed tar of the
runtime_bench sources, the artifacts and the options (a JSON file); the
remote command is ``PYTHON -c BOOTSTRAP`` with ``BOOTSTRAP`` a constant. No
host name, user, path or option is ever formatted into a shell string (the
python executable is checked to be a plain path and quoted), so a hostile
file name cannot run commands on either side. The bootstrap unpacks into a
fresh temporary folder, runs the agent, and removes the folder in a
``finally``, so the device keeps nothing, even when the benchmark fails.
The remote login shell must be a POSIX shell (the bootstrap spans lines).
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import struct
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from runtime_bench.runners import FileRefused

BOOTSTRAP = r'''
import io, json, os, shutil, struct, subprocess, sys, tarfile, tempfile
work = tempfile.mkdtemp(prefix="runtime_bench-")
try:
    data = sys.stdin.buffer.read()
    size = struct.unpack(">Q", data[:8])[0] if len(data) >= 8 else -1
    if size != len(data) - 8:
        sys.exit("runtime_bench bootstrap: the payload is incomplete (%d bytes)" % len(data))
    with tarfile.open(fileobj=io.BytesIO(data[8:])) as tar:
        for member in tar.getmembers():
            if not member.isfile() or member.name.startswith("/") or ".." in member.name.split("/"):
                sys.exit("runtime_bench bootstrap: refusing tar member %r" % member.name)
        tar.extractall(work, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    with open(os.path.join(work, "options.json")) as f:
        options = json.load(f)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([work] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    artifacts = [os.path.join(work, "artifacts", name) for name in options["artifacts"]]
    cmd = [sys.executable, "-m", "runtime_bench"] + artifacts + ["--json"] + options["argv"]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, env=env, cwd=work)
    if proc.returncode:
        sys.stdout.write(proc.stdout.decode())
        sys.exit(proc.returncode)
    report = json.loads(proc.stdout.decode())
    report["device"]["workdir"] = work
    sys.stdout.write(json.dumps(report))
finally:
    shutil.rmtree(work, ignore_errors=True)
'''

_HOST = re.compile(r"^(?:[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:.]+\])$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_PYTHON = re.compile(r"^[A-Za-z0-9_./+-]+$")
_URL = re.compile(r"^ssh://(?:(?P<user>[^@/]*)@)?(?P<host>\[[^\]/]*\]|[^:/]*)(?::(?P<port>[^/]*))?/?$")
_BENCH_OPTIONS = {"runtime": "--runtime", "threads": "--threads", "runs": "--runs", "warmup": "--warmup",
                  "rounds": "--rounds", "batch": "--batch", "max_workers": "--max-workers",
                  "lifetimes": "--lifetimes", "io": "--io"}


@dataclass(frozen=True)
class SshDevice:
    """A machine reached with ``ssh [-p port] [user@]host``; ``user`` None means ssh's default."""

    user: Optional[str]
    host: str
    port: int = 22

    @property
    def url(self) -> str:
        return f"ssh://{self.user + '@' if self.user else ''}{self.host}:{self.port}"

    @property
    def target(self) -> str:
        host = self.host[1:-1] if self.host.startswith("[") else self.host
        return f"{self.user}@{host}" if self.user else host


def parse_device(url: str) -> SshDevice:
    """Parse ``ssh://[user@]host[:port]``; ValueError naming the URL and the problem otherwise.

    Hosts are names, IPv4 or bracketed IPv6 addresses; users are plain login
    names. Neither may start with "-" (ssh would read an option) or hold
    whitespace or shell metacharacters.
    """
    if not isinstance(url, str) or not url.startswith("ssh://"):
        raise ValueError(f"device {url!r}: expected a URL like ssh://user@host:port (only ssh:// is supported)")
    match = _URL.fullmatch(url)
    if not match:
        raise ValueError(f"device {url!r}: expected ssh://[user@]host[:port] with nothing after the port")
    user, host, port = match.group("user"), match.group("host"), match.group("port")
    if not host:
        raise ValueError(f"device {url!r}: the host is empty")
    if host.startswith("-") or not _HOST.fullmatch(host):
        raise ValueError(f"device {url!r}: host {host!r} is not a host name or IP address "
                         "(letters, digits, '.', '-', '_'; not starting with '-')")
    if user is not None and (user.startswith("-") or not _USER.fullmatch(user)):
        raise ValueError(f"device {url!r}: user {user!r} is not a plain login name (letters, digits, '.', '-', '_')")
    if port is None or port == "":
        number = 22
    elif not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"device {url!r}: port {port!r} is not a number in 1..65535")
    else:
        number = int(port)
    return SshDevice(user or None, host, number)


def bench_remote(device, paths, *, python: str = "python3", identity: Optional[str] = None,
                 ssh_options: Iterable[str] = (), timeout: float = 900, **bench_kwargs) -> dict:
    """Run ``measure.bench`` on an ssh device, shipping the agent and the artifacts.

    The device needs Python 3.8+, numpy and the runtime; nothing is installed
    or left there.

    Args:
        device: an ``SshDevice`` or an ``ssh://`` URL.
        paths: local ``.tflite`` / ``.onnx`` files.
        python: the device's Python (a name on its PATH or an absolute path).
        identity: a private key file for ``ssh -i``.
        ssh_options: extra ``ssh -o`` options, e.g. ``"StrictHostKeyChecking=accept-new"``.
        timeout: seconds for the whole ssh call.
        **bench_kwargs: ``runtime``, ``threads``, ``runs``, ``warmup``,
            ``rounds``, ``batch``, ``memory``, ``max_workers`` of ``measure.bench``.

    Returns:
        ``measure.bench``'s report with the caller's paths and
        ``device["transport"]`` (the URL) and ``device["workdir"]`` (the
        removed remote folder) added.

    Raises:
        FileNotFoundError: an artifact or the identity file is missing.
        ValueError: a bad URL, python or option.
        FileRefused: the device's runtime would not load some files (a ``ValueError``): every one named by
            the caller's path, as a local measurement names them, so the caller can drop them and time the rest.
        RuntimeError: ssh or the agent failed; the message starts with the URL.
    """
    if not isinstance(device, SshDevice):
        device = parse_device(device)
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("no model files given; expected at least one .tflite or .onnx path")
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such file")
    report = _run_agent(device, paths, _agent_argv(paths, bench_kwargs), python, identity, ssh_options, timeout)
    from runtime_bench.measure import thread_sweep

    counts = thread_sweep(bench_kwargs.get("threads"))
    for result, path in zip(report["results"], [p for p in paths for _ in counts]):  # a sweep: a row per count
        result["path"], result["name"] = path, os.path.basename(path)
    return report


def describe_remote(device, runtime: str = "litert", *, python: str = "python3", identity: Optional[str] = None,
                    ssh_options: Iterable[str] = (), timeout: float = 120) -> dict:
    """The device's fingerprint for ``runtime`` and which runtimes it can run, timing nothing.

    Returns ``{"device": {...}, "runtimes": {name: None | why not}, "results": []}``;
    arguments and errors as ``bench_remote``.
    """
    if not isinstance(device, SshDevice):
        device = parse_device(device)
    return _run_agent(device, [], ["--describe", "--runtime", str(runtime)], python, identity, ssh_options, timeout)


def _run_agent(device: "SshDevice", paths: list, argv: list, python: str, identity, ssh_options, timeout) -> dict:
    """Ship the agent and ``paths`` over one ssh session, run it with ``argv``, parse its JSON."""
    if not _PYTHON.fullmatch(python) or python.startswith("-"):
        raise ValueError(f"python {python!r} is not a plain executable name or path")
    if identity is not None and not os.path.isfile(identity):
        raise FileNotFoundError(f"identity file {identity}: no such file")
    cmd = ["ssh", "-p", str(device.port), "-o", "BatchMode=yes"]
    if identity is not None:
        cmd += ["-i", str(identity)]
    for option in ssh_options:
        cmd += ["-o", option]
    cmd += ["--", device.target, f"{shlex.quote(python)} -c {shlex.quote(BOOTSTRAP)}"]
    try:
        proc = subprocess.run(cmd, input=_payload(paths, argv), capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{device.url}: no answer within {timeout} s") from None
    except FileNotFoundError:
        raise RuntimeError(f"{device.url}: the ssh client is not installed here") from None
    if proc.returncode != 0:
        refused = _refusals(proc.stdout, paths)
        if refused:
            raise FileRefused.of(refused)
        raise RuntimeError(f"{device.url}: {_summary(proc.stderr.decode(errors='replace'), proc.returncode)}")
    try:
        report = json.loads(proc.stdout.decode())
    except ValueError:
        raise RuntimeError(f"{device.url}: the agent's answer is not JSON: {proc.stdout[-300:]!r}") from None
    report["device"]["transport"] = device.url
    return report


def run_bench(paths, device: Optional[str] = None, **kw) -> dict:
    """Benchmark ``paths`` here (``device`` None or ``"local"``) or on an ``ssh://`` device.

    ``kw`` goes to ``measure.bench`` locally and to ``bench_remote`` for a device.
    """
    if device is None or device == "local":
        from runtime_bench.measure import bench

        return bench(paths, **kw)
    return bench_remote(device, paths, **kw)


def _agent_argv(paths, kwargs: dict) -> list:
    """The agent's options as an argument list (shipped in options.json, never through a shell)."""
    from runtime_bench.measure import _resolve_runtimes

    unknown = sorted(set(kwargs) - set(_BENCH_OPTIONS) - {"memory"})
    if unknown:
        raise TypeError(f"bench_remote got unexpected options {', '.join(unknown)}; "
                        f"expected some of {', '.join(sorted([*_BENCH_OPTIONS, 'memory']))}")
    _resolve_runtimes(paths, kwargs.get("runtime"))  # a wrong name or a file it cannot run fails here, before ssh
    argv = []
    for key, flag in _BENCH_OPTIONS.items():
        value = kwargs.get(key)
        if value is not None:
            argv += [flag, ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)]
    if kwargs.get("memory", True) is False:
        argv.append("--no-memory")
    return argv


def _shipped_names(paths) -> list:
    """Each path's name in the device's ``artifacts/`` folder: its basename, made unique."""
    names, used = [], set()
    for i, path in enumerate(paths):
        name = os.path.basename(path)
        while name in used:
            name = f"{i}-{name}"
        used.add(name)
        names.append(name)
    return names


def _refusals(stdout: bytes, paths) -> dict:
    """The files the device's runtime refused (the agent's ``--json`` error answer), by the caller's paths, each
    message naming the caller's path; empty when the answer is no such thing."""
    try:
        answer = json.loads(stdout.decode())
    except ValueError:
        return {}
    if not isinstance(answer, dict) or not isinstance(answer.get("refused"), dict):
        return {}
    local = dict(zip(_shipped_names(paths), paths))
    refused = {}
    for remote, message in answer["refused"].items():
        path = local.get(os.path.basename(remote))
        if path is not None:
            refused[path] = str(message).replace(remote, path)
    return refused


def _payload(paths, argv) -> bytes:
    """The length-prefixed tar: runtime_bench/*.py, artifacts/<unique basenames>, options.json."""
    names = _shipped_names(paths)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for source in sorted(Path(__file__).resolve().parent.glob("*.py")):
            _add(tar, f"runtime_bench/{source.name}", source.read_bytes())
        for name, path in zip(names, paths):
            _add(tar, f"artifacts/{name}", Path(path).read_bytes())
        _add(tar, "options.json", json.dumps({"artifacts": names, "argv": argv}).encode())
    data = buffer.getvalue()
    return struct.pack(">Q", len(data)) + data


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _summary(stderr: str, returncode: int) -> str:
    """One line from ssh's stderr: the agent's error line if there is one, else the last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("runtime_bench: error:"):
            return line
    return lines[-1] if lines else f"ssh exited with status {returncode} and no message"
