"""Where a build's fanned-out work runs: in this process (the default) or as Ray tasks (``--executor ray``).

Two phases fan out: scoring (one task per layer and method, ``search.fanout``)
and latency pricing (one task per batch of chains and device,
``cost.latency``). Both go through one small interface, so an in-process
build runs the very same task functions and the driver merges their results
the same way:

* ``put(value, phase, label)`` ships a value once (a layer's captured inputs
  and weights) and returns what tasks take in its place: the value itself in
  process, a reference into Ray's object store otherwise;
* ``map(fn, jobs, phase, labels, lanes)`` runs ``fn(*job)`` for every job and
  yields the results **in job order**, whatever order they finish in, so the
  driver's merge (and so the plan) does not depend on how many workers ran;
  ``ordered=False`` yields ``(index, result)`` pairs as jobs finish instead,
  for a driver whose merge does not depend on order (the score stage's: the
  cache is keyed by content, and it puts candidates back in job order), so a
  long job does not hold up the results behind it;
* a *lane* is a device: a job on lane ``i`` holds the resource
  ``lrfc-device-i`` of capacity 1, so no two jobs of one device ever run at
  once while different devices run in parallel (in process: one thread per
  lane);
* ``threads`` (in process, jobs without lanes): how many jobs run at once in
  this process, each in its own thread (the score stage's walks: their numpy
  and TensorFlow work releases the GIL; ``_in_threads``). Ray ignores it: its
  workers are the parallelism there.

Tasks never write the cache or the cost database: they return what they
found and the driver writes it. Each phase's tasks (seconds, worker) and,
under Ray, the bytes shipped per label are kept for report.json. Ray is
imported here only, and only by ``RayExecutor``: the default build needs no
Ray. A Ray task whose worker dies is retried (``MAX_RETRIES``); an exception
the task itself raises is not retried and reaches the caller as raised.
"""

from __future__ import annotations

import os
import pickle
import queue
import socket
import threading
import time
from dataclasses import dataclass, field

from lrfc.errors import UserError

EXECUTORS = ("inprocess", "ray")
MAX_RETRIES = 3  # a task whose worker process dies is run again, up to this many times
LANE_RESOURCE = "lrfc-device-{}"
# Each Ray task holds one CPU, so TensorFlow in a worker gets one thread (Ray sets OMP_NUM_THREADS itself).
WORKER_ENV = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
TEST_KILL_HOOK = "LRFC_TEST_KILL_WORKER_ONCE"  # tests only, see _test_hook_kill_worker


@dataclass
class PhaseLog:
    """What one phase ran: each task's label, seconds and worker; bytes shipped per label (Ray only)."""

    tasks: list = field(default_factory=list)       # (label, seconds, worker)
    shipped: dict = field(default_factory=dict)     # label -> bytes put in the object store once (``put``)
    job_bytes: dict = field(default_factory=dict)   # label -> bytes of the jobs' own arguments
    result_bytes: dict = field(default_factory=dict)  # label -> bytes of the results sent back

    def to_json(self) -> dict:
        seconds = [t[1] for t in self.tasks]
        return {"tasks": len(self.tasks), "workers_used": len({t[2] for t in self.tasks}),
                "task_seconds_total": round(sum(seconds), 3), "task_seconds_max": round(max(seconds, default=0.0), 3),
                "shipped_bytes": dict(self.shipped), "shipped_bytes_total": sum(self.shipped.values()),
                "job_bytes_total": sum(self.job_bytes.values()), "result_bytes_total": sum(self.result_bytes.values()),
                "per_task": [{"label": label, "seconds": round(s, 3), "worker": w} for label, s, w in self.tasks]}


def serialized_bytes(value) -> int:
    """Bytes ``value`` takes once serialized as Ray does (pickle 5, arrays out of band), without copying them."""
    buffers = []
    inband = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    return len(inband) + sum(b.raw().nbytes for b in buffers)


def _in_threads(fn, jobs: list, threads: int, ordered: bool = True):
    """``(index, _timed(fn, job))`` for every job on ``threads`` threads, in job order or as they finish.

    At most ``2 x threads`` jobs are out at once (handed to a thread and not
    yet yielded), so the results held for the caller stay few (a walk's
    result carries its prepared factorizations). In job order, a long job
    keeps the threads from running more than that far past it: the score
    stage of ResNet50 at 64x64 (162 walks, 306 s of them, the longest 23 s)
    took 214 s on 2 threads in order; ``ordered=False`` yields whichever
    finished first (the lowest index among them) and hands the next job out
    at once: 147 s for 293 s of walks (``python -m bench.scale``, the
    whole-build rows of 2026-12-01 13:26 and 15:48 UTC). The
    threads are daemons: a build interrupted mid-stage exits at once instead
    of waiting for the walks still running (their results would be thrown
    away).
    """
    todo: queue.Queue = queue.Queue()
    done: dict[int, tuple] = {}
    ready = threading.Condition()

    def work():
        while (item := todo.get()) is not None:
            i, job = item
            try:
                out = (True, _timed(fn, job))
            except BaseException as exc:  # handed to the caller, raised there
                out = (False, exc)
            with ready:
                done[i] = out
                ready.notify_all()

    workers = [threading.Thread(target=work, name=f"lrfc-job_{k}", daemon=True) for k in range(threads)]
    for w in workers:
        w.start()
    handed = 0
    try:
        for k in range(len(jobs)):  # k results yielded so far
            while handed < min(len(jobs), k + 2 * threads):
                todo.put((handed, jobs[handed]))
                handed += 1
            with ready:
                while (k not in done) if ordered else not done:
                    ready.wait()
                i = k if ordered else min(done)
                ok, out = done.pop(i)
            if not ok:
                raise out
            yield i, out
    finally:
        while True:  # what no thread has started is dropped; the threads end after their current job
            try:
                todo.get_nowait()
            except queue.Empty:
                break
        for _ in workers:
            todo.put(None)


