"""The cost database, op signatures and roofline estimates (no runtime needed)."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from dataclasses import replace

import numpy as np
import pytest

from lrfc.cost.costdb import CostDB, op_signature
from lrfc.decompose.base import Stage
from lrfc.geometry import ConvGeometry
from lrfc.cost.roofline import estimate_ms, stage_operators, stage_work


def conv(cin, cout, k=3, strides=(1, 1), padding="same", seed=0, bias=False, act=None):
    w = np.random.default_rng(seed).standard_normal((k, k, cin, cout)).astype(np.float32)
    weights = (w, np.zeros(cout, np.float32)) if bias else (w,)
    return Stage("conv", weights, (k, k), strides, (1, 1), padding, bias, act)


def test_signature_ignores_values_but_not_shapes():
    a, _ = op_signature((16, 16, 8), [conv(8, 4, seed=0), conv(4, 16, k=1)])
    b, _ = op_signature((16, 16, 8), [conv(8, 4, seed=1), conv(4, 16, k=1, seed=5)])
    assert a == b
    variants = [
        op_signature((16, 16, 8), [conv(8, 5), conv(5, 16, k=1)])[0],             # rank
        op_signature((32, 32, 8), [conv(8, 4), conv(4, 16, k=1)])[0],             # input
        op_signature((16, 16, 8), [conv(8, 4, strides=(2, 2)), conv(4, 16, k=1)])[0],
        op_signature((16, 16, 8), [conv(8, 4, padding="valid"), conv(4, 16, k=1)])[0],
        op_signature((16, 16, 8), [conv(8, 4), conv(4, 16, k=1, act="relu")])[0],
        op_signature((16, 16, 8), [conv(8, 4), conv(4, 16, k=1, bias=True)])[0],
    ]
    assert len({a, *variants}) == 7


def test_costdb_round_trip_and_first_value_wins(tmp_path):
    path = tmp_path / "c.sqlite"
    with CostDB(path) as db:
        assert db.put_many("dev", "litert", "fp32", 2, [("s1", 1.5, 1.6, 1.7, 40, "d1"), ("s2", 0.25, 0.3, None, 40, "d2")]) == 2
        assert db.put_many("dev", "litert", "fp32", 2, [("s1", 9.0, 9.0, 9.0, 40, "d1")]) == 0
        assert db.get_many("dev", "litert", "fp32", 2, ["s1", "s2", "s3"]) == {"s1": 1.5, "s2": 0.25}
        # every part of the key separates rows
        assert db.get_many("dev", "litert", "fp32", 4, ["s1"]) == {}
        assert db.get_many("dev", "onnxruntime-cpu", "fp32", 2, ["s1"]) == {}
        assert db.get_many("other", "litert", "fp32", 2, ["s1"]) == {}
        assert db.get_many("dev", "litert", "int8", 2, ["s1"]) == {}
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_gpu_prices_are_timed_on_the_device_and_keyed_apart(tmp_path, monkeypatch):
    """On a GPU runtime lrfc times its prices with the maps left on the GPU (runtime_bench io "device"), and the
    cost database keys them apart from prices timed with numpy in and out, which an older lrfc stored."""
    import lrfc.cost.latency as latency
    from lrfc.cost.costdb import TABLE, runtime_key
    from lrfc.cost.devices import timing_io

    assert [timing_io(r) for r in ("litert", "onnxruntime-cpu", "onnxruntime-cuda", "onnxruntime-tensorrt", "x")] == \
        ["host", "host", "device", "device", "host"]
    assert runtime_key("onnxruntime-cuda") == "onnxruntime-cuda io=device" and runtime_key("litert") == "litert"
    path = tmp_path / "c.sqlite"
    with CostDB(path) as db:
        db.put_many("gpu", "onnxruntime-cuda", "fp32", 8, [("s1", 0.05, 0.06, None, 40, "d1")])
    old = sqlite3.connect(path)
    with old:  # a row as lrfc wrote it before: copies timed, keyed by the bare runtime name
        old.execute(f"INSERT INTO {TABLE} VALUES ('gpu', 'onnxruntime-cuda', 'fp32', 8, 's2', 0.3, 0.3, NULL, 40, "
                    "'d2', 0)")
    assert sorted(r[0] for r in old.execute(f"SELECT runtime FROM {TABLE}")) == [
        "onnxruntime-cuda", "onnxruntime-cuda io=device"]
    with CostDB(path) as db:
        assert db.get_many("gpu", "onnxruntime-cuda", "fp32", 8, ["s1", "s2"]) == {"s1": 0.05}

    seen = {}

    class Link:
        label = "a GPU"

        def bench(self, paths, **options):
            seen.update(options)
            return {"device": {"id": "gpu"}, "results": [{"min_ms": 0.1} for _ in paths]}

    monkeypatch.setattr(latency, "lower_chain", lambda chain, path, precision, *rest: path)
    latency.time_chains(Link(), "onnxruntime-cuda", "fp32", 8, ["chain"])
    assert seen["io"] == "device" and seen["runtime"] == "onnxruntime-cuda"
    latency.time_chains(Link(), "onnxruntime-cpu", "fp32", 8, ["chain"])
    assert seen["io"] == "host"


def test_costdb_replace_keeps_a_set_timed_together(tmp_path):
    with CostDB(tmp_path / "c.sqlite") as db:
        db.put_many("dev", "litert", "fp32", 2, [("orig", 1.0, 1.0, None, 50, "whole"), ("rung", 0.5, 0.5, None, 50, "w")])
        # a later side-by-side run replaces both, so what is read back comes from one run
        assert db.put_many("dev", "litert", "fp32", 2, [("orig", 0.8, 0.8, None, 50, "whole"),
                                                         ("rung", 0.45, 0.45, None, 50, "w")], replace=True) == 2
        assert db.get_many("dev", "litert", "fp32", 2, ["orig", "rung"]) == {"orig": 0.8, "rung": 0.45}
        assert db.count() == 2


def _writer(path, worker, n):
    with CostDB(path) as db:
        for i in range(n):
            db.put_many("dev", "litert", "fp32", 2, [(f"w{worker}-{i}", float(i), float(i), None, 10, "x"), ("shared", 7.0, 7.0, None, 10, "x")])


def test_costdb_two_writers_at_once(tmp_path):
    path = tmp_path / "c.sqlite"
    CostDB(path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(path), w, 60)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    with CostDB(path) as db:
        assert db.count() == 2 * 60 + 1


def test_costdb_leaves_another_versions_rows_unread(tmp_path):
    path = tmp_path / "c.sqlite"
    con = sqlite3.connect(path)  # what an older lrfc wrote: another table, other columns
    con.execute("CREATE TABLE costs (device TEXT, signature TEXT, median_ms REAL)")
    con.execute("INSERT INTO costs VALUES ('dev', 's1', 99.0)")
    con.commit()
    con.close()
    with CostDB(path) as db:
        assert db.get_many("dev", "litert", "fp32", 2, ["s1"]) == {}
        db.put_many("dev", "litert", "fp32", 2, [("s1", 1.0, 1.1, None, 10, "x")])
        assert db.get_many("dev", "litert", "fp32", 2, ["s1"]) == {"s1": 1.0}


def test_default_path_follows_the_cache_dir_unless_the_environment_says(tmp_path, monkeypatch):
    from lrfc.cost.costdb import default_path

    monkeypatch.delenv("LRFC_COST_DB", raising=False)
    assert default_path(tmp_path) == tmp_path / "costs.sqlite"
    monkeypatch.setenv("LRFC_COST_DB", str(tmp_path / "x.sqlite"))
    assert default_path(tmp_path) == tmp_path / "x.sqlite"


def test_stage_work_matches_the_closed_form_macs():
    geom = ConvGeometry((3, 3), 8, 16, (15, 15), (8, 8), strides=(2, 2), padding="same")
    ((macs, elements),) = stage_work((15, 15, 8), [conv(8, 16, strides=(2, 2))])
    assert macs == geom.macs
    assert elements == 15 * 15 * 8 + 8 * 8 * 16 + 3 * 3 * 8 * 16
    # a chain: 1x1 down, 3x3, 1x1 up; the shape flows through
    chain = [conv(64, 8, k=1), conv(8, 8), conv(8, 64, k=1)]
    work = stage_work((10, 10, 64), chain)
    assert [m for m, _ in work] == [100 * 64 * 8, 100 * 9 * 64, 100 * 8 * 64]
    dense = Stage("dense", (np.zeros((128, 10), np.float32),))
    assert stage_work((128,), [dense]) == [(1280, 128 + 10 + 1280)]


def test_roofline_is_compute_or_memory_bound():
    big = [conv(256, 256)]  # 3x3x256x256 on 32x32: compute-bound
    ms = estimate_ms((32, 32, 256), big, peak_gops=1000.0, bandwidth_gbps=100.0, precision="fp32")
    assert ms == pytest.approx(1e3 * 2 * 32 * 32 * 9 * 256 * 256 / 1e12)
    small = [Stage("dense", (np.zeros((1024, 1024), np.float32),))]  # one matrix-vector product: memory-bound
    ms = estimate_ms((1024,), small, peak_gops=1000.0, bandwidth_gbps=100.0, precision="fp32")
    assert ms == pytest.approx(1e3 * 4 * (1024 + 1024 + 1024 * 1024) / 100e9)
    assert estimate_ms((1024,), small, 1000.0, 100.0, "int8") == pytest.approx(ms / 4)


def test_a_measured_operator_overhead_is_paid_per_stage():
    """A GPU's launch: the three-stage chain pays it three times, the layer it replaces once; 10 us each flips a
    chain with a third of the layer's arithmetic from faster to slower."""
    layer, chain = [conv(64, 64)], [conv(64, 16, k=1), conv(16, 16), conv(16, 64, k=1)]
    bare = [estimate_ms((14, 14, 64), c, 20000.0, 3000.0, "fp32") for c in (layer, chain)]
    assert bare[1] < bare[0] / 3
    paid = [estimate_ms((14, 14, 64), c, 20000.0, 3000.0, "fp32", op_overhead_us=10.0) for c in (layer, chain)]
    assert paid[0] == pytest.approx(bare[0] + 0.010) and paid[1] == pytest.approx(bare[1] + 0.030)
    assert paid[1] > paid[0]
    # a TT-matrix layer over three cores lowers to 13 operators (reshape, transpose, reshape, matmul per core, a
    # reshape): the H200 build that counted it as one chose it for the VGG-style head and ran 0.60x the original
    ttm = Stage("ttm", (), meta={"in_modes": (8, 8, 4), "out_modes": (4, 4, 4)})
    assert stage_operators(ttm) == 13 and stage_operators(conv(64, 16, k=1)) == 1


