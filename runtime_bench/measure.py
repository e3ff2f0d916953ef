"""Measure latency and peak memory of model files: the one measuring function, ``bench``.

Models run in worker processes (``runtime_bench.worker``), never in the
caller: the caller may hold TensorFlow or other models, and a worker per
artifact gives each artifact its own peak resident memory. Several workers
stay loaded at once and take turns, in an order that reverses every round
(A B C, C B A, ...), so a slow drift in machine load hits every artifact
alike; only one artifact runs at any moment.

Peak memory is the worker's VmHWM, read by the worker as it quits. The
``ru_maxrss`` that ``os.wait4`` returns for the worker (the parent reaps every
worker with it) is used only where /proc is missing: on Linux it includes the
parent's resident size at spawn time (see ``runtime_bench.worker``).

Works on Python 3.8+ with numpy and one runtime; Unix only (select on pipes).
"""

from __future__ import annotations

import json
import math
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

import numpy as np

from runtime_bench import cores
from runtime_bench.device import fingerprint
from runtime_bench.runners import FileRefused, UnavailableError, check_io, get_runner, runtime_for

MIB = 2 ** 20
# Untimed inferences at the start of each turn (``worker.WARM_S``): with a worker per file, long
# enough for the last worker's spinning threads to stop and this one's to spread over the cores;
# a one-thread worker has nothing to spread (10 ms), and many micro-benchmarks in one worker
# (``memory=False``: a build's chain prices, the probe) keep 10 ms too, where 100 would add about
# 40 s to the ResNet-style model's 456 turns of pricing.
WARM_MS, WARM_MS_SHARED = 100.0, 10.0
# Rounds run with the cores far apart (``cores``) are run again, up to this many times the rounds asked for.
MAX_ROUNDS_FACTOR = 3


