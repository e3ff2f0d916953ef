"""Latency costs of layers and factorized chains, for ``--objective latency``.

A ``Pricer`` prices *chains* (``decompose.base.Stage`` lists on an input
shape) in milliseconds, one of two ways:

* **measured** — when the target device is reachable (``devices.link_for``):
  every chain not yet in the cost database (``costdb``) under this device,
  runtime, precision and thread count is built as a stand-alone model, lowered
  to the runtime's format at the profile's precision, and timed by
  runtime_bench on the device. All of one call's missing chains are lowered
  first and then timed in one runtime_bench run (one process, artifacts
  alternating in rounds), so a remote device sees one ssh session per call,
  not one per chain. A second build on the same device measures nothing new.
  With several ``--device`` URLs (a farm) the chains are split among the
  devices and measured in parallel, one runtime_bench run per device at a
  time (``time_chains`` is a task of the build's executor, each device its
  lane: ``common.executor``). Every chain is measured on each distinct board
  (device fingerprint and runtime) and stored under that board's key; the
  plan is priced with the first device's numbers. Only the driver writes the
  cost database. A chain the converter refuses to lower alone is not priced
  (``PricingLog.unlowerable`` says which and why, and the price stage drops
  its candidate): the final model would meet the same refusal.
* **estimated** — otherwise, from the profile's peak compute and memory
  bandwidth (``roofline``).

Timing is at batch 1 (edge inference) with the profile's thread count, and a
chain's price is the fastest of its timed runs. A chain runs for
microseconds, so a single burst of outside load covers many of its runs; on
this 2-core machine medians of the same chain measured minutes apart differed
by up to 3x, while load only ever adds time, so the minimum is the stable
estimate of what the chain itself costs (the final whole-model benchmark
reports medians). The
runtime is the profile's first runtime that can run on the device; a chain
costs what that runtime takes for it, so a method that looks cheap in MACs but
lowers to slow kernels (a TT-matrix chain of small matmuls, say) is priced as
it really runs.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from lrfc.cost.costdb import CostDB, op_signature
from lrfc.cost.devices import timing_io
from lrfc.cost.roofline import estimate_ms

# A chain runs for microseconds, so one turn of 10 runs lasts well under a millisecond and a
# single burst of outside load can cover a whole turn. Six turns per chain, alternating with
# the others, keep such a burst to a sixth of a chain's samples, below the median. (The worker
# pauses before each turn so the previous chain's thread pool has parked.)
RUNS, WARMUP, ROUNDS = 60, 5, 6
BATCH_LIMIT = 64  # artifacts per runtime_bench call
# TensorFlow's converter is not meant for concurrent use in one process: in-process farm threads lower in turn.
_LOWERING = threading.Lock()


@dataclass
class Chain:
    """One thing to price: ``stages`` applied to a sample of ``input_shape`` (no batch axis)."""

    input_shape: tuple[int, ...]
    stages: list
    spatial_rank: int = 2


@dataclass
class FarmDevice:
    """One measuring device: its link, the runtime it runs, its fingerprint and what it measured in this build."""

    index: int                      # its lane (common.executor)
    link: object                    # cost.devices.DeviceLink
    runtime: str
    precision: str
    fingerprint: dict
    measured: int = 0
    seconds: float = 0.0
    busy: list = field(default_factory=list)  # [start, end] (epoch seconds) of each runtime_bench run on it

    @property
    def board(self) -> tuple:
        """What makes two devices interchangeable: the same fingerprint running the same runtime and precision."""
        return self.fingerprint["id"], self.runtime, self.precision

    def to_json(self) -> dict:
        return {"label": self.link.label, "id": self.fingerprint["id"], "runtime": self.runtime,
                "precision": self.precision, "measured": self.measured, "seconds": round(self.seconds, 2),
                "busy": [[round(a, 3), round(b, 3)] for a, b in self.busy]}


@dataclass
class PricingLog:
    """What pricing did, for the report and the terminal."""

    source: str                     # "measured" | "estimated"
    runtime: str | None = None
    precision: str = "fp32"
    threads: int = 1
    device: dict = field(default_factory=dict)
    db: str | None = None
    measured: int = 0               # chains timed in this build
    reused: int = 0                 # chains found in the cost database
    estimated: int = 0
    seconds: float = 0.0
    basis: str = ""                 # for estimates: the figures used
    skipped_runtimes: dict = field(default_factory=dict)
    farm: list = field(default_factory=list)  # FarmDevice per --device, the primary first
    unlowerable: list = field(default_factory=list)  # {"chain", "error"}: chains the converter refused (not priced)

    def to_json(self) -> dict:
        return {"source": self.source, "runtime": self.runtime, "precision": self.precision,
                "threads": self.threads, "device": self.device, "db": self.db, "measured": self.measured,
                "reused": self.reused, "estimated": self.estimated, "seconds": round(self.seconds, 2),
                "basis": self.basis, "skipped_runtimes": self.skipped_runtimes,
                "devices": [d.to_json() for d in self.farm], "unlowerable": list(self.unlowerable)}

    def summary(self) -> str:
        if self.source == "estimated":
            return f"latency costs: estimated, not measured ({self.basis}); pass --device to measure"
        line = (f"latency costs: measured on {self.device.get('transport', 'this machine')} "
                f"({self.runtime}, {self.precision}, {self.threads} threads): {self.measured} new, "
                f"{self.reused} from the cost database, {self.seconds:.1f} s")
        if len(self.farm) > 1:
            boards = len({d.board for d in self.farm})
            line += (f"; a farm of {len(self.farm)} devices ({boards} board{'s' if boards > 1 else ''}), chains "
                     f"measured per device: " + ", ".join(f"{d.link.label} {d.measured}" for d in self.farm))
        return line


class Pricer:
    """Prices chains in milliseconds, measured on a device or estimated; see the module doc."""

    def __init__(self, profile, link, db_path=None, log=None, cache_dir=None, executor=None):
        from lrfc.common.executor import InProcess
        from lrfc.cost.devices import measured_runtimes

        links = list(link) if isinstance(link, (list, tuple)) else [] if link is None else [link]
        link = links[0] if links else None
        self.profile = profile
        self.link = link
        self.executor = executor or InProcess()
        self._say = log or (lambda message: None)
        self.info = PricingLog("estimated" if link is None else "measured", precision=profile.precision,
                               threads=profile.threads)
        self._db = None
        if link is None:
            overhead = profile.op_overhead_us
            self.info.basis = (f"roofline from {profile.name}'s {profile.figures_of.upper()} peak "
                               f"{profile.peak.value:g} GOP/s {profile.precision} and "
                               f"{profile.memory_bandwidth_gbps.value:g} GB/s"
                               + (f", {overhead.value:g} us per operator" if overhead else ""))
            return
        usable, skipped = measured_runtimes(profile, link)
        self.info.skipped_runtimes = skipped
        if not usable:
            from lrfc.errors import UserError

            raise UserError(f"target {profile.name}: none of its runtimes {', '.join(profile.runtimes)} can run on "
                            f"{link.label} ({'; '.join(f'{k}: {v}' for k, v in skipped.items())})")
        self.info.runtime = usable[0]
        self.info.precision = chain_precision(self.info.runtime, profile.precision)
        from lrfc.cost.costdb import default_path, user_path

        mine = user_path(db_path) is None
        self._db = CostDB(default_path(cache_dir) if mine else user_path(db_path), owned=mine, log=log)
        self.info.db = str(self._db.path)
        self.info.device = link.fingerprint(self.info.runtime)
        self.info.device.pop("workdir", None)
        self.info.farm = [FarmDevice(0, link, self.info.runtime, self.info.precision, self.info.device)]
        self.info.farm += [_farm_device(i, other, profile) for i, other in enumerate(links[1:], 1)]

    def close(self) -> None:
        if self._db is not None:
            self._db.close()

    # ------------------------------------------------------------------ pricing

    def price(self, chains: dict) -> dict:
        """``{key: milliseconds}`` for ``{key: Chain}``; a measured chain that would not lower has no key."""
        start = time.perf_counter()
        try:
            if self.link is None:
                overhead = self.profile.op_overhead_us.value if self.profile.op_overhead_us else 0.0
                out = {k: estimate_ms(c.input_shape, c.stages, self.profile.peak.value,
                                      self.profile.memory_bandwidth_gbps.value, self.profile.precision, overhead)
                       for k, c in chains.items()}
                self.info.estimated += len(out)
                return out
            return self._measure(chains)
        finally:
            self.info.seconds += time.perf_counter() - start

    def _measure(self, chains: dict) -> dict:
        sigs, descs, by_sig = {}, {}, {}
        for key, chain in chains.items():
            sig, desc = op_signature(chain.input_shape, chain.stages)
            sigs[key] = sig
            descs[sig] = desc
            by_sig.setdefault(sig, chain)
        known = self._lookup(list(by_sig))
        missing = [s for s in by_sig if s not in known]
        self.info.reused += len(by_sig) - len(missing)
        jobs = self._jobs(missing, list(by_sig))
        if jobs:
            where = self.link.label if len(self.info.farm) == 1 else f"{len(self.info.farm)} devices"
            self._say(f"measuring {len(missing)} layer chains on {where} ({self.info.runtime})")
        results = self.executor.map(time_chains, [(d.link, d.runtime, d.precision, self.info.threads,
                                                   [by_sig[s] for s in batch]) for d, batch in jobs],
                                    "price", [d.link.label for d, _ in jobs], [d.index for d, _ in jobs])
        refused = {}
        for (device, batch), result in zip(jobs, results):  # in job order: the driver alone writes the database
            if result["device"] is not None and result["device"]["id"] != device.fingerprint["id"]:
                raise RuntimeError(f"{device.link.label}: the device changed during the build "
                                   f"({device.fingerprint['id']} -> {result['device']['id']})")
            refused.update({batch[i]: why for i, why in result["refused"].items()})
            timed = [(s, r) for s, r in zip(batch, result["results"]) if r is not None]
            self._db.put_many(device.fingerprint["id"], device.runtime, device.precision, self.info.threads,
                              [(s, r["min_ms"], r["p50_ms"], r["p90_ms"], r["runs"], descs[s]) for s, r in timed])
            device.measured += len(timed)
            device.seconds += result["busy"][1] - result["busy"][0]
            device.busy.append(list(result["busy"]))
            if device.board == self.info.farm[0].board:
                known.update({s: r["min_ms"] for s, r in timed})
                self.info.measured += len(timed)
        self.info.unlowerable += [{"chain": descs[s], "error": why} for s, why in refused.items()]
        return {key: float(known[sig]) for key, sig in sigs.items() if sig in known}

    def _jobs(self, missing: list, wanted: list) -> list:
        """``[(FarmDevice, [signature])]``: each board's missing chains split among its devices, in batches.

        The primary's board measures ``missing``; every other board measures
        what the cost database lacks under its own key, so a chain is timed
        once per board, on whichever of its devices.
        """
        boards = {}
        for device in self.info.farm:
            boards.setdefault(device.board, []).append(device)
        jobs = []
        for board, devices in boards.items():
            if board == self.info.farm[0].board:
                todo = missing
            else:
                have = self._db.get_many(board[0], board[1], board[2], self.info.threads, wanted)
                todo = [s for s in wanted if s not in have]
            if not todo:
                continue
            parts = min(len(todo), max(len(devices), -(-len(todo) // BATCH_LIMIT)))
            size = -(-len(todo) // parts)
            for i, start in enumerate(range(0, len(todo), size)):
                jobs.append((devices[i % len(devices)], todo[start:start + size]))
        return jobs

    def recall(self, signatures, precision: str | None = None) -> dict:
        """``{signature: ms}`` stored earlier for this device, runtime and threads (at ``precision``: whole models)."""
        return self._db.get_many(self.info.device["id"], self.info.runtime, precision or self.info.precision,
                                 self.info.threads, signatures)

    def remember(self, rows, precision: str | None = None, replace: bool = False) -> None:
        """Store ``(signature, min_ms, median_ms, p90_ms, runs, description)`` rows under this device's key."""
        self._db.put_many(self.info.device["id"], self.info.runtime, precision or self.info.precision,
                          self.info.threads, rows, replace=replace)

    def _lookup(self, sigs: list) -> dict:
        return self.recall(sigs)


