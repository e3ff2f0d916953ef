"""How to run a model in each runtime: one registry entry per runtime.

A runner is three plain functions: whether the runtime can run here, how to
load a file into a session with a fixed batch, and the runtime's version.
A session knows its inputs and runs one inference. Each runtime is imported
inside its own functions, so a device needs only the runtime it uses (and
numpy); adding a runtime is a new pair of functions plus one line in
``RUNNERS``.

Importing this module imports nothing heavy (numpy is imported inside the
functions that need it): lrfc reads the runtime names for its profiles and
its CLI help from ``RUNNERS`` without paying for numpy. runtime_bench must
stay importable on a device without TensorFlow (a test checks it).
"""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, List, Optional, Tuple

if TYPE_CHECKING:
    import numpy as np

Input = Tuple[str, Tuple[int, ...], "np.dtype"]

IO_MODES = ("host", "device", "graph")
"""How a timed run gets its inputs and gives its outputs.

* ``host``: numpy in and out on every run. A GPU runtime copies the input to
  the GPU and the output back inside the timing, as a caller holding numpy
  arrays pays.
* ``device``: the inputs placed in the runtime's memory once, the outputs
  bound there (ONNX Runtime's IO binding): what the model itself costs, for
  a caller whose data is already on the device. On a GPU the copies leave the
  timing; on the CPU it only saves allocating the outputs.
* ``graph``: ``device``, and the CUDA provider captures the run once as a
  CUDA graph and replays it: one launch for all the kernels, as a latency
  deployment on an NVIDIA GPU runs (TensorRT does the same).
"""


class UnavailableError(ValueError):
    """The requested runtime cannot run on this machine (not installed, no such provider).

    A ``ValueError``: asking for a runtime the device lacks is a mistake in
    the request, reported like an unknown runtime name.
    """


class FileRefused(ValueError):
    """The runtime would not load or prepare some files: those files, not the run or the runtime.

    XNNPACK refuses an int8 convolution whose requantization scale it cannot
    represent ("failed to create XNNPACK runtime"), which untrained or
    degenerate weights produce; a caller timing many files drops the ones
    named and times the rest. ``refused`` maps every refused file to its
    message (each begins with the file's path), in the order given; ``path``
    is the first of them. A measurement loads every file before it gives up,
    so one answer names them all: a price batch of keras.applications
    ResNet50V2 at int8 held 23 such files, and naming one at a time cost a
    worker's start and a reload of the batch for each (over ssh, a round trip).
    """

    def __init__(self, message: str, path: str, refused: dict | None = None):
        super().__init__(message)
        self.path = path
        self.refused = dict(refused) if refused else {path: message}

    @classmethod
    def of(cls, refused: dict) -> "FileRefused":
        """One exception for ``{path: message}`` (at least one): the first message, and how many more there are."""
        path, message = next(iter(refused.items()))
        more = len(refused) - 1
        return cls(message + (f" (and {more} more file{'s' if more > 1 else ''} refused)" if more else ""), path,
                   refused)


class Session:
    """One loaded model with its batch fixed.

    Attributes:
        inputs: ``(name, shape, dtype)`` per model input, the batch dimension
            set to the requested batch.
    """

    def __init__(self, inputs: List[Input], run: Callable[[list], None], place: Optional[Callable] = None):
        self.inputs = inputs
        self._run = run
        self._place = place

    def place(self, feeds: List[np.ndarray]) -> list:
        """``feeds`` where the session reads them on every run: as they are, or (``io`` ``device`` and ``graph``)
        copied once into the runtime's memory with the outputs bound beside them."""
        return feeds if self._place is None else self._place(feeds)

    def run(self, feeds: list) -> None:
        """One inference on ``feeds`` (one array per input, in order, or what ``place`` returned); outputs are
        fetched and dropped (with ``io`` ``device``: left on the device, the run waited for)."""
        self._run(feeds)


@dataclass(frozen=True)
class Runner:
    """A runtime: ``available() -> reason or None``, ``load(path, threads, batch) -> Session``, ``version()``,
    and ``outputs(path, x, chunk=None) -> first output`` (what verification compares with Keras; ``chunk``: at most
    that many samples per call of one loaded model).

    ``suffix`` is the file type it runs (``.tflite`` or ``.onnx``), checked
    before any worker starts; ``description`` names it in messages; ``gpu``
    says whether it needs an NVIDIA GPU (the device fingerprint then names it);
    ``io_modes`` are the ``IO_MODES`` its ``load(..., io=...)`` accepts.
    """

    name: str
    suffix: str
    available: Callable[[], Optional[str]]
    load: Callable[..., Session]
    version: Callable[[], str]
    outputs: Callable[..., "np.ndarray"]
    description: str
    gpu: bool = False
    io_modes: Tuple[str, ...] = ("host",)


