"""TFRecord files of ``tf.train.Example`` records (``--data``): a file, or a folder of shards as TFDS writes them.

The form TensorFlow input pipelines and TensorFlow Datasets keep images in:
each record a ``tf.train.Example`` holding one encoded image (PNG, JPEG, GIF or
BMP bytes) and its label. Which feature is which is found from the first
record: the image is the bytes feature whose value is an encoded image (TF's
``image/encoded``, TFDS's ``image``); the label is the integer feature named
as labels are (``label``, ``image/class/label``, ...), else the only integer
feature that is not a size (``height``, ``width``, ...); a text feature so
named (``image/class/text``) gives class names instead. Without either, the
records are unlabelled. GZIP-compressed files are read too.

A folder of shards named by split (``fashion_mnist-train.tfrecord-00000-of-00001``
beside ``fashion_mnist-test.tfrecord-...``, as TFDS prepares a dataset;
``train-00000-of-01024`` beside ``validation-...``, as TF's ImageNet scripts
write it) is the training data and the held-out split, as is a folder whose
``train/`` and ``val/`` (or ``test/``) folders hold shards (Kaggle's TPU
datasets, ``train/00-224x224-798.tfrec``; an unlabelled ``test/`` beside a
labelled ``val/`` is left out). This module reads the records alone;
``frontend.data`` decodes the images.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lrfc.errors import UserError

SUFFIXES = (".tfrecord", ".tfrecords", ".tfrec", ".record", ".records")  # .tfrec: Kaggle's TPU datasets
IMAGE_NAMES = ("image/encoded", "image", "image_raw", "img", "encoded", "image_bytes")
LABEL_NAMES = ("label", "image/class/label", "labels", "class", "class_id", "label_id", "image/label", "y", "target",
               "category")
TEXT_NAMES = ("image/class/text", "label", "class", "label_name", "class_name", "image/class/name")
SIZE_WORDS = ("height", "width", "depth", "channels", "shape", "size", "id", "index")
MAGIC = (b"\x89PNG", b"\xff\xd8", b"GIF8", b"BM", b"RIFF", b"II*\x00", b"MM\x00*")  # ... WebP, TIFF
_SHARD = re.compile(r"^(?:.*?[-_.])?(train|training|val|valid|validation|test|testing)"
                    r"(?:\.tfrec(?:ords?)?|\.records?)?(?:-\d+-of-\d+)?$", re.IGNORECASE)


@dataclass(frozen=True)
class Records:
    """One split's encoded images and labels (ints, or class names as text; None: unlabelled)."""

    images: tuple[bytes, ...]
    labels: tuple | None
    note: str


def is_tfrecord(path: Path) -> bool:
    """A TFRecord file, a folder of shards (by name: a TFRecord suffix, or ``NAME-SPLIT.tfrecord-N-of-M``), or a
    folder whose ``train/`` and ``val/`` (or ``test/``) folders hold shards (Kaggle's TPU datasets)."""
    if path.is_dir():
        return bool(_shards(path)) or _split_dirs(path) is not None
    return _is_shard(path.name)


def _split_dirs(path: Path) -> tuple[Path, list[Path]] | None:
    """``(train, [held-out...])`` folders of shards in ``path``, named as ``frontend.data``'s image folders are."""
    from lrfc.frontend.data import HELD_OUT_FOLDERS, TRAIN_FOLDERS

    named = [d for d in sorted(path.iterdir()) if d.name.lower() in (*TRAIN_FOLDERS, *HELD_OUT_FOLDERS)]
    dirs = [d for d in named if d.is_dir() and _shards(d)]  # by name first: a class folder's images are not listed
    train = [d for d in dirs if d.name.lower() in TRAIN_FOLDERS]
    held = [d for d in dirs if d.name.lower() in HELD_OUT_FOLDERS]
    return (train[0], held) if len(train) == 1 and held else None


def _is_shard(name: str) -> bool:
    lower = name.lower()
    return lower.endswith(SUFFIXES) or ".tfrec" in lower or bool(re.search(r"-\d{5}-of-\d{5}$", lower))


def _shards(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and _is_shard(p.name))


def splits(path: Path) -> tuple[list[Path], list[Path], str | None]:
    """The training files, the held-out ones (empty: none) and a note saying which is which, for a folder. A held-out
    folder without labels beside labelled ones (a competition's ``test/``) is left out, and the note says so."""
    if not path.is_dir():
        return [path], [], None
    files = _shards(path)
    if not files and (dirs := _split_dirs(path)) is not None:
        train, held = dirs
        labelled = [d for d in held if _labelled(_shards(d)[0])]
        dropped = [d.name for d in held if d not in labelled] if labelled else []
        held = labelled or held
        note = (f"{path}: '{train.name}' is the training data, {' + '.join(repr(d.name) for d in held)} the held-out "
                "split (halved into validation and test)" + (f"; {', '.join(repr(n) for n in dropped)} left out: its "
                                                             "records have no labels" if dropped else ""))
        return _shards(train), [f for d in held for f in _shards(d)], note
    train, held, other = [], [], []
    for f in files:
        split = _split_of(f.name)
        (train if split in ("train", "training") else held if split else other).append(f)
    if other or not train or not held:  # no split names, or one split only: all of it is the data
        return files, [], None
    names = sorted({_split_of(f.name) for f in held})
    return train, held, (f"{path}: {len(train)} training shard{'s' * (len(train) > 1)} are the training data, "
                         f"{' + '.join(names)} ({len(held)} shard{'s' * (len(held) > 1)}) the held-out split "
                         "(halved into validation and test)")


