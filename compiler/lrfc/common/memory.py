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
"""

from __future__ import annotations

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
