"""The in-process executor's threads: results in job order or as they finish, few held ahead, errors raised,
interrupts prompt."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from lrfc.common.executor import InProcess


def test_jobs_in_threads_come_back_in_job_order_with_few_handed_out_ahead():
    started, running, most = [], [0], [0]
    lock = threading.Lock()

    def job(i):
        with lock:
            started.append(i)
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.3 if i == 0 else 0.01)  # the first is slow: the others must not all run ahead of it
        with lock:
            running[0] -= 1
        return i * i

    runner = InProcess()
    out = []
    for value in runner.map(job, [(i,) for i in range(12)], "score", [f"j{i}" for i in range(12)], threads=2):
        out.append(value)
        if value == 0:
            assert len(started) <= 4  # 2 x threads handed out while job 0 ran
    assert out == [i * i for i in range(12)] and most[0] == 2
    tasks = runner.to_json()["phases"]["score"]["per_task"]
    assert [t["label"] for t in tasks] == [f"j{i}" for i in range(12)]
    assert {t["worker"].rsplit("/", 1)[1] for t in tasks} == {"lrfc-job_0", "lrfc-job_1"}


def test_unordered_results_come_as_jobs_finish_so_a_long_job_holds_up_nothing():
    running, most = [0], [0]
    lock = threading.Lock()

    def job(i):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(1.0 if i == 0 else 0.01)
        with lock:
            running[0] -= 1
        return i * i

    runner = InProcess()
    out = list(runner.map(job, [(i,) for i in range(12)], "score", [f"j{i}" for i in range(12)], threads=2,
                          ordered=False))
    assert sorted(out) == [(i, i * i) for i in range(12)] and most[0] == 2
    assert out[-1] == (0, 0)  # the other thread ran every other job while job 0 slept
    tasks = runner.to_json()["phases"]["score"]["per_task"]
    assert sorted(t["label"] for t in tasks) == sorted(f"j{i}" for i in range(12)) and tasks[-1]["label"] == "j0"
    # one thread: the same pairs, in job order
    assert list(InProcess().map(job, [(i,) for i in range(4)], "score", list("abcd"), ordered=False)) == \
        [(i, i * i) for i in range(4)]


def test_a_job_that_raises_reaches_the_caller_and_the_threads_end():
    def job(i):
        if i == 3:
            raise ValueError("walk 3 failed")
        time.sleep(0.02)
        return i

    def walks_left() -> list:
        """The executor's threads still alive after up to 5 s (they end once handed their stop; other threads of
        the test process come and go on their own, so only these are counted)."""
        deadline = time.monotonic() + 5
        while (alive := [t for t in threading.enumerate() if t.name.startswith("lrfc-job_")]) and \
                time.monotonic() < deadline:
            time.sleep(0.02)
        return alive

    assert walks_left() == []  # an earlier test's threads have ended
    with pytest.raises(ValueError, match="walk 3 failed"):
        list(InProcess().map(job, [(i,) for i in range(10)], "score", [str(i) for i in range(10)], threads=2))
    assert walks_left() == []


def test_an_interrupt_does_not_wait_for_the_running_jobs():
    code = (
        "import os, signal, threading, time\n"
        "from lrfc.common.executor import InProcess\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)  # a background make test inherits SIGINT ignored\n"
        "threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()\n"
        "try:\n"
        "    list(InProcess().map(time.sleep, [(30,)] * 4, 'score', list('abcd'), threads=2))\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted')\n"
    )
    start = time.monotonic()
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.strip() == "interrupted", res.stderr
    assert time.monotonic() - start < 15  # not the 30 s a running job still had left