def parse_threads(text: str):
    """``--threads`` as typed: one count, or a comma list of counts (a sweep); ValueError names a bad one."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"expected a count or a comma list of counts, e.g. 2 or 1,2; received {text!r}") from None
    return counts[0] if len(counts) == 1 else counts


def thread_sweep(threads) -> List[Optional[int]]:
    """``threads`` as the list of counts every file is timed at: None or one count is a list of one; a
    sequence (a sweep) keeps its order, each count a positive integer, none twice."""
    counts = list(threads) if isinstance(threads, (list, tuple)) else [threads]
    if not counts:
        raise ValueError("threads: an empty list; expected one count or several, e.g. 1,2")
    for n in counts:
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise ValueError(f"threads must be integers >= 1, received {n!r}")
    if len(counts) > 1 and (None in counts or len(set(counts)) != len(counts)):
        raise ValueError(f"threads: a sweep lists distinct counts, received {threads!r}")
    return counts


def bench(paths, *, runtime: Optional[str] = None, threads=None, runs: int = 50, warmup: int = 5,
          rounds: int = 5, batch: int = 1, memory: bool = True, max_workers: int = 8, timeout: float = 600,
          lifetimes: int = 1, io: str = "host") -> dict:
    """Time each model file and measure its peak resident memory.

    Args:
        paths: ``.tflite`` / ``.onnx`` files; each runs in the runtime its suffix calls for
            (``runners.DEFAULT_RUNTIME``) unless ``runtime`` names one for all.
        runtime: a key of ``runners.RUNNERS``; None picks it from the suffix.
        threads: runtime threads (None: the runtime's default), or a sequence of counts (a sweep): then every
            file is timed at each count, as one more artifact of the same alternating run, and the results
            hold one row per file and count, the counts of a file together in the order given (each row's
            ``threads`` says which). A small model can run faster on fewer threads than a device has:
            the Fashion-MNIST ResNet-style model factorized on the Xeon, 0.113 ms on one LiteRT thread and
            0.162 on two, its original 1.119 and 0.612.
        runs: timed inferences per artifact, spread over the rounds (the
            count kept is ``rounds * ceil(runs / rounds)``, fewer where
            rounds run with the cores far apart are left out: ``rounds``).
        warmup: untimed inferences per artifact before the first round.
        rounds: passes over the artifacts (at most ``runs``), alternating order. With ``memory`` and a
            file on more than one thread, the cores' distance is probed before and after every round
            (``runtime_bench.cores``); a round during which two cores were far apart is run again (up to
            ``MAX_ROUNDS_FACTOR`` times the rounds in all) and the files' times come from at most
            ``rounds`` near ones (``runs`` counts what was kept; where none was near, from the rounds whose
            probes read lowest); each row says how many rounds ran with the cores far apart
            (``rounds_far``), whether its times come from them (``cores_far``) and the range of the probes
            around the rounds it kept (``core_round_trip_us``, microseconds; None where nothing was probed).
        batch: the batch every input is fixed to.
        memory: True gives every artifact its own worker (at most
            ``max_workers`` alive at once) and reports its peak memory;
            False loads all artifacts into one worker (cheap, for many tiny
            micro-benchmarks) and reports memory as None.
        max_workers: workers alive at once when ``memory`` is True.
        timeout: seconds a worker may take to load, or to answer one batch of runs.
        lifetimes: how many times the whole measurement runs, each with fresh
            workers; each file keeps its row from the one where its median
            was lowest: a later set of workers is another chance where a
            whole run met the cores far apart (``rounds``) or a busy machine.
        io: how inputs and outputs meet each run (``runners.IO_MODES``): ``host`` numpy in and out, ``device``
            placed in the runtime's memory once (a GPU's copies not timed), ``graph`` that and a CUDA graph
            replayed; the runtime must offer it (``Runner.io_modes``).

    Returns:
        ``{"device": fingerprint, "results": [one dict per path, in order]}``;
        times in ms, memory in MiB, floats rounded to 4 decimals.

    Raises:
        FileNotFoundError: a path is not a file.
        ValueError: a bad option, an unknown runtime, a file the runtime does
            not run, or a model the runtime refuses at this batch (a
            ``FileRefused`` naming every file a worker would not load).
        UnavailableError: the runtime cannot run here (a ``ValueError``).
        RuntimeError: a worker died or timed out (with its stderr tail).
    """
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("no model files given; expected at least one .tflite or .onnx path")
    counts = thread_sweep(threads)
    for name, value, low in (("runs", runs, 1), ("warmup", warmup, 0), ("rounds", rounds, 1), ("batch", batch, 1),
                             ("max_workers", max_workers, 1), ("lifetimes", lifetimes, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, received {value!r}")
    if not timeout > 0:
        raise ValueError(f"timeout must be positive seconds, received {timeout!r}")
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such file")
    runtimes = _resolve_runtimes(paths, runtime)
    for name in dict.fromkeys(runtimes):
        runner = get_runner(name)
        check_io(name, io, runner.io_modes)
        reason = runner.available()
        if reason:
            raise UnavailableError(f"runtime {name} is unavailable: {reason}")

    rounds = min(rounds, runs)
    plan = dict(warmup=warmup, rounds=rounds, per_round=math.ceil(runs / rounds),
                batch=batch, memory=memory, timeout=timeout, io=io)
    # scheduled count by count, so that when the workers come in groups every file at one count shares one
    # (ratios at one count stay side by side); reported file by file
    pairs = [(path, rt, n) for n in counts for path, rt in zip(paths, runtimes)]
    groups = [pairs[i:i + max_workers] for i in range(0, len(pairs), max_workers)] if memory else [pairs]
    order = [k * len(paths) + i for i in range(len(paths)) for k in range(len(counts))]
    results: List[dict] = []
    probe = _core_probe(pairs, memory)
    try:
        for _ in range(lifetimes):
            timed = [row for group in groups
                     for row in _bench_group(group, probe=probe if _threaded(group) else None, **plan)]
            fresh = [timed[j] for j in order]
            results = fresh if not results else [new if new["p50_ms"] < old["p50_ms"] else old
                                                 for old, new in zip(results, fresh)]
    finally:
        if probe is not None:
            probe.close()
    for r in results:
        r["lifetimes"] = lifetimes
    prints = {name: fingerprint(name) for name in dict.fromkeys(runtimes)}
    for r in results:
        r["device_id"] = prints[r["runtime"]]["id"]
    return {"device": prints[runtimes[0]], "results": results}


def _resolve_runtimes(paths: List[str], runtime: Optional[str]) -> List[str]:
    """The runtime of each path: the one named (every file must suit it), or each file's own by its suffix."""
    if runtime is None:
        return [runtime_for(p) for p in paths]
    runner = get_runner(runtime)
    for path in paths:
        if Path(path).suffix.lower() != runner.suffix:
            raise ValueError(f"{path}: runtime {runtime} runs {runner.suffix} files, received {Path(path).suffix!r}")
    return [runtime] * len(paths)


def _schedule(n: int, rounds: int) -> List[List[int]]:
    """The artifact order of every round: 0..n-1, then reversed, and so on."""
    forward = list(range(n))
    return [forward if r % 2 == 0 else forward[::-1] for r in range(rounds)]


