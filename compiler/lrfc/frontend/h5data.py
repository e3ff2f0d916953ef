"""Arrays in an HDF5 file (``--data data.h5``), read as an npz's are.

Keras-era tutorials and courses hand data over as HDF5: ``x``/``y`` (and
``x_test``/``y_test``) as an npz names them, Keras' ``x_train``/``y_train``,
or names such as ``train_set_x``/``train_set_y``/``test_set_x`` or
``images``/``labels``. Each dataset's role comes from the words of its name
(``x``, ``images``, ... are samples; ``y``, ``labels``, ... labels) and its
split from ``test``/``val`` among them (anything else is training data);
nested groups are read too. A Keras model saved as ``.h5`` given as data is
refused naming that mistake.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from lrfc.errors import UserError

SAMPLE_WORDS = ("x", "images", "image", "imgs", "img", "data", "features", "inputs", "input", "pixels")
LABEL_WORDS = ("y", "labels", "label", "targets", "target")
HELD_WORDS = ("test", "val", "valid", "validation", "testing")


def read(path: Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """``(x, y, x_test, y_test)`` from ``path``; absent ones are None (``frontend.data``'s npz checks follow)."""
    with _open(path) as f:
        arrays = {role: np.asarray(f[name][()]) for role, name in _datasets(f, path).items()}
    x, x_test = arrays[("x", "train")], arrays.get(("x", "test"))
    return x, _flat(arrays.get(("y", "train")), x), x_test, _flat(arrays.get(("y", "test")), x_test)


def samples_shape(path: Path) -> tuple[int, ...]:
    """The training samples' array shape, from its header alone (``frontend.peek``)."""
    with _open(path) as f:
        return tuple(f[_datasets(f, path)[("x", "train")]].shape)


def _open(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise UserError(f"{path}: not a readable HDF5 file ({exc})") from exc


def keras_file(f) -> bool:
    """Whether an open HDF5 file is Keras' (a whole model, or weights saved alone), not data."""
    return any(k in f.attrs for k in ("model_config", "keras_version", "layer_names")) or any(
        k in f for k in ("model_weights", "layers"))


def _datasets(f, path: Path) -> dict[tuple[str, str], str]:
    """Each role's dataset name: ``("x" or "y", "train" or "test")`` -> its path in the file."""
    import h5py

    if keras_file(f):
        raise UserError(f"{path}: a Keras model file, not data; give it as the model and the data it was trained on "
                        "as --data")
    found: dict[tuple[str, str], str] = {}
    names: list[str] = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    for name in names:
        role = _role(name)
        if role is None:
            continue
        if role in found:
            raise UserError(f"{path}: datasets '{found[role]}' and '{name}' could both be the "
                            f"{'labels' if role[0] == 'y' else 'samples'} of the "
                            f"{'held-out' if role[1] == 'test' else 'training'} split; keep one, or name them x, y, "
                            "x_test, y_test as an npz does")
        found[role] = name
    if ("x", "train") not in found:
        shown = ", ".join(f"'{n}' {f[n].shape}" for n in names[:6]) or "none"
        raise UserError(f"{path}: no dataset of samples (datasets: {shown}); expected 'x' (or 'x_train', 'images', "
                        "'train_set_x') and 'y' (labels), as an npz names them")
    return found


def _role(name: str) -> tuple[str, str] | None:
    """``(x or y, train or test)`` from a dataset's name's words; None for anything else (class lists, ids)."""
    words = set(re.split(r"[^a-z0-9]+", name.lower())) - {""}
    kind = "y" if words & set(LABEL_WORDS) else "x" if words & set(SAMPLE_WORDS) else None  # data/labels: labels
    return None if kind is None else (kind, "test" if words & set(HELD_WORDS) else "train")


def _flat(y: np.ndarray | None, x: np.ndarray | None) -> np.ndarray | None:
    """Labels stored as one row, (1, N), as some course files keep them: (N,)."""
    if y is not None and x is not None and y.ndim == 2 and y.shape[0] == 1 and y.shape[1] == len(x) != 1:
        return y[0]
    return y
