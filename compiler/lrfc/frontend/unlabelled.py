"""Data without labels: the original model's answers become the labels, and the budget holds how many change.

A folder of images without class subfolders, or an ``.npz`` of ``x`` alone,
is what many users have: a representative set, as TFLite's int8 calibration
takes one. On such data neither model's top-1 accuracy can be measured, but
the share of samples whose answer the compressed model changes can, and it
bounds the accuracy drop: whatever the true labels, the compressed model only
loses a sample the original got right by answering it differently, so
``acc(original) - acc(compressed) <= P(answers differ)``. The load stage
therefore labels every split that has none with the original's top-1
(``label_with_original``) and every later stage reads those as the labels: the
original scores 100 % by construction, a drop is the share of answers changed,
and ``--max-acc-drop 1`` holds the compressed model to changing at most 1 % of
them (the bound is loose where the original was wrong: a changed wrong answer
costs nothing).

What is lost is the sanity gate's main check, the original's own accuracy (a
model fed values scaled twice scores at chance, and agreeing with it is
worthless). Without labels the gate sees only a model that answers one class
for nearly everything (``frontend.sanity.check_unlabelled``), and the build
says it could not check more. And the bound costs compression: a compressed
model as accurate as the original still changes answers near its decision
boundaries (the VGG-style default build's published model: 0.86 points of
top-1 lost, 4.1 % of the answers changed), so holding the changed answers to
1 % stops the search far earlier (bench.budget's ``labels`` group).

Labels on the held-out split alone are enough for the budget: an ``.npz`` of
``x``, ``x_test`` and ``y_test``, or ``DIR/train/`` of images beside
``DIR/val/<class>/``. Then only the training and calibration samples take
the original's answers (fine-tuning distils them), validation keeps its
labels, the sanity gate and the budget are the labelled build's
(``HELD_OUT``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from lrfc.frontend.splits import Splits

SOURCE = "original"      # report.json's ``labels`` when validation had none: the budget is agreement
HELD_OUT = "held-out"    # ... when only the held-out split had them: the budget is accuracy, training distils


def label_with_original(model, splits: Splits, progress=None,
                        train: bool = True) -> tuple[Splits, np.ndarray | None, np.ndarray | None]:
    """``splits`` with every split that has no labels labelled with ``model``'s top-1; its outputs on validation
    (for the sanity gate; None when validation had labels) and on training (the distillation's teacher logits, so
    the training split is not run through it twice; None when it had labels).

    ``train`` False (no fine-tuning: ``--finetune none``, ``--epochs 0``):
    the training split, which nothing then reads, is left unlabelled and its
    outputs None (ResNet50 at 224x224 would spend minutes on it).
    ``progress(label, total, transient)`` (``BuildState.progress``) shows
    each pass on a terminal (the training split: as long as one epoch's
    forward pass) and leaves no line.
    """
    from lrfc.frontend.samples import predict

    def outputs(x, y, label: str, wanted: bool = True) -> np.ndarray | None:
        if y is not None or x is None or not wanted:
            return None
        if progress is None or not len(x):
            return predict(model, x)
        with progress(label, len(x), transient=True) as bar:
            return predict(model, x, progress=bar.update)

    def top1(out: np.ndarray | None, given: np.ndarray | None) -> np.ndarray | None:
        return given if out is None else out.reshape(len(out), -1).argmax(-1).astype(np.int64)

    s = splits
    val = outputs(s.x_val, s.y_val, "original on validation")
    trained = outputs(s.x_train, s.y_train, "original on training (no labels: its answers are the labels)", train)
    calib = outputs(s.x_calib, s.y_calib, "original on calibration")
    test = outputs(s.x_test, s.y_test, "original on test")
    labelled = replace(s, y_calib=top1(calib, s.y_calib), y_train=top1(trained, s.y_train), y_val=top1(val, s.y_val),
                       y_test=top1(test, s.y_test))
    return labelled, val, trained