def _timed(fn, args) -> tuple:
    start = time.perf_counter()
    value = fn(*args)
    thread = threading.current_thread().name
    where = f"/{thread}" if thread.startswith("lrfc-job") else ""  # one of InProcess.map's ``threads``
    return value, time.perf_counter() - start, f"{socket.gethostname()}:{os.getpid()}{where}"


class InProcess:
    """The default: every job runs here, in order; jobs of different lanes in one thread per lane."""

    name = "inprocess"
    workers = 1

    def __init__(self):
        self.phases: dict[str, PhaseLog] = {}

    def put(self, value, phase: str, label: str):
        return value

    def map(self, fn, jobs, phase: str, labels, lanes=None, threads: int = 1, ordered: bool = True):
        """``fn(*job)`` for each job, yielded in job order (``ordered=False``: ``(index, value)`` as they finish)."""
        log = self.phases.setdefault(phase, PhaseLog())
        jobs, labels = list(jobs), list(labels)
        if lanes is not None and len(set(lanes)) >= 2:
            for i, value in enumerate(self._lanes(fn, jobs, labels, lanes, log)):
                yield value if ordered else (i, value)
            return
        run = (_in_threads(fn, jobs, threads, ordered) if threads > 1 and len(jobs) > 1
               else ((i, _timed(fn, job)) for i, job in enumerate(jobs)))
        for i, (value, seconds, worker) in run:
            log.tasks.append((labels[i], seconds, worker))
            yield value if ordered else (i, value)

    @staticmethod
    def _lanes(fn, jobs, labels, lanes, log):
        from concurrent.futures import ThreadPoolExecutor

        pools = {lane: ThreadPoolExecutor(1, thread_name_prefix=f"lrfc-lane-{lane}") for lane in sorted(set(lanes))}
        try:
            futures = [pools[lane].submit(_timed, fn, job) for job, lane in zip(jobs, lanes)]
            for future, label, lane in zip(futures, labels, lanes):
                value, seconds, worker = future.result()
                log.tasks.append((label, seconds, f"{worker}/lane-{lane}"))
                yield value
        finally:
            for pool in pools.values():
                pool.shutdown(wait=True, cancel_futures=True)

    def to_json(self) -> dict:
        return {"name": self.name, "address": None, "workers": self.workers,
                "phases": {p: log.to_json() for p, log in self.phases.items()}}

    def close(self) -> None:
        pass


