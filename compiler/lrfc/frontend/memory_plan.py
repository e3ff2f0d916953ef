"""The build's memory plan: what it holds, by a formula in the model's size and the data, under ``--memory-budget``.

A build's peak resident memory is, term by term (docs/SCALING.md measures them):

    peak ~ RUNTIME                              Python, TensorFlow, LiteRT, ONNX Runtime (~0.6 GB here)
         + MODEL_COPIES x weights               the original, its flattened twin, a factorized copy
         + statistics                           sum over target layers of 8 ((kh kw cin)^2 + cin^2) bytes
                                                (a Dense layer: 16 in x min(in, vectors seen))
         + source data                          the data as it came (uint8 Fashion-MNIST: 55 MB)
         + calibration x sample bytes           the calibration samples (in a file after the capture, resident while read)
         + CHUNK_COPIES x CHUNK x sample bytes  one chunk of other samples being mapped (frontend.samples)
         + LAYER_COPIES x layer capture budget  one layer's maps being scored (search.scoring), and
           + FACTOR_COPIES x 8 x largest weights  its factorization being prepared (float64 copies)
         + CP fits kept                         min(decompose.cp.FITS_KEPT, FIT_COPIES x weights)
         + max(batch x activation bytes per sample    one batch through the model, plus
                 + (score threads - 1) x the layer term,    more walks scored at once (the score stage), or
               LOWERING_BASE + LOWERING_COPIES x weights)   the converters at work (the lower stage)

The batch is the term lrfc sizes. A model called eagerly (the capture's
tap model, the sensitivity's probes) holds every layer's output until the
call returns, so a sample costs the sum of all the model's activations
(ResNet50: 11.6 MB at 64x64, 142 MB at 224x224). The inference batch is as
large as ``BATCH_BYTES`` of that allows and the capture batch as
``CAPTURE_BYTES`` allows, at most their usual 256 and 64 samples and never
more than the budget has left: bigger batches buy little on a CPU and would
only grow the peak (ResNet50 at 64x64, 256 samples in one eager call: 2.6
GB). The capture gets less because it also holds the input statistics it
accumulates (ResNet50: 1.1 GB of float64 moments) and each sample's tapped
inputs: ResNet50 at 224x224 peaked in ``calibrate`` at 4.03 GiB capturing 7
samples at a time (1 GiB) and at 3.21 GiB capturing 3 (512 MiB), which cost
65 s more (187 s against 122): about 211 MB a sample, 1.3 s a batch.
768 MiB takes 5 there (3.69 GiB, 127 s: ``python -m bench.scale --models
resnet50-224 --until score``), and 64 (as before) at 64x64. The inference
batch keeps 1 GiB: the sensitivity's suffix models run eagerly, where
smaller batches cost time (the whole ResNet50 build at 64x64 with 44
samples instead of 88: select 149 s against 107; one ``bench.scale`` run
each, 2026-12-01). Captured feature maps
live in files (``search.calibrate.MapStore``), not in memory, and a
training split larger than half the free budget is streamed. A budget too small for even one sample is a ``UserError`` before
any heavy work.

Lowering is the converters' own memory, which lrfc cannot size exactly:
about 192 MiB plus 17 times the weights above the loaded model covers both
(``python -m bench.lower_memory MODEL``, tf2onnx through
``lower.onnx_convert`` and the TFLite converter: ResNet50, 90 MB of weights,
+1.48-1.61 and +1.03 GiB; MobileNetV2 +0.27 and +0.30; the VGG-style model +0.11
and +0.10; tf2onnx's own way took +3.91 GiB on ResNet50). The plan counts
it, and a budget it would overrun gets a warning rather than a refusal: the
converters run one at a time, after everything else, and their garbage is
handed back between them.

The score stage runs one walk per core at once (``score_threads``, in
process), as many as the room left beside the batch allows, each holding
one layer's maps like the first; an extra walk's term is added to the
batch's, not compared with it (the larger of the two came 157 MiB short of
ResNet50 at 224x224 with two walks).

The formula describes what a build holds, not its history, because
TensorFlow's kernels allocate from the system (``common.allocator``, chosen
before TensorFlow starts): under oneDNN's own pool every stage would also
keep the largest working set an earlier stage held (ResNet50 at 64x64:
4.55 GiB at the peak against 3.56).

The default budget is ``DEFAULT_SHARE`` of the memory available when the
build starts (``MemAvailable``), so a build leaves room for what else runs.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

from lrfc.common import allocator
from lrfc.errors import UserError

MB = 2**20
RUNTIME_BYTES = 600 * MB
MODEL_COPIES = 3
CHUNK_COPIES = 3       # source chunk, unit values, fitted and contract-mapped values
LAYER_COPIES = 6       # inputs, reference, candidate output, and float64 copies of the last two for the cosine
FACTOR_COPIES = 7      # float64 copies of a layer's kernel while a walk prepares a factorization, the factors kept
                       # (svd, qr, ttm on a 12,544 x 2,048 Dense: 6.5, 5.8, 6.2 kernels above the start, 2026-12-06)
BATCH_BYTES = 1 << 30  # one inference batch's activations, at most (when the budget allows that much)
CAPTURE_BYTES = 768 * MB  # one capture batch's: the capture also holds the statistics it accumulates
DEFAULT_SHARE = 0.6
CAPTURE_BATCH = 64
PREDICT_BATCH = 256
FIT_COPIES = 16        # CP fits kept: float64 (2x), about 8 ranks of every layer at most
LOWERING_COPIES = 17   # the converters' peak above the loaded model: LOWERING_BASE + this x weights (bench.lower_memory)
LOWERING_BASE = 192 * MB
COUNTS = ("capture_batch", "predict_batch", "score_threads")  # to_json's fields that are not bytes


@dataclass(frozen=True)
class MemoryPlan:
    """The budget, each fixed term of the formula (bytes) and the batch sizes that fit in the rest."""

    budget: int
    budget_source: str                 # "--memory-budget" or "60% of available"
    runtime: int
    weights: int
    statistics: int
    source: int
    calibration: int
    chunk: int
    layer: int
    fits: int                          # CP fits kept in memory (decompose.cp)
    lowering: int                      # the converters' peak, LOWERING_BASE + LOWERING_COPIES x weights
    tap_per_sample: int                # every captured layer's input, one sample (what the capture keeps)
    activation_per_sample: int         # every layer's output, one sample (what an eager call holds)
    capture_batch: int
    predict_batch: int
    score_threads: int = 1             # walks the score stage runs at once in process (search.fanout)
    allocator: str = ""                # what TensorFlow's CPU kernels allocate from (common.allocator)

    @property
    def fixed(self) -> int:
        return (self.runtime + MODEL_COPIES * self.weights + self.statistics + self.source + self.calibration
                + self.chunk + self.layer + self.fits)

    @property
    def free(self) -> int:
        return self.budget - self.fixed

    @property
    def expected_peak(self) -> int:
        """The formula's peak at the chosen batches, or while the converters run if that is higher."""
        batch = max(self.capture_batch, self.predict_batch) * self.activation_per_sample
        return self.fixed + max(batch + (self.score_threads - 1) * self.layer, self.lowering)

    @property
    def train_in_memory_bytes(self) -> int:
        """A training split larger than this once mapped is streamed batch by batch."""
        return max(0, self.free // 2)

    def to_json(self) -> dict:
        out = {k: v for k, v in asdict(self).items()}
        out.update(fixed=self.fixed, expected_peak=self.expected_peak)
        return {k: (round(v / MB, 1) if isinstance(v, int) and k not in COUNTS else v)
                for k, v in out.items()} | {"unit": "MB"}

    def describe(self) -> str:
        return (f"memory: budget {self.budget / 2**30:.1f} GB ({self.budget_source}); expected peak "
                f"{self.expected_peak / 2**30:.2f} GB (fixed {self.fixed / 2**30:.2f} GB: model {MODEL_COPIES} x "
                f"{self.weights / MB:.0f} MB, statistics {self.statistics / MB:.0f} MB, data {self.source / MB:.0f} MB, "
                f"calibration {self.calibration / MB:.0f} MB; lowering {self.lowering / MB:.0f} MB); batches: capture "
                f"{self.capture_batch}, inference {self.predict_batch}; {self.score_threads} score "
                f"thread{'s' if self.score_threads > 1 else ''}"
                f"{f'; TensorFlow allocator: {self.allocator}' if self.allocator else ''}")

    def lowering_warning(self) -> str | None:
        """A line when the converters' peak would overrun the budget (they cannot be sized), else None."""
        need = self.fixed + self.lowering
        if need <= self.budget:
            return None
        return (f"--memory-budget: lowering this model needs about {need / 2**30:.1f} GB ({self.lowering / 2**30:.1f} GB "
                f"of it the converters' own, about {LOWERING_COPIES} x the weights and more), over the budget of "
                f"{self.budget / 2**30:.1f} GB; lrfc sizes its own batches to the budget, not the converters")


def available_bytes() -> int | None:
    """``MemAvailable`` from /proc/meminfo, or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def default_budget() -> tuple[int, str]:
    avail = available_bytes()
    if avail is None:
        return 8 * 2**30, "8 GB: available memory unknown"
    return int(DEFAULT_SHARE * avail), f"{int(100 * DEFAULT_SHARE)}% of the {avail / 2**30:.1f} GB available"


def _elements(shape) -> int:
    return math.prod(int(d) for d in shape[1:] if d is not None)


def statistics_bytes(rows, targets, calib_samples: int | None = None) -> int:
    """Input statistics of the target layers (``decompose.stats``): 8 ((kh kw cin)^2 + cin^2) bytes for a
    convolution; for a dense layer twice its moment, 8 in^2 (the total and a batch's being merged), or, when it
    sees fewer vectors than inputs (``calib_samples`` x its tokens, at most ``STATS_POSITIONS``), twice its rows."""
    from lrfc.decompose.stats import keeps_rows
    from lrfc.geometry import ConvGeometry
    from lrfc.search.calibrate import STATS_POSITIONS

    total = 0
    for r in rows:
        if r.name not in targets:
            continue
        g = r.geometry
        if isinstance(g, ConvGeometry):
            d = math.prod(g.kernel) * g.cin
            total += 8 * (d * d + g.cin * g.cin)
            continue
        n = int(g.in_features)
        vectors = min(int(calib_samples) * int(g.tokens), STATS_POSITIONS) if calib_samples else n
        total += 16 * n * (vectors if keeps_rows(vectors, n) else n)
    return total


def factorization_bytes(rows, targets) -> int:
    """One walk's working set while it prepares the largest target layer's factorization: ``FACTOR_COPIES`` float64
    copies of its weights (VGG16's ``fc1``, 102.8 M weights: 5.8 GB; ResNet50's largest, 2.4 M: 132 MB)."""
    largest = max((int(r.geometry.params) for r in rows if r.name in targets and r.geometry is not None), default=0)
    return FACTOR_COPIES * 8 * largest


def plan_memory(flat, rows, targets, source_bytes: int, sample_bytes: int, calib_samples: int,
                budget: int | None, layer_budget: int) -> MemoryPlan:
    """The ``MemoryPlan`` of a build, or a ``UserError`` when the budget cannot hold one sample's batch."""
    from lrfc.frontend.graph import layer_nodes

    budget, source = (budget, "--memory-budget") if budget is not None else default_budget()
    nodes = layer_nodes(flat)
    taps = {id(nodes[n].input_tensors[0]): nodes[n].input_tensors[0] for n in targets}
    tap = 4 * sum(_elements(t.shape) for t in taps.values())
    # this model's calls (layer_nodes): a layer shared with the loaded model has its undefined sizes there (--input-shape)
    activation = sample_bytes + sum(4 * _elements(t.shape) for node in nodes.values() for t in node.outputs)
    from lrfc.decompose.cp import FITS_KEPT

    weights = 4 * int(flat.count_params())
    plan = MemoryPlan(budget, source, RUNTIME_BYTES, weights, statistics_bytes(rows, set(targets), calib_samples),
                      int(source_bytes), calib_samples * sample_bytes, CHUNK_COPIES * 256 * sample_bytes,
                      LAYER_COPIES * layer_budget + factorization_bytes(rows, set(targets)),
                      min(FITS_KEPT, FIT_COPIES * weights), LOWERING_BASE + LOWERING_COPIES * weights,
                      tap, activation, 0, 0)
    free = plan.free
    if free < activation:
        need = plan.fixed + activation
        raise UserError(f"--memory-budget: {budget / 2**30:.2f} GB ({source}) cannot hold this build: it needs about "
                        f"{need / 2**30:.2f} GB (runtime {RUNTIME_BYTES / 2**30:.1f}, model {MODEL_COPIES} x "
                        f"{weights / 2**30:.2f}, input statistics {plan.statistics / 2**30:.2f}, data "
                        f"{source_bytes / 2**30:.2f}, calibration {plan.calibration / 2**30:.2f}, one sample's batch "
                        f"{activation / 2**30:.2f}); raise --memory-budget or lower --calib-samples")
    def batch(most: int, limit: int) -> int:
        return int(min(most, min(free, max(limit, activation)) // activation))

    batches = {"capture_batch": batch(CAPTURE_BATCH, CAPTURE_BYTES), "predict_batch": batch(PREDICT_BATCH, BATCH_BYTES)}
    # an extra walk is counted on top of the batch, not instead of it: ResNet50 at 224x224 under
    # --memory-budget 4G peaked 157 MiB above fixed + the larger of the two with two walks
    beside = free - max(batches.values()) * activation
    threads = max(1, min(cores(), 1 + beside // max(plan.layer, 1)))
    return MemoryPlan(**{**asdict(plan), **batches, "score_threads": threads, "allocator": allocator.chosen()})


def cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def parse_size(text: str) -> int:
    """``4G``, ``4GB``, ``512M``, ``2.5g`` or plain bytes -> bytes; a ``UserError`` otherwise."""
    units = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    t = str(text).strip().upper().removesuffix("B").removesuffix("I")
    unit = t[-1] if t and t[-1] in units else ""
    number = t[: len(t) - len(unit)] if unit else t
    try:
        value = float(number)
    except ValueError:
        raise UserError(f"--memory-budget: {text!r} is not a size; expected e.g. 4G, 512M or 2.5GB") from None
    if not math.isfinite(value) or value <= 0:
        raise UserError(f"--memory-budget: {text!r} must be a positive size, e.g. 4G")
    return int(value * units[unit])
