"""One load and one inference of a file in a child process, so a runtime that crashes fails the file, not its caller.

``python -m runtime_bench.sandbox PATH [--runtime R] [--threads N]`` loads
PATH in its runtime, runs it once on random inputs (``runners.random_feeds``)
and exits 0; a Python error is one line on stderr and exit status 1.

A runtime may abort instead of raising. LiteRT's XNNPACK delegate, given an
int8 file it cannot build a runtime for, can fail cleanly ("failed to create
XNNPACK runtime") or, in this LiteRT (2026-12-05), free memory twice and
abort the process: keras.applications MobileNetV3Large (weights=None, 32x32)
factorized by lrfc, whose squeeze-excite convolutions of an untrained model
had a requantization scale (input x weight / output scale) of 5e4-6e4, where
XNNPACK creates none at 256 and up; the file with its HARD_SWISH rewritten
(``lrfc.lower.xnnpack_int8``) aborted on ``allocate_tensors`` with "double
free or corruption (!prev)", the file without failed cleanly. Inside
``lrfc build`` that abort ended the build with exit status 134 and no message
(its converter's log capture held fd 2). ``first_run`` runs the file here
first: where the child dies, the caller gets one line naming the signal and
the last thing the runtime wrote, and never loads the file itself.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from pathlib import Path
from typing import Optional

TIMEOUT_S = 300.0


def first_run(path, runtime: Optional[str] = None, threads: Optional[int] = None,
              timeout: float = TIMEOUT_S) -> Optional[str]:
    """None when ``path`` loads and runs once in a fresh process of its runtime; else why not, in one line.

    ``runtime``: a ``runners.RUNNERS`` name (default: the file's suffix's).
    """
    from runtime_bench.measure import child_env

    cmd = [sys.executable, "-m", "runtime_bench.sandbox", str(path)]
    if runtime is not None:
        cmd += ["--runtime", runtime]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=child_env(),
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"its runtime did not finish one inference within {timeout:g} s"
    if done.returncode == 0:
        return None
    said = last_words(done.stderr)
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        return f"its runtime crashed loading or running it ({name})" + (f": {said}" if said else "")
    return said or f"the check exited with status {done.returncode}"


def last_words(stderr: str) -> str:
    """The last line a runtime wrote that says something (its INFO lines about delegates left out)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("INFO:", "WARNING: All log messages"))]
    return lines[-1] if lines else ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime_bench.sandbox")
    parser.add_argument("path")
    parser.add_argument("--runtime")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    from runtime_bench.runners import DEFAULT_RUNTIME, get_runner, random_feeds

    try:
        runner = get_runner(args.runtime or DEFAULT_RUNTIME[Path(args.path).suffix])
        session = runner.load(args.path, args.threads, 1)
        session.run(session.place(random_feeds(session.inputs)))
    except Exception as exc:  # noqa: BLE001 - any refusal is the answer, in one line
        print(f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
