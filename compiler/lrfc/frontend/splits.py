"""The build's data splits: calibration, training, validation and (when the data has one) test; disjoint, seeded.

* calibration: the first ``--calib-samples`` of a seeded permutation of the
  data's samples (feature maps, statistics, reconstruction, BN
  re-estimation, int8 calibration);
* training: the rest of them (``--train-samples`` caps it);
* validation, which decides (the sanity gate, the accuracy budget, early
  stopping), and test, which is only reported: when the data has its own test
  split (Fashion-MNIST's 10,000 test images, an npz's ``x_test``), a seeded
  half of it each. The original model was most likely trained on the
  training samples, so its accuracy there is inflated by memorisation and a
  drop measured there is not a drop users will see; samples it never saw
  measure that. Without a test split, validation is held out from the
  samples (a fifth of what calibration leaves, at most ``VALIDATION_MAX``),
  and there is no test accuracy.

When the calibration request would leave no validation or no training data,
calibration shrinks to leave a fifth of the data to each, and ``notes`` says
so; nothing is ever evaluated on zero samples.

Disjoint by index is not disjoint by content: photo sets collected from the
web repeat images (a test image that is also a training image), and an image
repeated in training and validation lets fine-tuning fit the very samples the
budget is judged on. A calibration or training sample whose bytes equal a
validation or test sample's (``_without_copies``) is left out of its split, and
``notes`` says how many were.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from lrfc.common import npyfile
from lrfc.errors import UserError
from lrfc.frontend.samples import Samples, as_samples

VALIDATION_MAX = 5000  # ~0.4 points of standard error at 90% top-1: enough to hold a 1-point budget


@dataclass(frozen=True)
class Splits:
    """The samples each stage uses, in the model's units.

    Calibration samples are mapped once into an array (every search stage
    reads them); training, validation and test are ``frontend.samples.Samples``,
    mapped a chunk at a time as they are read, so a split costs its source's
    bytes, not the model input's. Once captured, a build with an output folder moves the
    calibration array to a file (``spilled``): ``x_calib`` then maps it
    afresh on each access, so it is resident only while a stage reads it
    (ResNet50 at 224x224: 147 MiB that the score stage never reads).
    """

    calib: np.ndarray | Path
    y_calib: np.ndarray | None  # None only until the load stage labels unlabelled data (``frontend.unlabelled``)
    x_train: Samples
    y_train: np.ndarray | None  # ... and stays None there without fine-tuning, which alone reads it
    x_val: Samples
    y_val: np.ndarray | None
    x_test: Samples | None = None
    y_test: np.ndarray | None = None
    notes: tuple[str, ...] = field(default=())

    validation_source: str = "held out"  # "test split" (half of the data's own) or "held out" (from the samples)

    @property
    def x_calib(self) -> np.ndarray:
        """The calibration samples: the array, or the file's contents mapped read-only for this use."""
        return npyfile.load(self.calib, mmap_mode="r") if isinstance(self.calib, Path) else self.calib

    def spilled(self, path: Path) -> Splits:
        """These splits with the calibration samples written to ``path`` (a ``.npy``) and read from there."""
        np.save(path, np.asarray(self.x_calib, dtype=np.float32))
        return replace(self, calib=Path(path))

    def to_json(self) -> dict:
        return {"calibration": int(len(self.x_calib)), "train": int(len(self.x_train)),
                "validation": int(len(self.x_val)), "validation_source": self.validation_source,
                "test": 0 if self.x_test is None else int(len(self.x_test))}

    def describe(self) -> str:
        source = "half the given test split" if self.validation_source == "test split" else "held out from the data"
        test = f", {len(self.x_test):,} test (the other half: reported, never used to decide)" if self.x_test is not None else ""
        return (f"{len(self.x_calib):,} calibration, {len(self.x_train):,} training, {len(self.x_val):,} validation "
                f"({source}; it decides){test} samples")


def make_splits(ds, calib_samples: int, seed: int, finetune: bool, train_samples: int | None = None) -> Splits:
    """Disjoint, seeded splits of a ``frontend.data.Dataset``; see the module doc."""
    n = len(ds.x)
    has_test = ds.x_test is not None and len(ds.x_test) > 1
    notes = []
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
                     f"to leave {'training and validation' if finetune and not has_test else 'training' if finetune else 'validation'} samples")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    calib, rest = perm[:n_calib], perm[n_calib:]
    x = as_samples(ds.x)
    if has_test:
        half = rng.permutation(len(ds.x_test))
        val, test = half[: len(half) // 2], half[len(half) // 2:]
        x_given = as_samples(ds.x_test)
        x_val, y_val = x_given.subset(val), _at(ds.y_test, val)
        x_test, y_test = x_given.subset(test), _at(ds.y_test, test)
    else:
        n_val = (val_reserve if shrunk else min(VALIDATION_MAX, max(1, len(rest) // 5))) if finetune else \
            (len(rest) if shrunk else min(VALIDATION_MAX, len(rest)))
        val, rest = rest[:n_val], rest[n_val:]
        x_val, y_val, x_test, y_test = x.subset(val), _at(ds.y, val), None, None
    calib, rest, copies = _without_copies(x, calib, rest, [x_val, x_test])
    if copies:
        notes.append(copies)
    if train_samples is not None:
        rest = rest[:train_samples]
    return Splits(x[calib], _at(ds.y, calib), x.subset(rest), _at(ds.y, rest), x_val, y_val, x_test, y_test,
                  tuple(notes), "test split" if has_test else "held out")


def _without_copies(x: Samples, calib: np.ndarray, rest: np.ndarray, held: list) -> tuple[np.ndarray, np.ndarray, str]:
    """``calib`` and ``rest`` (rows of ``x``) without the samples whose bytes equal a sample of ``held`` (validation,
    test), and a note saying how many were left out ("" when none; a split that would be emptied keeps its copies:
    data that is all one sample has nothing else to give it)."""
    seen = set().union(*(_fingerprints(h) for h in held if h is not None))
    kept = []
    for rows in (calib, rest):
        prints = _fingerprints(x.subset(rows))
        kept.append(np.asarray([r for r, f in zip(rows, prints) if f not in seen], dtype=rows.dtype))
    kept = [k if len(k) or not len(rows) else rows for k, rows in zip(kept, (calib, rest))]  # never emptied
    dropped = len(calib) - len(kept[0]), len(rest) - len(kept[1])
    if not any(dropped):
        return calib, rest, ""
    parts = [f"{n:,} {name}" for n, name in zip(dropped, ("calibration", "training")) if n]
    return kept[0], kept[1], (f"{' and '.join(parts)} sample{'s' * (sum(dropped) > 1)} had the same bytes as a "
                              "validation or test sample (an image the data repeats) and were left out, so the "
                              "model is never tuned on a sample it is judged on")


def _fingerprints(x: Samples) -> list[bytes]:
    """A 64-bit hash of each sample's source bytes (as the data held it: 8-bit pixels, the npz's values)."""
    out = []
    for start in range(0, len(x), 512):
        block = np.ascontiguousarray(x.source[x.index[start:start + 512]])
        out += [hashlib.blake2b(row.tobytes(), digest_size=8).digest() for row in block]
    return out


def _at(labels: np.ndarray | None, index: np.ndarray) -> np.ndarray | None:
    """``labels[index]``; None for data without labels (the load stage labels it with the original's answers)."""
    return None if labels is None else labels[index]