def random_feeds(inputs: List[Input], seed: int = 0) -> List[np.ndarray]:
    """Timing inputs: random with a fixed seed, one array per input, of the input's dtype.

    Floats are uniform in [0, 1); 8- and 16-bit integers uniform over their
    whole range (quantized images); wider integers in [0, 128) so that index
    inputs stay small; booleans fair coin flips.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    feeds = []
    for _, shape, dtype in inputs:
        dtype = np.dtype(dtype)
        if dtype.kind == "f":
            feeds.append(rng.random(shape, dtype=np.float64).astype(dtype))
        elif dtype.kind in "iu" and dtype.itemsize <= 2:
            info = np.iinfo(dtype)
            feeds.append(rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype))
        elif dtype.kind in "iu":
            feeds.append(rng.integers(0, 128, size=shape, dtype=dtype))
        elif dtype.kind == "b":
            feeds.append(rng.random(shape) < 0.5)
        else:
            raise ValueError(f"cannot make random inputs of dtype {dtype}; expected float, integer or bool")
    return feeds


def _fixed_shape(name: str, shape, batch: int, path) -> Tuple[int, ...]:
    """``shape`` with its first dimension set to ``batch``; other dimensions must be known."""
    rest = list(shape[1:])
    if any(not isinstance(d, int) or d < 0 for d in rest):
        raise ValueError(f"{path}: input {name!r} has dynamic dimensions {list(shape)} besides the batch; "
                         "expected fixed sizes (export the model with a fixed input shape)")
    return (batch, *rest)


# ---------------------------------------------------------------------- LiteRT


def _litert_available() -> Optional[str]:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError as exc:
        return f"ai_edge_litert is not installed here ({exc})"
    return None


def _litert_version() -> str:
    try:
        return importlib.metadata.version("ai-edge-litert")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _litert_load(path, threads: Optional[int] = None, batch: int = 1, io: str = "host") -> Session:
    """A LiteRT interpreter (XNNPACK on, the runtime's default), inputs resized to ``batch``."""
    import numpy as np

    check_io("litert", io, ("host",))
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=threads)
    for d in interp.get_input_details():
        signature = [int(v) for v in d.get("shape_signature", d["shape"])]
        shape = _fixed_shape(d["name"], signature, batch, path)
        if int(d["shape"][0]) != batch:
            try:
                interp.resize_tensor_input(d["index"], list(shape), strict=False)
            except (RuntimeError, ValueError) as exc:
                raise ValueError(f"{path}: input {d['name']!r} cannot be resized to batch {batch}: {exc}") from None
    try:
        interp.allocate_tensors()
    except RuntimeError as exc:
        raise ValueError(f"{path}: cannot allocate tensors at batch {batch}: {exc}") from None
    details = interp.get_input_details()
    inputs = [(d["name"], tuple(int(v) for v in d["shape"]), np.dtype(d["dtype"])) for d in details]
    in_index = [d["index"] for d in details]
    out_index = [d["index"] for d in interp.get_output_details()]

    def run(feeds: List[np.ndarray]) -> None:
        for index, x in zip(in_index, feeds):
            interp.set_tensor(index, x)
        interp.invoke()
        for index in out_index:
            interp.get_tensor(index)

    return Session(inputs, run)


# ---------------------------------------------------------------- ONNX Runtime

ORT_DTYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int16)": "int16", "tensor(uint16)": "uint16",
    "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(bool)": "bool",
}


def _ort_available(providers: Tuple[str, ...]) -> Callable[[], Optional[str]]:
    def available() -> Optional[str]:
        try:
            import onnxruntime
        except ImportError as exc:
            return f"onnxruntime is not installed here ({exc})"
        have = onnxruntime.get_available_providers()
        if providers[0] not in have:
            return f"onnxruntime has no {providers[0]} here (it has {', '.join(have)})"
        return None

    return available


def _ort_version() -> str:
    try:
        import onnxruntime
    except ImportError:
        return "unknown"
    return onnxruntime.__version__


