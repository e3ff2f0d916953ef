"""Target profiles: the built-in TOML files and the loader's validation (no TensorFlow)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from runtime_bench.runners import RUNNERS

from lrfc.errors import UserError
from lrfc.targets import (
    DEFAULT_JETSON,
    Figure,
    Profile,
    builtin_names,
    list_profiles,
    load_profile,
    profile_to_dict,
)

EXPECTED_BUILTINS = {
    "coral-edgetpu", "host", "jetson-agx-orin", "jetson-nano", "jetson-orin-nano", "jetson-xavier-nx",
    "raspberry-pi-4", "raspberry-pi-5", "x86-nvidia-gpu",
}

# A valid user profile; the error tests break one line of it at a time.
VALID = """\
description = "My board"
runtimes = ["litert", "onnxruntime-cpu"]
precision = "fp32"
threads = 4
memory_budget_mb = 512

[peak_gflops.fp32]
value = 48
source = "product brief, https://example.org/brief.pdf"

[memory_bandwidth_gbps]
value = 12.8
source = "product brief, https://example.org/brief.pdf"
"""


FULL_INT8 = "memory_budget_mb = 512\nrequires_full_int8 = true"


def write(tmp_path: Path, text: str, name: str = "board.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(UserError) as info:
        load_profile(str(path))
    return str(info.value)


# ------------------------------------------------------------------ built-ins


def test_builtin_names_are_the_documented_set():
    assert set(builtin_names()) >= EXPECTED_BUILTINS
    assert builtin_names() == sorted(builtin_names())


def test_every_builtin_loads_and_round_trips():
    profiles = list_profiles()
    assert [p.name for p in profiles] == builtin_names()
    for p in profiles:
        assert p.path is not None and p.path.name == f"{p.name}.toml"
        assert p.objective == "latency"
        assert p.precision in p.peak_gflops
        assert set(p.runtimes) <= set(RUNNERS)
        for figure in (*p.peak_gflops.values(), p.memory_bandwidth_gbps, *([p.op_overhead_us] * bool(p.op_overhead_us))):
            assert figure.value > 0
            # a published figure names its page; a nominal one says so; a probed one where and when it was measured
            assert ("http" in figure.source or "Nominal" in figure.source
                    or figure.source.startswith("Measured on") and "lrfc profiles probe" in figure.source), (p.name, figure)
        data = profile_to_dict(p)
        assert json.loads(json.dumps(data)) == data


def test_jetson_resolves_to_orin_nano():
    assert DEFAULT_JETSON == "jetson-orin-nano"
    p = load_profile("jetson")
    assert p == load_profile("jetson-orin-nano")
    assert p.name == "jetson-orin-nano"
    assert p.runtimes[0] == "onnxruntime-tensorrt"
    assert p.precision == "fp16"
    assert p.memory_bandwidth_gbps.value == 68.0
    assert p.peak_gflops["int8"].value == 20000.0


def test_coral_is_full_int8_litert_only():
    p = load_profile("coral-edgetpu")
    assert p.requires_full_int8 is True
    assert p.precision == "int8"
    assert p.runtimes == ("litert",)
    assert p.peak == Figure(4000.0, p.peak_gflops["int8"].source)
    assert "4 TOPS" in p.peak.source


def test_published_figures():
    assert load_profile("jetson-nano").peak_gflops["fp16"].value == 472.0
    assert load_profile("jetson-nano").memory_bandwidth_gbps.value == 25.6
    assert load_profile("jetson-agx-orin").memory_bandwidth_gbps.value == 204.8
    assert load_profile("raspberry-pi-4").memory_bandwidth_gbps.value == 12.8
    host = load_profile("host")
    assert host.runtimes == ("litert", "onnxruntime-cpu")
    assert (host.precision, host.threads) == ("fp32", 2)
    assert "measures host latency directly" in host.peak.source
    gpu = load_profile("x86-nvidia-gpu")
    assert gpu.runtimes == ("onnxruntime-tensorrt", "onnxruntime-cuda", "onnxruntime-cpu")


# -------------------------------------------------------------- user profiles


def test_user_toml_path(tmp_path):
    path = write(tmp_path, VALID)
    p = load_profile(str(path))
    assert p.name == "board"
    assert p.path == path
    assert p.runtimes == ("litert", "onnxruntime-cpu")
    assert (p.precision, p.threads, p.memory_budget_mb) == ("fp32", 4, 512)
    assert p.objective == "latency" and p.requires_full_int8 is False
    assert p.peak_gflops["fp32"] == Figure(48.0, "product brief, https://example.org/brief.pdf")
    assert load_profile(path) == p  # a Path works as well as a str


def test_int8_with_litert_is_allowed(tmp_path):
    text = VALID.replace('precision = "fp32"', 'precision = "int8"').replace("peak_gflops.fp32", "peak_gflops.int8")
    p = load_profile(str(write(tmp_path, text)))
    assert p.precision == "int8" and "litert" in p.runtimes


# --------------------------------------------------------------------- errors


def test_unknown_key(tmp_path):
    message = load_error(tmp_path, VALID.replace('threads = 4', 'threads = 4\ncolour = 2'))
    assert message.startswith(f"{tmp_path / 'board.toml'}: key 'colour': not a profile key")
    assert "expected one of description, runtimes, precision" in message


def test_unknown_key_in_figure(tmp_path):
    message = load_error(tmp_path, VALID.replace("value = 12.8", "value = 12.8\nunit = 'GB/s'"))
    assert "board.toml: key 'memory_bandwidth_gbps.unit': not a figure key, expected one of value, source" in message


def test_missing_key(tmp_path):
    message = load_error(tmp_path, VALID.replace("threads = 4\n", ""))
    assert message == (f"{tmp_path / 'board.toml'}: key 'threads': received nothing (the key is missing), "
                       "expected an integer >= 1")


def test_wrong_type(tmp_path):
    message = load_error(tmp_path, VALID.replace("threads = 4", 'threads = "4"'))
    assert message == f"{tmp_path / 'board.toml'}: key 'threads': received '4' (a string), expected an integer >= 1"


def test_bad_enum(tmp_path):
    message = load_error(tmp_path, VALID.replace('precision = "fp32"', 'precision = "fp64"'))
    assert message == f"{tmp_path / 'board.toml'}: key 'precision': received 'fp64', expected one of fp32, fp16, int8"


def test_unknown_precision_in_peaks(tmp_path):
    message = load_error(tmp_path, VALID.replace("peak_gflops.fp32]", "peak_gflops.fp64]"))
    assert message.endswith("board.toml: key 'peak_gflops.fp64': not a precision, expected one of fp32, fp16, int8")


def test_bad_runtime(tmp_path):
    message = load_error(tmp_path, VALID.replace('"onnxruntime-cpu"]', '"tensorflow"]'))
    assert "board.toml: key 'runtimes': received 'tensorflow' in ['litert', 'tensorflow']" in message
    assert "onnxruntime-tensorrt" in message


def test_negative_threads(tmp_path):
    message = load_error(tmp_path, VALID.replace("threads = 4", "threads = -1"))
    assert message == f"{tmp_path / 'board.toml'}: key 'threads': received -1, expected an integer >= 1"


def test_non_positive_figure(tmp_path):
    message = load_error(tmp_path, VALID.replace("value = 48", "value = 0"))
    assert message.endswith("board.toml: key 'peak_gflops.fp32.value': received 0, expected a finite number > 0")


def test_peak_for_own_precision_is_required(tmp_path):
    message = load_error(tmp_path, VALID.replace('precision = "fp32"', 'precision = "fp16"'))
    assert "board.toml: key 'peak_gflops.fp16': received nothing" in message
    assert "expected the peak for the profile's precision fp16" in message


def test_full_int8_device_refuses_fp32(tmp_path):
    text = VALID.replace('runtimes = ["litert", "onnxruntime-cpu"]', 'runtimes = ["litert"]')
    message = load_error(tmp_path, text.replace("memory_budget_mb = 512", FULL_INT8))
    assert message.startswith(f"{tmp_path / 'board.toml'}: key 'precision': received 'fp32', expected 'int8'")
    assert "requires_full_int8 = true" in message


def test_full_int8_device_refuses_other_runtimes(tmp_path):
    text = VALID.replace('precision = "fp32"', 'precision = "int8"').replace("peak_gflops.fp32", "peak_gflops.int8")
    message = load_error(tmp_path, text.replace("memory_budget_mb = 512", FULL_INT8))
    assert "board.toml: key 'runtimes': received ['litert', 'onnxruntime-cpu'], expected ['litert']" in message


def test_full_int8_rule_holds_for_replace():
    coral = load_profile("coral-edgetpu")
    with pytest.raises(UserError, match=r"coral-edgetpu\.toml: key 'precision': received 'fp32', expected 'int8'"):
        dataclasses.replace(coral, precision="fp32", peak_gflops={"fp32": Figure(1.0, "x")})


def test_bad_toml_syntax(tmp_path):
    message = load_error(tmp_path, VALID.replace("threads = 4", "threads = "))
    assert message.startswith(f"{tmp_path / 'board.toml'}: invalid TOML: ")
    assert "line 4" in message


def test_unknown_profile_name_lists_known_names():
    with pytest.raises(UserError) as info:
        load_profile("jetson-tx2")
    message = str(info.value)
    assert message.startswith("unknown profile 'jetson-tx2': expected a built-in profile (")
    for name in EXPECTED_BUILTINS:
        assert name in message
    assert "'jetson' means jetson-orin-nano" in message


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match=r"nope\.toml: no such profile file"):
        load_profile(str(tmp_path / "nope.toml"))


def test_profile_is_frozen_and_hashable():
    p = load_profile("host")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.threads = 8  # type: ignore[misc]
    assert isinstance(p, Profile) and hash(p) == hash(load_profile("host"))


def test_rank_multiple_per_runtime_and_precision(tmp_path):
    text = VALID + '\n[rank_multiple]\nsource = "measured on my board 2026-11-30 by lrfc profiles probe"\n' \
                   'litert = { fp32 = 8, int8 = 16 }\n'
    p = load_profile(str(write(tmp_path, text)))
    assert p.multiple_for("litert") == 8 and p.multiple_for("litert", "int8") == 16
    assert p.multiple_for("onnxruntime-cpu") == 1 and p.multiple_for("litert", "fp16") == 1  # not named: 1
    assert p.rank_multiple_source.startswith("measured on my board")
    assert profile_to_dict(p)["rank_multiple"] == {"litert": {"fp32": 8, "int8": 16}}
    assert load_profile(str(write(tmp_path, VALID, "plain.toml"))).multiple_for("litert") == 1


def test_host_ranks_follow_the_measured_multiple_under_latency_only():
    from types import SimpleNamespace

    from lrfc.search.stage import rank_multiple

    host = load_profile("host")
    assert host.multiple_for("litert") == host.multiple_for("onnxruntime-cpu") == 16
    assert "probe" in host.rank_multiple_source
    state = SimpleNamespace(profile=host, link=None, objective="latency")
    assert rank_multiple(state) == 16
    for objective in ("flops", "params", "memory"):  # counts: a coarser grid would only cost them
        assert rank_multiple(SimpleNamespace(profile=host, link=None, objective=objective)) == 1


def test_formats_keep_the_runtimes_that_run_them_in_the_profile_s_order(tmp_path):
    """A build with ``--formats`` prices, measures, benchmarks and rounds ranks on the runtimes of its files."""
    from types import SimpleNamespace

    from lrfc.targets import build_profile

    def built(target, formats):
        return build_profile(SimpleNamespace(target=target, opset=None, formats=formats))

    onnx = built("host-int8", ("onnx",))
    assert onnx.runtimes == ("onnxruntime-cpu",) and onnx.multiple_for(onnx.runtimes[0]) == 16
    # the multiple is the runtime's own: host-int8 with ONNX Runtime's int8 at 32 (as before 2026-12-07)
    text = (Path(__file__).parents[1] / "profiles" / "host-int8.toml").read_text()
    assert "onnxruntime-cpu = { fp32 = 16, int8 = 16 }" in text
    (tmp_path / "board.toml").write_text(text.replace("onnxruntime-cpu = { fp32 = 16, int8 = 16 }",
                                                      "onnxruntime-cpu = { fp32 = 16, int8 = 32 }"))
    board = built(str(tmp_path / "board.toml"), ("onnx",))
    assert board.multiple_for(board.runtimes[0]) == 32 and built(str(tmp_path / "board.toml"), None).multiple_for(
        "litert") == 16
    assert onnx.name == "host-int8" and onnx.precision == "int8"
    assert built("host-int8", None) == built("host-int8", ("onnx", "tflite")) == load_profile("host-int8")
    assert built("jetson-orin-nano", ("onnx",)).runtimes == ("onnxruntime-tensorrt", "onnxruntime-cuda",
                                                             "onnxruntime-cpu")
    assert built("jetson-orin-nano", ("tflite",)).runtimes == ("litert",)
    with pytest.raises(UserError, match=r"^--formats onnx: target coral-edgetpu runs none of them"):
        built("coral-edgetpu", ("onnx",))


@pytest.mark.parametrize("name, cpu_peak, threads", [
    ("jetson-orin-nano", 144.0, 6), ("jetson-agx-orin", 422.4, 12), ("jetson-nano", 45.8, 4),
    ("jetson-xavier-nx", 134.4, 6)])
def test_formats_that_leave_a_cpu_runtime_first_estimate_with_the_cpu_s_figures(name, cpu_peak, threads):
    """``--target jetson-* --formats tflite`` runs LiteRT on the board's CPU: estimates use its [cpu] figures
    (cores x clock x FLOP/cycle; an fp16 file computes in fp32 there), not the GPU's, and no GPU launch overhead;
    the memory is the one the GPU shares. ``--formats onnx`` keeps a GPU runtime first and the GPU's figures."""
    from lrfc.targets import estimates_problem, with_formats

    board = load_profile(name)
    assert board.figures_of == "gpu" and board.op_overhead_us is not None and board.peak.value > 200
    cpu = with_formats(board, ("tflite",))
    assert cpu.runtimes == ("litert",) and cpu.figures_of == "cpu" and cpu.threads == threads
    assert cpu.peak.value == cpu_peak == cpu.peak_gflops["fp32"].value  # fp16 on the CPU: the fp32 rate
    assert "dequantize" in cpu.peak.source and "GHz" in cpu.peak.source
    assert cpu.memory_bandwidth_gbps == board.memory_bandwidth_gbps and cpu.op_overhead_us is None
    assert cpu.description.endswith(f"figures: its CPU, {board.cpu.description}") and cpu.cpu is None
    assert estimates_problem(cpu) is None
    gpu = with_formats(board, ("onnx",))
    assert gpu.figures_of == "gpu" and gpu.peak == board.peak and estimates_problem(gpu) is None
    assert profile_to_dict(board)["cpu"]["peak_gflops"]["fp16"]["value"] == cpu_peak
    assert profile_to_dict(cpu)["cpu"] is None and profile_to_dict(cpu)["figures_of"] == "cpu"