def test_a_cp_chain_is_estimated_as_its_files_run_it():
    """CP's depthwise 3x1 and 1x3 stages reach the files as one 3x3 operator (``lower.separable_depthwise``):
    estimated as three operators, 9 depthwise MACs a channel and position, the inner map not moved."""
    from lrfc.cost.roofline import as_lowered
    from lrfc.decompose import cp
    from lrfc.decompose.base import LayerWeights

    geom = ConvGeometry((3, 3), 32, 48, (14, 14), (14, 14), padding="same", use_bias=False)
    kernel = np.random.default_rng(0).standard_normal((3, 3, 32, 48)).astype(np.float32)
    stages = cp.stages(cp.decompose(LayerWeights(kernel), geom, (8,)), geom)
    assert [s.kernel for s in stages] == [(1, 1), (3, 1), (1, 3), (1, 1)]
    lowered = as_lowered(stages)
    assert [s.kernel for s in lowered] == [(1, 1), (3, 3), (1, 1)] and lowered[1].kind == "depthwise"
    np.testing.assert_allclose(lowered[1].weights[0][:, :, :, 0],
                               np.einsum("ir,jr->ijr", stages[1].weights[0][:, 0, :, 0], stages[2].weights[0][0, :, :, 0]),
                               rtol=1e-6)
    assert [m for m, _ in stage_work((14, 14, 32), lowered)] == [196 * 32 * 8, 196 * 9 * 8, 196 * 8 * 48]
    bare, paid = (estimate_ms((14, 14, 32), stages, 1000.0, 100.0, "fp32", op_overhead_us=u) for u in (0.0, 10.0))
    assert paid == pytest.approx(bare + 0.030)
    # a bias or an activation between the two, or a stride: two operators, as the twin leaves them
    for change in (dict(use_bias=True, weights=(stages[1].weights[0], np.zeros(8, np.float32))),
                   dict(activation="relu"), dict(strides=(2, 1))):
        assert len(as_lowered([stages[0], replace(stages[1], **change), *stages[2:]])) == 4, change


