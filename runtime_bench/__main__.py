"""The agent's command line, the one a device runs: ``python -m runtime_bench PATH... [options]``.

argparse only (typer may be missing on a device). Prints a table, or the
report of ``measure.bench`` as JSON with ``--json``. A mistake in the
request (missing file, unknown or unavailable runtime, bad option) is one
line on stderr and exit status 2; a worker that died or hung is reported
with the tail of its stderr and exit status 1. Files the runtime would not
load (``runners.FileRefused``) are that one line and exit status 2, and with
``--json`` stdout also carries ``{"error": ..., "refused": {path: message}}``,
so a caller over ssh learns every file refused (``remote``).
"""

from __future__ import annotations

import argparse
import json
import sys

PROG = "runtime_bench"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, like every other error of the agent
        print(f"{PROG}: error: {message}", file=sys.stderr)
        sys.exit(2)


def _counts(text: str):
    """``--threads``: one count, or a comma list of counts (a sweep; ``measure.parse_threads``)."""
    from runtime_bench.measure import parse_threads

    try:
        return parse_threads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv=None) -> argparse.Namespace:
    from runtime_bench.runners import IO_MODES, RUNNERS

    p = _Parser(prog=f"python -m {PROG}", description="Time .tflite/.onnx files and measure their peak memory.")
    p.add_argument("paths", nargs="*", metavar="PATH", help=".tflite or .onnx files; each runs in its own runtime unless --runtime names one")
    p.add_argument("--describe", action="store_true",
                   help="time nothing: print this device's fingerprint for --runtime and which runtimes can run here")
    p.add_argument("--runtime", help=f"one of {', '.join(RUNNERS)} (default: from the file suffix)")
    p.add_argument("--threads", type=_counts, help="runtime threads (default: the runtime's); several, e.g. 1,2: "
                   "every file timed at each count in the one alternating run")
    p.add_argument("--runs", type=int, default=50, help="timed inferences per file (default 50)")
    p.add_argument("--warmup", type=int, default=5, help="untimed inferences per file first (default 5)")
    p.add_argument("--rounds", type=int, default=5, help="alternating passes over the files (default 5)")
    p.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    p.add_argument("--io", default="host", choices=IO_MODES,
                   help="host: numpy in and out every run (a GPU's copies timed, the default); device: inputs placed "
                        "on the runtime's device once, outputs left there (ONNX Runtime); graph: device plus CUDA "
                        "graph replay (ONNX Runtime CUDA/TensorRT)")
    p.add_argument("--no-memory", action="store_true", help="one worker for all files; no memory figures")
    p.add_argument("--max-workers", type=int, default=8, help="workers alive at once (default 8)")
    p.add_argument("--timeout", type=float, default=600, help="seconds a worker may take for one step (default 600)")
    p.add_argument("--lifetimes", type=int, default=1,
                   help="repeat the measurement with fresh workers; each file keeps its lowest median (default 1)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.describe:
        return _describe(args)
    if not args.paths:
        print(f"{PROG}: error: no model files given; expected at least one .tflite or .onnx path", file=sys.stderr)
        return 2
    from runtime_bench.measure import bench, format_table
    from runtime_bench.runners import FileRefused

    try:
        report = bench(args.paths, runtime=args.runtime, threads=args.threads, runs=args.runs, warmup=args.warmup,
                       rounds=args.rounds, batch=args.batch, memory=not args.no_memory,
                       max_workers=args.max_workers, timeout=args.timeout, lifetimes=args.lifetimes, io=args.io)
    except FileRefused as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        if args.json:
            print(json.dumps({"error": str(exc), "refused": exc.refused}))
        return 2
    except (ValueError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


def _describe(args) -> int:
    """``{"device": fingerprint, "runtimes": {name: null | why not}, "results": []}`` (JSON always)."""
    from runtime_bench.device import fingerprint
    from runtime_bench.runners import RUNNERS

    runtime = args.runtime or next(iter(RUNNERS))
    if runtime not in RUNNERS:
        print(f"{PROG}: error: unknown runtime {runtime!r}; known: {', '.join(RUNNERS)}", file=sys.stderr)
        return 2
    print(json.dumps({"device": fingerprint(runtime), "runtimes": {n: r.available() for n, r in RUNNERS.items()},
                      "results": []}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
