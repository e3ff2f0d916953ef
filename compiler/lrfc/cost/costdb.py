"""The cost database: measured latencies of single layers, factorized chains and whole models.

One SQLite file (default ``costs.sqlite`` in the cache directory:
``--cache-dir``, else ``lrfc.search.cache.default_cache_dir``; ``--cost-db`` or
``$LRFC_COST_DB`` move it). The table's name carries ``SCHEMA_VERSION``, so
a file written by another lrfc version is shared without misreading it.
A row is one micro-benchmark of one op signature on one device, runtime,
precision and thread count::

    (device, runtime, precision, threads, signature) -> min_ms, median_ms, p90_ms, runs, description, measured_at

``min_ms`` is the price the search uses (see ``lrfc.cost.latency``); the median
and p90 are kept so that whoever opens the file sees the spread.

``device`` is runtime_bench's device fingerprint id (CPU model, core count,
machine, runtime and its version), so a measurement never leaks to another
device or runtime release. ``signature`` is a hash of the op's exact shape —
input shape, and per stage its kind, weight shapes, kernel, strides,
dilation, padding, bias and activation (``op_signature``) — so equal chains
of different layers or models share one row, and ``description`` keeps the
readable form for whoever opens the file.

Whole models (``cost.measure``) are rows too, their signature a hash of the
original's architecture, the plan and the format; a set of them timed side
by side replaces what was stored for any of them, so a later build reads
numbers that came from one run.

Two builds may share the file: the journal is WAL, writers wait (busy
timeout) instead of failing, and a chain's row written twice keeps the first
value (``INSERT OR IGNORE``): both were real measurements of the same thing.

Version 3: every turn of a measurement warms up for ``runtime_bench.worker.WARM_S``
first (version 2's turns began with the threads still waking, up to 2x slow).
Version 4: the artifacts run a CP chain's depthwise kh x 1 and 1 x kw stages as one
operator (``lower.separable_depthwise``); version 3 timed them as two.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

SCHEMA_VERSION = 4
TABLE = f"costs_v{SCHEMA_VERSION}"  # a file written by another version keeps its rows in its own table, unread


def default_path(cache_dir: str | Path | None = None) -> Path:
    """``$LRFC_COST_DB``, else ``costs.sqlite`` in ``cache_dir`` (default: lrfc's user cache directory)."""
    if os.environ.get("LRFC_COST_DB"):
        return Path(os.environ["LRFC_COST_DB"])
    from lrfc.search.cache import default_cache_dir

    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / "costs.sqlite"


def op_signature(input_shape, stages) -> tuple[str, str]:
    """``(hash, description)`` of a chain of ``decompose.base.Stage`` records on one input shape.

    Only what changes the runtime's work counts: weight values do not.
    """
    parts = [{"input": [int(d) for d in input_shape]}]
    for s in stages:
        parts.append({"kind": s.kind, "weights": [list(map(int, w.shape)) for w in s.weights],
                      "kernel": list(s.kernel), "strides": list(s.strides), "dilation": list(s.dilation),
                      "padding": s.padding, "bias": bool(s.use_bias), "activation": s.activation,
                      "meta": {k: (list(v) if isinstance(v, (tuple, list)) else v) for k, v in sorted(s.meta.items())}})
    description = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(description.encode(), digest_size=12).hexdigest(), description


def user_path(cost_db: str | Path | None) -> Path | None:
    """The cost database the user named (``--cost-db``, else ``$LRFC_COST_DB``), or None: lrfc's own."""
    if cost_db is not None:
        return Path(cost_db)
    return Path(os.environ["LRFC_COST_DB"]) if os.environ.get("LRFC_COST_DB") else None


def check_cost_db(cost_db: str | Path | None) -> None:
    """Before heavy work: a cost database the user named must be SQLite (or absent) in a folder lrfc can write."""
    from lrfc.common.outputs import check_writable_dir
    from lrfc.common.sqlite import is_sqlite
    from lrfc.errors import UserError

    path = user_path(cost_db)
    if path is None:
        return
    if path.is_dir():
        raise UserError(f"--cost-db {path}: is a folder; expected an SQLite file (lrfc creates it when missing)")
    if not is_sqlite(path):
        raise UserError(f"--cost-db {path}: not an SQLite file; expected a cost database written by lrfc "
                        "(or a path where lrfc may create one)")
    check_writable_dir(path.parent, "--cost-db folder")


def runtime_key(runtime: str) -> str:
    """The runtime column of a price: the runtime's name, with the io it was timed with where that is not numpy
    in and out (``devices.timing_io``: GPUs), so GPU prices timed before io modes existed, copies included, are
    never read as prices of the GPU alone."""
    from lrfc.cost.devices import timing_io

    io = timing_io(runtime)
    return runtime if io == "host" else f"{runtime} io={io}"


class CostDB:
    """Measured op latencies keyed by device, runtime, precision, threads and op signature.

    Its own file in lrfc's cache directory is set aside and rebuilt when
    corrupt (``common.sqlite``); a file the user named never is.
    """

    def __init__(self, path: str | Path | None = None, *, owned: bool | None = None, log=None):
        from lrfc.common.sqlite import open_db

        self.path = Path(path) if path is not None else default_path()
        owned = (user_path(None) is None and path is None) if owned is None else owned
        self._db = open_db(self.path, (
            f"CREATE TABLE IF NOT EXISTS {TABLE} ("
            " device TEXT NOT NULL, runtime TEXT NOT NULL, precision TEXT NOT NULL, threads INTEGER NOT NULL,"
            " signature TEXT NOT NULL, min_ms REAL NOT NULL, median_ms REAL NOT NULL, p90_ms REAL, runs INTEGER NOT NULL,"
            " description TEXT NOT NULL, measured_at REAL NOT NULL,"
            " PRIMARY KEY (device, runtime, precision, threads, signature))",), owned=owned, what="the cost database",
            log=log)

    def get_many(self, device: str, runtime: str, precision: str, threads: int,
                 signatures) -> dict[str, float]:
        """``{signature: min_ms}`` for the signatures already measured under this key."""
        found: dict[str, float] = {}
        runtime = runtime_key(runtime)
        sigs = list(dict.fromkeys(signatures))
        for start in range(0, len(sigs), 500):  # SQLite's bound-parameter limit
            chunk = sigs[start:start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT signature, min_ms FROM {TABLE} WHERE device = ? AND runtime = ? AND precision = ? "
                f"AND threads = ? AND signature IN ({marks})", (device, runtime, precision, int(threads), *chunk))
            found.update(dict(rows.fetchall()))
        return found

    def put_many(self, device: str, runtime: str, precision: str, threads: int, rows, replace: bool = False) -> int:
        """Store ``(signature, min_ms, median_ms, p90_ms, runs, description)`` rows in one transaction.

        Returns the rows added (or replaced, with ``replace``: a set of
        whole models timed together replaces what was stored for any of them).
        """
        now = time.time()
        runtime = runtime_key(runtime)
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            before = self._db.total_changes
            self._db.executemany(
                f"INSERT OR {'REPLACE' if replace else 'IGNORE'} INTO {TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(device, runtime, precision, int(threads), sig, float(low), float(mid), None if p90 is None else float(p90),
                  int(runs), desc, now) for sig, low, mid, p90, runs, desc in rows])
            return self._db.total_changes - before

    def count(self) -> int:
        return self._db.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "CostDB":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