def _threaded(pairs: List[tuple]) -> bool:
    """Whether some ``(path, runtime, threads)`` runs on several CPU threads (None: the runtime's default)."""
    return any(threads != 1 and not get_runner(runtime).gpu for _, runtime, threads in pairs)


def _core_probe(pairs: List[tuple], memory: bool) -> Optional[cores.Probe]:
    """A probe of the cores' distance for whole-model timing (``memory``: a worker per file) where some file
    runs on several CPU threads of a machine with several cores; else None. Many micro-benchmarks in one
    worker (a build's chain prices) are estimates, and are not held up."""
    return cores.Probe() if memory and cores.usable_cores() >= 2 and _threaded(pairs) else None


def _timed_rounds(slots: List[tuple], rounds: int, per_round: int, probe: Optional[cores.Probe]):
    """Run the alternating rounds; with a probe, run more while fewer than ``rounds`` ran with the cores near
    (at most ``MAX_ROUNDS_FACTOR * rounds`` in all), and keep the near ones: at most ``rounds`` (fewer where
    fewer were near: times of both states together would make two files' ratio depend on when each ran);
    where none was near, the ``rounds`` whose probes read lowest.

    Returns each file's times from the rounds kept, the count of rounds run with the cores far apart,
    whether the rounds kept are those (none was near), and the lowest and highest probe around the rounds
    kept (None: no probe).
    """
    probes = [probe.round_trip_us()] if probe is not None else []
    ran: List[List[List[float]]] = []  # per round, per file
    schedule = _schedule(len(slots), rounds * (MAX_ROUNDS_FACTOR if probe is not None else 1))
    while len(ran) < len(schedule):
        times: List[List[float]] = [[] for _ in slots]
        for a in schedule[len(ran)]:
            worker, index = slots[a]
            times[a] = worker.run(index, per_round)
        ran.append(times)
        if probe is None:
            continue
        probes.append(probe.round_trip_us())
        if len(ran) - sum(cores.far_rounds(probes, probe.lowest)) >= rounds:
            break
    if probe is None:
        return [[t for times in ran for t in times[a]] for a in range(len(slots))], 0, False, None
    far = cores.far_rounds(probes, probe.lowest)
    highest = [max((p for p in probes[r:r + 2] if p is not None), default=0.0) for r in range(len(ran))]
    kept = sorted(range(len(ran)), key=lambda r: (far[r], highest[r], r))[:rounds]
    if not far[kept[0]]:
        kept = [r for r in kept if not far[r]]
    merged = [[t for r in kept for t in ran[r][a]] for a in range(len(slots))]
    around = [p for r in kept for p in probes[r:r + 2] if p is not None]
    return merged, sum(far), far[kept[0]], [min(around), max(around)] if around else None


def _bench_group(pairs: List[tuple], *, warmup, rounds, per_round, batch, memory, timeout, io,
                 probe: Optional[cores.Probe] = None) -> List[dict]:
    """Load ``(path, runtime, threads)`` entries into workers, warm up, run the alternating rounds, quit and reap.

    With ``memory`` every entry has its own worker (of its own runtime and
    thread count), so files of different runtimes alternate just like files
    of one; without it one worker per runtime and thread count holds its files.
    """
    paths = [p for p, _, _ in pairs]
    workers: List[_Worker] = []
    ready, peaks = {}, {}
    slots: List[tuple] = [None] * len(pairs)
    try:
        kinds = dict.fromkeys((r, n) for _, r, n in pairs)
        members = ([[i] for i in range(len(pairs))] if memory else
                   [[i for i, (_, r, n) in enumerate(pairs) if (r, n) == kind] for kind in kinds])
        for indices in members:  # one by one: a failed start leaves none behind
            _, runtime, threads = pairs[indices[0]]
            worker = _Worker(runtime, [paths[i] for i in indices], threads, batch, timeout, io,
                             warm_ms=WARM_MS if memory and threads != 1 else WARM_MS_SHARED)
            workers.append(worker)
            for k, i in enumerate(indices):
                slots[i] = (worker, k)
        refused = {}
        for worker in workers:  # every worker's answer first: one FileRefused names every file refused
            try:
                ready[id(worker)] = worker.ready()
            except FileRefused as exc:
                refused.update(exc.refused)
        if refused:
            raise FileRefused.of(refused)
        for worker, index in slots:
            if warmup:
                worker.run(index, warmup)
        times, far, far_kept, spread = _timed_rounds(slots, rounds, per_round, probe)
        peaks = {id(w): w.close() for w in workers}
    finally:
        for worker in workers:
            worker.kill()

    return [{**_result(path, runtime, times[a], ready[id(worker)], index, peaks[id(worker)] if memory else None,
                       threads=threads, batch=batch, warmup=warmup, rounds=rounds, memory=memory, io=io),
             "rounds_far": far, "cores_far": far_kept, "core_round_trip_us": spread}
            for a, ((path, runtime, threads), (worker, index)) in enumerate(zip(pairs, slots))]