def _farm_device(index: int, link, profile) -> FarmDevice:
    """A further ``--device`` of the farm: the profile's first runtime that runs on it, and its fingerprint."""
    from lrfc.cost.devices import measured_runtimes
    from lrfc.errors import UserError

    usable, skipped = measured_runtimes(profile, link)
    if not usable:
        raise UserError(f"target {profile.name}: none of its runtimes {', '.join(profile.runtimes)} can run on "
                        f"{link.label} ({'; '.join(f'{k}: {v}' for k, v in skipped.items())})")
    precision = chain_precision(usable[0], profile.precision)
    fingerprint = link.fingerprint(usable[0])
    fingerprint.pop("workdir", None)
    return FarmDevice(index, link, usable[0], precision, fingerprint)


def time_chains(link, runtime: str, precision: str, threads: int, chains: list) -> dict:
    """Lower each chain to the runtime's format and time them all in one runtime_bench run on ``link``.

    A pricing task (``common.executor``): it runs where the executor puts it,
    one at a time per device, and returns runtime_bench's answer with the
    wall-clock interval of the run (``busy``); the caller stores the rows.
    A chain the converter refuses, or the runtime will not load (XNNPACK
    cannot create an int8 convolution whose requantization scale an
    untrained layer's weights put out of its range: keras.applications
    EfficientNetB0 at int8), is not timed: its row is None and ``refused``
    maps its index to the error's one line; the others are timed without it
    (``device`` is None when nothing ran). The device names every file it
    refuses in one answer (``runtime_bench.runners.FileRefused``), so the rest
    are timed in a second run, here or over ssh, however many it refused.
    """
    from runtime_bench.runners import FileRefused

    from lrfc.common.quiet import import_keras
    from lrfc.errors import UserError, first_line
    from lrfc.lower.artifacts import format_of, onnx_int8_scheme

    import_keras()  # quiet, and once per worker process
    fmt = format_of(runtime)
    with tempfile.TemporaryDirectory(prefix="lrfc-microbench-") as tmp:
        paths, refused = {}, {}
        with _LOWERING:
            for i, c in enumerate(chains):
                try:
                    paths[i] = lower_chain(c, Path(tmp) / f"chain{i}.{fmt}", precision, onnx_int8_scheme((runtime,)))
                except (MemoryError, UserError):
                    raise
                except Exception as exc:  # this chain only: its candidate is dropped (module doc)
                    refused[i] = first_line(exc, typed=True, limit=300)
        start = time.time()
        result = None
        while paths and result is None:
            try:
                result = link.bench(list(paths.values()), runtime=runtime, threads=threads, runs=RUNS, warmup=WARMUP,
                                    rounds=ROUNDS, batch=1, memory=False, io=timing_io(runtime))
            except FileRefused as exc:  # those chains only: dropped like ones the converter refused, the rest timed
                gone = {i: exc.refused[str(p)] for i, p in paths.items() if str(p) in exc.refused}
                if not gone:
                    raise
                for i, message in gone.items():
                    refused[i] = first_line(message, limit=300).replace(f"{paths.pop(i)}: ", "")
            except (RuntimeError, OSError) as exc:  # the device or its runtime failed: say so in one line
                why = first_line(exc)
                raise UserError(f"latency micro-benchmarks on {link.label} failed: {why}") from exc
        if result is None:
            return {"device": None, "results": [None] * len(chains), "refused": refused, "busy": (start, start)}
        busy = (start, time.time())
    rows = dict(zip(paths, result["results"]))
    return {"device": result["device"], "results": [rows.get(i) for i in range(len(chains))], "refused": refused,
            "busy": busy}


