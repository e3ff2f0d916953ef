"""Target hardware profiles: TOML files read into a frozen, validated ``Profile``.

A profile says which runtimes a device offers (in order of preference), the
precision to compile for, how many CPU threads and how much memory the model
may use, what lrfc optimizes for, and the device's published peak compute and
memory bandwidth. Every peak figure carries the public source it came from, so
a number in a report can be traced back to a data sheet.

The built-in profiles are the ``*.toml`` files of the ``lrfc.profiles`` data
package (the repository's ``profiles/`` folder); a user's profile is any
``.toml`` file with the same schema. A profile's name is its file stem.

Schema (every key below is required unless marked optional; no other key is
accepted)::

    description = "Jetson Orin Nano 8GB, 15 W mode"    # one line
    runtimes = ["onnxruntime-tensorrt", "onnxruntime-cuda", "litert"]
                    # preference order; each one of litert, onnxruntime-cpu,
                    # onnxruntime-cuda, onnxruntime-tensorrt; no repeats
    precision = "fp16"            # fp32 | fp16 | int8
    threads = 6                   # CPU threads, integer >= 1
    memory_budget_mb = 4096       # integer > 0
    objective = "latency"         # optional, default "latency":
                                  # latency | flops | params | memory
    requires_full_int8 = false    # optional, default false; true means the
                                  # device runs fully int8 TFLite only, so
                                  # precision must be int8 and runtimes
                                  # exactly ["litert"] (Coral Edge TPU)

    [peak_gflops.fp16]            # one table per precision (fp32, fp16,
    value = 10000.0               # int8); the profile's own precision is
    source = "NVIDIA ... (URL)"   # required. For int8 the value is GOP/s.

    [memory_bandwidth_gbps]       # GB/s
    value = 68.0
    source = "NVIDIA ... (URL)"

    [rank_multiple]               # optional: factor ranks are rounded to
    litert = { fp32 = 8 }         # these channel multiples, per runtime and
    source = "measured on ..."    # precision (where the kernels' latency
                                  # steps; ``lrfc profiles probe`` measures
                                  # it); a runtime or precision not named: 1

    [onnx_opset]                  # optional: the newest ONNX opset the
    value = 13                    # device's ONNX runtime reads (an integer,
    source = "TensorRT 8.2 ..."   # 13 to 18); absent: 17 (``lower.opset``)

    [op_overhead_us]              # optional: what one more operator costs
    value = 6.5                   # however small (microseconds; a GPU's
    source = "measured on ..."    # launch), added per operator to roofline
                                  # estimates; absent: nothing added

    [cpu]                         # optional, only where the first runtime
    description = "6x Cortex-A78AE, 1.5 GHz"  # runs on a GPU: the device's
    [cpu.peak_gflops.fp16]        # CPU, for estimates on the runtimes that
    value = 144.0                 # run there (litert, onnxruntime-cpu);
    source = "..."                # peak_gflops must hold the precision;
    # [cpu.memory_bandwidth_gbps] # optional (absent: the profile's, memory
    # [cpu.op_overhead_us]        # shared with the GPU), both as above

The top-level figures describe the processor the first runtime runs on.
When ``--formats`` leaves a CPU runtime first on a GPU profile
(``--target jetson-orin-nano --formats tflite``: LiteRT on the Orin's CPU),
the ``[cpu]`` figures take their place (``with_formats``); a profile without
them cannot estimate that build (``estimates_problem``).

Every error is a ``UserError`` whose one-line message names the file and the
key, the value received and what was expected.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from lrfc.errors import UserError
from lrfc.lower.opset import DEFAULT as DEFAULT_OPSET, problem as opset_problem
from lrfc.objectives import OBJECTIVES
from runtime_bench.runners import RUNNERS

PRECISIONS = ("fp32", "fp16", "int8")

DEFAULT_JETSON = "jetson-orin-nano"
"""The profile the short name ``jetson`` stands for."""

ALIASES = {"jetson": DEFAULT_JETSON}

_REQUIRED = ("description", "runtimes", "precision", "threads", "memory_budget_mb",
             "peak_gflops", "memory_bandwidth_gbps")
_OPTIONAL = ("objective", "requires_full_int8", "rank_multiple", "op_overhead_us", "onnx_opset", "cpu")
_CPU_KEYS = ("description", "peak_gflops", "memory_bandwidth_gbps", "op_overhead_us")
_FIGURE_KEYS = ("value", "source")


@dataclass(frozen=True)
class Figure:
    """A published hardware figure and where it was published."""

    value: float
    source: str


@dataclass(frozen=True)
class Cpu:
    """A GPU device's CPU (``[cpu]``): the figures estimates use on the runtimes that run there.

    ``memory_bandwidth_gbps`` None: the profile's (a Jetson's CPU and GPU share one memory).
    """

    description: str
    peak_gflops: Mapping[str, Figure] = field(hash=False)
    memory_bandwidth_gbps: Figure | None = None
    op_overhead_us: Figure | None = None


def on_gpu(runtime: str) -> bool:
    """Whether ``runtime`` runs on an NVIDIA GPU (runtime_bench's registry says)."""
    return RUNNERS[runtime].gpu


@dataclass(frozen=True)
class Profile:
    """One target device, as read from a profile file.

    ``peak_gflops`` maps a precision to its peak (GOP/s for int8); it always
    holds the profile's own ``precision``. ``path`` is the file the profile was
    read from (None for one built in code).
    """

    name: str
    description: str
    runtimes: tuple[str, ...]
    precision: str
    threads: int
    memory_budget_mb: int
    peak_gflops: Mapping[str, Figure] = field(hash=False)
    memory_bandwidth_gbps: Figure
    objective: str = "latency"
    requires_full_int8: bool = False
    path: Path | None = None
    rank_multiple: Mapping[str, Mapping[str, int]] = field(default_factory=dict, hash=False)
    rank_multiple_source: str = ""
    op_overhead_us: Figure | None = None
    onnx_opset: int = DEFAULT_OPSET
    onnx_opset_source: str = ""   # where the device's limit is published; "--opset N" when the command set it
    cpu: Cpu | None = None        # [cpu]: a GPU profile's CPU figures
    figures_of: str = ""          # the processor the figures describe ("gpu" | "cpu"): the first runtime's when read

    def __post_init__(self) -> None:
        # The rules that tie keys together live here, so that a profile made
        # with dataclasses.replace() obeys them as well as one read from a file.
        object.__setattr__(self, "runtimes", tuple(self.runtimes))
        object.__setattr__(self, "peak_gflops", dict(self.peak_gflops))
        label = str(self.path) if self.path is not None else self.name
        if not self.figures_of:
            object.__setattr__(self, "figures_of", "gpu" if on_gpu(self.runtimes[0]) else "cpu")
        if self.precision not in self.peak_gflops:
            raise _error(label, f"peak_gflops.{self.precision}", "nothing (the table is missing)",
                         f"the peak for the profile's precision {self.precision}")
        if self.cpu is not None:
            if self.figures_of != "gpu":
                raise _error(label, "cpu", "a [cpu] table", f"none: the first runtime, {self.runtimes[0]}, runs on "
                             "the CPU, so the profile's own figures are the CPU's")
            if self.precision not in self.cpu.peak_gflops:
                raise _error(label, f"cpu.peak_gflops.{self.precision}", "nothing (the table is missing)",
                             f"the CPU's peak for the profile's precision {self.precision}")
        if self.requires_full_int8:
            why = "requires_full_int8 = true: the device runs fully int8-quantized TFLite models only"
            if self.precision != "int8":
                raise _error(label, "precision", repr(self.precision), f"'int8' ({why})")
            if self.runtimes != ("litert",):
                raise _error(label, "runtimes", repr(list(self.runtimes)), f"['litert'] ({why})")

    @property
    def peak(self) -> Figure:
        """The peak figure at the profile's own precision."""
        return self.peak_gflops[self.precision]

    @property
    def figures_elsewhere(self) -> bool:
        """Whether the figures describe another processor than the first runtime runs on (a GPU profile narrowed
        to a CPU runtime, without ``[cpu]`` figures to take their place)."""
        return self.figures_of != ("gpu" if on_gpu(self.runtimes[0]) else "cpu")

    def multiple_for(self, runtime: str, precision: str | None = None) -> int:
        """The channel multiple ranks are rounded to on ``runtime`` at ``precision`` (the profile's own): 1 if none."""
        return int(self.rank_multiple.get(runtime, {}).get(precision or self.precision, 1))


# ----------------------------------------------------------------- public API


def builtin_names() -> list[str]:
    """Names of the built-in profiles, sorted."""
    return sorted(p.name[: -len(".toml")] for p in _builtin_dir().iterdir() if p.name.endswith(".toml"))


def load_profile(name_or_path: str | os.PathLike[str]) -> Profile:
    """Read a profile by built-in name, alias (``jetson``) or file path.

    Args:
        name_or_path: a built-in name (see ``builtin_names()``), ``"jetson"``
            (= ``DEFAULT_JETSON``), or a path to a ``.toml`` file; anything
            that ends in ``.toml`` or holds a path separator is a path.

    Returns:
        The validated profile.

    Raises:
        UserError: unknown name, unreadable file, bad TOML or a bad key.
    """
    text = os.fspath(name_or_path)
    if text.endswith(".toml") or "/" in text or os.sep in text:
        return _load_file(Path(text))
    name = ALIASES.get(text, text)
    resource = _builtin_dir() / f"{name}.toml"
    if not resource.is_file():
        raise UserError(
            f"unknown profile {text!r}: expected a built-in profile ({', '.join(builtin_names())}; "
            f"'jetson' means {DEFAULT_JETSON}) or a path to a .toml file"
        )
    return _load_file(Path(str(resource)))


def list_profiles() -> list[Profile]:
    """Every built-in profile, sorted by name."""
    return [load_profile(name) for name in builtin_names()]


def profile_to_dict(profile: Profile) -> dict[str, Any]:
    """A JSON-ready dict of ``profile`` (what ``lrfc profiles show --json`` prints)."""
    return {
        "name": profile.name,
        "description": profile.description,
        "runtimes": list(profile.runtimes),
        "precision": profile.precision,
        "threads": profile.threads,
        "memory_budget_mb": profile.memory_budget_mb,
        "objective": profile.objective,
        "requires_full_int8": profile.requires_full_int8,
        "peak_gflops": {p: _figure_to_dict(profile.peak_gflops[p]) for p in PRECISIONS if p in profile.peak_gflops},
        "memory_bandwidth_gbps": _figure_to_dict(profile.memory_bandwidth_gbps),
        "rank_multiple": {r: dict(m) for r, m in profile.rank_multiple.items()},
        "rank_multiple_source": profile.rank_multiple_source or None,
        "op_overhead_us": None if profile.op_overhead_us is None else _figure_to_dict(profile.op_overhead_us),
        "onnx_opset": {"value": profile.onnx_opset, "source": profile.onnx_opset_source or None},
        "cpu": None if profile.cpu is None else _cpu_to_dict(profile.cpu),
        "figures_of": profile.figures_of,
        "path": None if profile.path is None else str(profile.path),
    }


def _cpu_to_dict(cpu: Cpu) -> dict[str, Any]:
    return {"description": cpu.description,
            "peak_gflops": {p: _figure_to_dict(cpu.peak_gflops[p]) for p in PRECISIONS if p in cpu.peak_gflops},
            "memory_bandwidth_gbps": (None if cpu.memory_bandwidth_gbps is None
                                      else _figure_to_dict(cpu.memory_bandwidth_gbps)),
            "op_overhead_us": None if cpu.op_overhead_us is None else _figure_to_dict(cpu.op_overhead_us)}


def _builtin_dir():
    return resources.files("lrfc.profiles")


def _load_file(path: Path) -> Profile:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such profile file; expected a .toml file or a built-in profile "
                        f"({', '.join(builtin_names())})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the profile: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: invalid TOML: {exc}") from None
    return _parse(data, label=str(path), name=path.stem, path=path)


