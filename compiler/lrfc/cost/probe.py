"""``lrfc profiles probe``: measure a device and write a profile whose figures say where they came from.

A profile's published peaks are data-sheet ceilings; a roofline estimate
built on them is optimistic by however far a runtime's kernels fall short.
The probe times small synthetic models on the device, with the runtime and
thread count a build would use (``runtime_bench``, over ssh or here; each
model's fastest run over ``LIFETIMES`` fresh workers), and reads off:

* **peak compute** per precision: a 3x3 convolution, 256 -> 256 channels on a
  28x28 map (462 M MACs), ``2 * MACs / time``: what the runtime's best kernel
  reaches, the ceiling a roofline should use;
* **memory bandwidth**: chains of 1 and ``ADDS`` element-wise adds on a 64 MiB
  tensor, each adding the input to the running sum (no converter can fold
  them); each extra add reads two such tensors and writes one, so bandwidth
  is ``(ADDS - 1) * 3 * bytes / (t_chain - t_one)`` (the input and output
  copies of a run cancel out);
* **per-operator overhead**: the same difference on a 1x8 tensor, where the
  data is nothing: what one more operator costs however small it is;
* **the channel multiple** per precision: a 1x1 convolution on a 56x56x128 map
  with every output channel count from ``SWEEP[0]`` to ``SWEEP[1]``. Each
  multiple ``m`` (2, 4, 8, 16, 32 in turn) is judged against the grid it
  would replace, the last one accepted (1 at first): ``m`` is accepted when
  rounding that grid's counts up to multiples of ``m`` is close to free, the
  median of ``t(round_up(c, m)) / t(c) - 1`` staying below ``FREE_SHARE`` of
  what the extra channels would cost if latency grew in proportion (the
  median of ``round_up(c, m) / c - 1``) and below ``FREE_MAX`` outright. The
  multiple is the last one accepted; ranks are rounded to it
  (``search.grid``). (Judged against every count instead, a runtime whose
  odd counts run slow makes any coarse grid look free: ONNX Runtime's int8
  1x1 convs here, whose counts off a multiple of 4 read up to 25 % slow, read
  32, where its whole models step at 16: the ResNet-style model with every
  conv as CP at rank 16 runs 12 % faster than at 32, docs/LOG.md, session
  57.) One 1x1 conv is not a whole model: on that machine the sweep reads
  ONNX Runtime's int8 multiple 8 where whole models put rank 8 behind 16, so
  the ``host`` profiles' multiples are the ones whole models agree with.

The profile written starts from ``--target``'s (runtimes, precision,
threads, memory budget, objective) and replaces its figures with the
measured ones, each ``source`` saying "measured on <device> <date> by lrfc
profiles probe"; precisions the runtime was not probed at keep their
published figures.
"""

from __future__ import annotations

import json
import math
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ADDS = 5                    # the long chain's adds (the short one has 1)
BIG_ELEMENTS = 16 * 2 ** 20  # 64 MiB of fp32: past the last-level cache of an edge (or this) CPU
SWEEP = (33, 64)            # output channels swept (half-open below, closed above)
MULTIPLES = (2, 4, 8, 16, 32)
FREE_SHARE = 0.25           # rounding up may cost this share of its proportional cost and still count as free,
FREE_MAX = 0.02             # and at most this much (median): about the noise of one p50 here
RUNS, ROUNDS = 60, 3
LIFETIMES = 3               # fresh workers each time; a file keeps its lowest median (the cores' distance: bimodal)


@dataclass
class Probe:
    """What the probe measured on one device and runtime."""

    device: dict
    runtime: str
    threads: int
    date: str
    peak_gops: dict = field(default_factory=dict)      # precision -> GOP/s (fp32: GFLOP/s)
    bandwidth_gbps: float = 0.0
    op_overhead_us: float = 0.0
    multiples: dict = field(default_factory=dict)      # precision -> channel multiple
    sweep_ms: dict = field(default_factory=dict)       # precision -> {channels: ms}
    chain_ms: dict = field(default_factory=dict)       # the add chains' medians, for whoever checks the arithmetic
    io: str = "host"                                   # runtime_bench's io: "device" on a GPU (bench_options)

    def to_json(self) -> dict:
        return asdict(self)

    @property
    def where(self) -> str:
        cpu = self.device.get("cpu") or self.device.get("machine") or "a device"
        what = f"{self.device['gpu']} (host {cpu})" if self.device.get("gpu") else cpu
        via = self.device.get("transport") or "this machine"
        where = f"{what} via {via}, {self.runtime} {self.device.get('runtime_version', '')}, {self.threads} threads"
        return where + (", inputs and outputs on the device" if self.io == "device" else "")


