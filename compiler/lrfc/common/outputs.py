"""A command's output folder: checked before heavy work, filled through staging, published as one unit.

A build's (or an export's) results are one set: report.json, plan.json,
model.keras and the artifacts belong together. They are written into a hidden
staging folder inside the output folder (``.lrfc-staging-<pid>``) and
*published* at the end:

1. a marker ``.lrfc-publishing`` is written, naming every result file;
2. the old set goes: ``report.json``/``export.json`` first (their presence
   says "a finished run"), then every other result file, including ones the
   new set lacks (an old ``model.onnx`` must not sit beside a new
   ``model.tflite``);
3. the new files move in with ``os.replace``, the report last;
4. the marker and the staging folder are removed.

SIGINT and SIGTERM are held off while that runs (a few renames), so Ctrl-C
cannot split it. Only SIGKILL can; then the marker stays, and the next run
into the folder removes the half-published set before it starts, as it
removes staging folders whose process is gone. So an output folder holds
either the old set, or the new set, or no result at all; never a mix.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from pathlib import Path

from lrfc.errors import UserError

RESULT_FILES = ("report.json", "export.json", "report.html", "plan.json", "model.keras", "model.tflite",
                "model.onnx", "original.tflite", "original.onnx", "model.int8.tflite", "model.int8.onnx",
                "original.int8.tflite", "original.int8.onnx", "model.fp32.tflite", "model.fp32.onnx",
                "original.fp32.tflite", "original.fp32.onnx")  # the last eight: the baselines (lower.stage)
REPORTS = ("report.json", "export.json")  # written last, removed first
MARKER = ".lrfc-publishing"
STAGING_PREFIX = ".lrfc-staging-"
SCRATCH_PREFIX = ".lrfc-scratch-"  # working files (captured feature maps), never published


def check_writable_dir(path: Path, what: str, hint: str = "") -> bool:
    """Make sure ``path`` is a folder lrfc can write: create it if needed, write and remove a probe file.

    Returns True when this call created the folder. Raises ``UserError`` naming
    ``what`` (the flag) when the path is a file, lies under a file, or cannot be written.
    """
    path = Path(path)
    tail = f"; {hint}" if hint else ""
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path}: exists and is not a folder{tail}")
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".lrfc-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if isinstance(exc, NotADirectoryError):
            reason = "a part of the path is a file"
        raise UserError(f"{what} {path}: cannot be written ({reason}){tail}") from None
    return created


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _signals_held():
    """Hold SIGINT/SIGTERM until the block ends (they are delivered then)."""
    held = {signal.SIGINT, signal.SIGTERM}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, ValueError, OSError):  # not the main thread, or no POSIX signals
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class OutputDir:
    """The output folder of one run; see the module doc."""

    def __init__(self, path: str | Path, flag: str = "--out"):
        self.path = Path(path)
        self.flag = flag
        self._created = False
        self._staging: Path | None = None
        self._scratch: Path | None = None

    def prepare(self, log=None) -> None:
        """Check the folder can be written and clean up after earlier runs that were killed."""
        self._created = check_writable_dir(self.path, self.flag)
        marker = self.path / MARKER
        if marker.exists():
            removed = self._remove_results()
            marker.unlink(missing_ok=True)
            if log is not None:
                log(f"lrfc: warning: an earlier run was killed while publishing into {self.path}; removed its "
                    f"partial results ({', '.join(removed) or 'none left'})")
        for prefix in (STAGING_PREFIX, SCRATCH_PREFIX):
            for stale in self.path.glob(prefix + "*"):
                pid = stale.name[len(prefix):]
                if stale.is_dir() and not (pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid))):
                    shutil.rmtree(stale, ignore_errors=True)

    def _own(self, prefix: str) -> Path:
        """This run's hidden folder with ``prefix``, made empty."""
        folder = self.path / f"{prefix}{os.getpid()}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder

    @property
    def staging(self) -> Path:
        """The hidden folder this run writes its results into (created on first use)."""
        if self._staging is None:
            self._staging = self._own(STAGING_PREFIX)
        return self._staging

    @property
    def scratch(self) -> Path:
        """A hidden folder for this run's working files (created on first use, removed at the end, never published)."""
        if self._scratch is None:
            self._scratch = self._own(SCRATCH_PREFIX)
        return self._scratch

    def final(self, name: str) -> Path:
        """Where a staged file ends up."""
        return self.path / name

    def _remove_results(self) -> list[str]:
        removed = []
        for name in (*REPORTS, *[n for n in RESULT_FILES if n not in REPORTS]):
            target = self.path / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            else:
                continue
            removed.append(name)
        return removed

    def publish(self) -> dict[str, Path]:
        """Replace the folder's results with everything staged; returns ``{name: final path}``."""
        staged = sorted(p.name for p in self.staging.iterdir())
        unknown = [n for n in staged if n not in RESULT_FILES]
        if unknown:
            raise ValueError(f"staged files {unknown} are not result files {RESULT_FILES}")
        order = [n for n in staged if n not in REPORTS] + [n for n in REPORTS if n in staged]
        with _signals_held():
            (self.path / MARKER).write_text(json.dumps({"pid": os.getpid(), "files": order}) + "\n")
            self._remove_results()
            for name in order:
                os.replace(self.staging / name, self.path / name)
            (self.path / MARKER).unlink()
            shutil.rmtree(self.staging, ignore_errors=True)
            self._staging = None
        return {name: self.path / name for name in order}

    def discard(self) -> None:
        """Drop what was staged (a failed or interrupted run); remove the folder if this run created it empty."""
        # by name, not by the recorded paths: an interrupt between a folder's mkdir and its recording would
        # otherwise leave it behind
        for prefix in (STAGING_PREFIX, SCRATCH_PREFIX):
            shutil.rmtree(self.path / f"{prefix}{os.getpid()}", ignore_errors=True)
        self._staging = self._scratch = None
        if self._created:
            with contextlib.suppress(OSError):
                self.path.rmdir()  # only when empty