def _parse(data: Mapping[str, Any], *, label: str, name: str, path: Path | None) -> Profile:
    """Check every key of one profile table and build the ``Profile``."""
    allowed = _REQUIRED + _OPTIONAL
    for key in data:
        if key not in allowed:
            raise UserError(f"{label}: key {key!r}: not a profile key, expected one of {', '.join(allowed)}")
    for key in _REQUIRED:
        if key not in data:
            raise _error(label, key, "nothing (the key is missing)", _expected(key))

    description = data["description"]
    if not isinstance(description, str) or not description.strip():
        raise _error(label, "description", _show(description), _expected("description"))
    multiples, multiple_source = _multiples(data.get("rank_multiple", {}), label)
    opset, opset_source = _opset(data["onnx_opset"], label) if "onnx_opset" in data else (DEFAULT_OPSET, "")
    return Profile(
        name=name,
        description=description.strip(),
        runtimes=_runtimes(data["runtimes"], label),
        precision=_choice(data["precision"], PRECISIONS, label, "precision"),
        threads=_positive_int(data["threads"], label, "threads", minimum=1),
        memory_budget_mb=_positive_int(data["memory_budget_mb"], label, "memory_budget_mb", minimum=1),
        peak_gflops=_peaks(data["peak_gflops"], label),
        memory_bandwidth_gbps=_figure(data["memory_bandwidth_gbps"], label, "memory_bandwidth_gbps"),
        objective=_choice(data.get("objective", "latency"), OBJECTIVES, label, "objective"),
        requires_full_int8=_boolean(data.get("requires_full_int8", False), label, "requires_full_int8"),
        path=path,
        rank_multiple=multiples,
        rank_multiple_source=multiple_source,
        op_overhead_us=(_figure(data["op_overhead_us"], label, "op_overhead_us") if "op_overhead_us" in data
                        else None),
        onnx_opset=opset,
        onnx_opset_source=opset_source,
        cpu=_cpu(data["cpu"], label) if "cpu" in data else None,
    )


