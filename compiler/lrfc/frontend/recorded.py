"""The input contract a file was made under, where lrfc recorded it: a report beside the file, or the file itself.

A build's files (its artifacts and model.keras) and an export's artifacts
are listed, by SHA-256, in the report.json or export.json beside them, with
the contract they were made and verified under; every one of them also
carries it in its own metadata (``lower.stamp``). So ``lrfc verify``,
``lrfc export`` and ``lrfc build`` of such a file need no input flags again
(a model trained on raw pixels less the Caffe mean is otherwise inferred as
taking [0, 1], and refused at the sanity gate). Flags given win, with a
warning when they differ from the recorded contract.
"""

from __future__ import annotations

import json
from pathlib import Path

from lrfc.errors import UserError
from lrfc.frontend.contract import from_record, same_values

REPORT_NAMES = ("report.json", "export.json")


def listed_files(doc: dict) -> list[dict]:
    """The published files a report.json/export.json records: its artifacts, and a build's model.keras."""
    records = [r for r in doc.get("artifacts") or [] if isinstance(r, dict) and r.get("passed", True)]
    keras = doc.get("keras_model")
    return records + ([keras] if isinstance(keras, dict) else [])


def recorded_contract(paths):
    """``(contract, where)`` for the first of ``paths`` that the report.json or export.json beside it lists with
    the same SHA-256 (that file was made and verified under the recorded contract), or that carries the contract
    in its own metadata (``lower.stamp``: a file away from its report); else None."""
    from lrfc.lower.stamp import read_stamp

    for p in map(Path, paths):
        if not p.is_file():
            continue
        found = _reported_contract(p)
        if found is not None:
            return found
        stamped = read_stamp(p).get("lrfc.input")
        if stamped:
            try:
                return from_record(json.loads(stamped), f"{p.name}'s own metadata"), p
            except (ValueError, TypeError, UserError):  # a damaged entry says nothing
                continue
    return None


def _reported_contract(p: Path):
    """``(contract, report path)`` when the report.json or export.json beside ``p`` lists it by its SHA-256."""
    from lrfc.lower.records import sha256_of

    digest = None
    for name in REPORT_NAMES:
        report = p.parent / name
        try:
            doc = json.loads(report.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("input"), dict):
            continue
        hashes = {r.get("sha256") for r in listed_files(doc) if Path(str(r.get("path", ""))).name == p.name}
        if hashes - {None}:
            digest = digest or sha256_of(p)
            if digest in hashes:
                return from_record(doc["input"], str(report)), report
    return None


def with_recorded(given, paths, log=None):
    """The contract to verify, export or build under: the flags' when given (a warning when the file's record says
    another), else the one recorded for the file (``recorded_contract``), else None (inferred)."""
    found = recorded_contract(paths)
    if found is None:
        return given
    recorded, where = found
    if given is None:
        return recorded
    if not same_values(given, recorded) and log is not None:
        log(f"lrfc: warning: {where} recorded the input as {recorded.flags()}; using the flags given "
            f"({given.flags()})")
    return given
