"""lrfc.common.memory: the per-phase peak is the peak of what ran after the reset, not of the whole process."""

from lrfc.common import memory


def test_reset_peak_forgets_an_earlier_allocation():
    # 200 MiB of anonymous memory mapped and touched page by page, then unmapped: handed back to the system for
    # sure, where a bytearray's goes through malloc (once in a parallel suite run, 2026-12-06, its peak stayed)
    import mmap

    size = 200 * 2**20
    block = mmap.mmap(-1, size)
    for offset in range(0, size, mmap.PAGESIZE):
        block[offset] = 1
    before = memory.peak_mb()
    assert before is not None and before >= 200
    block.close()
    assert memory.reset_peak() is True  # Linux >= 4.0 allows it; CI runs on Linux
    after = memory.peak_mb()
    assert after < before - 150, (before, after)


def test_peak_counts_what_ran_after_the_reset():
    memory.reset_peak()
    start = memory.peak_mb()
    block = bytearray(120 * 2**20)
    peak = memory.peak_mb()
    del block
    assert peak - start >= 110, (start, peak)


def _rss_mb() -> float:
    import re
    from pathlib import Path

    return int(re.search(r"^VmRSS:\s+(\d+)", Path("/proc/self/status").read_text(), re.MULTILINE).group(1)) / 1024


def test_release_frees_what_only_a_reference_cycle_holds():
    """The converters leave graphs in cycles; ``release`` returns them (a full collection) before the next stage."""
    import gc

    gc.disable()  # no automatic collection may free the cycle before release does
    try:
        a, b = [], []
        a.append(b)
        b.append(a)
        a.append(bytearray(200 * 2**20))  # 200 MiB, touched, reachable only through the cycle once dropped
        held = _rss_mb()
        del a, b
        assert _rss_mb() > held - 50  # still resident: reference counting cannot free a cycle
        memory.release(force=True)
        assert _rss_mb() < held - 150
    finally:
        gc.enable()


def test_release_collects_only_once_the_process_has_grown_enough():
    """A full collection costs 0.2-0.5 s beside TensorFlow: skipped while little has grown since the last one."""
    import gc

    gc.disable()
    try:
        memory.release(force=True)
        small = [bytearray(16 * 2**20)]
        small.append(small)  # 16 MiB in a cycle: under the growth rule, left for Python's own collector
        del small
        before = gc.get_count()[0]
        memory.release()
        assert gc.get_count()[0] >= before > 0  # no collection ran (it would have reset the count)
        big = [bytearray(memory.RELEASE_GROWTH + 64 * 2**20)]
        big.append(big)
        del big
        held = _rss_mb()
        memory.release()
        assert _rss_mb() < held - 200  # grown past the rule: collected, both cycles gone
    finally:
        gc.enable()