GPU_FIRST = VALID.replace('runtimes = ["litert", "onnxruntime-cpu"]', 'runtimes = ["onnxruntime-cuda", "litert"]')
CPU_TABLE = '\n[cpu]\ndescription = "4x Cortex-A76"\n[cpu.peak_gflops.fp32]\nvalue = 100\nsource = "derived"\n'


def test_a_gpu_profile_s_cpu_table_is_read_and_checked(tmp_path):
    """A user's GPU profile: its [cpu] figures take the GPU's place when --formats leaves LiteRT first; without
    them the narrowed profile says it cannot be estimated (the build stops there: test_bad_inputs); a [cpu]
    table on a CPU profile, one without the profile's precision, or an unknown key is one clear error."""
    from lrfc.targets import estimates_problem, with_formats

    bare = load_profile(str(write(tmp_path, GPU_FIRST)))
    assert bare.cpu is None and bare.figures_of == "gpu" and estimates_problem(bare) is None
    narrowed = with_formats(bare, ("tflite",))
    assert narrowed.figures_of == "gpu" and narrowed.peak == bare.peak
    assert estimates_problem(narrowed).startswith("target board runs litert on its CPU, but its figures are its GPU's")
    board = load_profile(str(write(tmp_path, GPU_FIRST + CPU_TABLE
                                   + '[cpu.memory_bandwidth_gbps]\nvalue = 17\nsource = "brief"\n')))
    on_cpu = with_formats(board, ("tflite",))
    assert (on_cpu.peak.value, on_cpu.memory_bandwidth_gbps.value, on_cpu.figures_of) == (100.0, 17.0, "cpu")
    assert ("key 'cpu': received a [cpu] table, expected none: the first runtime, litert, runs on the CPU"
            in load_error(tmp_path, VALID + CPU_TABLE))
    assert "cpu.peak_gflops.fp32" in load_error(tmp_path, GPU_FIRST + CPU_TABLE.replace("fp32", "int8"))
    assert "'cpu.clock': not a [cpu] key" in load_error(tmp_path, GPU_FIRST + CPU_TABLE.replace(
        "[cpu.peak", "clock = 2\n[cpu.peak", 1))
    assert "cpu.description" in load_error(tmp_path, GPU_FIRST + CPU_TABLE.replace('description = "4x Cortex-A76"\n', ""))


