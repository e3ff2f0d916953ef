"""Load the user's data (`--data`) and map it onto a model's input.

Accepted forms:
  * ``fashion-mnist`` — Debian's ``dataset-fashion-mnist`` (60,000 train /
    10,000 test 28x28 grey images, 10 classes), read from its IDX files;
  * ``digits`` — scikit-learn's bundled 8x8 digits (1,797 images, 10 classes);
  * ``PATH.npz`` with arrays ``x`` and ``y`` (and optionally ``x_test``,
    ``y_test``);
  * ``DIR/`` of images in class subfolders (the Keras
    ``image_dataset_from_directory`` convention; classes are the sorted
    subfolder names).

The one mapping rule (``fit_to_input``), applied in this order:
  1. values: integer images are scaled to [0, 1] (by 255, or by 16 for
     ``digits``); float data is used as given;
  2. a sample whose shape already equals the model input is used as is;
  3. images (N, H, W[, C]) for a model input (H', W', C'): channels are
     converted (1 -> C' by repetition; 3/4 -> 1 by ITU-R BT.601 luma, alpha
     dropped; 4 -> 3 drops alpha); then, if the image is no larger than the
     input and each side is at least 3/4 of the input's, it is zero-padded
     centred (Fashion-MNIST 28 -> 32); otherwise it is resized bilinearly;
  4. a model with a flat input (D,) takes images whose size is D, flattened;
  anything else is an error naming both shapes.
Data with NaN/Inf, labels outside the model's classes, or fewer than
``min_samples`` samples is refused before any work.
"""

from __future__ import annotations

