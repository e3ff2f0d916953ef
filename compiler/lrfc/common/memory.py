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


def _status_kb(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (VmHWM, VmRSS), or None where it cannot be read."""
    try:
        match = re.search(rf"^{field}:\s+(\d+)\s+kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def peak_mb() -> float | None:
    """VmHWM in MB (2**20 bytes), or None where /proc/self/status is missing."""
    kb = _status_kb("VmHWM")
    return None if kb is None else kb / 1024


RELEASE_GROWTH = 256 * 2**20  # resident growth since the last release below which a collection is not worth it
_released_at: list[int | None] = [None]  # resident bytes right after the last collection


def release(force: bool = False) -> None:
    """Collect cyclic garbage and return the heap's free pages to the system (glibc ``malloc_trim``).

    A full collection costs 0.2-0.5 s in a process holding TensorFlow, so it
    runs only once the resident size has grown ``RELEASE_GROWTH`` since the
    last one (or with ``force``): a small model's build never pays it (a
    test-suite run paid 32 s of collections in 126 s of builds before this
    rule), a big one collects where its garbage is big.
    """
    now = resident_bytes()
    last = _released_at[0]
    if not force and now is not None and last is not None and now - last < RELEASE_GROWTH:
        return
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
    _released_at[0] = resident_bytes()


def resident_bytes() -> int | None:
    """The process's resident size now (VmRSS), or None where it cannot be read."""
    kb = _status_kb("VmRSS")
    return None if kb is None else 1024 * kb


def _malloc_trim():
    """glibc's ``malloc_trim``, or None on another C library."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