def _result(path: str, runtime: str, times: List[float], info: dict, index: int, peak, *, threads, batch, warmup,
            rounds, memory, io) -> dict:
    """One file's row: latency percentiles, throughput, memory, size and inputs."""
    ms = np.asarray(times, dtype=np.float64)
    p50, p90, p99 = np.percentile(ms, [50, 90, 99], method="linear")
    mean = float(ms.mean())
    return {
        "path": path, "name": os.path.basename(path), "runtime": runtime, "runtime_version": info["runtime_version"],
        "threads": threads, "batch": batch, "io": io, "runs": len(ms), "warmup": warmup, "rounds": rounds,
        "p50_ms": _r(p50), "p90_ms": _r(p90), "p99_ms": _r(p99), "mean_ms": _r(mean), "min_ms": _r(ms.min()),
        "throughput_ips": _r(batch * 1000 / mean) if mean > 0 else None,
        "peak_rss_mb": _r(peak) if memory else None,
        "load_rss_mb": _r(info["rss_mb"]) if memory else None,
        "file_bytes": os.path.getsize(path),
        "inputs": info["artifacts"][index]["inputs"],
    }


def _r(value) -> Optional[float]:
    return None if value is None else round(float(value), 4)


def child_env() -> dict:
    """The environment for workers: this copy of runtime_bench first on PYTHONPATH.

    A site-packages install is found without help (and putting site-packages
    ahead of the standard library would be wrong), so only other locations
    (a source tree, the temporary folder of a remote run) are added.
    """
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    if Path(root).name not in ("site-packages", "dist-packages"):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _exit_code(status: int) -> int:
    """``os.waitstatus_to_exitcode`` (Python 3.9+), spelled out for 3.8 devices."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


class _Worker:
    """The parent's handle on one worker process: JSON line requests with a deadline."""

    def __init__(self, runtime: str, paths: List[str], threads: Optional[int], batch: int, timeout: float,
                 io: str = "host", warm_ms: float = 100.0):
        self.paths = paths
        self.timeout = timeout
        self.rusage = None
        self._buffer = b""
        self._stderr = tempfile.TemporaryFile()
        cmd = [sys.executable, "-m", "runtime_bench.worker", "--runtime", runtime, "--batch", str(batch), "--io", io,
               "--warm-ms", f"{warm_ms:g}"]
        if threads is not None:
            cmd += ["--threads", str(threads)]
        self.proc = subprocess.Popen([*cmd, "--", *paths], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr, env=child_env(), bufsize=0)

    def ready(self) -> dict:
        """The worker's ready line (load RSS, runtime version, inputs per artifact)."""
        return self._read("loading")

    def run(self, index: int, count: int) -> List[float]:
        """Milliseconds of ``count`` timed inferences of artifact ``index``."""
        return self._request(f"run {index} {count}", f"running {self.paths[index]}")["ms"]

    def close(self) -> Optional[float]:
        """Quit, reap with ``os.wait4`` and return the peak resident memory in MiB."""
        peak = self._request("quit", "quitting").get("peak_rss_mb")
        self.proc.stdin.close()
        self._reap(time.monotonic() + self.timeout)
        if peak is None and self.rusage is not None:
            peak = self.rusage.ru_maxrss / (MIB if sys.platform == "darwin" else 1024)
        return peak

    def kill(self) -> None:
        """Stop the worker if it still runs, reap it, close its pipes; safe to call twice."""
        self._stop()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self._stderr.close()

    def _reap(self, deadline: Optional[float]) -> None:
        """Collect the exit status and rusage with ``os.wait4`` (so Popen never reaps it first)."""
        while self.proc.returncode is None:
            try:
                pid, status, rusage = os.wait4(self.proc.pid, 0 if deadline is None else os.WNOHANG)
            except ChildProcessError:
                self.proc.returncode = -1
                return
            if pid:
                self.proc.returncode, self.rusage = _exit_code(status), rusage
            elif time.monotonic() > deadline:
                self.proc.kill()
                deadline = None
            else:
                time.sleep(0.005)

    def _request(self, line: str, what: str) -> dict:
        try:
            self.proc.stdin.write(line.encode() + b"\n")
        except (BrokenPipeError, ValueError):
            raise self._failure(f"the worker exited before {what}") from None
        return self._read(what)

    def _read(self, what: str) -> dict:
        deadline = time.monotonic() + self.timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._failure(f"no answer within {self.timeout} s while {what}")
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise self._failure(f"the worker exited while {what}")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            reply = json.loads(line)
        except ValueError:
            raise self._failure(f"garbled reply {line[:200]!r} while {what}") from None
        if "error" in reply:
            if reply.get("type") == "ValueError":
                if reply.get("path"):
                    raise FileRefused(reply["error"], reply["path"], reply.get("refused"))
                raise ValueError(reply["error"])
            raise self._failure(reply["error"])
        return reply

    def _failure(self, message: str) -> RuntimeError:
        """A RuntimeError naming the files, the exit status and the tail of the worker's stderr."""
        self._stop()
        status = f" (exit status {self.proc.returncode})" if self.proc.returncode not in (None, 0) else ""
        return RuntimeError(f"benchmark worker for {', '.join(self.paths)}: {message}{status}\n{self._stderr_tail()}")

    def _stop(self) -> None:
        if self.proc.returncode is None:
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
            self._reap(None)

    def _stderr_tail(self, chars: int = 2000) -> str:
        try:
            self._stderr.seek(0)
            text = self._stderr.read().decode(errors="replace").strip()
        except (OSError, ValueError):
            return ""
        return ("worker stderr (last lines):\n" + text[-chars:]) if text else "the worker wrote nothing on stderr"


