"""The build's data splits: calibration, training and validation, disjoint and seeded.

Validation is the data's own test split when it has one (Fashion-MNIST's
10,000 test images, an npz's ``x_test``); otherwise a fifth of the samples
left after calibration. Calibration comes first (``--calib-samples``), the
rest trains. When the calibration request would leave no validation or no
training data, calibration shrinks to leave a fifth of the data to each, and
the split says so in ``notes``; nothing is ever evaluated on zero samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lrfc.errors import UserError


@dataclass(frozen=True)
class Splits:
    """The arrays each stage uses, in the model's units, and where validation came from."""

    x_calib: np.ndarray
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    validation_source: str  # "test split" (the data's own) or "held out" (from the samples)
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict:
        return {"calibration": int(len(self.x_calib)), "train": int(len(self.x_train)),
                "validation": int(len(self.x_val)), "validation_source": self.validation_source}

    def describe(self) -> str:
        source = "the data's test split" if self.validation_source == "test split" else "held out from the data"
        return (f"{len(self.x_calib):,} calibration, {len(self.x_train):,} training, {len(self.x_val):,} validation "
                f"samples ({source})")


def make_splits(ds, calib_samples: int, seed: int, finetune: bool, train_samples: int | None = None) -> Splits:
    """Disjoint, seeded splits of a ``frontend.data.Dataset``; see the module doc."""
    n = len(ds.x)
    has_test = ds.x_test is not None and len(ds.x_test) > 0
    notes = []
    # What calibration may take and still leave a validation split (unless the data has its own)
    # and a training split (when fine-tuning).
    val_reserve = 0 if has_test else max(1, n // 5)
    reserve = val_reserve + (max(1, n // 5) if finetune else 0)
    n_calib = min(calib_samples, n)
    shrunk = n_calib > n - reserve
    if shrunk:
        n_calib = n - reserve
        if n_calib < 1:
            raise UserError(f"--data: {n} samples are too few to split into calibration"
                            f"{', training' if finetune else ''} and validation samples; pass more data")
        notes.append(f"--calib-samples {calib_samples}: the data has {n} samples, so calibration takes {n_calib} "
                     f"to leave {'training and validation' if not has_test and finetune else 'validation' if not has_test else 'training'} samples")
    perm = np.random.default_rng(seed).permutation(n)
    calib, rest = perm[:n_calib], perm[n_calib:]
    if has_test:
        x_val, y_val, source = ds.x_test, ds.y_test, "test split"
    else:
        n_val = (val_reserve if shrunk else max(1, len(rest) // 5)) if finetune else len(rest)
        val, rest = rest[:n_val], rest[n_val:]
        x_val, y_val, source = ds.x[val], ds.y[val], "held out"
    if train_samples is not None:
        rest = rest[:train_samples]
    return Splits(ds.x[calib], ds.x[rest], ds.y[rest], x_val, y_val, source, tuple(notes))
