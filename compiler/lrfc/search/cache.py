"""The on-disk cache of factorizations and similarity scores.

Lives under the user cache directory (``$LRFC_CACHE_DIR``, else
``$XDG_CACHE_HOME/lrfc``, else ``~/.cache/lrfc``) and never elsewhere.
Keys are content hashes: the layer's weights, its geometry and its captured
calibration inputs, plus method, ranks and whether the fit was data-aware.
So a second build of the same model and data with another threshold,
objective or step reuses every score it can, and a changed model or data set
can never hit a stale entry.

* scores: one SQLite file (WAL journal, so two builds can share it);
* prepared factorizations: one pickle per (layer, method, fit), written
  atomically;
* CP fits (ALS results): one ``.npz`` per fit in ``fits/``, named by content
  (``decompose.cp.keep_fits_on_disk``; the load stage points it here).

They are lrfc's own files in the user's own cache directory; delete the
directory to clear it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np



def default_cache_dir() -> Path:
    """The user cache directory lrfc writes to."""
    if os.environ.get("LRFC_CACHE_DIR"):
        return Path(os.environ["LRFC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lrfc"


def check_cache_dir(root: Path) -> None:
    """A ``UserError`` unless ``root`` is (or can become) a folder lrfc can write; checked before heavy work."""
    from lrfc.common.outputs import check_writable_dir

    check_writable_dir(root, "cache folder", hint="pass --cache-dir DIR, or --no-cache")


# Prepared factorizations a cache on disk holds in memory: one layer's methods x fits (a big layer's
# full-rank factors are tens of MB each, so holding every layer's would grow with the model).
PREPARED_IN_MEMORY = 8

# Bump when a factorization or the similarity measure changes meaning: old
# entries then simply stop matching.
CACHE_VERSION = 4  # 4: CP prepared factorizations carry a content key (decompose.cp fits kept)


def content_hash(*parts) -> str:
    """A stable hash of arrays (dtype, shape and bytes) and plain values (and ``CACHE_VERSION``)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"lrfc-cache-{CACHE_VERSION}|".encode())
    for part in parts:
        if isinstance(part, np.ndarray):
            a = np.ascontiguousarray(part)
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(a.tobytes())
        else:
            h.update(repr(part).encode())
        h.update(b"|")
    return h.hexdigest()


class Cache:
    """Scores and prepared factorizations; ``enabled=False`` keeps them in memory only.

    A corrupt ``scores.sqlite`` is set aside and rebuilt with a warning through
    ``log`` (``common.sqlite``); a cache folder that cannot be written is a
    ``UserError``.
    """

    def __init__(self, root: Path | None = None, enabled: bool = True, log=None):
        from lrfc.common.sqlite import open_db

        self.enabled = enabled
        self.root = Path(root) if root is not None else default_cache_dir()
        self._scores: dict[str, float] = {}
        self._prepared: dict[str, object] = {}
        self.hits = 0
        self.misses = 0
        self._db = None
        if enabled:
            check_cache_dir(self.root)
            (self.root / "prepared").mkdir(parents=True, exist_ok=True)
            self._db = open_db(self.root / "scores.sqlite",
                               ("CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, similarity REAL NOT NULL)",),
                               owned=True, what="the score cache", log=log)

    # -- similarity scores
    def score(self, key: str) -> float | None:
        if key in self._scores:
            self.hits += 1
            return self._scores[key]
        if self._db is not None:
            row = self._db.execute("SELECT similarity FROM scores WHERE key = ?", (key,)).fetchone()
            if row is not None:
                self.hits += 1
                self._scores[key] = float(row[0])
                return self._scores[key]
        self.misses += 1
        return None

    def put_score(self, key: str, similarity: float) -> None:
        if not np.isfinite(similarity):
            raise ValueError(f"similarity must be finite, received {similarity!r}")
        self._scores[key] = similarity
        if self._db is not None:
            self._db.execute("INSERT OR REPLACE INTO scores (key, similarity) VALUES (?, ?)", (key, similarity))

    def peek_score(self, key: str) -> float | None:
        """The stored score under ``key``, or None, not counted as a hit or a miss (``search.fanout`` ships it)."""
        counts = self.hits, self.misses
        value = self.score(key)
        self.hits, self.misses = counts
        return value

    # -- prepared factorizations
    def peek_prepared(self, key: str):
        """The stored prepared factorization under ``key`` (in memory, else on disk), or None; never computed."""
        if key in self._prepared:
            return self._prepared[key]
        path = self.root / "prepared" / f"{key}.pkl"
        if not (self.enabled and path.exists()):
            return None
        try:
            with open(path, "rb") as f:
                value = pickle.load(f)
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
            return None  # a damaged or outdated entry is recomputed
        self._hold(key, value)
        return value

    def prepared(self, key: str, compute):
        """The prepared factorization under ``key``, computing and storing it on a miss."""
        value = self.peek_prepared(key)
        if value is None:
            value = compute()
            if self.enabled:
                from lrfc.common.atomic import atomic_path

                with atomic_path(self.root / "prepared" / f"{key}.pkl") as tmp, open(tmp, "wb") as f:
                    pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        self._hold(key, value)
        return value

    def _hold(self, key: str, value) -> None:
        """Keep ``value`` in memory; a cache on disk keeps only the latest ``PREPARED_IN_MEMORY`` (one layer's)."""
        self._prepared.pop(key, None)
        self._prepared[key] = value
        while self.enabled and len(self._prepared) > PREPARED_IN_MEMORY:
            self._prepared.pop(next(iter(self._prepared)))

    def entries(self) -> tuple[dict, dict]:
        """The scores and prepared factorizations held in memory: all of an ``enabled=False`` cache."""
        return dict(self._scores), dict(self._prepared)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
