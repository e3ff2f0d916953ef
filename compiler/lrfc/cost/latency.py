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
import time
from dataclasses import dataclass, field
from pathlib import Path

from lrfc.cost.costdb import CostDB, op_signature
from lrfc.cost.roofline import estimate_ms

# A chain runs for microseconds, so one turn of 10 runs lasts well under a millisecond and a
# single burst of outside load can cover a whole turn. Six turns per chain, alternating with
# the others, keep such a burst to a sixth of a chain's samples, below the median. (The worker
# pauses before each turn so the previous chain's thread pool has parked.)
RUNS, WARMUP, ROUNDS = 60, 5, 6
BATCH_LIMIT = 64  # artifacts per runtime_bench call


@dataclass
class Chain:
    """One thing to price: ``stages`` applied to a sample of ``input_shape`` (no batch axis)."""

    input_shape: tuple[int, ...]
    stages: list
    spatial_rank: int = 2


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

    def to_json(self) -> dict:
        return {"source": self.source, "runtime": self.runtime, "precision": self.precision,
                "threads": self.threads, "device": self.device, "db": self.db, "measured": self.measured,
                "reused": self.reused, "estimated": self.estimated, "seconds": round(self.seconds, 2),
                "basis": self.basis, "skipped_runtimes": self.skipped_runtimes}

    def summary(self) -> str:
        if self.source == "estimated":
            return f"latency costs: estimated, not measured ({self.basis}); pass --device to measure"
        return (f"latency costs: measured on {self.device.get('transport', 'this machine')} "
                f"({self.runtime}, {self.precision}, {self.threads} threads): {self.measured} new, "
                f"{self.reused} from the cost database, {self.seconds:.1f} s")


class Pricer:
    """Prices chains in milliseconds, measured on a device or estimated; see the module doc."""

    def __init__(self, profile, link, db_path=None, log=None, cache_dir=None):
        from lrfc.cost.devices import measured_runtimes

        self.profile = profile
        self.link = link
        self._say = log or (lambda message: None)
        self.info = PricingLog("estimated" if link is None else "measured", precision=profile.precision,
                               threads=profile.threads)
        self._db = None
        if link is None:
            self.info.basis = (f"roofline from {profile.name}'s peak {profile.peak.value:g} GOP/s "
                               f"{profile.precision} and {profile.memory_bandwidth_gbps.value:g} GB/s")
            return
        usable, skipped = measured_runtimes(profile, link)
        self.info.skipped_runtimes = skipped
        if not usable:
            from lrfc.errors import UserError

            raise UserError(f"target {profile.name}: none of its runtimes {', '.join(profile.runtimes)} can run on "
                            f"{link.label} ({'; '.join(f'{k}: {v}' for k, v in skipped.items())})")
        self.info.runtime = usable[0]
        from lrfc.lower.artifacts import format_of

        if format_of(self.info.runtime) == "onnx":
            self.info.precision = "fp32"  # what lower_chain writes for ONNX Runtime (see there)
        from lrfc.cost.costdb import default_path, user_path

        mine = user_path(db_path) is None
        self._db = CostDB(default_path(cache_dir) if mine else user_path(db_path), owned=mine, log=log)
        self.info.db = str(self._db.path)
        self.info.device = link.fingerprint(self.info.runtime)
        self.info.device.pop("workdir", None)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()

    # ------------------------------------------------------------------ pricing

    def price(self, chains: dict) -> dict:
        """``{key: milliseconds}`` for ``{key: Chain}``."""
        start = time.perf_counter()
        try:
            if self.link is None:
                out = {k: estimate_ms(c.input_shape, c.stages, self.profile.peak.value,
                                      self.profile.memory_bandwidth_gbps.value, self.profile.precision)
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
        if missing:
            self._say(f"measuring {len(missing)} layer chains on {self.link.label} ({self.info.runtime})")
            for start in range(0, len(missing), BATCH_LIMIT):
                batch = missing[start:start + BATCH_LIMIT]
                rows = self._time([by_sig[s] for s in batch])
                self._store([(s, r["min_ms"], r["p50_ms"], r["p90_ms"], r["runs"], descs[s]) for s, r in zip(batch, rows)])
                known.update({s: r["min_ms"] for s, r in zip(batch, rows)})
                self.info.measured += len(batch)
        return {key: float(known[sig]) for key, sig in sigs.items()}

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

    def _store(self, rows: list) -> None:
        self.remember(rows)

    def _time(self, chains: list) -> list[dict]:
        """Lower each chain to the runtime's format and time them all in one runtime_bench run."""
        from lrfc.lower.artifacts import format_of

        fmt = format_of(self.info.runtime)
        with tempfile.TemporaryDirectory(prefix="lrfc-microbench-") as tmp:
            paths = [lower_chain(c, Path(tmp) / f"chain{i}.{fmt}", self.info.precision) for i, c in enumerate(chains)]
            try:
                result = self.link.bench(paths, runtime=self.info.runtime, threads=self.info.threads, runs=RUNS,
                                         warmup=WARMUP, rounds=ROUNDS, batch=1, memory=False)
            except (RuntimeError, OSError) as exc:  # the device or its runtime failed: say so in one line
                from lrfc.errors import UserError

                why = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
                raise UserError(f"latency micro-benchmarks on {self.link.label} failed: {why}") from exc
        if result["device"]["id"] != self.info.device["id"]:
            raise RuntimeError(f"{self.link.label}: the device changed during the build "
                               f"({self.info.device['id']} -> {result['device']['id']})")
        return result["results"]


def lower_chain(chain: Chain, path: Path, precision: str) -> Path:
    """A stand-alone model of one chain, lowered to ``path`` (``.tflite`` or ``.onnx``).

    TFLite gets the profile's precision (int8 calibrated on random inputs:
    the values do not change the kernels that run, only the scales). ONNX
    chains are fp32 whatever the profile says: the fp16 artifact is an fp32
    file too (``lower.artifacts``), and static int8 quantization of hundreds
    of one-layer ONNX files would cost more than the search it informs; the
    pricing record says ``fp32`` so the cost database never mixes them up.
    """
    import numpy as np

    from lrfc.decompose.chain import chain_model

    model = chain_model(tuple(chain.input_shape), chain.stages, chain.spatial_rank, name="chain")
    if path.suffix == ".tflite":
        from lrfc.lower.tflite import export_tflite

        rng = np.random.default_rng(0)
        rep = rng.standard_normal((8, *chain.input_shape)).astype(np.float32) if precision == "int8" else None
        return export_tflite(model, path, precision, representative=rep)
    from lrfc.lower.onnx import export_onnx

    return export_onnx(model, path)
