"""The shape of ``--data``'s first sample, read cheaply, for messages that name a size the user can pass.

A model whose input size is undefined (``None x None``) is compiled at
``--input-shape``; when it is missing, the refusal names the size the data has
(``--data``'s images are 150x150x3), read from a header or one decoded image,
not the whole source. Anything unreadable gives None: the data's own errors
come when it is loaded.
"""

from __future__ import annotations

from pathlib import Path

from lrfc.common import npyfile

BUILTIN_SHAPES = {"fashion-mnist": (28, 28, 1), "digits": (8, 8, 1)}


def first_sample_shape(spec) -> tuple[int, ...] | None:
    """(H, W[, C]) of one sample of ``spec`` (a ``--data`` string), or None when it cannot be told cheaply."""
    if not isinstance(spec, str):
        return None
    if spec in BUILTIN_SHAPES:
        return BUILTIN_SHAPES[spec]
    try:
        return _first(Path(spec))
    except Exception:  # noqa: BLE001 - a hint only: the data's own errors come when it is loaded
        return None


def _first(path: Path) -> tuple[int, ...] | None:
    from lrfc.frontend import archive, labels_csv, tfrecord
    from lrfc.frontend.images import IMAGE_SUFFIXES

    if (packed := archive.split(str(path))) is not None:  # an archive's first image, read without extracting it
        content = archive.first_image(*packed)
        return None if content is None else _decoded(content)

    if tfrecord.is_tfrecord(path):
        files = tfrecord.splits(path)[0]
        return _decoded(tfrecord.first_image(files[0]))
    suffix = path.suffix.lower()
    if path.is_dir():
        first = _first_image(path, IMAGE_SUFFIXES)
        return None if first is None else _decoded(first.read_bytes())
    if suffix in (".csv", ".jsonl"):
        return _decoded(labels_csv.read(path).files[0].read_bytes())
    if suffix in (".h5", ".hdf5"):
        from lrfc.frontend import h5data

        return _sample(h5data.samples_shape(path))
    if suffix in (".npy", ".npz"):
        found = npyfile.shapes(path)
        shape = found.get("") or found.get("x") or found.get("x_train")
        return None if shape is None else _sample(shape)
    return None


def _first_image(folder: Path, suffixes: tuple[str, ...], depth: int = 3) -> Path | None:
    """The first image file under ``folder`` in name order, a folder at a time (an ImageNet-sized tree is not
    listed whole), at most ``depth`` folders down."""
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    for entry in entries:
        if entry.is_file() and entry.suffix.lower() in suffixes:
            return entry
    for entry in entries:
        if depth and entry.is_dir() and (found := _first_image(entry, suffixes, depth - 1)) is not None:
            return found
    return None


def _sample(shape: tuple) -> tuple[int, ...] | None:
    """One sample's shape from an array's: (H, W) images get no channel axis; (N, C, H, W) stays as stored."""
    return tuple(int(v) for v in shape[1:]) if len(shape) in (3, 4) else None


def _decoded(content: bytes) -> tuple[int, ...]:
    from lrfc.frontend.images import decode

    return tuple(int(v) for v in decode(content).shape)
