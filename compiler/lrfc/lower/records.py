"""What lowering and verification produce: one ``ArtifactRecord`` per file, as report.json and export.json carry it."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path


def sha256_of(path: str | Path) -> str:
    """The file's SHA-256, hex; what ``lrfc verify --report`` checks the published files against."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class ArtifactRecord:
    """One lowered file and its verification gate.

    ``path`` is where the file is published; ``passed`` False means it was
    not (``error`` says why, in one line). ``accuracy`` is the artifact's own
    top-1 on labelled verification samples and ``reference_accuracy`` the
    Keras model's on the same samples, when labels were given.
    """

    format: str
    path: str
    precision: str
    passed: bool
    bytes: int = 0
    sha256: str | None = None
    max_abs_diff: float | None = None
    quantile_abs_diff: float | None = None  # int8: what the bound judged, the samples' differences at a quantile
    top1_agreement: float | None = None
    samples: int = 0
    tolerance: dict = field(default_factory=dict)
    seconds: float = 0.0
    model: str | None = None          # "compressed" or "original" in a build
    note: str | None = None
    error: str | None = None
    accuracy: float | None = None
    reference_accuracy: float | None = None
    variant: str | None = None        # "int8 baseline": lowered to be measured beside, not the build's deliverable
    io: dict | None = None            # its inputs and outputs: name, shape, dtype; scale and zero point if quantized
    delegation: dict | None = None    # TFLite: the operators LiteRT's XNNPACK takes (runtime_bench.delegation)
    opset: int | None = None          # ONNX: the opset the file declares (lower.opset: the target's, or --opset)

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def deliverable(self) -> bool:
        """Whether the file is what the build delivers: lrfc's model at the target's precision.

        The others are references timed beside it: the original (``original.*``)
        and either model at the other precision (``variant``). One that fails its
        gate is reported and timed, never published, and fails no build.
        """
        return self.variant is None and self.model != "original"

    def to_json(self) -> dict:
        """The record as JSON; unset optional fields are left out."""
        data = asdict(self)
        return {k: v for k, v in data.items() if v is not None or k in ("max_abs_diff", "top1_agreement")}