def format_table(report: dict) -> str:
    """The report of ``bench`` as a plain-text table, one row per artifact."""
    d = report["device"]
    gpu = f", {d['gpu']}" if d.get("gpu") else ""
    versions = dict.fromkeys(f"{r['runtime']} {r['runtime_version']}" for r in report["results"])
    head = f"device: {d['cpu']} ({d['cores']} cores, {d['machine']}{gpu}), {', '.join(versions)}"
    if d.get("transport"):
        head += f", via {d['transport']}"
    swept = len({r.get("threads") for r in report["results"]}) > 1  # a sweep: each file at several counts
    rows = [("name", "runtime") + (("threads",) if swept else ()) + ("p50 ms", "p90 ms", "p99 ms", "items/s",
                                                                     "peak MiB", "size")]
    entries = [(r["name"], r.get("threads")) for r in report["results"]]
    key = "name" if len(set(entries)) == len(entries) else "path"  # model.tflite thrice says nothing
    for r in report["results"]:
        peak = "-" if r["peak_rss_mb"] is None else f"{r['peak_rss_mb']:.1f}"
        rows.append((r[key], r["runtime"]) + ((str(r["threads"]),) if swept else ()) + (
            f"{r['p50_ms']:.3f}", f"{r['p90_ms']:.3f}", f"{r['p99_ms']:.3f}",
            f"{r['throughput_ips']:.1f}" if r["throughput_ips"] else "-", peak, size_text(r["file_bytes"])))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [head]
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])] + [c.rjust(w) for c, w in zip(row[2:], widths[2:])]
        lines.append("  ".join(cells).rstrip())
    far = cores_note(report["results"])
    return "\n".join(lines + ([far] if far else []))


def far_throughout(rows: List[dict]) -> List[dict]:
    """The rows on several threads whose every round ran with the machine's cores far apart (``cores``): their
    times may read slower than the machine runs them with its cores near."""
    return [r for r in rows if r.get("cores_far") and r.get("threads") != 1]


def cores_note(rows: List[dict]) -> Optional[str]:
    """One line on rounds run with the machine's cores far apart (``runtime_bench.cores``), or None."""
    far = far_throughout(rows)
    if far:
        return (f"no round ran with the cores near (runtime_bench.cores; core round trip "
                f"{min(r['core_round_trip_us'][0] for r in far):.2f}-{max(r['core_round_trip_us'][1] for r in far):.2f}"
                f" us): the times of {', '.join(sorted({r['name'] for r in far}))} on several threads may read "
                "slower than this machine runs them with its cores near")
    dropped = max((r.get("rounds_far") or 0 for r in rows), default=0)
    if dropped:
        return (f"{dropped} round{'s' if dropped > 1 else ''} with the cores far apart left out "
                "(runtime_bench.cores): the times come from rounds with the cores near")
    return None


def size_text(n: int) -> str:
    """A file size in binary units, as every lrfc table prints it: ``1.5 MiB``, ``17.0 KiB``, ``312 B``."""
    for unit, scale in (("MiB", MIB), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
