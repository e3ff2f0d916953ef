"""A persistent child process that holds loaded models and times them on request.

``python -m runtime_bench.worker --runtime R [--threads N] [--batch B] [--io host|device|graph] PATH...``
loads every PATH (its random inputs placed as ``--io`` says: ``runners.IO_MODES``), answers one JSON line::

    {"ready": true, "rss_mb": 41.2, "runtime_version": "1.32.0", "artifacts": [{"inputs": [...]}, ...]}

(or ``{"error": "...", "type": "ValueError", "path": "the first file refused", "refused": {path: message}}``,
every file the runtime refused named once all were tried, and exit status 1), then reads
commands from stdin, one per line, and answers each with one JSON line:

* ``run I N``: one untimed inference of artifact I (the turn's first pays for caches
  another artifact evicted), then N runs, each timed with ``perf_counter_ns``
  → ``{"ms": [...]}``.
* ``quit`` → ``{"peak_rss_mb": ...}`` (VmHWM, this process's own high-water
  mark; null where /proc is missing), then exit 0.

Why the worker reports its own VmHWM although the parent also reaps it with
``os.wait4``: on Linux a child's ``ru_maxrss`` includes the resident size of
the parent at the moment it was spawned (exec keeps the maximum over the
pre-exec address space, which for vfork/fork is the parent's). A parent with
TensorFlow loaded would make every tiny model look 600 MB big. VmHWM belongs
to the address space created by exec, so it counts the worker alone.

The protocol goes through a private copy of stdout; file descriptor 1 is
pointed at stderr so that anything a runtime prints cannot corrupt it.
Memory sizes are MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from typing import Optional

# Runtimes' worker threads (XNNPACK's pthreadpool, ORT's intra-op pool) spin for a while after
# an inference before they sleep. Measured here with 2 threads: a 5 us conv timed right after
# another interpreter's turn read 0.0074 ms instead of 0.0052 ms alone. A pause before each
# turn lets the previous artifact's threads park, so artifacts do not slow each other.
TURN_PAUSE_S = 0.005
# After the pause the threads are asleep, and the first inferences of a turn run as if on one
# thread until the scheduler has spread them again. Measured here (LiteRT, 2 threads, a 0.56 ms
# model among 11 workers): turns of 10 inferences after one untimed one read 1.10-1.26 ms, the
# single-thread time; with untimed inferences for 10 ms first they read 0.56 ms. 10 ms was not
# always enough where each file has its own worker: ONNX Runtime's pool threads spin for about
# 38 ms of CPU after a run (2 threads, the AMD EPYC, 2026-12-07), and a 2-thread worker whose
# turn followed another 2-thread worker's read its one-thread time for the whole turn in about a
# third of the turns (the demo's int8 ONNX model: 0.165 ms against 0.108 in 4 of 10 runs); with
# 100 ms it read 0.108-0.110 in 10 of 10 (docs/LOG.md). ``--warm-ms`` sets it per worker
# (``measure.WARM_MS``: 100 ms with a worker per file and more than one thread, else 10 ms).
WARM_S = 0.1


def status_mb(field: str) -> Optional[float]:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM) in MiB; None where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            text = f.read()
    except OSError:
        return None
    match = re.search(rf"^{field}:\s+(\d+)\s+kB", text, re.MULTILINE)
    return round(int(match.group(1)) / 1024, 4) if match else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime_bench.worker")
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--runtime", required=True)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--io", default="host")
    parser.add_argument("--warm-ms", type=float, default=1e3 * WARM_S)
    args = parser.parse_args(argv)

    sys.stdout.flush()
    reply_to = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever a runtime prints goes to stderr; stdout carries only the replies

    def reply(obj) -> None:
        reply_to.write(json.dumps(obj) + "\n")
        reply_to.flush()

    loaded = _load(args, reply)
    if loaded is None:
        return 1
    return _serve(args.paths, *loaded, reply, args.warm_ms / 1e3)


def _load(args, reply):
    """Load every file into a session with its random inputs; reply ready (or the error) and return them."""
    try:
        from runtime_bench.runners import get_runner, random_feeds

        runner = get_runner(args.runtime)
    except ValueError as exc:
        reply({"error": str(exc), "type": "ValueError"})
        return None
    sessions, feeds, refused = [], [], {}
    for path in args.paths:
        try:
            session = runner.load(path, args.threads, args.batch, io=args.io)
            feeds.append(session.place(random_feeds(session.inputs)))
        except Exception as exc:  # reported, not raised: the parent re-raises it with the file's name
            message = str(exc) if path in str(exc) else f"{path}: {type(exc).__name__}: {exc}"
            if isinstance(exc, ValueError):  # this file refused: the others are still loaded, so one reply names all
                refused[path] = message
                continue
            reply({"error": message, "type": "RuntimeError", "path": path})
            return None
        sessions.append(session)
    if refused:
        first = next(iter(refused))
        reply({"error": refused[first], "type": "ValueError", "path": first, "refused": refused})
        return None
    reply({
        "ready": True,
        "rss_mb": status_mb("VmRSS"),
        "runtime_version": runner.version(),
        "artifacts": [{"inputs": [{"name": n, "shape": list(s), "dtype": str(d)} for n, s, d in se.inputs]}
                      for se in sessions],
    })
    return sessions, feeds


def _serve(paths, sessions, feeds, reply, warm_s: float = WARM_S) -> int:
    """Answer ``run I N`` with N timed inferences of file I, ``quit`` with the peak memory."""
    while True:
        line = sys.stdin.readline()
        if not line:  # the parent went away
            return 0
        words = line.split()
        if words == ["quit"]:
            reply({"peak_rss_mb": status_mb("VmHWM")})
            return 0
        if (len(words) != 3 or words[0] != "run" or not words[1].isdigit() or not words[2].isdigit()
                or int(words[1]) >= len(sessions)):
            reply({"error": f"unknown command {line.strip()!r}; expected 'run I N' (I < {len(sessions)}) or 'quit'"})
            continue
        index, count = int(words[1]), int(words[2])
        try:
            reply({"ms": _timed(sessions[index], feeds[index], count, warm_s)})
        except Exception as exc:
            reply({"error": f"{paths[index]}: {type(exc).__name__}: {exc}"})


def _timed(session, x, count: int, warm_s: float = WARM_S) -> list:
    """Milliseconds of ``count`` inferences, after a pause and ``warm_s`` (at least one inference) untimed."""
    time.sleep(TURN_PAUSE_S)  # let the thread pools of the artifact that ran before park
    warm_until = time.perf_counter() + warm_s
    session.run(x)  # untimed: the first inferences of a turn pay for caches evicted and threads asleep
    while time.perf_counter() < warm_until:
        session.run(x)
    ms = []
    for _ in range(count):
        start = time.perf_counter_ns()
        session.run(x)
        ms.append((time.perf_counter_ns() - start) / 1e6)
    return ms


if __name__ == "__main__":
    sys.exit(main())
