"""Write a build report to files: report.html, then report.json (written last: it marks a finished build)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from lrfc.common.atomic import write_text
from lrfc.report.fmt import check_report
from lrfc.report.html import render_html


_TOP_KEYS = ("model", "target", "objective", "threshold", "seed", "cost_source", "original", "compressed",
             "layers", "finetune", "timings", "peak_rss_mb", "search", "unfactorized")


def write_report(report: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.html`` then ``report.json`` into ``out_dir``, each atomically.

    ``report.json`` goes last: its presence marks a finished build. Its keys
    keep the documented order (extra keys after, sorted); floats that are not
    finite become ``null`` so the file stays strict JSON.

    Returns:
        ``{"html": path, "json": path}``.
    """
    check_report(report)
    out_dir = Path(out_dir)
    paths = {"html": out_dir / "report.html", "json": out_dir / "report.json"}
    write_text(paths["html"], render_html(report))
    ordered = {k: report[k] for k in _TOP_KEYS if k in report} | {k: report[k] for k in sorted(report) if k not in _TOP_KEYS}
    text = json.dumps(_finite(ordered), indent=2, default=_json_default, allow_nan=False)
    write_text(paths["json"], text + "\n")
    return paths


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _json_default(obj):
    """numpy scalars and arrays, paths: what a build is likely to leave in the dict."""
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist"):
        return _finite(obj.tolist())
    raise TypeError(f"report value of type {type(obj).__name__} is not JSON serializable: {obj!r}")