def _split_of(name: str) -> str | None:
    match = _SHARD.match(name)
    return match.group(1).lower() if match else None


def read(files: list[Path], where: str) -> Records:
    """Every record of ``files``: the image feature's bytes and the label feature's values."""
    import tensorflow as tf

    images, labels = [], []
    image_key = label_key = None
    for f in files:
        try:
            for n, raw in enumerate(_records(f)):
                example = tf.train.Example.FromString(raw)
                features = example.features.feature
                if image_key is None:
                    image_key, label_key = _keys(features, f)
                images.append(_value(features, image_key, f, n, image=True))
                if label_key is not None:
                    labels.append(_value(features, label_key, f, n))
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as exc:
            raise UserError(f"{f}: not a readable TFRecord file ({str(exc).strip().splitlines()[0]})") from exc
        except Exception as exc:  # protobuf's DecodeError: records that are not tf.train.Example
            if isinstance(exc, UserError):
                raise
            raise UserError(f"{f}: its records are not tf.train.Example protos ({type(exc).__name__}: {exc})") from exc
    if not images:
        raise UserError(f"{where}: no records")
    kind = "" if label_key is None else f", labels from '{label_key}'"
    note = (f"{where}: {len(images):,} records from {len(files)} file{'s' * (len(files) > 1)}, images from "
            f"'{image_key}'{kind}" + ("" if label_key is not None else " (no label feature: unlabelled)"))
    return Records(tuple(images), None if label_key is None else tuple(labels), note)


def _labelled(path: Path) -> bool:
    """Whether ``path``'s first record has a label (one that cannot be read counts as labelled: ``read`` says why)."""
    import tensorflow as tf

    try:
        features = tf.train.Example.FromString(next(_records(path))).features.feature
        return _keys(features, path)[1] is not None
    except Exception:  # noqa: BLE001 - reading the split names the fault
        return True


def first_image(path: Path) -> bytes:
    """The first record's encoded image (``frontend.peek``)."""
    import tensorflow as tf

    features = tf.train.Example.FromString(next(_records(path))).features.feature
    return features[_keys(features, path)[0]].bytes_list.value[0]


def _records(f: Path):
    """``f``'s serialized records, one at a time (a GZIP-compressed file too)."""
    import tensorflow as tf

    with open(f, "rb") as head:
        gzipped = head.read(2) == b"\x1f\x8b"
    return tf.data.TFRecordDataset(str(f), "GZIP" if gzipped else "").as_numpy_iterator()


def _keys(features, f: Path) -> tuple[str, str | None]:
    """The image feature and the label feature (None: unlabelled), from the first record."""
    encoded = [k for k in features if features[k].bytes_list.value
               and features[k].bytes_list.value[0].startswith(MAGIC)]
    if not encoded:
        shown = ", ".join(sorted(features)[:8])
        raw = [k for k in features if features[k].bytes_list.value]
        why = (f"; bytes feature{'s' * (len(raw) > 1)} {', '.join(repr(k) for k in raw[:3])} hold{'s' * (len(raw) == 1)} "
               "no encoded image (raw or serialized tensors): write the images with tf.io.encode_png or encode_jpeg"
               if raw else "")
        raise UserError(f"{f}: no feature holds an encoded image (PNG, JPEG, GIF, BMP, WebP, TIFF) in its first record "
                        f"(features: {shown}){why}")
    image = min(encoded, key=lambda k: (k not in IMAGE_NAMES, k))
    ints = [k for k in features if len(features[k].int64_list.value) == 1]
    named = [k for k in LABEL_NAMES if k in ints]
    if named:
        return image, named[0]
    plain = [k for k in ints if not set(re.split(r"[^a-z0-9]+", k.lower())) & set(SIZE_WORDS)]
    if len(plain) == 1:
        return image, plain[0]
    texts = [k for k in TEXT_NAMES if k in features and len(features[k].bytes_list.value) == 1 and k != image]
    return image, (texts[0] if texts else None)


def _value(features, key: str, f: Path, n: int, image: bool = False):
    """Record ``n``'s ``key``: an image's bytes, an integer label or a class name."""
    if key not in features:
        raise UserError(f"{f}: record {n + 1} has no feature '{key}', which the first record has")
    feature = features[key]
    if image:
        return feature.bytes_list.value[0] if feature.bytes_list.value else b""  # empty: left out as undecodable
    if feature.int64_list.value:
        return int(feature.int64_list.value[0])
    if feature.bytes_list.value:
        return feature.bytes_list.value[0].decode("utf-8", "replace")
    raise UserError(f"{f}: record {n + 1} has no value in '{key}'")
