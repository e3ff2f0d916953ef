"""Open lrfc's SQLite files (the score cache, the cost database), and deal with ones that are not SQLite.

A file lrfc owns in its cache directory that turns out corrupt (a crash, a
disk full, someone's stray file) is *set aside*: renamed to
``NAME.corrupt-YYYYmmddTHHMMSS`` beside itself, with a one-line warning, and
a fresh one is created; losing a cache costs time, never the build. A file
the user named (``--cost-db``) is the user's: lrfc never moves it, and a
file that is not SQLite is a ``UserError``.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from lrfc.errors import UserError

HEADER = b"SQLite format 3\x00"


def is_sqlite(path: Path) -> bool:
    """True for a missing or empty file (SQLite creates it) or one that starts with SQLite's header."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(HEADER))
    except FileNotFoundError:
        return True
    except IsADirectoryError:
        return False
    return head == b"" or head == HEADER


def _connect(path: Path, setup: tuple[str, ...]) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        db.execute("PRAGMA busy_timeout = 60000")
        db.execute("PRAGMA schema_version").fetchone()  # reads the header: a non-database fails here
        for statement in setup:
            db.execute(statement)
    except sqlite3.DatabaseError:
        db.close()
        raise
    return db


def set_aside(path: Path) -> Path:
    """Rename a corrupt file (and its WAL companions) out of the way; returns its new name."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    path.replace(target)
    for suffix in ("-wal", "-shm"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.replace(target.with_name(target.name + suffix))
    return target


def open_db(path: Path, setup: tuple[str, ...], *, owned: bool, what: str, log=None) -> sqlite3.Connection:
    """A connection to ``path`` with ``setup`` run (WAL journal, tables).

    Args:
        path: the database file; its folder is created.
        setup: statements run on every open (``CREATE TABLE IF NOT EXISTS ...``).
        owned: lrfc's own cache file (set aside when corrupt) or the user's (an error).
        what: what the file is, for messages (``the score cache``).
        log: where the set-aside warning goes.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{what} {path}: cannot create its folder ({exc.strerror or exc})") from None
    for attempt in (0, 1):
        problem = None if is_sqlite(path) else "not an SQLite file"
        if problem is None:
            try:
                return _connect(path, ("PRAGMA journal_mode=WAL", *setup))
            except sqlite3.DatabaseError as exc:
                problem = str(exc)
            except sqlite3.OperationalError as exc:  # e.g. a read-only folder
                raise UserError(f"{what} {path}: cannot be opened for writing ({exc})") from None
        if not owned:
            raise UserError(f"{what} {path}: {problem}; expected an SQLite database written by lrfc "
                            "(or a path where lrfc may create one)")
        if attempt:
            raise UserError(f"{what} {path}: still unreadable after setting the old file aside ({problem})")
        moved = set_aside(path)
        if log is not None:
            log(f"lrfc: warning: {what} {path} was corrupt ({problem}); moved it to {moved.name} and started a new one")
    raise AssertionError("unreachable")