# The provider option that turns CUDA graph capture on, per provider that has one.
CUDA_GRAPH_OPTION = {"CUDAExecutionProvider": "enable_cuda_graph", "TensorrtExecutionProvider": "trt_cuda_graph_enable"}


_NEWER_OPSET = re.compile(r"Opset (\d+) is under development.*?domain ai\.onnx is till opset (\d+)", re.S)
OLDEST_OPSET_WRITTEN = 13  # lrfc's lower.opset.MIN (this package does not import lrfc)


def version_refusal(path, message: str, version: str) -> Optional[str]:
    """One line for an ONNX Runtime that refused ``path`` as newer than it reads, from its own ``message``; None for
    any other failure.

    ONNX Runtime 1.10 and 1.11 refuse a file that declares a newer opset than they implement ("Opset 17 is under
    development ... Current official support for domain ai.onnx is till opset 16"), 1.9 and older one of IR
    version 8 ("Unknown model file format version"): the words of 1.8.1-1.11.1 (docs/LOG.md, 2026-12-07). A board
    that keeps an old runtime (a Jetson Nano on JetPack 4.6) is told which opset to lower at instead.
    """
    match = _NEWER_OPSET.search(message)
    if match:
        declared, newest = int(match.group(1)), int(match.group(2))
        fix = (f"lower it at opset {newest} or older (lrfc build/export --opset {newest})" if newest >= OLDEST_OPSET_WRITTEN
               else f"lrfc writes opset {OLDEST_OPSET_WRITTEN} at the oldest: update ONNX Runtime on the device")
        return f"{path}: onnxruntime {version} reads ONNX opsets up to {newest}, and the file declares {declared}: {fix}"
    if "Unknown model file format version" in message:
        return (f"{path}: onnxruntime {version} does not know the file's IR version (tf2onnx writes opset 15 and "
                f"newer at IR version 8): lower it at opset {OLDEST_OPSET_WRITTEN} (IR version 7: lrfc build/export "
                f"--opset {OLDEST_OPSET_WRITTEN})")
    return None


def check_io(runtime: str, io: str, modes: Tuple[str, ...]) -> None:
    """ValueError unless ``io`` is one of ``modes``, the ones ``runtime`` offers."""
    if io not in modes:
        raise ValueError(f"runtime {runtime} times with io {' or '.join(repr(m) for m in modes)}, received {io!r}"
                         + ("" if io in IO_MODES else f"; io is one of {', '.join(IO_MODES)}"))


def _ort_load(name: str, providers: Tuple[str, ...], io_modes: Tuple[str, ...]) -> Callable[..., Session]:
    def load(path, threads: Optional[int] = None, batch: int = 1, io: str = "host") -> Session:
        """An InferenceSession with all graph optimizations on ``providers``; the first must be used."""
        import numpy as np
        import onnxruntime as ort

        check_io(name, io, io_modes)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            options.intra_op_num_threads = threads
        chosen: list = list(providers)
        if io == "graph":
            chosen[0] = (providers[0], {CUDA_GRAPH_OPTION[providers[0]]: "1"})
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=chosen)
        except Exception as exc:  # a file newer than this runtime reads is refused, not a crash: one line says why
            why = version_refusal(path, str(exc), ort.__version__)
            if why is None:
                raise
            raise ValueError(why) from None
        if session.get_providers()[0] != providers[0]:
            # ORT falls back to CPU silently when a GPU provider fails to initialise.
            raise RuntimeError(f"{path}: onnxruntime did not start {providers[0]} "
                               f"(the session runs on {', '.join(session.get_providers())})")
        inputs = []
        for i in session.get_inputs():
            if i.type not in ORT_DTYPES:
                raise ValueError(f"{path}: input {i.name!r} has type {i.type}; expected one of {', '.join(ORT_DTYPES)}")
            shape = list(i.shape)
            if shape and isinstance(shape[0], int) and shape[0] != batch:
                raise ValueError(f"{path}: input {i.name!r} has a fixed batch of {shape[0]}, received batch {batch}")
            inputs.append((i.name, _fixed_shape(i.name, shape, batch, path), np.dtype(ORT_DTYPES[i.type])))
        names = [name for name, _, _ in inputs]
        if io == "host":
            def run(feeds: List[np.ndarray]) -> None:
                session.run(None, dict(zip(names, feeds)))

            return Session(inputs, run)
        device = "cpu" if providers[0] == "CPUExecutionProvider" else "cuda"
        outputs = [(o.name, _output_shape(o, batch, path, io), np.dtype(ORT_DTYPES.get(o.type, "float32")))
                   for o in session.get_outputs()]

        def place(feeds: List[np.ndarray]) -> list:
            binding = session.io_binding()
            held: list = []  # the arrays and OrtValues must outlive the binding
            for input_name, x in zip(names, feeds):
                x = np.ascontiguousarray(x)
                held += [x, ort.OrtValue.ortvalue_from_numpy(x, device, 0)]
                binding.bind_ortvalue_input(input_name, held[-1])
            for output_name, shape, dtype in outputs:
                if shape is None:  # a size only the run knows: the runtime allocates it on the device
                    binding.bind_output(output_name, device, 0)
                else:
                    held.append(ort.OrtValue.ortvalue_from_shape_and_type(list(shape), dtype, device, 0))
                    binding.bind_ortvalue_output(output_name, held[-1])
            return [binding, held]

        def run_bound(placed: list) -> None:
            binding = placed[0]
            session.run_with_iobinding(binding)
            binding.synchronize_outputs()  # the run is timed to its end, not to its last launch

        return Session(inputs, run_bound, place)

    return load


