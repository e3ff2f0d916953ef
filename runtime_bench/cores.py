"""How far apart two of this machine's cores are right now: the round trip of a value through shared memory.

Why a benchmark needs it: on a cloud VM the hypervisor moves the virtual CPUs between the host's cores, and
two of them can sit on distant ones (another chiplet of an AMD EPYC) for seconds to minutes at a time. One
thread's speed does not change, independent processes' throughput does not either, but every hand-off
between a runtime's threads costs more: measured on the 2-core AMD EPYC (2026-12-07, docs/LOG.md), the
Fashion-MNIST ResNet-style model factorized, int8 on ONNX Runtime at 2 threads, ran 0.207 ms while this
probe read 0.42-0.58 us and 0.41 ms (slower than on one thread, 0.262) while it read 0.73-0.98 us, flipping
between the two every few seconds to minutes; the demo's original on LiteRT 0.555 and 0.582 ms. Within one
benchmark the flips hit some rounds and not others, so two files' ratio depends on when each ran.
``measure.bench`` probes between rounds, runs more rounds where some ran with the cores far apart, and
leaves those out.

The probe: a partner process spins on one shared cache line and echoes every value this process writes to
another; the median of many such round trips, each timed alone (a round trip that waited for the
scheduler is an outlier, not the state). Both ends are pinned to two CPUs. Near and far are relative:
a probe reading ``FAR`` times the lowest round trip read on this machine since it booted (kept in a
cache folder, ``memory_path``) is far. Only the standard library; the partner lives as long as the
``Probe`` and sleeps on a pipe between probes.
"""

from __future__ import annotations

import json
import mmap
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from typing import List, Optional

PROBE_S = 0.01        # spent ping-ponging per probe
SETTLE_S = 0.05       # idle before a probe: the last runtime's threads stop spinning (ONNX Runtime's spin ~38 ms)
FAR = 1.4             # a probe this many times the lowest read since boot: the cores were far apart
GIVE_UP_S = 0.5       # a partner that echoes nothing for this long: no probe (a machine with one free core)

_SLOT = struct.Struct("q")
_lowest_seen: List[float] = []  # the lowest round trip any probe of this process has read: later runs judge by it
_PING, _PONG = 0, 64  # two cache lines apart: the writer of each owns it

# The partner: pinned to the CPU its second argument names (where the platform pins; the slots' offsets are its
# third and fourth: _PING, _PONG), blocks on stdin for "go",
# echoes the ping slot into the pong slot until it reads -1, answers "done"; exits when stdin closes.
_PARTNER = r"""
import mmap, os, struct, sys
if sys.argv[2] != "-":
    os.sched_setaffinity(0, {int(sys.argv[2])})
slot = struct.Struct("q")
PING, PONG = int(sys.argv[3]), int(sys.argv[4])
with open(sys.argv[1], "r+b") as f:
    shared = mmap.mmap(f.fileno(), 4096)
for line in sys.stdin:
    last = 0
    while True:
        value = slot.unpack_from(shared, PING)[0]
        if value < 0:
            break
        if value != last:
            slot.pack_into(shared, PONG, value)
            last = value
    sys.stdout.write("done\n")
    sys.stdout.flush()
"""