@pytest.mark.parametrize("table, words", [
    ('source = "x"\nlitert = { fp32 = 0 }', "rank_multiple.litert.fp32"),
    ('source = "x"\nlitert = { fp32 = 8.0 }', "an integer from 1 to 256"),
    ('source = "x"\nlitert = { fp64 = 8 }', "not a precision"),
    ('source = "x"\ntensorrt = { fp32 = 8 }', "not a runtime"),
    ('litert = { fp32 = 8 }', "rank_multiple.source"),
])
def test_bad_rank_multiple_is_one_clear_error(tmp_path, table, words):
    assert words in load_error(tmp_path, VALID + "\n[rank_multiple]\n" + table + "\n")


def test_onnx_opset_is_the_device_runtime_s_limit_with_its_source():
    """A Jetson Nano's last JetPack has TensorRT 8.2, which reads ONNX up to opset 13: its files are written at 13;
    a profile that names no limit gets lrfc's default, 17, and ``--opset`` replaces either, saying so."""
    from lrfc.targets import with_opset

    nano = load_profile("jetson-nano")
    assert nano.onnx_opset == 13 and "TensorRT 8.2 supports operators up to Opset 13" in nano.onnx_opset_source
    assert {load_profile(n).onnx_opset for n in ("jetson-xavier-nx", "jetson-orin-nano", "jetson-agx-orin")} == {17}
    host = load_profile("host")
    assert (host.onnx_opset, host.onnx_opset_source) == (17, "")
    assert profile_to_dict(nano)["onnx_opset"]["value"] == 13
    assert profile_to_dict(host)["onnx_opset"] == {"value": 17, "source": None}
    forced = with_opset(nano, 17)
    assert (forced.onnx_opset, forced.onnx_opset_source, forced.name) == (17, "--opset 17", "jetson-nano")
    assert with_opset(nano, None) is nano
    with pytest.raises(UserError, match=r"--opset: received 19, expected 13 to 18"):
        with_opset(host, 19)


@pytest.mark.parametrize("table, words", [
    ('value = 12\nsource = "x"', "key 'onnx_opset.value': received 12, expected 13 to 18"),
    ('value = "13"\nsource = "x"', "key 'onnx_opset.value': received '13', expected an integer from 13 to 18"),
    ('value = 13', "key 'onnx_opset': received"),
    ('value = 13\nsource = ""', "key 'onnx_opset.source'"),
])
def test_bad_onnx_opset_is_one_clear_error(tmp_path, table, words):
    assert words in load_error(tmp_path, VALID + "\n[onnx_opset]\n" + table + "\n")
