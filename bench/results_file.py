"""One results file, updated a row at a time: re-read, changed, written atomically (a killed run leaves the last good one)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path


def update_json(path: Path, change: Callable[[dict], None]) -> None:
    """Apply ``change`` to the file's JSON document (``{}`` when there is none yet) and write it back atomically."""
    document = json.loads(path.read_text()) if path.exists() else {}
    change(document)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(tmp, path)


def put_row(runs: dict, name: str, row: dict) -> None:
    """``runs[name] = row``; a row it replaces that ran on another machine stays, as ``"<name>, run of <its date>"``.

    Two machines' rows of one command are two baselines and two speeds, not
    a re-run: the newer takes the name, the older keeps its numbers.
    """
    from bench.render_common import RUN, machine_of

    old = runs.get(name)
    runs[name] = row
    date = old and (old.get("date") or old.get("measured_at"))  # bench.scale's rows stamp ``measured_at``
    if date and machine_of(old) != row.get("machine", machine_of(old)):
        kept = {}  # the kept row right after the new one, before the earlier runs of that name
        for key, value in runs.items():
            kept[key] = value
            if key == name:
                kept[f"{name}{RUN}{date.removesuffix(' UTC')}"] = old
        runs.clear()
        runs.update(kept)