class RayExecutor:
    """Jobs as Ray tasks on a cluster: a local one started here, or the one at ``address``.

    A process already connected to Ray (the Python API's caller ran
    ``ray.init``) keeps its connection: the build uses it as it is and leaves
    it open.

    Args:
        address: ``auto``, ``HOST:PORT``, or None to start a local Ray instance.
        lanes: how many devices need a lane resource. A local instance declares
            them; an existing cluster must (``ray start --resources``), on the
            node that reaches the devices.
    """

    name = "ray"

    def __init__(self, address: str | None = None, lanes: int = 0):
        import logging

        try:
            import ray
        except ImportError:
            raise UserError("--executor ray: Ray is not installed; pip install 'lrfc[ray]'") from None
        self._ray = ray
        self.address = address
        self.phases: dict[str, PhaseLog] = {}
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never phone home unless the user asked to
        common = dict(runtime_env={"env_vars": dict(WORKER_ENV)}, logging_level=logging.ERROR, log_to_driver=False)
        needed = {LANE_RESOURCE.format(i): 1 for i in range(lanes)}
        self._owned = not ray.is_initialized()
        if not self._owned:
            self.address = ray.get_runtime_context().gcs_address
        elif address is None:
            ray.init(address="local", include_dashboard=False, resources=needed or None, **common)
        else:
            _check_reachable(address)
            try:
                ray.init(address=address, **common)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise UserError(f"--ray-address {address}: {str(exc).splitlines()[0]}") from None
        have = ray.cluster_resources()
        missing = [r for r in needed if have.get(r, 0) < 1]
        if missing:
            self.close()
            spec = ", ".join(f'"{r}": 1' for r in needed)
            raise UserError(f"the Ray cluster at {self.address} has no resource {missing[0]} (one per --device, "
                            f"capacity 1); start the node that reaches the devices with "
                            f"`ray start ... --resources '{{{spec}}}'`")
        self.workers = int(ray.cluster_resources().get("CPU", 0))
        self._task = ray.remote(max_retries=MAX_RETRIES)(_ray_task)

    def put(self, value, phase: str, label: str):
        log = self.phases.setdefault(phase, PhaseLog())
        ref = self._ray.put(value)
        log.shipped[label] = log.shipped.get(label, 0) + self._stored_bytes(ref, value)
        return ref

    def _stored_bytes(self, ref, value) -> int:
        """The object's size as the object store reports it (no second serialization); else as it serializes."""
        from ray.experimental import get_object_locations

        size = get_object_locations([ref], timeout_ms=10_000).get(ref, {}).get("object_size")
        return int(size) if size else serialized_bytes(value)

    def map(self, fn, jobs, phase: str, labels, lanes=None, threads: int = 1, ordered: bool = True):
        """``fn(*job)`` for each job as Ray tasks, yielded in job order (``ordered=False``: ``(index, value)`` as
        they finish); see the module doc."""
        ray = self._ray
        log = self.phases.setdefault(phase, PhaseLog())
        jobs, labels = list(jobs), list(labels)
        lanes = list(lanes) if lanes is not None else [None] * len(jobs)
        refs = []
        for job, label, lane in zip(jobs, labels, lanes):
            size = sum(serialized_bytes(a) for a in job if not isinstance(a, ray.ObjectRef))
            log.job_bytes[label] = log.job_bytes.get(label, 0) + size
            options = {"num_cpus": 1} if lane is None else {"num_cpus": 1, "resources": {LANE_RESOURCE.format(lane): 1}}
            refs.append(self._task.options(**options).remote(fn, *job))
        try:
            for i in self._finished(refs, ordered):
                label = labels[i]
                try:
                    value, seconds, worker = ray.get(refs[i])
                except ray.exceptions.RayTaskError as exc:  # the task raised: the caller sees what it raised
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, Exception):
                        raise cause from None
                    raise
                log.tasks.append((label, seconds, worker))
                log.result_bytes[label] = log.result_bytes.get(label, 0) + serialized_bytes(value)
                refs[i] = None
                yield value if ordered else (i, value)
        finally:
            for ref in refs:
                if ref is not None:
                    ray.cancel(ref)

    def _finished(self, refs: list, ordered: bool):
        """The indices of ``refs`` in order, or as their tasks finish (``ray.wait``, one at a time)."""
        if ordered:
            yield from range(len(refs))
            return
        pending = {ref: i for i, ref in enumerate(refs)}
        while pending:
            ready, _ = self._ray.wait(list(pending), num_returns=1)
            yield pending.pop(ready[0])

    def to_json(self) -> dict:
        return {"name": self.name, "address": self.address or "local", "workers": self.workers,
                "phases": {p: log.to_json() for p, log in self.phases.items()}}

    def close(self) -> None:
        if self._owned and self._ray.is_initialized():
            self._ray.shutdown()


def make_executor(kind: str, address: str | None = None, lanes: int = 0):
    """The executor ``--executor`` names: ``InProcess()`` or ``RayExecutor(address, lanes)``."""
    if kind == "ray":
        return RayExecutor(address, lanes)
    return InProcess()


def check_address(address: str) -> None:
    """``--ray-address`` is ``auto`` or ``HOST:PORT``; a ``UserError`` otherwise (no connection tried)."""
    host, _, port = address.rpartition(":")
    if address != "auto" and not (host and port.isdigit() and 0 < int(port) < 65536):
        raise UserError(f"--ray-address: received {address!r}; expected auto or HOST:PORT (e.g. 10.0.0.5:6379)")


def _check_reachable(address: str) -> None:
    """A ``UserError`` now when nothing listens at ``address``: Ray itself would retry for minutes."""
    if address == "auto":
        return  # Ray finds the local cluster's address itself, or fails at once when there is none
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
            pass
    except OSError as exc:
        raise UserError(f"--ray-address {address}: no Ray cluster answers there ({exc.strerror or exc}); "
                        "start one with `ray start --head`, or leave --ray-address out for a local one") from None


def _ray_task(fn, *args):
    """What a Ray worker runs: ``fn(*args)``, timed (and the test-only kill hook)."""
    out = _timed(fn, args)
    _test_hook_kill_worker()
    return out


def _test_hook_kill_worker() -> None:
    """Tests only: kill this Ray worker process, once, after it did its task's work and before it answers.

    Armed by a test that sets ``LRFC_TEST_KILL_WORKER_ONCE`` to a file path in
    the Ray nodes' environment and then creates that file: the first task to
    remove the file writes its pid beside it and exits the process at once,
    like a crash, so Ray must retry the task on another worker. Without that
    variable and that file it does nothing.
    """
    armed = os.environ.get(TEST_KILL_HOOK)
    if not armed:
        return
    try:
        os.unlink(armed)  # only one process can remove it
    except OSError:
        return
    with open(armed + ".killed", "w") as f:
        f.write(str(os.getpid()))
    os._exit(1)


Executor = InProcess | RayExecutor
"""Either executor: the build holds one (``BuildState.executor``) from preflight to the end."""
