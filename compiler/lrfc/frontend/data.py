"""Load the user's data (`--data`) and map it onto a model's input.

Accepted forms:
  * ``fashion-mnist`` — Debian's ``dataset-fashion-mnist`` (60,000 train /
    10,000 test 28x28 grey images, 10 classes), read from its IDX files;
  * ``digits`` — scikit-learn's bundled 8x8 digits (1,797 images, 10 classes);
  * ``PATH.npz`` with arrays ``x`` and ``y`` (and optionally ``x_test``,
    ``y_test``). Labels are class indices, one-hot rows, or class names
    (strings: sorted and numbered 0..N-1 as class folders are, or the
    indices themselves when all are whole numbers);
  * ``PATH.npy``: samples alone, unlabelled (``labels=False``);
  * ``PATH.h5``/``.hdf5`` holding such arrays (``frontend.h5data``: named as
    an npz's, Keras' ``x_train``, or ``train_set_x``, ``images``/``labels``);
  * ``PATH.csv`` listing image files and their labels (``frontend.labels_csv``:
    Kaggle's ``labels.csv``, Keras' ``flow_from_dataframe`` columns);
  * TFRecord files of ``tf.train.Example`` records, one or a folder of shards
    (``frontend.tfrecord``: TensorFlow input pipelines, TFDS's prepared
    datasets, whose ``-train``/``-test`` shards are the two splits);
  * ``DIR/`` of images in class subfolders (the Keras
    ``image_dataset_from_directory`` convention). Folder names that are all
    whole numbers are the class indices themselves (``DIR/3/`` holds class 3,
    whatever folders are missing); other names are sorted and numbered
    0..N-1, so there must be exactly one folder per model class; or, with
    ``class_names`` (``--class-names``, Keras' ``class_names``), each name is
    the class its place in that list gives (a folder or label not in it is
    refused).

The one mapping rule, applied in this order:
  1. values to *unit* pixel values in [0, 1] (``to_unit``): integers by their
     scale (8-bit 0..255, 16-bit 0..65535, 0/1 as is; ``digits`` 0..16),
     judged on the whole array; an image file (decoded to 8 bits) by 255;
     floats in [0, 1] as they are, in [0, 255] divided by 255, in [-1, 1]
     mapped to [0, 1]. Floats outside those (already normalised data) are
     passed to the model as given, and an input contract cannot be applied
     to them;
  2. shape (``fit_to_input``): a sample whose shape equals the model input is
     used as is; images (N, H, W[, C]) for a model input (H', W', C') get
     their channels converted (1 -> C' by repetition; 3/4 -> 1 by ITU-R
     BT.601 luma, alpha dropped; 4 -> 3 drops alpha), then, if no larger than
     the input and each side at least 3/4 of the input's, zero-padded
     (black) centred (Fashion-MNIST 28 -> 32), otherwise resized bilinearly
     (a folder of images of several sizes: every one resized, as Keras'
     ``image_dataset_from_directory`` reads it; padding some and resizing
     others would show the model two kinds of image);
     a flat model input (D,) takes images whose size is D, flattened;
  3. values to the model's input values by its ``InputContract``
     (``frontend.contract``: range, channel order, mean/std).
Data with NaN/Inf, labels outside the model's classes, or fewer than
``min_samples`` samples is refused before any work.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from lrfc.common import npyfile
from lrfc.errors import UserError
from lrfc.frontend import archive
from lrfc.frontend.contract import InputContract
from lrfc.frontend.images import IMAGE_SUFFIXES, UNREAD_SUFFIXES, decode

if TYPE_CHECKING:
    from lrfc.frontend.samples import Samples

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")  # by label, as the dataset's README and keras.datasets.fashion_mnist name them
BUILTIN = ("fashion-mnist", "digits")
IMAGE_VALUES = "8-bit images"  # what image files hold as frontend.images decodes them (16-bit ones scaled down)


@dataclass(frozen=True)
class Dataset:
    """Samples already mapped to the model input (float32) and int64 labels (None: unlabelled, ``load_data(labels=False)``).

    ``x_test``/``y_test`` hold a split the data came with (Fashion-MNIST's
    official test set, or an npz's ``x_test``); None when it has none.
    ``values`` says what the source values were (e.g. ``uint8 0..255``) and
    ``contract`` how they were mapped; ``classes`` names the class of each
    label for an image folder; ``notes`` are things the user should know
    (e.g. class folders that are missing); ``fit`` says how the samples'
    shape was fitted to the model input, when it was.
    """

    name: str
    x: "Samples | np.ndarray"   # frontend.samples: mapped on access
    y: np.ndarray | None
    x_test: "Samples | np.ndarray | None" = None
    y_test: np.ndarray | None = None
    values: str = ""
    contract: InputContract | None = None
    classes: tuple[str, ...] | None = None
    notes: tuple[str, ...] = ()
    fit: str | None = None             # how the samples' shape was fitted to the input (``describe_fit``); None: as is

    def summary(self) -> dict:
        return {
            "name": self.name,
            "samples": int(len(self.x)),
            "test_samples": 0 if self.x_test is None else int(len(self.x_test)),
            "sample_shape": list(self.x.shape[1:]),
            "classes": int(self.y.max()) + 1 if self.y is not None and len(self.y) else 0,
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


def _read_npz(path: Path, labels: bool = True):
    try:
        arrays = npyfile.arrays(path)
    except Exception as exc:
        raise UserError(f"{path}: not a readable .npz file ({exc})") from exc
    if "x" not in arrays and "x_train" in arrays:  # Keras' own dataset files (mnist.npz): x_train, y_train, ...
        arrays = {("x" if k == "x_train" else "y" if k == "y_train" else k): v for k, v in arrays.items()}
    for key in ("x", "y") if labels else ("x",):
        if key not in arrays:
            raise UserError(f"{path}: no array '{key}' (found: {', '.join(arrays) or 'none'}); expected 'x' (samples) "
                            "and 'y' (labels), or Keras' x_train and y_train")
    return arrays["x"], arrays.get("y"), arrays.get("x_test"), arrays.get("y_test")


def _read_npy(path: Path, labels: bool) -> np.ndarray:
    if labels:
        raise UserError(f"{path}: a .npy file holds samples alone, no labels; give an .npz with 'x' (samples) and 'y' "
                        "(labels)")
    try:
        return npyfile.load(path)
    except Exception as exc:
        raise UserError(f"{path}: not a readable .npy file ({exc})") from exc


def _named(y) -> bool:
    return y is not None and np.asarray(y).dtype.kind in "US"


def _name_labels(where: str, y, y_test, num_classes: int | None, class_names: tuple[str, ...] | None = None):
    """Labels given as class names (strings) -> class indices, numbered as class folders are (``_class_labels``: in
    sorted order, or the whole numbers they spell; by ``class_names`` when given), with the names by index and a
    note that shows the numbering."""
    parts = [None if v is None else np.asarray(v) for v in (y, y_test)]
    for v, part in zip(parts, ("", " (test split)")):
        if v is not None and not _named(v):
            raise UserError(f"{where}{part}: labels have dtype {v.dtype} beside class names (strings) in the other split;"
                            " give one kind of label for both")
        if v is not None and v.size != len(v):
            raise UserError(f"{where}{part}: class names have shape {v.shape}; expected one per sample, (N,)")
    texts = [None if v is None else v.reshape(len(v)).astype(str) for v in parts]
    names = sorted(set().union(*(set(t.tolist()) for t in texts if t is not None)))
    if class_names is not None:
        index, notes, classes = _given_names(where, names, "label", class_names), [], list(class_names)
    else:
        index, notes = _class_labels(Path(where), names, num_classes, kind="class name")
        classes = [""] * (max(index.values()) + 1)
        for name, i in index.items():
            classes[i] = name
        shown = ", ".join(f"{name!r} = {i}" for name, i in list(index.items())[:4]) + (", ..." if len(index) > 4 else "")
        if not all(name.isdigit() for name in names):  # whole numbers written as text are the indices they spell
            notes.append(f"{where}: labels are class names, numbered {shown} (sorted, as class folders are; "
                         "--class-names gives the model's order)")
    mapped = [None if t is None else np.asarray([index[n] for n in t], dtype=np.int64) for t in texts]
    return mapped[0], mapped[1], tuple(classes), notes


def _given_names(where, names: list[str], kind: str, class_names: tuple[str, ...]) -> dict[str, int]:
    """Each of ``names`` (class folders, label names) -> its place in ``--class-names``; one not there is refused."""
    index = {name: i for i, name in enumerate(class_names)}
    unknown = [n for n in names if n not in index]
    if unknown:
        raise UserError(f"{where}: {kind} '{unknown[0]}' is not among --class-names "
                        f"({', '.join(class_names[:4])}{', ...' if len(class_names) > 4 else ''})")
    return {n: index[n] for n in names}


def read_class_names(text: str | None) -> tuple[str, ...] | None:
    """``--class-names``: comma-separated names, or a file of them: one per line, or JSON, a list of names or an
    object from output index to a name or a list whose first item is the class's id (Keras' ImageNet
    ``imagenet_class_index.json``: ``{"0": ["n01440764", "tench"], ...}``, whose ids name ImageNet's folders)."""
    if text is None:
        return None
    path = Path(text)
    if not path.is_file():
        return tuple(p.strip() for p in text.split(",") if p.strip())
    import json

    try:
        raw = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--class-names: cannot read {path} ({exc})") from exc
    if path.suffix.lower() != ".json":
        return tuple(line.strip() for line in raw.splitlines() if line.strip())
    try:
        doc = json.loads(raw)
        if isinstance(doc, dict):
            doc = [doc[k] for k in sorted(doc, key=int)]
        names = tuple(str(v[0] if isinstance(v, list) else v) for v in doc)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise UserError(f"--class-names: {path} is not a JSON list of class names or an object from output index to "
                        f"a name ({exc})") from exc
    return names


def check_class_names(class_names: tuple[str, ...] | None, num_classes: int | None) -> None:
    """``--class-names``: one distinct name per model output."""
    if class_names is None:
        return
    repeated = sorted({n for n in class_names if class_names.count(n) > 1})
    if repeated:
        raise UserError(f"--class-names: '{repeated[0]}' is given twice; expected one distinct name per class")
    if num_classes is not None and len(class_names) != max(num_classes, 2):
        raise UserError(f"--class-names: received {len(class_names)} names; the model has {max(num_classes, 2)} "
                        "classes, named in the order of its outputs")


def _class_labels(path: Path, folders: list[str], num_classes: int | None,
                  kind: str = "class folder") -> tuple[dict[str, int], list[str]]:
    """Folder name (or class name, ``kind``) -> label, and notes. Whole-number names are the labels; others are
    numbered in sorted order."""
    notes = []
    if all(name.isdigit() for name in folders):
        labels = {name: int(name) for name in folders}
        if num_classes is not None:
            beyond = sorted(n for n, v in labels.items() if v >= num_classes)
            if beyond:
                from_one = min(labels.values()) == 1 and max(labels.values()) == num_classes
                raise UserError(f"{path}: {kind} '{beyond[0]}' names class {labels[beyond[0]]}; the model has "
                                f"{num_classes} classes (0..{num_classes - 1})"
                                + ("; numbered from 1? number them from 0" if from_one else ""))
            missing = [str(v) for v in range(num_classes) if v not in labels.values()]
            if missing:
                notes.append(f"{path}: no {'folder' if kind == 'class folder' else 'label'} for class"
                             f"{'es' * (len(missing) > 1)} {', '.join(missing[:10])}"
                             f"{' ...' if len(missing) > 10 else ''}: accuracy covers the other classes only")
        return labels, notes
    if num_classes is not None and len(folders) != num_classes:
        fix = ("folder names become labels 0..N-1, so a missing or extra folder shifts every label; name the folders "
               "by class index (0, 1, ...) instead" if kind == "class folder" else
               "names become labels 0..N-1, so a missing or extra name shifts every label; give class indices (0, 1, "
               "...) instead")
        raise UserError(f"{path}: {len(folders)} {kind}s ({', '.join(folders[:4])}{', ...' if len(folders) > 4 else ''}) "
                        f"but the model has {num_classes} classes: sorted {fix}")
    return {name: i for i, name in enumerate(folders)}, notes


TRAIN_FOLDERS = ("train", "training")
METADATA_FILES = ("metadata.csv", "metadata.jsonl")  # Hugging Face's image folder lists its images' labels so
HELD_OUT_FOLDERS = ("val", "valid", "validation", "test", "testing")


def _subfolders(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _split_folders(path: Path) -> tuple[Path, list[Path]] | None:
    """``(train, [held-out...])`` when ``path`` holds a training folder and held-out ones (``DIR/train/<class>/...``,
    ``DIR/val/<class>/...``, as Keras' and torchvision's image-folder examples lay data out; a folder of images
    without class subfolders is unlabelled, the training folder or every held-out one); None otherwise."""
    names = _subfolders(path)
    train = [n for n in names if n.lower() in TRAIN_FOLDERS]
    held = [n for n in names if n.lower() in HELD_OUT_FOLDERS]
    if len(train) != 1 or not held or len(train) + len(held) != len(names):
        return None
    classes = [bool(_subfolders(path / n)) for n in held]
    if any(classes) and not all(classes):
        return None  # some hold images directly: class folders that happen to be named so
    # images directly in a folder: unlabelled (the training folder's alone: labelled held-out images decide the budget)
    return path / train[0], [path / n for n in held]


def _image_files(folder: Path, recursive: bool, unread: dict[str, int] | None = None) -> list[Path]:
    """The image files in ``folder``, sorted; ``recursive``: in its subfolders too (a class folder's images may sit
    in folders of their own, ``cat/2019/*.jpg``, which ``image_dataset_from_directory`` reads). Hidden files and
    folders (``.ipynb_checkpoints``) are left out; images of kinds lrfc cannot decode (``images.UNREAD_SUFFIXES``)
    are counted by suffix in ``unread``."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    images = []
    for f in found:
        suffix = f.suffix.lower()
        if suffix not in IMAGE_SUFFIXES and suffix not in UNREAD_SUFFIXES:
            continue
        if not f.is_file() or any(part.startswith(".") for part in f.relative_to(folder).parts):
            continue
        if suffix in IMAGE_SUFFIXES:
            images.append(f)
        elif unread is not None:
            unread[suffix] = unread.get(suffix, 0) + 1
    return sorted(images)


def _unread(unread: dict[str, int]) -> str:
    """What a folder held that was not read: image files of kinds no decoder here reads (a phone's HEIC); "" if none."""
    if not unread:
        return ""
    kinds = ", ".join(f"{suffix}: {n:,}" for suffix, n in sorted(unread.items(), key=lambda kv: -kv[1]))
    return (f"{sum(unread.values()):,} image files of kinds lrfc cannot decode were not read ({kinds}); convert them "
            "to PNG or JPEG to include them")


def _as_8_bit(unit: np.ndarray) -> np.ndarray:
    """A fitted image (unit values) held as 8-bit pixels again: a quarter of float32's memory (4,000 images at
    224x224x3: 0.6 GB, not 2.3), mapped back to unit values as samples are read (``frontend.samples``). A resized
    image's values round to the nearest of the 256 levels its file had (at most 0.5/255 off)."""
    return np.clip(np.rint(unit * np.float32(255)), 0, 255).astype(np.uint8)


def _read_image_dir(path: Path, input_shape: tuple, num_classes: int | None, labels_needed: bool = True,
                    labels: dict[str, int] | None = None, progress=None, class_names: tuple[str, ...] | None = None):
    """Images fitted to ``input_shape`` (8-bit, ``_as_8_bit``), labels, class names by label, notes, how they were
    fitted, and what the files held (``8-bit images``: each file is divided by 255, not by its own range, so a dark
    image stays dark). A file that does not decode is left out, and a note says how many were.

    A folder that holds Hugging Face's ``metadata.csv`` or ``metadata.jsonl``
    is read through it (``_read_image_csv``; without labels needed, one whose
    labels cannot be read leaves the folder to the rules below).
    Without class subfolders, the images directly in ``path`` are read
    (``_read_flat_dir``): labelled by their file names where those name the
    classes, else unlabelled (labels and class names None), which
    ``labels_needed`` refuses.
    ``progress(label, total, transient)`` (``BuildState.progress``) shows the
    reading on a terminal (25,000 photos: a minute), erased at its end.
    ``labels`` (folder name -> label) is a training folder's, for its held-out
    folder, which may lack a class; ``class_names`` (``--class-names``) number
    the folders instead of their sorted order.
    """
    metadata = next((path / n for n in METADATA_FILES if (path / n).is_file()), None)
    if metadata is not None:  # Hugging Face's image folder: its images listed with their labels in it
        named = class_names if class_names is not None or labels is None else _names_by_label(labels, None)
        try:  # a held-out folder's labels numbered as the training folder's (``labels``), not sorted anew
            x, y, classes, notes, fit, images = _read_image_csv(metadata, input_shape, num_classes, progress, named)
            return x, y, classes, [f"{path}: read through its {metadata.name} (Hugging Face's image-folder layout)",
                                   *notes], fit, images
        except UserError:
            if labels_needed:
                raise
    folders = _subfolders(path)
    if not folders:
        return _read_flat_dir(path, input_shape, num_classes, labels_needed, labels, progress, class_names)
    _check_image_input(path, "a folder of images", input_shape)
    if class_names is not None and folders:
        labels, notes = _given_names(path, folders, "class folder", class_names), []
    elif labels is not None and folders:
        unknown = [f for f in folders if f not in labels]
        if unknown:
            raise UserError(f"{path}: class folder '{unknown[0]}' is not among the training folder's classes "
                            f"({', '.join(list(labels)[:4])}{', ...' if len(labels) > 4 else ''})")
        notes = []
    else:
        labels, notes = _class_labels(path, folders, num_classes)
    unread: dict[str, int] = {}
    files = [(cls, f) for cls in folders for f in _image_files(path / cls, recursive=True, unread=unread)]
    if not files:
        raise UserError(f"{path}: class subfolders hold no images ({', '.join(IMAGE_SUFFIXES)})"
                        + (f"; {_unread(unread)}" if unread else ""))
    x, kept, read_notes, fit = _read_images(path, [f for _, f in files], input_shape, progress)
    return (x, np.asarray([labels[files[i][0]] for i in kept]), _names_by_label(labels, class_names),
            [*notes, *read_notes, *([f"{path}: {_unread(unread)}"] if unread else [])], fit, IMAGE_VALUES)


def _names_by_label(labels: dict[str, int], class_names: tuple[str, ...] | None) -> tuple[str, ...]:
    names = list(class_names or [""] * (max(labels.values()) + 1))
    for cls, label in labels.items():
        names[label] = cls
    return tuple(names)


_NUMBERED = re.compile(r"^(.*?[A-Za-z].*?)[ ._-]*\(?\d+\)?$")  # cat.0, Abyssinian_12, american_bulldog_3, dog (2)
CAMERA_WORDS = ("img", "image", "dsc", "dscn", "dscf", "pxl", "photo", "pic", "picture", "frame", "screenshot", "scan",
                "vid", "mvimg", "gopr", "imag", "sample", "file")


def _read_flat_dir(path: Path, input_shape: tuple, num_classes: int | None, labels_needed: bool,
                   known: dict[str, int] | None, progress, class_names: tuple[str, ...] | None):
    """A folder of images without class subfolders (``_read_image_dir``'s results). Labelled by the file names
    where each is ``<class><separator><number>`` (Kaggle's Dogs vs. Cats ``cat.0.jpg``, the Oxford-IIIT pets'
    ``Abyssinian_1.jpg``) and those classes are the model's (as many as its outputs, or all among ``--class-names``
    or, for a held-out folder, ``known``, the training folder's); else unlabelled, and a CSV beside it is named."""
    unread: dict[str, int] = {}
    files = _image_files(path, recursive=False, unread=unread)
    named = _file_name_classes(files, num_classes, class_names, known)
    listing = _label_list_beside(path) if named is None else None
    if named is None and labels_needed:
        raise UserError(f"{path}: no class subfolders; expected DIR/<class>/<image files>"
                        + (f", or a CSV of files and labels: --data {listing}" if listing else ""))
    _check_image_input(path, "a folder of images", input_shape)
    if not files:
        raise UserError(f"{path}: holds neither class subfolders nor images ({', '.join(IMAGE_SUFFIXES)})"
                        + (f"; {_unread(unread)}" if unread else ""))
    x, kept, notes, fit = _read_images(path, files, input_shape, progress)
    notes += [f"{path}: {_unread(unread)}"] if unread else []
    if named is None:
        if listing:  # Kaggle's layout: train/ of images, labels.csv beside it
            notes.append(f"{path}: images without class subfolders are unlabelled; if {listing.name} labels them, "
                         f"give --data {listing}")
        return x, None, None, notes, fit, IMAGE_VALUES
    classes, index = named
    by_label = sorted(index.items(), key=lambda item: item[1])
    shown = ", ".join(f"{name!r} = {i}" for name, i in by_label[:4]) + (", ..." if len(index) > 4 else "")
    how = ("by --class-names" if class_names is not None else "as the training folder's" if known is not None
           else "sorted, as class folders are; --class-names gives the model's order")
    note = f"{path}: no class subfolders; labelled by the file names' prefixes, numbered {shown} ({how})"
    return (x, np.asarray([index[classes[i]] for i in kept]), _names_by_label(index, class_names), [note, *notes],
            fit, IMAGE_VALUES)


def _file_name_classes(files: list[Path], num_classes: int | None, class_names: tuple[str, ...] | None,
                       known: dict[str, int] | None) -> tuple[list[str], dict[str, int]] | None:
    """Each file's class by its name's prefix, and prefix -> label; None when the names do not name classes
    (a name without a prefix and number, one class, a camera's ``IMG_0001``, or prefixes that are not the model's)."""
    matches = [_NUMBERED.match(f.stem) for f in files]
    if not files or not all(matches):
        return None
    classes = [m.group(1) for m in matches]
    distinct = sorted(set(classes))
    if len(distinct) < 2 or any(c.lower() in CAMERA_WORDS for c in distinct):
        return None
    given = {n: i for i, n in enumerate(class_names)} if class_names is not None else known
    if given is not None:
        return (classes, {c: given[c] for c in distinct}) if set(distinct) <= set(given) else None
    if num_classes is not None and len(distinct) != num_classes:
        return None
    return classes, {c: i for i, c in enumerate(distinct)}


def _read_image_csv(path: Path, input_shape: tuple, num_classes: int | None, progress=None,
                    class_names: tuple[str, ...] | None = None):
    """``--data labels.csv`` (``frontend.labels_csv``): its images, read as a folder's are, labelled as an npz's class
    names or indices are, or by one-hot columns in the order of the model's outputs; ``_read_image_dir``'s results."""
    from lrfc.frontend import labels_csv

    _check_image_input(path, "a list of image files", input_shape)
    listed = labels_csv.read(path)
    notes = [listed.note]
    if listed.classes is not None and class_names is None:  # one 0/1 column per output, in the outputs' order
        if num_classes is not None and len(listed.classes) != max(num_classes, 2):
            raise UserError(f"{path}: {len(listed.classes)} one-hot columns ({', '.join(listed.classes[:4])}"
                            f"{', ...' if len(listed.classes) > 4 else ''}) but the model has {num_classes} classes; "
                            "expected one 0/1 column per model output, in the order of its outputs")
        index = {name: i for i, name in enumerate(listed.classes)}
        y, classes = np.asarray([index[name] for name in listed.labels], dtype=np.int64), listed.classes
    else:
        y, _, classes, named = _name_labels(str(path), np.asarray(listed.labels), None, num_classes, class_names)
        notes += named
    x, kept, read_notes, fit = _read_images(listed.root, list(listed.files), input_shape, progress)
    return x, y[kept], classes, [*notes, *read_notes], fit, IMAGE_VALUES


def _read_tfrecords(path: Path, input_shape: tuple, num_classes: int | None, progress=None,
                    class_names: tuple[str, ...] | None = None):
    """``--data`` TFRecords (``frontend.tfrecord``): a file's or a folder's shards' images, decoded as a folder's
    are, and labels (indices, or class names numbered as an npz's); a folder split by shard names gives the held-out
    split too. ``x, y, x_test, y_test, classes, notes, fit``."""
    from lrfc.frontend import tfrecord

    _check_image_input(path, "TFRecords of images", input_shape)
    train, held, split_note = tfrecord.splits(path)
    parts, notes, fit = [], [], None
    for files, where in ((train, f"{path} (training shards)" if held else str(path)),
                         (held, f"{path} (held-out shards)")):
        if not files:
            parts.append((None, None))
            continue
        records = tfrecord.read(files, where)
        x, kept, read_notes, part_fit = _read_images(path, list(records.images), input_shape, progress)
        labels = None if records.labels is None else [records.labels[i] for i in kept]
        if labels is not None and not all(isinstance(v, str) for v in labels):
            labels = np.asarray(labels, dtype=np.int64)
        parts.append((x, labels))
        notes += [records.note, *read_notes]
        fit = fit or part_fit
    (x, y), (x_test, y_test) = parts
    classes = tuple(class_names) if class_names is not None else None
    if isinstance(y, list) or isinstance(y_test, list):  # class names: numbered as an npz's are
        y, y_test, classes, named = _name_labels(str(path), None if y is None else np.asarray(y),
                                                 None if y_test is None else np.asarray(y_test), num_classes,
                                                 class_names)
        notes += named
    return x, y, x_test, y_test, classes, [*notes, *filter(None, [split_note])], fit


def _check_image_input(path: Path, what: str, input_shape: tuple) -> None:
    if len(input_shape) != 3 or None in input_shape:
        raise UserError(f"{path}: {what} needs a model with an image input (H, W, C); this model takes {input_shape}")


def _label_list_beside(folder: Path) -> Path | None:
    """A CSV in ``folder`` or beside it, which may list its images' labels (Kaggle's ``labels.csv``, ``train.csv``)."""
    for where in (folder, folder.parent):
        found = sorted(p for p in where.glob("*.csv") if p.is_file())
        if found:
            return found[0]
    return None


def _read_images(root: Path, files: list[Path | bytes], input_shape: tuple, progress=None):
    """Decode ``files`` (image files, or their bytes: a TFRecord's) and fit them to ``input_shape``
    (``_read_image_dir``'s rule): the 8-bit images, the index in ``files`` of each one read (one that does not
    decode is left out, and a note says so), notes, and how they were fitted. ``root`` names the reading and the
    files in notes."""
    xs, kept, shapes, small, unreadable = [], [], {}, {}, []
    with (progress(f"reading {root.name}", len(files), transient=True) if progress and files
          else contextlib.nullcontext()) as bar:
        for n, f in enumerate(files):
            if bar is not None:
                bar.update(1)
            try:
                img = decode(f if isinstance(f, bytes) else f.read_bytes())
            except Exception as exc:  # a damaged file among many (Kaggle's cats and dogs has some): left out, said
                shown = f"record {n + 1}" if isinstance(f, bytes) else _shown(f, root)
                unreadable.append(f"{shown}: {str(exc).strip().splitlines()[0]}")
                continue
            shapes[img.shape] = shapes.get(img.shape, 0) + 1
            unit = img[None].astype(np.float32) / np.float32(255)  # decoded to 8 bits: by that depth, not its range
            if _pads(img.shape[:2], input_shape[:2]):  # no larger than the input: kept until the shapes are known
                small[len(xs)] = (unit, root if isinstance(f, bytes) else f)
                xs.append(None)
            else:
                xs.append(_as_8_bit(_fit_image(unit, input_shape, root if isinstance(f, bytes) else f)[0]))
            kept.append(n)
    if not xs:
        raise UserError(f"{root}: cannot decode images: none of its {len(unreadable)} image files decodes (first: "
                        f"{unreadable[0]})")
    notes = []
    if unreadable:
        notes.append(f"{root}: {len(unreadable)} of {len(files)} image files do not decode and were left out (first: "
                     f"{unreadable[0]})")
    for i, (unit, f) in small.items():  # one shape: the rule's padding; several: resized like every other image
        xs[i] = _as_8_bit(_fit_image(unit, input_shape, f, pad=len(shapes) == 1)[0])
    if len(shapes) == 1:
        fit = describe_fit(next(iter(shapes)), input_shape)
    else:
        common = sorted(shapes, key=shapes.get, reverse=True)
        fit = (f"images of {len(shapes)} shapes ({', '.join('x'.join(map(str, s)) for s in common[:3])}"
               f"{', ...' if len(common) > 3 else ''}) resized bilinearly to the model's "
               f"{'x'.join(map(str, input_shape))}, each one (as keras.utils.image_dataset_from_directory does; "
               "one size for all would be zero-padded where close)")
    return np.stack(xs), kept, notes, fit


def _shown(f: Path, root: Path) -> str:
    try:
        return str(f.relative_to(root))
    except ValueError:  # a CSV's absolute name elsewhere
        return str(f)


def unit_rule(x: np.ndarray, where: str) -> tuple[Callable[[np.ndarray], np.ndarray] | None, str]:
    """How ``x``'s values become unit values in [0, 1] by the module's rule, and what they were.

    Reads ``x`` once (its dtype and range) and converts nothing: the rule is
    applied a chunk at a time (``frontend.samples``). The rule is None when
    the values are left alone (already normalised data; the description then
    starts with ``as given``).
    """
    x = np.asarray(x)
    if x.dtype == bool:
        return _scaled(1), "bool 0/1"
    if not np.issubdtype(x.dtype, np.number):
        raise UserError(f"{where}: samples have dtype {x.dtype}; expected numbers")
    if x.size == 0:
        return _scaled(1), "empty"
    if np.issubdtype(x.dtype, np.integer):
        lo, hi = int(x.min()), int(x.max())
        if lo < 0:
            raise UserError(f"{where}: integer samples span {lo}..{hi}; expected pixel values (0..255 or 0..65535)")
        for top in (1, 255, 65535):
            if hi <= top:
                return _scaled(top), f"{x.dtype} 0..{top}"
        raise UserError(f"{where}: integer samples reach {hi}; expected pixel values (0..255 or 0..65535)")
    finite = np.isfinite(x)
    if not finite.all():
        raise UserError(f"{where}: samples contain NaN or Inf ({int((~finite).sum())} values)")
    lo, hi = float(x.min()), float(x.max())
    if lo >= 0 and hi <= 1:
        return _scaled(1), f"{x.dtype} 0..1"
    if lo >= 0 and hi <= 255:
        return _scaled(255), f"{x.dtype} 0..255"
    if lo >= -1 and hi <= 1:
        return _from_signed, f"{x.dtype} -1..1"
    return None, f"as given ({x.dtype} {lo:.4g}..{hi:.4g}: not pixel values, so fed to the model unchanged)"


def _scaled(top: int):
    def rule(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x).astype(np.float32, copy=False)
        return x / np.float32(top) if top > 1 else x
    return rule


def _from_signed(x: np.ndarray) -> np.ndarray:
    return (np.asarray(x, dtype=np.float32) + np.float32(1)) / np.float32(2)


def to_unit(x: np.ndarray, where: str) -> tuple[np.ndarray, str]:
    """Pixel values -> unit values in [0, 1] by the module's rule, all at once; also says what the values were."""
    rule, values = unit_rule(x, where)
    x = np.asarray(x)
    return (x.astype(np.float32, copy=False) if rule is None else rule(x)), values


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


def _pads(size: tuple, target: tuple) -> bool:
    """Whether an image of ``size`` (H, W) is zero-padded to ``target`` (H', W') by the module's rule: no larger,
    each side at least 3/4 of the target's, and not equal."""
    (ih, iw), (h, w) = size, target
    return (ih, iw) != (h, w) and ih <= h and iw <= w and 4 * ih >= 3 * h and 4 * iw >= 3 * w


def _fit_image(x: np.ndarray, target: tuple, where, pad: bool = True) -> np.ndarray:
    """Images (N, H, W, C) float -> (N, H', W', C') by the module's rule (``pad`` False: resized, never padded)."""
    h, w, c = target
    x = _convert_channels(x, c, where)
    ih, iw = x.shape[1:3]
    if (ih, iw) == (h, w):
        return x
    if pad and _pads((ih, iw), (h, w)):
        top, left = (h - ih) // 2, (w - iw) // 2
        return np.pad(x, ((0, 0), (top, h - ih - top), (left, w - iw - left), (0, 0)))
    import tensorflow as tf

    return tf.image.resize(x, (h, w), method="bilinear").numpy()


def _channels_first(sample: tuple, input_shape: tuple) -> bool:
    """Samples (C, H, W), as PyTorch code stores images, for a model that takes (H, W, C): C is 1, 3 or 4 and W is not."""
    return (len(sample) == 3 and len(input_shape) == 3 and sample != input_shape and sample[0] in (1, 3, 4)
            and sample[-1] not in (1, 3, 4))


def describe_fit(sample: tuple, input_shape: tuple) -> str | None:
    """What ``fit_to_input`` does to samples of shape ``sample``, in words; None when they are used as they are."""
    sample, input_shape = tuple(sample), tuple(input_shape)
    if sample == input_shape or sample == (*input_shape, 1):  # a channel axis of 1 dropped: nothing to hear
        return None
    dims = "x".join
    if _channels_first(sample, input_shape):
        moved = (*sample[1:], sample[0])
        rest = describe_fit(moved, input_shape)
        said = f"{dims(map(str, sample))} samples read as channels-first (C, H, W) and moved to channels-last"
        return said + (f"; then {rest.split(': ', 1)[1]}" if rest else f" ({dims(map(str, moved))})")
    if len(input_shape) == 1:
        return f"{dims(map(str, sample))} samples flattened to {input_shape[0]}"
    h, w, c = input_shape
    ih, iw, ic = (*sample, 1) if len(sample) == 2 else sample
    steps = []
    if ic != c:
        steps.append("the channel repeated" if ic == 1 else "converted to grey (BT.601 luma)" if c == 1
                     else "alpha dropped")
    if (ih, iw) != (h, w):
        steps.append("zero-padded, centred" if _pads((ih, iw), (h, w)) else "resized bilinearly")
    if not steps:  # only a channel axis of 1 added: nothing the user needs to hear
        return None
    return f"{dims(map(str, sample))} images fitted to the model's {dims(map(str, input_shape))}: {', '.join(steps)}"


def fit_to_input(x: np.ndarray, input_shape: tuple, where: str = "data") -> np.ndarray:
    """Map samples (unit values) onto a model input shape (without batch axis) by the module's rule."""
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise UserError(f"{where}: samples have dtype {x.dtype}; expected numbers")
    if x.ndim < 2:
        raise UserError(f"{where}: samples have shape {x.shape}; expected (N, ...) with at least one axis per sample")
    sample = tuple(x.shape[1:])
    input_shape = tuple(input_shape)
    x = x.astype(np.float32, copy=False)
    if sample == input_shape:
        return x
    if sample == (*input_shape, 1):  # grey images (H, W, 1) to a model taking (H, W): its rows as a sequence
        return x[..., 0]
    if _channels_first(sample, input_shape):
        x = np.moveaxis(x, 1, -1)
    if len(input_shape) == 3 and x.ndim in (3, 4) and None not in input_shape:
        return _fit_image(x if x.ndim == 4 else x[..., None], input_shape, where)
    if len(input_shape) == 1 and math.prod(sample) == input_shape[0]:
        return x.reshape(len(x), -1)
    raise UserError(f"{where}: samples of shape {sample} cannot be mapped to the model input {input_shape}")


# ---------------------------------------------------------------- checks


def _check(x: np.ndarray, y: np.ndarray | None, num_classes: int | None, min_samples: int, where: str):
    if y is not None and len(x) != len(y):
        raise UserError(f"{where}: {len(x)} samples but {len(y)} labels")
    if len(x) < min_samples:
        raise UserError(f"{where}: {len(x)} samples; at least {min_samples} are needed")
    if np.issubdtype(np.asarray(x).dtype, np.floating) and not np.isfinite(x).all():
        raise UserError(f"{where}: samples contain NaN or Inf ({int((~np.isfinite(x)).sum())} values)")
    if y is None:
        return None
    y = np.asarray(y)
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise UserError(f"{where}: labels have dtype {y.dtype}; expected whole class indices 0..N-1 (or one-hot rows)")
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot (or class probabilities, label smoothing: rows that sum to 1)
        sums = y.sum(axis=1, dtype=np.float64)
        off = np.flatnonzero(np.abs(sums - 1.0) > 1e-3)
        if len(off):
            raise UserError(f"{where}: label rows (N, {y.shape[1]}) are not one-hot: {len(off):,} of {len(y):,} sum to "
                            f"{sums[off[0]]:g}, not 1 (row {int(off[0])}); several classes per sample (multi-label) or "
                            "none have no top-1 for --max-acc-drop to keep; give one class index per sample")
        y = y.argmax(axis=1)
    if y.size != len(y):
        raise UserError(f"{where}: labels have shape {y.shape}; expected one class index per sample, (N,) or (N, 1), "
                        "or one-hot rows (N, classes)")
    y = y.reshape(len(y))
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise UserError(f"{where}: labels must be whole class indices; received dtype {y.dtype}")
    y = y.astype(np.int64)
    if num_classes is not None and len(y) and (y.min() < 0 or y.max() >= num_classes):
        from_one = int(y.min()) == 1 and int(y.max()) == num_classes  # MATLAB's and R's numbering
        raise UserError(f"{where}: labels span {int(y.min())}..{int(y.max())}; the model has {num_classes} classes "
                        f"(0..{num_classes - 1})" + ("; numbered from 1? give them from 0 (y - 1)" if from_one else ""))
    return y


def _arrays(spec):
    """``(x, y)``, ``(x, y, x_test, y_test)`` or a mapping with those keys, from the Python API."""
    if isinstance(spec, dict):
        if "x" not in spec or "y" not in spec:
            raise UserError(f"data: a mapping needs 'x' and 'y' (and optionally 'x_test', 'y_test'); received {sorted(spec)}")
        return spec["x"], spec["y"], spec.get("x_test"), spec.get("y_test")
    if isinstance(spec, (tuple, list)) and len(spec) in (2, 4):
        x, y, *test = spec
        return (x, y, *test) if test else (x, y, None, None)
    raise UserError(f"data: received a {type(spec).__name__}; expected a --data string, (x, y), (x, y, x_test, y_test) "
                    "or a mapping with x and y")


def source_name(spec) -> str:
    """How a data source is named in reports: the ``--data`` string, or ``arrays (N samples)``."""
    if isinstance(spec, str):
        return spec
    x = spec["x"] if isinstance(spec, dict) and "x" in spec else (spec[0] if isinstance(spec, (tuple, list)) and spec else None)
    return f"arrays ({len(x):,} samples)" if x is not None and hasattr(x, "__len__") else "arrays"


def _to_model(x: np.ndarray, input_shape: tuple, contract: InputContract, where: str):
    """The samples as a ``Samples`` over their own values (mapped on access), and what those values were.

    The rule is fixed here from the whole source (its dtype and range) and
    tried on the first sample, so a shape that cannot be mapped fails now.
    """
    from lrfc.frontend.samples import Samples

    rule, values = unit_rule(x, where)
    if rule is None and contract.source == "given":
        raise UserError(f"{where}: values span {values.split('(', 1)[1].split(':')[0].split(' ', 1)[1]}, which are not "
                        "pixel values (0..1, 0..255 or -1..1); --input-range/--input-mean/--input-std/--channel-order "
                        "apply to pixel data, so leave them out for data that is already normalised")
    shape = tuple(input_shape)

    def mapping(raw: np.ndarray) -> np.ndarray:
        unit = fit_to_input(raw if rule is None else rule(raw), shape, where)
        return unit if rule is None else contract.apply(unit)

    source = np.asarray(x)
    if len(source):
        fit_to_input(source[:1], shape, where)  # the shape rule's errors, before any work
    return Samples(source, mapping), values


def not_found(spec: str) -> UserError:
    from lrfc.errors import not_found as missing

    return missing("data", spec, f"expected {', '.join(BUILTIN)}, an .npz, .npy, .h5, .csv or TFRecord file, an image "
                                 "folder, or an archive of one")


def load_data(spec, input_shape: tuple, num_classes: int | None = None, contract: InputContract | None = None,
              min_samples: int = 10, labels: bool = True, progress=None,
              class_names: tuple[str, ...] | None = None) -> Dataset:
    """Load ``--data`` and map it onto a model input.

    Args:
        spec: a built-in name (``fashion-mnist``, ``digits``), an ``.npz``,
            ``.h5`` or ``.npy`` path, a ``.csv`` of image files and labels, TFRecords
            (a file or a folder of shards), a directory of images in class
            subfolders, an archive of any of these (``frontend.archive``:
            ``.zip``, ``.tar.gz``, ...; a path inside one), or (the Python
            API) arrays: ``(x, y)``, ``(x, y, x_test, y_test)`` or a mapping.
        input_shape: the model input without the batch axis.
        num_classes: the model's number of classes, to validate labels.
        contract: how unit pixel values become the model's input values
            (``frontend.contract``); None: [0, 1].
        min_samples: fewer samples than this is an error.
        labels: False accepts unlabelled data (``lrfc export``'s calibration
            samples, ``lrfc build``'s data, which the original labels): an npz
            without ``y``, a folder of images without class subfolders (or a
            ``train/`` and a ``val/`` folder of images); the Dataset's ``y``
            is then None.
        progress: ``BuildState.progress``, for a folder of images (a
            transient bar while its files are read).
        class_names: ``--class-names``, the name of each model output in
            order: class folders and label names are numbered by it (not
            sorted), and the Dataset's ``classes`` are these.

    Returns:
        A ``Dataset`` whose samples (``frontend.samples.Samples``) fit
        ``input_shape`` in the model's units, mapped from the source's own
        values as they are read.
    """
    if isinstance(spec, str) and spec not in BUILTIN and (packed := archive.split(spec)) is not None:
        return _from_archive(spec, *packed, input_shape=input_shape, num_classes=num_classes, contract=contract,
                             min_samples=min_samples, labels=labels, progress=progress, class_names=class_names)
    contract = contract or InputContract(reason="the default")
    check_class_names(class_names, num_classes)
    x_test = y_test = classes = fit = images = None
    notes: list[str] = []
    if not isinstance(spec, str):  # the Python API: arrays in memory
        x, y, x_test, y_test = _arrays(spec)
        spec = source_name(spec)
    elif spec == "fashion-mnist":
        x, y, x_test, y_test = read_fashion_mnist()
        classes = FASHION_MNIST_CLASSES  # --class-names, when given, names them instead (below)
    elif spec == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x, y = (d.images / 16.0).astype(np.float32), d.target  # its pixels are 0..16
    else:
        from lrfc.frontend import tfrecord

        path = Path(spec)
        if not path.exists():
            raise not_found(spec)
        if tfrecord.is_tfrecord(path):  # tf.train.Example records: a file, or a folder of shards (TFDS)
            x, y, x_test, y_test, classes, notes, fit = _read_tfrecords(path, tuple(input_shape), num_classes, progress,
                                                                        class_names)
            images = IMAGE_VALUES
            if labels and y is None:
                raise UserError(f"{spec}: its records have no label feature (an integer 'label' or "
                                "'image/class/label', or a class name in 'image/class/text')")
        elif path.is_dir() and (split := _split_folders(path)) is not None:  # DIR/train/<class>, DIR/val/<class>
            train, held = split
            x, y, classes, notes, fit, images = _read_image_dir(train, tuple(input_shape), num_classes, labels,
                                                                progress=progress, class_names=class_names)
            known = None if classes is None else {name: i for i, name in enumerate(classes)}
            parts = []
            for h in held:
                parts.append(_read_image_dir(h, tuple(input_shape), num_classes, labels, known, progress, class_names))
                if known is None and parts[-1][2] is not None:  # unlabelled training images, labelled held-out ones:
                    classes = parts[-1][2]  # the first held-out folder names the classes
                    known = {name: i for i, name in enumerate(classes)}
            x_test = np.concatenate([p[0] for p in parts])
            y_test = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
            notes = [*notes, *(n for part in parts for n in part[3] or ()),
                     f"{spec}: '{train.name}' is the training data, {' + '.join(repr(h.name) for h in held)} "
                     "the held-out split (halved into validation and test)"]
        elif path.is_dir():
            x, y, classes, notes, fit, images = _read_image_dir(path, tuple(input_shape), num_classes, labels,
                                                                progress=progress, class_names=class_names)
        elif path.suffix.lower() in (".csv", ".jsonl"):  # image files and their labels
            x, y, classes, notes, fit, images = _read_image_csv(path, tuple(input_shape), num_classes, progress,
                                                                class_names)
        elif path.suffix.lower() == ".npz":
            x, y, x_test, y_test = _read_npz(path, labels)
        elif path.suffix.lower() == ".npy":
            x, y = _read_npy(path, labels), None
        elif path.suffix.lower() in (".h5", ".hdf5"):  # arrays in HDF5, named as an npz's or by their words
            from lrfc.frontend import h5data

            x, y, x_test, y_test = h5data.read(path)
            if labels and y is None:
                raise UserError(f"{spec}: no dataset of labels beside the samples; expected 'y' (or 'y_train', "
                                "'labels', 'train_set_y')")
        else:
            raise UserError(f"{spec}: unsupported data format {path.suffix!r}; expected .npz, .h5, .npy (samples alone), "
                            "a .csv of image files and labels, a .tfrecord of tf.train.Example records, a folder of "
                            "images in class subfolders, or an archive of one (.zip, .tar.gz)")
    if images is None and (_named(y) or _named(y_test)):  # arrays whose labels are class names
        y, y_test, classes, notes = _name_labels(spec, y, y_test, num_classes, class_names)
    elif images is None and class_names is not None:  # class indices: the names only name them
        classes = tuple(class_names)
    y = _check(x, y, num_classes, min_samples, spec)
    x, values = _to_model(x, input_shape, contract, spec)
    if spec == "digits":
        values = "digits 0..16"
    elif images is not None:  # each file scaled by its bit depth: what they were, not the unit values they became
        values = images
    if x_test is not None:
        if y_test is None and labels:
            raise UserError(f"{spec}: has 'x_test' but no 'y_test'")
        y_test = _check(x_test, y_test, num_classes, 1, f"{spec} (test split)")
        x_test, _ = _to_model(x_test, input_shape, contract, f"{spec} (test split)")
    if images is None:  # arrays: one shape, fitted as they are read
        fit = describe_fit(np.shape(x.source)[1:], input_shape)
    return Dataset(spec, x, y, x_test, y_test, values=values, contract=contract, classes=classes, notes=tuple(notes or ()),
                   fit=fit)


def _from_archive(spec: str, packed: Path, inside: str, **kwargs) -> Dataset:
    """``load_data`` of what an archive holds (``frontend.archive``), named as the archive's in everything it says."""
    from dataclasses import replace

    with archive.extracted(packed, inside) as (target, root):
        try:
            ds = load_data(str(target), **kwargs)
        except UserError as exc:
            raise UserError(archive.shown(str(exc), root, packed)) from None
    return replace(ds, name=spec, notes=tuple(archive.shown(n, root, packed) for n in ds.notes),
                   fit=None if ds.fit is None else archive.shown(ds.fit, root, packed))