def memory_path() -> str:
    """Where the lowest round trip read since the machine booted is kept, for later processes (a run that
    starts and ends with the cores far apart cannot tell by itself): ``cores.json`` in
    ``$RUNTIME_BENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/runtime_bench``, else ``~/.cache/runtime_bench``."""
    folder = os.environ.get("RUNTIME_BENCH_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "runtime_bench")
    return os.path.join(folder, "cores.json")


def _boot_id() -> Optional[str]:
    """This boot's id (Linux); None elsewhere, where nothing is kept between processes."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip() or None
    except OSError:
        return None


def remembered(pair) -> Optional[float]:
    """The lowest round trip a probe of ``pair`` read since this boot, or None."""
    boot = _boot_id()
    try:
        with open(memory_path()) as f:
            kept = json.load(f)
        if boot is not None and kept["boot"] == boot and kept["pair"] == list(pair or ()):
            return float(kept["lowest_us"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def remember(pair, lowest: float) -> None:
    """Keep ``lowest`` for later processes (written whole, then renamed; a failure keeps nothing)."""
    boot = _boot_id()
    if boot is None:
        return
    path = memory_path()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=os.path.dirname(path), prefix=".cores_", suffix=".partial",
                                         delete=False) as f:
            json.dump({"boot": boot, "pair": list(pair or ()), "lowest_us": lowest}, f)
        os.replace(f.name, path)
    except OSError:
        pass


def usable_cores() -> int:
    """The count of CPUs this process may run on (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def _pair() -> Optional[tuple]:
    """Two CPUs this process may run on, to pin the two ends of the probe to; None where the platform
    cannot pin (macOS). Pinned, because a partner woken by a pipe write is put on the writer's CPU and the two
    share it for milliseconds (measured here: 2 round trips in 10 ms in a third of the probes, unpinned)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else None


class Probe:
    """A partner process and the shared page it echoes through; ``round_trip_us`` measures, ``close`` ends it."""

    def __init__(self):
        handle, self._path = tempfile.mkstemp(prefix="runtime_bench_cores_")
        try:
            os.write(handle, b"\0" * mmap.PAGESIZE)
            self._shared = mmap.mmap(handle, mmap.PAGESIZE)
        finally:
            os.close(handle)
        self._pair = _pair()
        # the lowest round trip read in this process or, since this boot, in another
        self.lowest: Optional[float] = min(_lowest_seen + [v for v in [remembered(self._pair)] if v is not None],
                                           default=None)
        partner_cpu = "-" if self._pair is None else str(self._pair[1])
        self._partner = subprocess.Popen([sys.executable, "-c", _PARTNER, self._path, partner_cpu,
                                          str(_PING), str(_PONG)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                         text=True, bufsize=1)

    def round_trip_us(self, seconds: float = PROBE_S, settle: float = SETTLE_S) -> Optional[float]:
        """The median round trip in microseconds over ``seconds`` of ping-pong, after ``settle`` idle; None where
        the partner never answered (it had no core to run on) or has exited."""
        time.sleep(settle)
        if self._partner.poll() is not None:
            return None
        if self._pair is None:
            return self._ping_pong(seconds)
        mask = os.sched_getaffinity(0)  # this thread's: restored after the probe
        os.sched_setaffinity(0, {self._pair[0]})
        try:
            return self._ping_pong(seconds)
        finally:
            os.sched_setaffinity(0, mask)

    def _ping_pong(self, seconds: float) -> Optional[float]:
        """The median round trip of ``seconds`` of ping-pong in microseconds (None: under 10 round trips)."""
        _SLOT.pack_into(self._shared, _PING, 0)
        _SLOT.pack_into(self._shared, _PONG, 0)
        self._partner.stdin.write("go\n")
        self._partner.stdin.flush()
        trips: List[int] = []
        value, clock = 0, time.perf_counter_ns
        end = clock() + int(seconds * 1e9)
        give_up = clock() + int(GIVE_UP_S * 1e9)
        while clock() < end:
            value += 1
            start = clock()
            _SLOT.pack_into(self._shared, _PING, value)
            while _SLOT.unpack_from(self._shared, _PONG)[0] != value:
                if clock() > give_up:
                    break
            else:
                trips.append(clock() - start)
                give_up = clock() + int(GIVE_UP_S * 1e9)
                continue
            break
        _SLOT.pack_into(self._shared, _PING, -1)
        self._partner.stdout.readline()
        if len(trips) < 10:
            return None
        us = round(statistics.median(trips) / 1e3, 4)
        if self.lowest is None or us < self.lowest:
            self.lowest = us
            _lowest_seen[:] = [us]
            remember(self._pair, us)
        return us

    def close(self) -> None:
        """End the partner and remove the shared file; safe to call twice."""
        if self._partner.poll() is None:
            _SLOT.pack_into(self._shared, _PING, -1)
            try:
                self._partner.stdin.close()
            except OSError:
                pass
            try:
                self._partner.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._partner.kill()
                self._partner.wait()
        for stream in (self._partner.stdin, self._partner.stdout):
            try:
                stream.close()
            except OSError:
                pass
        if not self._shared.closed:
            self._shared.close()
        try:
            os.unlink(self._path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "Probe":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def far_rounds(probes: List[Optional[float]], lowest: Optional[float] = None, factor: float = FAR) -> List[bool]:
    """Which rounds ran with the cores far apart, from the probes around them (``probes[r]`` before round
    ``r``, ``probes[r + 1]`` after it): a round is far when either probe read more than ``factor`` times the
    lowest round trip seen (of these probes and ``lowest``, the probe's lowest so far). A probe that did not
    answer (None) judges nothing: its neighbours decide."""
    read = [p for p in probes if p is not None] + ([lowest] if lowest is not None else [])
    if not read:
        return [False] * (len(probes) - 1)
    bound = factor * min(read)
    return [any(p is not None and p > bound for p in probes[r:r + 2]) for r in range(len(probes) - 1)]
