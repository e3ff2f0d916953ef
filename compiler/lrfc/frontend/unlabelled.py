"""Data without labels: the original model's answers become the labels, and the budget holds how many change.

A folder of images without class subfolders, or an ``.npz`` of ``x`` alone,
is what many users have: a representative set, as TFLite's int8 calibration
takes one. On such data neither model's top-1 accuracy can be measured, but
the share of samples whose answer the compressed model changes can, and it
bounds the accuracy drop: whatever the true labels, the compressed model only
loses a sample the original got right by answering it differently, so
``acc(original) - acc(compressed) <= P(answers differ)``. The load stage
therefore labels every split with the original's top-1
(``label_with_original``) and every later stage reads those as the labels: the
original scores 100 % by construction, a drop is the share of answers changed,
and ``--max-acc-drop 1`` holds the compressed model to changing at most 1 % of
them (the bound is loose where the original was wrong: a changed wrong answer
costs nothing).

What is lost is the sanity gate's main check, the original's own accuracy (a
model fed values scaled twice scores at chance, and agreeing with it is
worthless). Without labels the gate sees only a model that answers one class
for nearly everything (``frontend.sanity.check_unlabelled``), and the build
says it could not check more.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from lrfc.frontend.splits import Splits

SOURCE = "original"  # report.json's ``labels`` for such a build ("data" otherwise)


def label_with_original(model, splits: Splits, progress=None) -> tuple[Splits, np.ndarray, np.ndarray]:
    """``splits`` labelled with ``model``'s top-1 on each of them; its outputs on validation (for the sanity gate)
    and on training (the distillation's teacher logits, so the training split is not run through it twice).

    ``progress(label, total, transient)`` (``BuildState.progress``) shows
    each pass on a terminal (the training split: as long as one epoch's
    forward pass) and leaves no line.
    """
    from lrfc.frontend.samples import predict

    def outputs(x, label: str) -> np.ndarray:
        if progress is None or not len(x):
            return predict(model, x)
        with progress(label, len(x), transient=True) as bar:
            return predict(model, x, progress=bar.update)

    def top1(out: np.ndarray) -> np.ndarray:
        return out.reshape(len(out), -1).argmax(-1).astype(np.int64)

    val = outputs(splits.x_val, "original on validation")
    train = outputs(splits.x_train, "original on training (no labels: its answers are the labels)")
    calib = outputs(splits.x_calib, "original on calibration")
    test = None if splits.x_test is None else outputs(splits.x_test, "original on test")
    labelled = replace(splits, y_calib=top1(calib), y_train=top1(train), y_val=top1(val),
                       y_test=None if test is None else top1(test))
    return labelled, val, train
