"""bench.gpu's three steps on a small hand-made ONNX pair: pack (big weights left behind), the device half (weights
drawn again, checked against the CPU provider, timed) as its CPU dry run, collect and render."""

import json
import tempfile

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from bench import gpu, gpu_device
from bench.render_gpu import gpu as render


def _model(path, width):
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((width, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((64, width, 3, 3)).astype(np.float32), "w2")
    fc = numpy_helper.from_array(rng.standard_normal((64, 10)).astype(np.float32), "fc")
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Conv", ["b", "w2"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["c"], ["d"]), helper.make_node("Flatten", ["d"], ["e"]),
             helper.make_node("MatMul", ["e", "fc"], ["z"]), helper.make_node("Softmax", ["z"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], [w1, w2, fc])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, str(path))


@pytest.fixture(scope="module")
def device_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gpu")
    pack, out = tmp / "pack", tmp / "out"
    pack.mkdir()
    entry = {}
    for role, width in (("original", 32), ("plan", 4)):  # w2: 64x32x3x3 floats, 72 KiB: over the limit; 64x4x3x3: 9 KiB
        src = tmp / f"{role}.onnx"
        _model(src, width)
        stripped = gpu.strip(src, pack / f"tiny-{role}.onnx")
        entry[role] = {"file": f"tiny-{role}.onnx", "source": str(src), "source_bytes": src.stat().st_size,
                       "stripped": len(stripped), "macs": 1000 if role == "original" else 250,
                       "operators": gpu._operators(pack / f"tiny-{role}.onnx")}
    (pack / "manifest.json").write_text(json.dumps({"groups": {"tiny": entry}}))
    scratch = tmp / "scratch"
    scratch.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tempfile, "tempdir", str(scratch))
        assert gpu_device.main([str(pack), str(out), "--runtime", "onnxruntime-cpu", "--runs", "6"]) == 0
    assert not list(scratch.iterdir())  # its working copies of the pack's files are gone
    return pack, entry, json.loads((out / "gpu.json").read_text())


def test_pack_leaves_big_weights_behind(device_run):
    pack, entry, _ = device_run
    assert entry["original"]["stripped"] == 1 and entry["plan"]["stripped"] == 0
    assert (pack / "tiny-original.onnx").stat().st_size < 8 * 1024 < entry["original"]["source_bytes"]
    assert not list(pack.glob("*.data"))  # the external data stays behind


def test_device_half_draws_checks_and_times(device_run):
    _, _, record = device_run
    row = record["groups"]["tiny"]
    assert row["files"]["original"]["weights_drawn"] == 1 and row["files"]["plan"]["weights_drawn"] == 0
    for role in ("original", "plan"):
        assert row["check"][role]["providers"] == ["CPUExecutionProvider"]
        assert row["check"][role]["outputs"] == 2  # the softmax's logits compared too
        assert row["check"][role]["max_abs_diff"] == 0.0 and row["check"][role]["top1_agreement"] == 1.0
        assert row["check"][role]["device"]["relative"] < 1e-6  # IO binding computes what a numpy run does
        assert "graph" not in row["check"][role]  # the CPU provider has no CUDA graph: not tried
        for by_batch in (row["batches"], row["io"]["device"]):
            assert sorted(by_batch, key=int) == [str(b) for b in gpu_device.BATCHES]
            for timed in by_batch.values():
                assert timed[role]["p50_ms"] > 0 and timed[role]["throughput_ips"] > 0
    assert set(row["io"]) == {"device"} and "io_errors" not in row and record["timing"]["io"] == ["host", "device"]
    assert record["runtime"] == "onnxruntime-cpu" and "--runtime onnxruntime-cpu" in record["command"]
    assert record["tensorrt"] != "started"  # no TensorRT here: the reason is recorded


def test_collect_and_render(device_run, tmp_path, monkeypatch):
    _, _, record = device_run
    record["machine"]["gpu"] = "NVIDIA Test, 1.0, 1 MiB"
    src = tmp_path / "gpu.json"
    src.write_text(json.dumps(record))
    monkeypatch.setattr(gpu, "RESULTS", tmp_path / "results.json")
    gpu.collect(src)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["groups"]["tiny"]["machine"] == "NVIDIA Test" and "NVIDIA Test" in results["machines"]
    results["probe"] = {"peak_gops": {"fp32": 100.0}, "bandwidth_gbps": 10.0, "op_overhead_us": 5.0,
                        "multiples": {"fp32": 8}, "command": "lrfc profiles probe --import X", "date": "2026-12-04"}
    text = "\n".join(render(results))
    assert text.count("| lrfc, quarter-rank plan (no fine-tuning) | 4.00x | 3 / 7 |") == 2  # two Conv and a MatMul of seven nodes
    assert "| tiny, inputs and outputs on the GPU (IO binding): file |" in text
    assert "`host`, numpy in and out (copies timed); `device`, inputs and outputs on the GPU" in text
    assert "| per-operator overhead (us) | 5.0 | - |" in text and "| peak fp32 (GFLOP/s) | 100.0 | 67,000 |" in text
    assert "has +0 operators; at the probe's 5 us each that is +0.000 ms" in text
    assert "TensorRT" in text and "not measured" in text