import gzip
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lrfc.errors import UserError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
BUILTIN = ("fashion-mnist", "digits")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclass(frozen=True)
class Dataset:
    """Samples already mapped to the model input (float32) and int64 labels.

    ``x_test``/``y_test`` hold a split the data came with (Fashion-MNIST's
    official test set, or an npz's ``x_test``); None when it has none.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None

    def summary(self) -> dict:
        return {
            "name": self.name,
            "samples": int(len(self.x)),
            "test_samples": 0 if self.x_test is None else int(len(self.x_test)),
            "sample_shape": list(self.x.shape[1:]),
            "classes": int(self.y.max()) + 1 if len(self.y) else 0,
        }


# ---------------------------------------------------------------- raw readers


def _read_idx(path: Path) -> np.ndarray:
    """Read a gzipped IDX file (the MNIST format): magic, dims, then uint8 data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def read_fashion_mnist(root: Path = FASHION_MNIST_DIR) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fashion-MNIST as uint8 arrays: x_train (60000, 28, 28), y_train, x_test, y_test."""
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    missing = [n for n in names if not (root / n).exists()]
    if missing:
        raise UserError(f"Fashion-MNIST not found in {root} (missing {missing[0]}); install Debian's dataset-fashion-mnist package (`make setup` does)")
    return tuple(_read_idx(root / n) for n in names)  # type: ignore[return-value]


def _read_npz(path: Path):
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as exc:
        raise UserError(f"{path}: not a readable .npz file ({exc})") from exc
    for key in ("x", "y"):
        if key not in arrays:
            raise UserError(f"{path}: no array '{key}' (found: {', '.join(arrays) or 'none'}); expected 'x' (samples) and 'y' (labels)")
    return arrays["x"], arrays["y"], arrays.get("x_test"), arrays.get("y_test")


def _read_image_dir(path: Path, input_shape: tuple) -> tuple[np.ndarray, np.ndarray]:
    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    if not classes:
        raise UserError(f"{path}: no class subfolders; expected DIR/<class>/<image files>")
    if len(input_shape) != 3:
        raise UserError(f"{path}: a folder of images needs a model with an image input (H, W, C); this model takes {input_shape}")
    import tensorflow as tf

    h, w, c = input_shape
    xs, ys = [], []
    for label, cls in enumerate(classes):
        for f in sorted((path / cls).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                img = tf.io.decode_image(tf.io.read_file(str(f)), channels=0, expand_animations=False).numpy()
            except Exception as exc:
                raise UserError(f"{f}: cannot decode image ({str(exc).splitlines()[0]})") from exc
            xs.append(_fit_image(img[None].astype(np.float32) / 255.0, (h, w, c), f)[0])
            ys.append(label)
    if not xs:
        raise UserError(f"{path}: class subfolders hold no images ({', '.join(IMAGE_SUFFIXES)})")
    return np.stack(xs), np.asarray(ys)


# ---------------------------------------------------------------- mapping rule


def _convert_channels(x: np.ndarray, c_out: int, where) -> np.ndarray:
    c_in = x.shape[-1]
    if c_in == c_out:
        return x
    if c_in == 1:
        return np.repeat(x, c_out, axis=-1)
    if c_in in (3, 4) and c_out == 1:
        return (x[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    if c_in == 4 and c_out == 3:
        return x[..., :3]
    raise UserError(f"{where}: images have {c_in} channels; the model takes {c_out} and there is no rule to convert")


def _fit_image(x: np.ndarray, target: tuple, where) -> np.ndarray:
    """Images (N, H, W, C) float -> (N, H', W', C') by the module's rule."""
    h, w, c = target
    x = _convert_channels(x, c, where)
    ih, iw = x.shape[1:3]
    if (ih, iw) == (h, w):
        return x
    if ih <= h and iw <= w and 4 * ih >= 3 * h and 4 * iw >= 3 * w:
        top, left = (h - ih) // 2, (w - iw) // 2
        return np.pad(x, ((0, 0), (top, h - ih - top), (left, w - iw - left), (0, 0)))
    import tensorflow as tf

    return tf.image.resize(x, (h, w), method="bilinear").numpy()


def fit_to_input(x: np.ndarray, input_shape: tuple, where: str = "data") -> np.ndarray:
    """Map samples onto a model input shape (without batch axis) by the module's rule."""
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise UserError(f"{where}: samples have dtype {x.dtype}; expected numbers")
    if x.ndim < 2:
        raise UserError(f"{where}: samples have shape {x.shape}; expected (N, ...) with at least one axis per sample")
    sample = tuple(x.shape[1:])
    input_shape = tuple(input_shape)
    if np.issubdtype(x.dtype, np.integer) or x.dtype == bool:
        x = x.astype(np.float32) / (255.0 if x.max(initial=0) > 1 else 1.0)
    x = x.astype(np.float32, copy=False)
    if sample == input_shape:
        return x
    if len(input_shape) == 3 and x.ndim in (3, 4) and None not in input_shape:
        return _fit_image(x if x.ndim == 4 else x[..., None], input_shape, where)
    if len(input_shape) == 1 and math.prod(sample) == input_shape[0]:
        return x.reshape(len(x), -1)
    raise UserError(f"{where}: samples of shape {sample} cannot be mapped to the model input {input_shape}")


# ---------------------------------------------------------------- checks


def _check(x: np.ndarray, y: np.ndarray, num_classes: int | None, min_samples: int, where: str) -> np.ndarray:
    if len(x) != len(y):
        raise UserError(f"{where}: {len(x)} samples but {len(y)} labels")
    if len(x) < min_samples:
        raise UserError(f"{where}: {len(x)} samples; at least {min_samples} are needed")
    if np.issubdtype(np.asarray(x).dtype, np.floating) and not np.isfinite(x).all():
        raise UserError(f"{where}: samples contain NaN or Inf ({int((~np.isfinite(x)).sum())} values)")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot
        y = y.argmax(axis=1)
    y = y.reshape(len(y))
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise UserError(f"{where}: labels must be whole class indices; received dtype {y.dtype}")
    y = y.astype(np.int64)
    if num_classes is not None and len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise UserError(f"{where}: labels span {int(y.min())}..{int(y.max())}; the model has {num_classes} classes (0..{num_classes - 1})")
    return y


def load_data(spec: str, input_shape: tuple, num_classes: int | None = None, min_samples: int = 10) -> Dataset:
    """Load ``--data`` and map it onto a model input.

    Args:
        spec: a built-in name (``fashion-mnist``, ``digits``), an ``.npz``
            path, or a directory of images in class subfolders.
        input_shape: the model input without the batch axis.
        num_classes: the model's number of classes, to validate labels.
        min_samples: fewer samples than this is an error.

    Returns:
        A ``Dataset`` whose samples fit ``input_shape``.
    """
    x_test = y_test = None
    if spec == "fashion-mnist":
        x, y, x_test, y_test = read_fashion_mnist()
    elif spec == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x, y = (d.images / 16.0).astype(np.float32), d.target
    else:
        path = Path(spec)
        if not path.exists():
            raise UserError(f"data not found: {spec} (expected {', '.join(BUILTIN)}, an .npz file or an image folder)")
        if path.is_dir():
            x, y = _read_image_dir(path, tuple(input_shape))
        elif path.suffix.lower() == ".npz":
            x, y, x_test, y_test = _read_npz(path)
        else:
            raise UserError(f"{spec}: unsupported data format {path.suffix!r}; expected .npz or a folder of images in class subfolders")
    y = _check(x, y, num_classes, min_samples, spec)
    x = fit_to_input(x, input_shape, spec)
    _check(x, y, num_classes, min_samples, spec)  # NaN/Inf after scaling too
    if x_test is not None:
        if y_test is None:
            raise UserError(f"{spec}: has 'x_test' but no 'y_test'")
        y_test = _check(x_test, y_test, num_classes, 1, f"{spec} (test split)")
        x_test = fit_to_input(x_test, input_shape, f"{spec} (test split)")
    return Dataset(spec, x, y, x_test, y_test)
