"""`lrfc build` options: one frozen record, validated before any heavy work."""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields
from typing import Any
from pathlib import Path

from lrfc import decompose
from lrfc.errors import UserError
from lrfc.lower.opset import problem as opset_problem
from lrfc.objectives import OBJECTIVES

FINETUNE_MODES = ("oneshot", "iterative", "none")
RANK_SELECTIONS = ("similarity", "vbmf", "energy")
ALLOCATIONS = ("global", "threshold")
ROUNDS = 4  # the budget search's fine-tuning rounds without --max-rounds or --time-budget (``round_limit``)
FITS = ("auto", "on", "off")  # --data-aware; a choice's own data_aware is a bool


@dataclass(frozen=True)
class BuildOptions:
    """Everything `lrfc build` takes; the CLI flags map one to one.

    ``objective=None`` means the target profile's default objective.
    """

    model: str | Any                   # a path, or (the Python API) a keras.Model
    data: str | Any                    # a --data spec, or (the Python API) arrays
    target: str = "host"
    objective: str | None = None
    threshold: float = 0.92
    max_acc_drop: float = 1.0
    confidence: float | None = None    # hold the drop's one-sided upper bound (train.paired) within max_acc_drop
    max_class_drop: float | None = None  # also hold each class's recall drop within this (report.classes); None: off
    methods: tuple[str, ...] = field(default_factory=lambda: decompose.names())  # every registered method
    step: float = 2.0
    max_sol: int = 10
    calib_samples: int = 500           # same plan as 2,000 on the VGG baseline (docs/BENCHMARKS.md), a quarter of the time
    epochs: int = 2                    # per cold round, over up to train_samples; a warm round: contract.round_epochs.
                                       # 3 until 2026-12-02: the VGG-style default build reached the same rung at 6 epochs as at 8
    finetune: str = "oneshot"
    rank_selection: str = "similarity"
    energy: float = 0.9
    seed: int = 0
    out: str = "lrfc-out"
    cache: bool = True
    cache_dir: str | None = None
    plan: str | None = None
    train_samples: int | None = 60000  # fine-tuning samples per round, at most (None: all); 3 epochs over 60k beat 8 over
                                       # 20k at about the same cost (bench.budget --only data; train.finetune docstring)
    max_rounds: int | None = None      # None: ROUNDS, or under --time-budget no limit (the time decides: round_limit)
    distill: bool = True               # it paid at 8 x 20,000 (train.finetune docstring), not re-measured at 3 x 60,000
    distill_features: float = 0.0      # weight of the feature-map term (train.features); 0: off
    fit: str = "on"                    # --data-aware: on (fit to the layer's outputs), auto (the better of both per rank), off
                                       # (weights); auto won 8 of 848 candidates and no plan, at twice the score time (bench.fits)
    batch_size: int = 128
    trust_model: bool = False
    custom_objects: tuple[str, ...] = ()  # .py files or modules defining the model's custom layers, imported in load
    formats: tuple[str, ...] | None = None  # None: the target's runtimes decide (litert -> tflite, onnxruntime-* -> onnx)
    opset: int | None = None           # the ONNX files' opset; None: the target's (``onnx_opset``, else 17)
    device: str | tuple[str, ...] | None = None  # "local", "ssh://user@host[:port]", or several (a farm); None: host is local, others estimated
    device_python: str = "python3"
    identity_file: str | None = None
    ssh_options: tuple[str, ...] = ()
    cost_db: str | None = None
    bench_runs: int = 100              # timed runs per artifact in the final benchmark; 0 skips it
    int8_baseline: bool = True         # benchmark both models at the other precision too: int8 (the user's alternative), fp32 for an int8 target
    input_range: str | None = None     # the input contract (frontend.contract); None: inferred from the model
    input_mean: str | None = None
    input_std: str | None = None
    channel_order: str | None = None
    class_names: tuple[str, ...] | None = None  # each output's class name, in order: numbers class folders / label names
    allow_low_accuracy: bool = False   # go on when the original scores at chance on the data (a warning instead)
    allocation: str = "global"         # global (measured end-to-end effect, Lagrangian) or threshold (the paper's)
    min_similarity: float = 0.8        # global allocation: candidates below this feature-map similarity are not offered
    time_budget: float | None = None   # minutes for the whole build; the budget search stops when they run out
    reconstruct: bool = True           # refit each factorized layer's last factor to the original's output
    bn_reestimate: bool = True         # BatchNorm statistics re-estimated on calibration data after factorizing
    patience: int = 2                  # fine-tuning: epochs without a better validation accuracy before stopping
    qat: bool = False                  # fine-tune through int8 fake quantization (an int8 target only)
    executor: str = "inprocess"        # where score and price tasks run: inprocess, or ray (common.executor)
    ray_address: str | None = None     # --executor ray: auto or HOST:PORT of a running cluster; None: a local one
    memory_budget: str | None = None   # e.g. "4G"; None: 60% of the memory available (frontend.memory_plan)
    input_shape: tuple[int, ...] | None = None  # --input-shape: the size a model with an undefined one is compiled at

    @property
    def model_name(self) -> str:
        """The model as reports name it: its path, or a keras.Model's name."""
        return str(self.model) if isinstance(self.model, (str, Path)) else getattr(self.model, "name", "model")

    @property
    def devices(self) -> tuple[str, ...]:
        """The ``--device`` URLs in the order given (the first prices the plan); empty without one."""
        if self.device is None:
            return ()
        return (self.device,) if isinstance(self.device, str) else tuple(self.device)

    @property
    def data_name(self) -> str:
        """The data as reports name it."""
        from lrfc.frontend.data import source_name

        return source_name(self.data)

    def given_contract(self):
        """The input contract the flags state, or None to infer it from the model."""
        from lrfc.frontend.contract import given_contract

        return given_contract(self.input_range, self.input_mean, self.input_std, self.channel_order)

    def validate(self) -> "BuildOptions":
        """Raise ``UserError`` naming the first bad option; return self."""
        self._check_values()
        self._check_sources()
        return self

    def memory_bytes(self) -> int | None:
        """``--memory-budget`` in bytes; None: the default share of available memory."""
        from lrfc.frontend.memory_plan import parse_size

        return None if self.memory_budget is None else parse_size(self.memory_budget)

    def _check_values(self) -> None:
        """Numbers in range and names among the known choices."""
        bad = _bad
        if not (isinstance(self.threshold, (int, float)) and 0 < self.threshold <= 1 and math.isfinite(self.threshold)):
            bad("--threshold", self.threshold, "a number in (0, 1]")
        if not (0 < self.step <= 50):
            bad("--step", self.step, "a percentage in (0, 50]")
        if not (0 <= self.max_acc_drop <= 100):
            bad("--max-acc-drop", self.max_acc_drop, "accuracy points in [0, 100]")
        if self.confidence is not None and not (isinstance(self.confidence, (int, float)) and 0.5 <= self.confidence < 1):
            bad("--confidence", self.confidence, "a probability in [0.5, 1), e.g. 0.9")
        if self.max_class_drop is not None and not (isinstance(self.max_class_drop, (int, float))
                                                    and 0 <= self.max_class_drop <= 100):
            bad("--max-class-drop", self.max_class_drop, "recall points in [0, 100]")
        if self.opset is not None and opset_problem(self.opset):
            raise UserError(f"--opset: {opset_problem(self.opset)}")
        unknown = [m for m in self.methods if m not in decompose.METHODS]
        if not self.methods or unknown:
            bad("--methods", ",".join(self.methods), f"a comma list of {', '.join(decompose.names())}")
        if self.objective is not None and self.objective not in OBJECTIVES:
            bad("--objective", self.objective, f"one of {', '.join(OBJECTIVES)}")
        if self.finetune not in FINETUNE_MODES:
            bad("--finetune", self.finetune, f"one of {', '.join(FINETUNE_MODES)}")
        if self.qat and (self.finetune == "none" or self.epochs == 0):
            bad("--qat", f"with --finetune {self.finetune} --epochs {self.epochs}",
                "fine-tuning to train through int8 rounding in")
        if not (isinstance(self.distill_features, (int, float)) and 0 <= self.distill_features < math.inf):
            bad("--distill-features", self.distill_features, "a weight >= 0 (0: off)")
        if self.distill_features and self.qat:
            raise UserError("--distill-features and --qat do not go together: the feature-map term compares float maps, "
                            "quantization-aware training rounds them; drop one")
        if self.rank_selection not in RANK_SELECTIONS:
            bad("--rank-selection", self.rank_selection, f"one of {', '.join(RANK_SELECTIONS)}")
        if self.fit not in FITS:
            bad("--data-aware", self.fit, f"one of {', '.join(FITS)}")
        if not (0 < self.energy <= 1):
            bad("--energy", self.energy, "a fraction in (0, 1]")
        if self.allocation not in ALLOCATIONS:
            bad("--allocation", self.allocation, f"one of {', '.join(ALLOCATIONS)}")
        if not (isinstance(self.min_similarity, (int, float)) and 0 <= self.min_similarity <= 1):
            bad("--min-similarity", self.min_similarity, "a number in [0, 1]")
        if self.time_budget is not None and not (isinstance(self.time_budget, (int, float)) and self.time_budget > 0):
            bad("--time-budget", self.time_budget, "minutes, a positive number")
        for flag, value, low in (("--max-sol", self.max_sol, 1), ("--calib-samples", self.calib_samples, 1),
                                 ("--epochs", self.epochs, 0), ("--batch-size", self.batch_size, 1),
                                 ("--patience", self.patience, 1)):
            if not isinstance(value, int) or value < low:
                bad(flag, value, f"an integer >= {low}")
        if self.max_rounds is not None and (not isinstance(self.max_rounds, int) or self.max_rounds < 1):
            bad("--max-rounds", self.max_rounds, "an integer >= 1")
        if not isinstance(self.bench_runs, int) or self.bench_runs < 0:
            bad("--bench-runs", self.bench_runs, "an integer >= 0 (0 skips the benchmark)")
        if self.formats is not None:
            from lrfc.lower.artifacts import FORMATS

            if not self.formats or any(f not in FORMATS for f in self.formats):
                bad("--formats", ",".join(self.formats), f"a comma list of {', '.join(FORMATS)}")
        if self.train_samples is not None and self.train_samples < 1:
            bad("--train-samples", self.train_samples, "a positive integer (0 on the command line: all)")
        if self.memory_budget is not None:
            self.memory_bytes()  # a UserError naming the flag when it is not a size
        self._check_executor()

    def _check_executor(self) -> None:
        """``--executor``/``--ray-address`` make sense together, and Ray is installed when asked for."""
        import importlib.util

        from lrfc.common.executor import EXECUTORS, check_address

        if self.executor not in EXECUTORS:
            _bad("--executor", self.executor, f"one of {', '.join(EXECUTORS)}")
        if self.ray_address is not None:
            if self.executor != "ray":
                raise UserError(f"--ray-address applies to --executor ray; received it with --executor {self.executor}")
            check_address(self.ray_address)
        if self.executor == "ray" and importlib.util.find_spec("ray") is None:
            raise UserError("--executor ray: Ray is not installed; pip install 'lrfc[ray]'")

    def _check_sources(self) -> None:
        """The device, key, model, data, input contract and plan exist and parse."""
        for i, device in enumerate(self.devices):
            if not isinstance(device, str) or device in self.devices[:i]:
                _bad("--device", device, "each device once: local or ssh://user@host[:port]")
            if device != "local":
                from runtime_bench.remote import parse_device

                try:
                    parse_device(device)
                except ValueError as exc:
                    raise UserError(f"--device: {exc}") from None
        if self.identity_file is not None and not Path(self.identity_file).is_file():
            raise UserError(f"--identity-file: no such file: {self.identity_file}")
        if isinstance(self.model, (str, Path)) and not Path(self.model).exists():
            from lrfc.errors import not_found

            raise not_found("model", self.model)
        if not isinstance(self.model, (str, Path)) and not hasattr(self.model, "inputs"):
            raise UserError(f"model: received a {type(self.model).__name__}; expected a path or a keras.Model")
        check_data_spec(self.data)
        self.given_contract()
        if self.plan is not None and not Path(self.plan).exists():
            raise UserError(f"plan not found: {self.plan}")
        for spec in self.custom_objects:
            if str(spec).endswith(".py") and not Path(spec).is_file():
                raise UserError(f"--custom-objects {spec}: no such file")
        out = Path(self.out)
        if out.exists() and not out.is_dir():
            _bad("--out", self.out, "a directory (it exists as a file)")