def channel_multiple(times: dict[int, float], share: float = FREE_SHARE) -> int:
    """The coarsest multiple whose round-up from the finer grid before it is close to free; 1 when none is (see
    the module doc)."""
    best = 1
    for m in MULTIPLES:
        pairs = [(c, up) for c in times if c % best == 0 and (up := -(-c // m) * m) in times and up != c]
        if not pairs:
            continue
        cost = statistics.median(times[up] / times[c] - 1.0 for c, up in pairs)
        proportional = statistics.median(up / c - 1.0 for c, up in pairs)
        if cost <= min(share * proportional, FREE_MAX):
            best = m
    return best


def _models(keras, precision: str):
    """``{name: (keras.Model, MACs or bytes or ops)}``: the probe's synthetic models at one precision."""
    layers = keras.layers

    def model(shape, body):
        x = keras.Input(shape)
        return keras.Model(x, body(x))

    out = {"compute": (model((28, 28, 256), lambda x: layers.Conv2D(256, 3, padding="same", use_bias=False)(x)),
                       28 * 28 * 9 * 256 * 256)}
    for c in range(SWEEP[0], SWEEP[1] + 1):
        out[f"sweep{c}"] = (model((56, 56, 128), lambda x, c=c: layers.Conv2D(c, 1, use_bias=False)(x)), c)
    if precision == "fp32":
        side = int(math.sqrt(BIG_ELEMENTS // 8))
        for name, shape in (("big", (side, side, 8)), ("small", (1, 1, 8))):
            for n in (1, ADDS):
                def chain(x, n=n):
                    y = x
                    for _ in range(n):
                        y = layers.Add()([y, x])
                    return y
                out[f"{name}{n}"] = (model(shape, chain), int(np.prod(shape)) * 4)
    return out


RESULTS = "results.json"  # what the device's runtime_bench run writes beside an exported probe's manifest
MANIFEST = "probe.json"


def lower_models(runtime: str, precisions, work: Path, log=print) -> dict:
    """The synthetic models lowered for ``runtime`` into ``work``: ``{precision: {name: [file name, units]}}``
    (units: MACs, bytes or channels, as ``_models`` gives them)."""
    from lrfc.common.quiet import import_keras
    from lrfc.lower.artifacts import export_file, format_of, onnx_int8_scheme

    keras = import_keras()
    fmt = format_of(runtime)
    rng = np.random.default_rng(0)
    lowered = {}
    for precision in precisions:
        models = _models(keras, precision)
        log(f"probe: lowering {len(models)} models at {precision} for {runtime}")
        lowered[precision] = {}
        for name, (model, units) in models.items():
            calib = rng.uniform(0, 1, (8, *model.input_shape[1:])).astype(np.float32)
            path = export_file(model, fmt, work / f"{precision}-{name}.{fmt}", precision, calib,
                               onnx_int8_scheme([runtime]))
            lowered[precision][name] = [Path(path).name, units]
    return lowered


def bench_options(threads: int, runtime: str) -> dict:
    """How the probe's models are timed: one worker for all (one per model read noisier here), several
    lifetimes (a VM's cores can sit far apart for a whole run, and ONNX Runtime then reads up to 2x slow on several
    threads: ``runtime_bench.cores``; the probe's one worker is not held up by it); each model keeps its fastest
    run (load only adds time, and the sweep looks for steps of a few percent, as the cost database's prices).

    On a GPU runtime the inputs stay on the device and the outputs are left there (``devices.timing_io``): the
    figures describe the GPU as a layer inside a whole model meets it (its maps never cross the bus there), timed
    as lrfc's measured prices are."""
    from lrfc.cost.devices import timing_io

    return {"threads": threads, "runs": RUNS, "warmup": 3, "rounds": ROUNDS, "batch": 1, "memory": False,
            "lifetimes": LIFETIMES, "io": timing_io(runtime)}


def read_off(device: dict, runtime: str, threads: int, lowered: dict, ms: dict, date: str, io: str = "host") -> Probe:
    """The figures from each model's fastest time: ``ms[precision][name]`` in milliseconds (timed with ``io``)."""
    result = Probe({k: v for k, v in device.items() if k != "workdir"}, runtime, threads, date, io=io)
    for precision, models in lowered.items():
        t = ms[precision]
        result.peak_gops[precision] = round(2 * models["compute"][1] / (t["compute"] * 1e6), 1)
        sweep = {c: t[f"sweep{c}"] for c in range(SWEEP[0], SWEEP[1] + 1)}
        result.sweep_ms[precision] = sweep
        result.multiples[precision] = channel_multiple(sweep)
        if precision == "fp32":
            big = models["big1"][1]
            extra_ms = max(t[f"big{ADDS}"] - t["big1"], 1e-6)
            result.bandwidth_gbps = round((ADDS - 1) * 3 * big / (extra_ms * 1e6), 2)
            result.op_overhead_us = round(max(t[f"small{ADDS}"] - t["small1"], 0.0) * 1e3 / (ADDS - 1), 2)
            result.chain_ms = {k: t[k] for k in ("big1", f"big{ADDS}", "small1", f"small{ADDS}")}
    return result


def probe(link, runtime: str, threads: int, precisions, log=print) -> Probe:
    """Lower the synthetic models for each precision, time them on ``link``, read the figures off."""
    with tempfile.TemporaryDirectory(prefix="lrfc-probe-") as work:
        lowered = lower_models(runtime, precisions, Path(work), log)
        ms, device = {}, {}
        for precision, models in lowered.items():
            log(f"probe: timing them on {link.label}")
            report = link.bench([str(Path(work) / f) for f, _ in models.values()], runtime=runtime,
                                **bench_options(threads, runtime))
            ms[precision] = {name: row["min_ms"] for name, row in zip(models, report["results"])}
            device = device or report["device"]
    return read_off(device, runtime, threads, lowered, ms, time.strftime("%Y-%m-%d"),
                    bench_options(threads, runtime)["io"])


def device_command(manifest: dict) -> str:
    """The command that times an exported probe on its device, run in the probe's folder (numpy and the runtime
    are all it needs there, with a copy of runtime_bench on PYTHONPATH)."""
    o = bench_options(manifest["threads"], manifest["runtime"])
    files = [f for models in manifest["models"].values() for f, _ in models.values()]
    return (f"python3 -m runtime_bench {' '.join(files)} --runtime {manifest['runtime']} --threads {o['threads']} "
            f"--runs {o['runs']} --warmup {o['warmup']} --rounds {o['rounds']} --no-memory "
            f"--lifetimes {o['lifetimes']}{'' if o['io'] == 'host' else ' --io ' + o['io']} --json > {RESULTS}")


def export_probe(runtime: str, threads: int, precisions, folder: Path, log=print) -> dict:
    """The probe for a device lrfc cannot reach: its models and ``probe.json`` (what they measure and the
    command that times them there, writing ``results.json`` beside it) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    lowered = lower_models(runtime, precisions, folder, log)
    manifest = {"runtime": runtime, "threads": threads, "date": time.strftime("%Y-%m-%d"), "models": lowered}
    manifest["command"] = device_command(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def import_probe(folder: Path) -> Probe:
    """The figures of an exported probe whose ``results.json`` came back from its device."""
    from lrfc.errors import UserError

    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"--import: {folder / MANIFEST}: cannot read the exported probe's manifest ({exc}); "
                        "expected the folder `lrfc profiles probe --export` wrote") from None
    try:
        report = json.loads((folder / RESULTS).read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"--import: {folder / RESULTS}: cannot read the device's results ({exc}); run "
                        f"`{manifest.get('command')}` in that folder on the device first") from None
    rows = {Path(r["path"]).name: r for r in report.get("results", [])}
    ms = {}
    for precision, models in manifest["models"].items():
        missing = [f for f, _ in models.values() if f not in rows]
        if missing:
            raise UserError(f"--import: {folder / RESULTS} has no result for {', '.join(missing[:3])}"
                            f"{' ...' if len(missing) > 3 else ''}; expected one per model of {MANIFEST}")
        ms[precision] = {name: rows[f]["min_ms"] for name, (f, _) in models.items()}
    date = time.strftime("%Y-%m-%d", time.gmtime((folder / RESULTS).stat().st_mtime))  # when it came back
    device = {**(report.get("device") or {}), "transport": "an exported probe (--export, then --import)"}
    io = next(iter(rows.values()), {}).get("io", "host")  # runtime_bench before io was added timed numpy in and out
    return read_off(device, manifest["runtime"], manifest["threads"], manifest["models"], ms, date, io)


def profile_toml(base, measured: Probe) -> str:
    """The profile ``base`` with the measured figures in place of its published ones, as TOML.

    The figures go where the probed runtime runs: the top-level ones, or a GPU profile's ``[cpu]`` table when
    the runtime probed runs on its CPU (``--target jetson-orin-nano --runtime litert``); the other set stays
    as published.
    """
    from lrfc.targets import Cpu, on_gpu

    source = f"Measured on {measured.where}, {measured.date}, by lrfc profiles probe"
    lines = [f"# Written by `lrfc profiles probe` from the {base.name} profile on {measured.date}.",
             f"# Op overhead measured: {measured.op_overhead_us} us per operator (one more tiny add).",
             f"description = {_q(base.description if base.description.endswith('(measured)') else base.description + ' (measured)')}",
             f"runtimes = [{', '.join(_q(r) for r in base.runtimes)}]",
             f"precision = {_q(base.precision)}", f"threads = {measured.threads}",
             f"memory_budget_mb = {base.memory_budget_mb}", f"objective = {_q(base.objective)}"]
    if base.requires_full_int8:
        lines.append("requires_full_int8 = true")
    on_cpu = base.figures_of == "gpu" and not on_gpu(measured.runtime)  # the GPU's figures stay as published
    cpu = (base.cpu or Cpu("the device's CPU", {})) if on_cpu else base.cpu
    top = (base.peak_gflops, base.memory_bandwidth_gbps, base.op_overhead_us)
    lines += _figure_lines("", *top, None if on_cpu else measured, source)
    if base.onnx_opset_source:  # the device's runtime reads what it read before the probe (not probed)
        lines += ["", "[onnx_opset]", f"value = {base.onnx_opset}", f"source = {_q(base.onnx_opset_source)}"]
    multiples = {**{r: dict(m) for r, m in base.rank_multiple.items()}, measured.runtime: dict(measured.multiples)}
    lines += ["", "[rank_multiple]", f"source = {_q(source + ': 1x1 conv output channels swept')}"]
    lines += [f"{_q(r)} = {{ {', '.join(f'{p} = {m}' for p, m in table.items())} }}" for r, table in multiples.items()]
    if cpu is not None:  # last: a TOML table's keys end where the next table starts
        lines += ["", "[cpu]", f"description = {_q(cpu.description)}"]
        lines += _figure_lines("cpu.", cpu.peak_gflops, cpu.memory_bandwidth_gbps, cpu.op_overhead_us,
                               measured if on_cpu else None, source)
    return "\n".join(lines) + "\n"


def _figure_lines(prefix: str, peaks, bandwidth, overhead, measured: Probe | None, source: str) -> list[str]:
    """TOML tables ``{prefix}peak_gflops.*``, ``{prefix}memory_bandwidth_gbps`` and ``{prefix}op_overhead_us``:
    ``measured``'s figures where it has them (None: all as published), the published ones elsewhere."""
    lines, measured = [], measured or Probe({}, "", 0, "")
    for precision in ("fp32", "fp16", "int8"):
        if precision in measured.peak_gops:
            value, where = _believed(measured.peak_gops[precision], f"{source}: a 3x3 conv, 256 -> 256 channels, "
                                     "28x28", peaks.get(precision), "the conv's arithmetic")
        elif precision in peaks:
            value, where = peaks[precision].value, peaks[precision].source
        else:
            continue
        lines += ["", f"[{prefix}peak_gflops.{precision}]", f"value = {value}", f"source = {_q(where)}"]
    if measured.bandwidth_gbps:
        value, where = _believed(measured.bandwidth_gbps, f"{source}: element-wise adds over 64 MiB", bandwidth,
                                 "a cache that holds most of the 64 MiB tensor")
    elif bandwidth is not None:
        value, where = bandwidth.value, bandwidth.source
    if measured.bandwidth_gbps or bandwidth is not None:
        lines += ["", f"[{prefix}memory_bandwidth_gbps]", f"value = {value}", f"source = {_q(where)}"]
    if measured.op_overhead_us > 0:  # a figure is > 0; none measured adds nothing to estimates either way
        lines += ["", f"[{prefix}op_overhead_us]", f"value = {measured.op_overhead_us}",
                  f"source = {_q(source + ': one more add on a 1x8 tensor')}"]
    elif overhead is not None and "fp32" not in measured.peak_gops:  # not probed: the published one stays
        lines += ["", f"[{prefix}op_overhead_us]", f"value = {overhead.value}", f"source = {_q(overhead.source)}"]
    return lines


def _believed(value: float, where: str, published, what: str) -> tuple[float, str]:
    """A measured figure, unless it beats the base profile's data-sheet ceiling: then the hardware cannot have
    done it, the probe measured something else (``what``), and the ceiling stays with a note saying so. A
    nominal or measured base figure is no ceiling (the ``host`` profile's nominal figures are beaten)."""
    if published is None or value <= published.value or published.source.startswith(("Nominal", "Measured")):
        return value, where
    return published.value, (f"{published.source} (lrfc profiles probe read {value:g} on this device, above this "
                             f"ceiling: it measured {what}, not the hardware; {where.split(': ', 1)[0]})")


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_probe(target: str, out: str | None, *, device: str | None = None, runtime: str | None = None,
              precisions=None, device_python: str = "python3", identity_file: str | None = None, ssh_options=(),
              export: str | None = None, import_from: str | None = None, log=print):
    """``lrfc profiles probe``: every option checked first, then measure, write ``out`` and read it back.

    ``export``: lower the models into that folder for a device lrfc cannot reach, with the command that times
    them there, and stop (returns the manifest, no profile). ``import_from``: such a folder with the device's
    ``results.json`` in it: read the figures off it instead of measuring.

    Returns ``(Probe, Profile)``: what was measured and the profile as
    ``--target`` will now read it. Raises ``UserError`` on bad input.
    """
    from lrfc.common.atomic import write_text
    from lrfc.cost.devices import link_for
    from lrfc.errors import UserError
    from lrfc.targets import PRECISIONS, load_profile

    base = load_profile(target)
    if export and (import_from or device):
        raise UserError("--export: lowers the probe for a device lrfc cannot reach; it takes neither --import nor "
                        "--device")
    if import_from and device:
        raise UserError("--import: reads a probe a device already ran; it takes no --device")
    if import_from and (runtime or precisions):
        raise UserError("--import: the runtime and precisions are the exported probe's (its probe.json); it takes "
                        "no --runtime or --precisions")
    if export and out:
        raise UserError("--export: writes the probe's models and the command for the device, no profile yet; give "
                        "--out with --import once the device's results.json is back")
    path = Path(out) if out else None
    if export is None:
        if path is None:
            raise UserError("--out: missing; expected a .toml file to write the measured profile to")
        if path.suffix != ".toml" or path.is_dir():
            raise UserError(f"--out: received {out!r}; expected a .toml file to write the measured profile to")
        if not path.parent.is_dir():
            raise UserError(f"--out: the folder {str(path.parent)!r} does not exist")
    if import_from:
        folder = Path(import_from)
        if not folder.is_dir():
            raise UserError(f"--import: {import_from!r} is not a folder; expected the one --export wrote")
        measured = import_probe(folder)
        if measured.runtime not in base.runtimes:
            raise UserError(f"--import: the probe ran {measured.runtime}, not one of {base.name}'s runtimes "
                            f"({', '.join(base.runtimes)})")
        write_text(path, profile_toml(base, measured))
        return measured, load_profile(str(path))
    runtime = runtime or base.runtimes[0]
    if runtime not in base.runtimes:
        raise UserError(f"--runtime: received {runtime!r}; expected one of the target's runtimes "
                        f"({', '.join(base.runtimes)})")
    precisions = tuple(precisions or dict.fromkeys(("fp32", base.precision)))
    bad = [p for p in precisions if p not in PRECISIONS or p == "fp16"]
    if bad:
        raise UserError(f"--precisions: received {', '.join(bad)}; expected fp32 and/or int8 (fp16 runs as fp32 "
                        "arithmetic on CPUs and is not probed)")
    if export:
        folder = Path(export)
        if folder.exists() and any(folder.iterdir()):
            raise UserError(f"--export: {export!r} exists and is not empty; expected a new or empty folder")
        return export_probe(runtime, base.threads, precisions, folder, log), None
    link = link_for(base, device or "local", device_python, identity_file, tuple(ssh_options))
    reason = link.runtime_reason(runtime)
    if reason is not None:
        raise UserError(f"--runtime {runtime} cannot run on {link.label}: {reason}")
    measured = probe(link, runtime, base.threads, precisions, log=log)
    write_text(path, profile_toml(base, measured))
    return measured, load_profile(str(path))
