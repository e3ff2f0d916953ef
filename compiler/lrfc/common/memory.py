"""Peak resident memory of this process, per stretch of work (Linux ``/proc``).

``reset_peak`` clears the kernel's high-water mark (``VmHWM``) by writing 5
to ``/proc/self/clear_refs`` (Linux >= 4.0), so ``peak_mb`` afterwards is
the peak of what ran in between, not of the whole process so far. Where
``/proc`` is missing or the reset is refused, ``reset_peak`` returns False
and ``peak_mb`` is the process's peak since it started (still an upper
bound), or None without ``/proc``. The reset is process-wide: it also
lowers what ``getrusage``/``wait4`` report as ``ru_maxrss`` for this process
(measured), so a caller that wants the whole run's peak takes the largest
per-stretch peak.

``release`` hands memory that only garbage holds back to the system: the
converters leave their graphs in reference cycles (freed only by a full
collection, which Python runs rarely in a process with millions of
long-lived TensorFlow objects) and glibc keeps freed heap pages mapped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import re
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR = Path("/proc/self/clear_refs")


def reset_peak() -> bool:
    """Reset the high-water mark; False where the kernel does not allow it."""
    try:
        _CLEAR.write_text("5")
        return True
    except OSError:
        return False


def peak_mb() -> float | None:
    """VmHWM in MB (2**20 bytes), or None where /proc/self/status is missing."""
    try:
        match = re.search(r"^VmHWM:\s+(\d+)\s+kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) / 1024 if match else None


def release() -> None:
    """Collect cyclic garbage and return the heap's free pages to the system (glibc ``malloc_trim``)."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def _malloc_trim():
    """glibc's ``malloc_trim``, or None on another C library."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