def round_limit(max_rounds: int | None, time_budget: float | None) -> float:
    """The budget search's fine-tuning rounds, at most: ``--max-rounds``; when it is not given, ``ROUNDS``, or under
    ``--time-budget`` none (``math.inf``): the minutes the user named decide, and the search stops when they run out
    or its bracket closes. (With a fixed four, the VGG-style build given ``--time-budget 10`` on the AVX2 EPYC
    stopped on ``--max-rounds 4`` after 9.0 of its 10 minutes, 2026-12-05.)"""
    if max_rounds is not None:
        return max_rounds
    return math.inf if time_budget is not None else ROUNDS


def _bad(flag: str, value, expected: str):
    raise UserError(f"{flag}: received {value!r}; expected {expected}")


def check_data_spec(spec) -> None:
    """A missing ``--data`` path fails here, before TensorFlow loads (20-30 s), not after (arrays pass)."""
    from lrfc.frontend.archive import split
    from lrfc.frontend.data import BUILTIN, not_found

    if isinstance(spec, str) and spec not in BUILTIN and not Path(spec).exists() and split(spec) is None:
        raise not_found(spec)  # a path inside an archive is looked for once it is extracted


DEFAULT = {f.name: f.default for f in fields(BuildOptions) if f.default is not MISSING}  # the CLI's defaults too
