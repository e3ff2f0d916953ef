"""One source per registry: a method is a module plus a registry line, a runtime a registry entry; everything
else (CLI help, options, catalogue, rank grid, weight-only ranks, profiles, formats) reads the registries."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import types

import numpy as np
import pytest

from lrfc import decompose
from lrfc.geometry import DenseGeometry
from runtime_bench.runners import RUNNERS


def _help(*command: str) -> str:
    import os

    import lrfc.cli

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "250"  # wide enough that rich's help box wraps no name
    cli = importlib.reload(lrfc.cli)  # option help is built when the module is imported
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main([*command, "--help"]) == 0
    if saved is None:
        os.environ.pop("COLUMNS")
    else:
        os.environ["COLUMNS"] = saved
    return " ".join(out.getvalue().split())


@pytest.fixture
def throwaway_method():
    """A dense method 'lowrank' that is svd under another name: a module with the method surface."""
    svd = decompose.get("svd")
    module = types.ModuleType("throwaway_lowrank")
    for attr in ("KIND", "NUM_RANKS", "max_ranks", "cost", "prepare", "truncate", "stages", "baseline"):
        setattr(module, attr, getattr(svd, attr))
    module.NAME = "lowrank"
    assert decompose.register(module) == "lowrank"
    yield module
    decompose.unregister("lowrank")
    _help("build")  # leave the CLI module as it was


def test_a_registered_method_reaches_the_cli_options_catalogue_grid_and_rank_rules(throwaway_method, tiny_model_path):
    from lrfc.frontend.catalogue import describe_model
    from lrfc.frontend.load import load_flat
    from lrfc.options import BuildOptions
    from lrfc.search.grid import rank_grid
    from lrfc.search.rank_rules import baseline_ranks

    assert decompose.names()[-1] == "lowrank" and decompose.of_kind("dense")[-1] == "lowrank"
    assert "lowrank" in _help("build") and "lowrank" in _help("decompose")
    options = BuildOptions(model=str(tiny_model_path), data="fashion-mnist")
    assert options.methods[-1] == "lowrank"  # the default is every registered method
    BuildOptions(model=str(tiny_model_path), data="fashion-mnist", methods=("lowrank",)).validate()
    rows = {r.name: r for r in describe_model(load_flat(tiny_model_path))}
    assert rows["fc1"].methods[-1] == "lowrank" and "lowrank" not in rows["conv1"].methods
    geom = DenseGeometry(120, 84)
    assert rank_grid("lowrank", geom, 5, "flops") == rank_grid("svd", geom, 5, "flops")
    kernel = np.random.default_rng(0).standard_normal((120, 84))
    assert baseline_ranks("lowrank", kernel, geom, "energy", 0.9) == baseline_ranks("svd", kernel, geom, "energy", 0.9)


def test_an_unregistered_method_is_refused_by_name():
    from lrfc.errors import UserError
    from lrfc.options import BuildOptions

    with pytest.raises(KeyError, match="unknown decomposition method 'lowrank'; known: tucker, cp, tt, svd, qr, ttm"):
        decompose.get("lowrank")
    with pytest.raises(UserError, match="--methods: received 'lowrank'"):
        BuildOptions(model="m.keras", data="digits", methods=("lowrank",)).validate()


def test_a_registered_runtime_reaches_profiles_formats_and_the_cli(tmp_path):
    from lrfc.lower.artifacts import format_of
    from lrfc.targets import load_profile

    RUNNERS["onnxruntime-spare"] = dataclasses.replace(RUNNERS["onnxruntime-cpu"], name="onnxruntime-spare")
    try:
        assert format_of("onnxruntime-spare") == "onnx"
        toml = tmp_path / "board.toml"
        toml.write_text('description = "a board"\nruntimes = ["onnxruntime-spare"]\nprecision = "fp32"\nthreads = 2\n'
                        'memory_budget_mb = 512\n[peak_gflops.fp32]\nvalue = 10.0\nsource = "Nominal"\n'
                        '[memory_bandwidth_gbps]\nvalue = 5.0\nsource = "Nominal"\n')
        assert load_profile(str(toml)).runtimes == ("onnxruntime-spare",)
        assert "onnxruntime-spare" in _help("bench")
    finally:
        del RUNNERS["onnxruntime-spare"]
        _help("bench")