def chain_precision(runtime: str, precision: str) -> str:
    """The precision a chain is lowered and priced at on ``runtime`` for a target of ``precision``: the target's,
    except fp16 on an ONNX runtime, whose fp16 artifact is an fp32 file too (``lower.artifacts``)."""
    from lrfc.lower.artifacts import format_of

    return "fp32" if precision == "fp16" and format_of(runtime) == "onnx" else precision


def lower_chain(chain: Chain, path: Path, precision: str, onnx_scheme: str = "u8s8") -> Path:
    """A stand-alone model of one chain, lowered to ``path`` (``.tflite`` or ``.onnx``) at ``precision``
    (``chain_precision``).

    An int8 chain is calibrated on random inputs (the values do not change
    the kernels that run, only the scales), its inner channels equalized
    first as the lower stage equalizes the published model's
    (``factorize.equalize``). Without that, XNNPACK would not prepare some
    int8 chains at all: an inner channel far wider than the rest, which the
    next stage all but ignores, sets that tensor's int8 step, and the next
    convolution's requantization scale passes the 256 XNNPACK takes.
    keras.applications ResNet50V2 (untrained, 32x32, data-aware fits at
    ``host-int8``): 25 of 689 candidate chains refused, every one a
    Tensor-Train (conv1_conv at ranks [2, 16, 32]: 2.1e3), and none once
    equalized (one-off, docs/LOG.md 2026-12-06); the price stage had dropped
    those candidates although the published model, equalized, would run them.
    An int8 ONNX chain is quantized as the published file is
    (``lower.onnx.quantize_onnx_int8``, QDQ with per-channel weights;
    ``onnx_scheme`` ``symmetric`` for TensorRT). Until 2026-12-07 ONNX chains
    were priced at fp32 whatever the target's precision, and for the
    ResNet-style ``host-int8 --formats onnx`` build their sum predicted the
    most compressed rung 2.85x faster than the original where ONNX Runtime
    ran the int8 files 1.35x faster (docs/LOG.md).
    """
    import numpy as np

    from lrfc.decompose.chain import chain_model
    from lrfc.lower.artifacts import export_file

    model = chain_model(tuple(chain.input_shape), chain.stages, chain.spatial_rank, name="chain")
    rep = None
    if precision == "int8":
        from lrfc.factorize.equalize import equalize_chains

        rep = np.random.default_rng(0).standard_normal((8, *chain.input_shape)).astype(np.float32)
        equalize_chains(model, rep)
    return export_file(model, path.suffix.lstrip("."), path, precision, rep, onnx_scheme)