def test_every_gpu_profile_pays_a_launch_per_operator():
    """A profile whose first runtime is a GPU's carries a per-operator overhead (measured, or the H200's as a
    nominal floor), so estimates without the device stop preferring a chain whose launches cost more than the
    arithmetic it saves: a VGG-style 3x3 layer at 8x8 on the Orin Nano."""
    from lrfc.targets import list_profiles
    from runtime_bench.runners import RUNNERS

    gpus = [p for p in list_profiles() if RUNNERS[p.runtimes[0]].gpu]
    assert {p.name for p in gpus} >= {"jetson-orin-nano", "jetson-nano", "x86-nvidia-gpu", "nvidia-h200"}
    assert all(p.op_overhead_us is not None and p.op_overhead_us.value > 0 for p in gpus)
    orin = next(p for p in gpus if p.name == "jetson-orin-nano")
    layer, chain = [conv(128, 128)], [conv(128, 32, k=1), conv(32, 32), conv(32, 128, k=1)]
    args = (orin.peak_gflops["fp16"].value, orin.memory_bandwidth_gbps.value, "fp16")
    assert estimate_ms((8, 8, 128), chain, *args) < estimate_ms((8, 8, 128), layer, *args) / 3
    paid = [estimate_ms((8, 8, 128), c, *args, op_overhead_us=orin.op_overhead_us.value) for c in (layer, chain)]
    assert paid[1] > paid[0]


