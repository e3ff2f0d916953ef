"""A small progress bar for long phases (scoring, fine-tuning), with no dependencies; and one-line messages.

On a terminal it redraws one line in place, at most ~10 times a second. Into a
pipe or a CI log it writes nothing until the end and then exactly one line, so
logs stay readable and diffable.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import Callable, TextIO

_BAR_WIDTH = 30
_MIN_REDRAW_S = 0.1


def stderr_line(message: str) -> None:
    """``message`` and its newline on stderr in one write.

    ``print`` writes the two apart, and Python runs a signal's handler
    between them: a SIGINT there left "... resolve itlrfc: interrupted by
    SIGINT" on one line (a flaky ``tests/test_interrupts.py`` run). One write
    is one C call, which the handler cannot split.
    """
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


class Progress:
    """Count the steps of a phase and show them on ``stream``.

    Use it as a context manager::

        with Progress("score", total=len(layers)) as bar:
            for layer in layers:
                ...
                bar.update(info=layer.name)

    On a TTY it draws ``score [#####.........] 12/40 conv3`` with carriage
    returns; elsewhere it prints only ``score: 40/40 done in 12.3s`` on exit
    (``failed after`` instead of ``done in`` when the block raised).

    Args:
        label: the phase's name, first on the line.
        total: how many steps are expected (0 or less: unknown, no bar is drawn).
        stream: where to write; ``None`` means ``sys.stderr`` at construction time.
        enabled: ``False`` prints nothing at all (for ``--quiet`` or library use).
        transient: the bar is only for the wait: on a TTY it is erased when the
            phase ends, and elsewhere nothing is written (a phase that precedes
            a bad input's one-line refusal, e.g. the original's validation pass).
        clock: seconds source, for tests.
    """

    def __init__(self, label: str, total: int, stream: TextIO | None = None, enabled: bool = True,
                 *, transient: bool = False, clock: Callable[[], float] = time.monotonic):
        self.label = label
        self.total = int(total)
        self.count = 0
        self.info = ""
        self.stream = sys.stderr if stream is None else stream
        self.enabled = enabled
        self.transient = transient
        self._clock = clock
        self._tty = enabled and _is_tty(self.stream)
        self._start = clock()
        self._last_draw = float("-inf")
        self._drawn_width = 0

    def __enter__(self) -> "Progress":
        self._start = self._clock()
        if self._tty:
            self._draw()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(failed=exc_type is not None)

    def update(self, n: int = 1, info: str = "") -> None:
        """Advance by ``n`` steps; ``info`` (e.g. the current layer) is shown after the counts."""
        self.count += n
        self.info = info
        if not self._tty:
            return
        now = self._clock()
        if now - self._last_draw >= _MIN_REDRAW_S or self.count >= self.total > 0:
            self._draw(now)

    def close(self, failed: bool = False) -> None:
        """Write the final line; called by ``__exit__``."""
        if not self.enabled:
            return
        elapsed = self._clock() - self._start
        verb = "failed after" if failed else "done in"
        if self.transient:
            if self._tty and self._drawn_width:
                self.stream.write("\r" + " " * self._drawn_width + "\r")
        elif self._tty:
            self._draw()
            self.stream.write("\n")
        else:
            self.stream.write(f"{self.label}: {self._counts()} {verb} {elapsed:.1f}s\n")
        self.stream.flush()
        self.enabled = False  # a second close() (explicit, then __exit__) prints nothing

    def _counts(self) -> str:
        return f"{self.count}/{self.total}" if self.total > 0 else str(self.count)

    def _draw(self, now: float | None = None) -> None:
        self._last_draw = self._clock() if now is None else now
        parts = [self.label]
        if self.total > 0:
            filled = min(_BAR_WIDTH, _BAR_WIDTH * self.count // self.total)
            parts.append("[" + "#" * filled + "." * (_BAR_WIDTH - filled) + "]")
        parts.append(self._counts())
        if self.info:
            parts.append(self.info)
        # Never wrap: a wrapped line cannot be overwritten by a carriage return.
        line = " ".join(parts)[: max(10, shutil.get_terminal_size((80, 24)).columns - 1)]
        pad = " " * max(0, self._drawn_width - len(line))
        self.stream.write("\r" + line + pad)
        self.stream.flush()
        self._drawn_width = len(line)


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or the stream is closed
        return False
