"""The build's data splits: calibration, training, validation and (when the data has one) test; disjoint, seeded.

* calibration: the first ``--calib-samples`` of a seeded permutation (feature
  maps, statistics, reconstruction, BN re-estimation, int8 calibration);
* validation: held out from the data's training samples (a fifth of what is
  left, at most ``VALIDATION_MAX``); it decides: the sanity gate, the
  accuracy budget, early stopping;
* training: the rest (``--train-samples`` caps it);
* test: the data's own test split (Fashion-MNIST's 10,000 test images, an
  npz's ``x_test``), never used for a decision, only reported.

Without a test split there is no test accuracy. When the calibration request
would leave no validation or no training data, calibration shrinks to leave a
fifth of the data to each, and ``notes`` says so; nothing is ever evaluated
on zero samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lrfc.errors import UserError

VALIDATION_MAX = 5000  # ~0.4 points of standard error at 90% top-1: enough to hold a 1-point budget


@dataclass(frozen=True)
class Splits:
    """The arrays each stage uses, in the model's units."""

    x_calib: np.ndarray
    y_calib: np.ndarray
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def validation_source(self) -> str:
        return "held out"

    def to_json(self) -> dict:
        return {"calibration": int(len(self.x_calib)), "train": int(len(self.x_train)),
                "validation": int(len(self.x_val)), "validation_source": self.validation_source,
                "test": 0 if self.x_test is None else int(len(self.x_test))}

    def describe(self) -> str:
        test = f", {len(self.x_test):,} test (reported, never used to decide)" if self.x_test is not None else ""
        return (f"{len(self.x_calib):,} calibration, {len(self.x_train):,} training, {len(self.x_val):,} validation "
                f"(held out from the data; it decides){test} samples")


def make_splits(ds, calib_samples: int, seed: int, finetune: bool, train_samples: int | None = None) -> Splits:
    """Disjoint, seeded splits of a ``frontend.data.Dataset``; see the module doc."""
    n = len(ds.x)
    notes = []
    val_reserve = max(1, n // 5)
    reserve = val_reserve + (max(1, n // 5) if finetune else 0)
    n_calib = min(calib_samples, n)
    shrunk = n_calib > n - reserve
    if shrunk:
        n_calib = n - reserve
        if n_calib < 1:
            raise UserError(f"--data: {n} samples are too few to split into calibration"
                            f"{', training' if finetune else ''} and validation samples; pass more data")
        notes.append(f"--calib-samples {calib_samples}: the data has {n} samples, so calibration takes {n_calib} "
                     f"to leave {'training and validation' if finetune else 'validation'} samples")
    perm = np.random.default_rng(seed).permutation(n)
    calib, rest = perm[:n_calib], perm[n_calib:]
    if finetune:
        n_val = val_reserve if shrunk else min(VALIDATION_MAX, max(1, len(rest) // 5))
    else:
        n_val = min(VALIDATION_MAX, len(rest)) if not shrunk else len(rest)
    val, rest = rest[:n_val], rest[n_val:]
    if train_samples is not None:
        rest = rest[:train_samples]
    has_test = ds.x_test is not None and len(ds.x_test) > 0
    return Splits(ds.x[calib], ds.y[calib], ds.x[rest], ds.y[rest], ds.x[val], ds.y[val],
                  ds.x_test if has_test else None, ds.y_test if has_test else None, tuple(notes))
