"""What the accuracy budget judges for an int8 or fp16 target: the files the build would publish, in their runtimes.

``--max-acc-drop`` was judged on the Keras model, which for such a target is
not what runs: the ResNet-style `--target host-int8` build on the AVX-512 EPYC
(2026-12-07 03:33 UTC, ``bench.speed``'s int8 row) met the budget at 0.96
points on its Keras model and published int8 files 1.10 (TFLite) and 1.06
(ONNX) points down, its report saying "MISSED by the int8 files". So the
budget search (``train.contract``) hands every rung whose Keras model meets the
budget to ``judge_files``, which lowers it exactly as the ``lower`` stage will
(``lower.stage.file_options``: the same exporters, calibration samples, gate
with its fallbacks, the chains equalized first whenever the stage will
equalize them: an int8 target, or an fp16 one timed beside its int8 baseline,
unless ``--qat`` trained through them) into a scratch folder, runs every file at the target's
precision on the whole validation split, and gives back the worst file's
answers: the rung meets the budget only if every file does. The gate (how
closely a file follows its Keras model) stays the ``lower`` stage's to
enforce: a file that fails it but runs is scored like any other, and one its
runtime refuses is not scored (the ``lower`` stage then fails the build on
it, as before).

The model's weights are put back as they were (equalization rescales them in
place), so later rounds warm-start from the fine-tuned weights, and the
``lower`` stage lowers the same numbers again: its ``deliverables`` then read
what the search judged (the exporters are deterministic on the same weights
and samples).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class FilesJudged:
    """A rung's files on the validation split: each scored format's top-1, the answers of the worst file (None
    when no file could be scored), the seconds lowering and scoring took, and the formats not scored (why)."""

    accuracy: dict[str, float]
    right: np.ndarray | None
    seconds: float
    unscored: dict[str, str] = field(default_factory=dict)

    def describe(self, original_accuracy: float) -> str:
        """``model.tflite 1.10, model.onnx 1.06 points``: each file's drop from the original Keras model."""
        return ", ".join(f"model.{fmt} {100.0 * (original_accuracy - a):.2f}" for fmt, a in self.accuracy.items()
                         ) + " points"


def judged_precision(state) -> str | None:
    """The precision whose files the budget judges: the target's when it is not fp32 and the data has labels
    (or the original's answers) to score them against; None: the Keras model is what runs, it alone is judged."""
    precision = state.profile.precision
    s = state.splits
    if precision == "fp32" or s.y_val is None or not len(s.x_val):
        return None
    return precision


def judge_files(state, model, layers) -> FilesJudged:
    """Lower ``model`` (a rung; ``layers`` its factorized layers) as the ``lower`` stage will, into a scratch
    folder, and score each file at the target's precision on the validation split (module doc)."""
    from lrfc.factorize.equalize import equalize_chains
    from lrfc.frontend.binary import user_form
    from lrfc.lower.artifacts import lower
    from lrfc.lower.stage import file_answers, file_options, lowers_int8

    start = time.perf_counter()
    precision, s = state.profile.precision, state.splits
    weights = model.get_weights()
    try:
        if lowers_int8(state) and not state.options.qat and layers:  # as ``lower.stage.equalize``
            equalize_chains(model, s.x_calib, set(layers))
        with tempfile.TemporaryDirectory(prefix="judged-", dir=state.output.scratch) as work:
            records = lower(user_form(model, state.binary), work, precision=precision, stem="model",
                            keep_failed=True, **file_options(state))
            accuracy, unscored, worst = {}, {}, None
            for r in records:
                if r.precision != precision:  # ONNX "at fp16" stays an fp32 file: the Keras model's numbers
                    continue
                if not (Path(work) / f"model.{r.format}").is_file():  # not written, or its runtime refused it
                    unscored[r.format] = r.error or "not written"
                    continue
                right = file_answers(state, Path(work) / f"model.{r.format}", r.format)
                accuracy[r.format] = float(np.mean(right))
                if worst is None or accuracy[r.format] < float(np.mean(worst)):
                    worst = right
    finally:
        model.set_weights(weights)
    return FilesJudged(accuracy, worst, round(time.perf_counter() - start, 2), unscored)
