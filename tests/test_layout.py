"""The tree is the architecture: every package folder is installed, and import paths are file paths."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT / "compiler").parts)
               for p in (ROOT / "compiler" / "lrfc").rglob("__init__.py")}
    on_disk |= {"lrfc.profiles", "runtime_bench"}
    assert listed == on_disk
    assert config["package-dir"]["lrfc"] == "compiler/lrfc"


def test_import_path_is_file_path():
    import lrfc.pipeline
    import lrfc.search.select

    assert Path(lrfc.search.select.__file__) == ROOT / "compiler" / "lrfc" / "search" / "select.py"
    assert Path(lrfc.pipeline.__file__) == ROOT / "compiler" / "lrfc" / "pipeline.py"


def test_each_stage_lives_in_its_folder():
    from lrfc.pipeline import STAGES

    folders = {name: fn.__module__ for name, fn in STAGES}
    assert folders == {
        "load": "lrfc.frontend.stage", "calibrate": "lrfc.search.stage", "score": "lrfc.search.stage",
        "price": "lrfc.cost.stage", "select": "lrfc.search.stage", "measure": "lrfc.cost.stage",
        "factorize": "lrfc.factorize.stage",
        "finetune": "lrfc.train.stage", "lower": "lrfc.lower.stage", "benchmark": "lrfc.benchmark.stage",
        "report": "lrfc.report.stage",
    }