def _expected(key: str) -> str:
    """What a key must hold, for error messages (runtimes: read from the registry when asked)."""
    if key == "runtimes":
        return f"a non-empty array of distinct names from {', '.join(RUNNERS)}"
    return _EXPECTED[key]


_EXPECTED = {
    "description": "a non-empty string",
    "precision": f"one of {', '.join(PRECISIONS)}",
    "threads": "an integer >= 1",
    "memory_budget_mb": "an integer >= 1 (megabytes)",
    "peak_gflops": f"a table of {{value, source}} tables keyed by precision ({', '.join(PRECISIONS)})",
    "memory_bandwidth_gbps": "a table with value (GB/s, > 0) and source (string)",
}


def _runtimes(value: Any, label: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise _error(label, "runtimes", _show(value), _expected("runtimes"))
    for item in value:
        if item not in RUNNERS:  # runtime_bench's registry: a runtime added there is valid here
            raise _error(label, "runtimes", f"{item!r} in {value!r}", f"names from {', '.join(RUNNERS)}")
    if len(set(value)) != len(value):
        raise _error(label, "runtimes", repr(value), "each runtime at most once")
    return tuple(value)


def _choice(value: Any, choices: tuple[str, ...], label: str, key: str) -> str:
    if value not in choices:
        received = repr(value) if isinstance(value, str) else _show(value)
        raise _error(label, key, received, f"one of {', '.join(choices)}")
    return value


def _positive_int(value: Any, label: str, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _error(label, key, _show(value), _expected(key))
    if value < minimum:
        raise _error(label, key, repr(value), _expected(key))
    return value


def _boolean(value: Any, label: str, key: str) -> bool:
    if not isinstance(value, bool):
        raise _error(label, key, _show(value), "true or false")
    return value


def _peaks(value: Any, label: str, key: str = "peak_gflops") -> dict[str, Figure]:
    if not isinstance(value, dict):
        raise _error(label, key, _show(value), _expected("peak_gflops"))
    for precision in value:
        if precision not in PRECISIONS:
            raise UserError(f"{label}: key '{key}.{precision}': not a precision, "
                            f"expected one of {', '.join(PRECISIONS)}")
    return {p: _figure(value[p], label, f"{key}.{p}") for p in PRECISIONS if p in value}


def _cpu(value: Any, label: str) -> Cpu:
    """``[cpu]``: a GPU profile's CPU (``Cpu``); the precision rule is the profile's (``Profile.__post_init__``)."""
    if not isinstance(value, dict):
        raise _error(label, "cpu", _show(value), "a table with description, peak_gflops and optionally "
                     "memory_bandwidth_gbps and op_overhead_us")
    for key in value:
        if key not in _CPU_KEYS:
            raise UserError(f"{label}: key 'cpu.{key}': not a [cpu] key, expected one of {', '.join(_CPU_KEYS)}")
    description = value.get("description")
    if not isinstance(description, str) or not description.strip():
        raise _error(label, "cpu.description", _show(description) if description is not None
                     else "nothing (the key is missing)", "a non-empty string")
    if "peak_gflops" not in value:
        raise _error(label, "cpu.peak_gflops", "nothing (the key is missing)", _expected("peak_gflops"))
    return Cpu(description.strip(), _peaks(value["peak_gflops"], label, "cpu.peak_gflops"),
               *(_figure(value[k], label, f"cpu.{k}") if k in value else None
                 for k in ("memory_bandwidth_gbps", "op_overhead_us")))


def _multiples(value: Any, label: str) -> tuple[dict[str, dict[str, int]], str]:
    """``[rank_multiple]``: ``{runtime: {precision: int >= 1}}`` and the source that says where they came from."""
    if not isinstance(value, dict):
        raise _error(label, "rank_multiple", _show(value), "a table of {precision = multiple} tables keyed by runtime")
    out, source = {}, value.get("source", "")
    if value and (not isinstance(source, str) or not source.strip()):
        raise _error(label, "rank_multiple.source", _show(source) if source else "nothing (the key is missing)",
                     "a non-empty string saying where the multiples came from")
    for runtime, table in value.items():
        if runtime == "source":
            continue
        if runtime not in RUNNERS:
            raise UserError(f"{label}: key 'rank_multiple.{runtime}': not a runtime, expected one of {', '.join(RUNNERS)}")
        if not isinstance(table, dict):
            raise _error(label, f"rank_multiple.{runtime}", _show(table), "a table of precision = multiple")
        for precision, multiple in table.items():
            key = f"rank_multiple.{runtime}.{precision}"
            if precision not in PRECISIONS:
                raise UserError(f"{label}: key '{key}': not a precision, expected one of {', '.join(PRECISIONS)}")
            if isinstance(multiple, bool) or not isinstance(multiple, int) or not 1 <= multiple <= 256:
                raise _error(label, key, _show(multiple), "an integer from 1 to 256")
        out[runtime] = dict(table)
    return out, source.strip() if isinstance(source, str) else ""


def _figure(value: Any, label: str, key: str) -> Figure:
    if not isinstance(value, dict):
        raise _error(label, key, _show(value), "a table with value (> 0) and source (string)")
    for sub in value:
        if sub not in _FIGURE_KEYS:
            raise UserError(f"{label}: key '{key}.{sub}': not a figure key, expected one of value, source")
    for sub in _FIGURE_KEYS:
        if sub not in value:
            raise _error(label, f"{key}.{sub}", "nothing (the key is missing)",
                         "a number > 0" if sub == "value" else "a non-empty string")
    number, source = value["value"], value["source"]
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise _error(label, f"{key}.value", _show(number), "a number > 0")
    if not math.isfinite(number) or number <= 0:
        raise _error(label, f"{key}.value", repr(number), "a finite number > 0")
    if not isinstance(source, str) or not source.strip():
        raise _error(label, f"{key}.source", _show(source), "a non-empty string naming the public source")
    return Figure(value=float(number), source=source.strip())


def _opset(value: Any, label: str) -> tuple[int, str]:
    """``[onnx_opset]``: the newest opset the device's ONNX runtime reads (``lower.opset``) and where that is said."""
    if not isinstance(value, dict) or set(value) != set(_FIGURE_KEYS):
        raise _error(label, "onnx_opset", _show(value), "a table with value (an opset) and source (string)")
    why = opset_problem(value["value"])
    if why:
        raise UserError(f"{label}: key 'onnx_opset.value': {why}")
    source = value["source"]
    if not isinstance(source, str) or not source.strip():
        raise _error(label, "onnx_opset.source", _show(source), "a non-empty string naming the public source")
    return value["value"], source.strip()


def build_profile(options) -> Profile:
    """The profile a build compiles for: its ``--target``, with ``--opset`` in place of the profile's own opset and
    only the runtimes that run ``--formats`` (``with_formats``). Preflight and the frontend stage both take it from
    here, so they cannot disagree."""
    return with_formats(with_opset(load_profile(options.target), options.opset), options.formats)


def with_formats(profile: Profile, formats) -> Profile:
    """``profile`` keeping only the runtimes whose files ``--formats`` asks for, in the profile's order (None:
    unchanged).

    A build prices, measures and benchmarks on its target's first runtime
    that can run, and rounds ranks to that runtime's multiple; without this,
    ``--target host --formats onnx`` chose its plan by LiteRT's timings and
    published only the ONNX file, which ONNX Runtime runs with other kernels
    (docs/LOG.md, 2026-12-07). When that leaves a CPU runtime first on a GPU
    profile (``--target jetson-orin-nano --formats tflite``: LiteRT on the
    Orin's Cortex-A78AE cores), the profile's ``[cpu]`` figures replace the
    GPU's: estimates had priced LiteRT on the CPU at the GPU's 10 TOPS fp16
    and paid a GPU launch per operator. Without a ``[cpu]`` table the figures
    stay the GPU's and ``estimates_problem`` says so.
    """
    if not formats:
        return profile
    from lrfc.lower.artifacts import format_of

    kept = tuple(runtime for runtime in profile.runtimes if format_of(runtime) in formats)
    if not kept:
        raise UserError(f"--formats {','.join(formats)}: target {profile.name} runs none of them "
                        f"(its runtimes: {', '.join(profile.runtimes)}, which run "
                        f"{', '.join(dict.fromkeys(format_of(r) for r in profile.runtimes))})")
    if kept == profile.runtimes:
        return profile
    from dataclasses import replace

    narrowed = replace(profile, runtimes=kept)
    if not (narrowed.figures_elsewhere and profile.cpu is not None):
        return narrowed
    cpu = profile.cpu  # the first runtime left runs on the CPU: its figures are the ones estimates use
    return replace(narrowed, description=f"{profile.description}; figures: its CPU, {cpu.description}",
                   peak_gflops=cpu.peak_gflops, memory_bandwidth_gbps=cpu.memory_bandwidth_gbps or
                   profile.memory_bandwidth_gbps, op_overhead_us=cpu.op_overhead_us, cpu=None, figures_of="cpu")


def estimates_problem(profile: Profile) -> str | None:
    """Why roofline estimates on ``profile``'s first runtime would be wrong, or None: its figures are another
    processor's (a GPU profile narrowed to a CPU runtime, without ``[cpu]`` figures)."""
    if not profile.figures_elsewhere:
        return None
    return (f"target {profile.name} runs {profile.runtimes[0]} on its CPU, but its figures are its GPU's and it has "
            "no [cpu] figures to estimate the CPU from; pass --device to measure it, --objective flops, or add a "
            "[cpu] table to a copy of the profile")


def with_opset(profile: Profile, opset: int | None) -> Profile:
    """``profile`` with ``--opset`` in place of its own ONNX opset (unchanged for None)."""
    if opset is None:
        return profile
    why = opset_problem(opset)
    if why:
        raise UserError(f"--opset: {why}")
    from dataclasses import replace

    return replace(profile, onnx_opset=opset, onnx_opset_source=f"--opset {opset}")


def _figure_to_dict(figure: Figure) -> dict[str, Any]:
    return {"value": figure.value, "source": figure.source}


def _error(label: str, key: str, received: str, expected: str) -> UserError:
    return UserError(f"{label}: key {key!r}: received {received}, expected {expected}")


_TOML_TYPES = ((bool, "a boolean"), (int, "an integer"), (float, "a float"), (str, "a string"),
               (list, "an array"), (dict, "a table"))


def _show(value: Any) -> str:
    """A received value for an error message: short repr and its TOML type."""
    kind = next((name for t, name in _TOML_TYPES if isinstance(value, t)), type(value).__name__)
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({kind})"