def _output_shape(output, batch: int, path, io: str) -> Optional[Tuple[int, ...]]:
    """An output's shape at ``batch`` when its other sizes are fixed; None otherwise, which ``graph`` refuses (a
    CUDA graph replays fixed addresses, so the outputs are allocated once, before the first run)."""
    shape = list(output.shape)
    if shape and not (isinstance(shape[0], int) and shape[0] >= 0):
        shape[0] = batch
    if all(isinstance(d, int) and d >= 0 for d in shape):
        return tuple(shape)
    if io == "graph":
        raise ValueError(f"{path}: output {output.name!r} has dynamic dimensions {list(output.shape)} besides the "
                         "batch; io 'graph' needs every output's size before the first run")
    return None


def _ort_runner(name: str, providers: Tuple[str, ...], description: str) -> Runner:
    def outputs(path, x, chunk=None):
        from runtime_bench.run import run_onnx

        return run_onnx(path, x, providers=list(providers), chunk=chunk)

    gpu = providers[0] != "CPUExecutionProvider"
    io_modes = IO_MODES if providers[0] in CUDA_GRAPH_OPTION else ("host", "device")
    return Runner(name, ".onnx", _ort_available(providers), _ort_load(name, providers, io_modes), _ort_version,
                  outputs, description, gpu=gpu, io_modes=io_modes)


def _litert_outputs(path, x, chunk=None):
    from runtime_bench.run import run_tflite

    return run_tflite(path, x, chunk=chunk)


# The registry: one line per runtime. lrfc's profiles, CLI help, lowering formats and verification read it.
RUNNERS = {
    "litert": Runner("litert", ".tflite", _litert_available, _litert_load, _litert_version, _litert_outputs,
                     "LiteRT (XNNPACK on, its default)"),
    "onnxruntime-cpu": _ort_runner("onnxruntime-cpu", ("CPUExecutionProvider",), "ONNX Runtime (CPU)"),
    "onnxruntime-cuda": _ort_runner("onnxruntime-cuda", ("CUDAExecutionProvider", "CPUExecutionProvider"),
                                    "ONNX Runtime (CUDA)"),
    "onnxruntime-tensorrt": _ort_runner(
        "onnxruntime-tensorrt", ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"),
        "ONNX Runtime (TensorRT)"),
}

DEFAULT_RUNTIME = {}
"""The runtime a file runs in unless one is named: the first registry entry for its suffix."""
for _runner in RUNNERS.values():
    DEFAULT_RUNTIME.setdefault(_runner.suffix, _runner.name)


def get_runner(name: str) -> Runner:
    """The runner called ``name``; ValueError naming the known runtimes otherwise."""
    if name not in RUNNERS:
        raise ValueError(f"unknown runtime {name!r}; expected one of {', '.join(RUNNERS)}")
    return RUNNERS[name]


def runtime_for(path) -> str:
    """The default runtime for a file, by suffix: ``.tflite`` → litert, ``.onnx`` → onnxruntime-cpu."""
    suffix = Path(path).suffix.lower()
    if suffix not in DEFAULT_RUNTIME:
        raise ValueError(f"{path}: cannot tell the runtime from the suffix {suffix!r}; "
                         f"expected {' or '.join(DEFAULT_RUNTIME)}, or name one with --runtime")
    return DEFAULT_RUNTIME[suffix]