def test_a_build_for_the_orin_s_cpu_is_estimated_with_its_cpu_not_its_gpu():
    """``--target jetson-orin-nano --formats tflite`` (LiteRT on the six Cortex-A78AE): the estimates read the
    [cpu] figures, which the basis names, and pay no GPU launch per operator, so the chain that saves 2.7x of
    the layer's MACs is cheaper there, where the GPU's figures priced it dearer (the test above)."""
    from lrfc.cost.latency import Pricer
    from lrfc.targets import load_profile, with_formats

    board = load_profile("jetson-orin-nano")
    cpu = with_formats(board, ("tflite",))
    basis = Pricer(cpu, None).info.basis
    assert basis == "roofline from jetson-orin-nano's CPU peak 144 GOP/s fp16 and 68 GB/s"
    assert Pricer(board, None).info.basis.startswith("roofline from jetson-orin-nano's GPU peak 10000 GOP/s fp16")
    layer, chain = [conv(128, 128)], [conv(128, 32, k=1), conv(32, 32), conv(32, 128, k=1)]
    args = (cpu.peak.value, cpu.memory_bandwidth_gbps.value, "fp16")
    times = [estimate_ms((8, 8, 128), c, *args) for c in (layer, chain)]
    assert times[1] < times[0] / 2 and times[0] == pytest.approx(2 * 8 * 8 * 9 * 128 * 128 / 144e9 * 1e3, rel=0.05)


def test_lrfcs_own_cost_database_is_set_aside_when_corrupt_and_a_users_is_not(tmp_path):
    from lrfc.cost.costdb import CostDB
    from lrfc.errors import UserError

    path = tmp_path / "costs.sqlite"
    path.write_bytes(b"not a database " * 100)
    warnings = []
    with CostDB(path, owned=True, log=warnings.append) as db:
        assert db.count() == 0
    assert len(warnings) == 1 and "was corrupt" in warnings[0]
    assert [p.read_bytes()[:15] for p in tmp_path.glob("costs.sqlite.corrupt-*")] == [b"not a database "]
    mine = tmp_path / "mine.db"
    mine.write_bytes(b"a user's file")
    with pytest.raises(UserError, match="not an SQLite file"):
        CostDB(mine, owned=False)
    assert mine.read_bytes() == b"a user's file"  # never moved or changed
