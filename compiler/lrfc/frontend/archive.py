"""``--data`` as an archive: extracted into a temporary folder, read as what it holds, and removed.

Datasets are downloaded as archives: Kaggle's ``.zip`` files, TensorFlow's
``flower_photos.tgz``, the Oxford pets' ``images.tar.gz``. ``--data
flowers.tgz`` reads the archive as the folder it holds: its one top folder
when it has nothing else beside it (``flower_photos/daisy/...``), or the one
data file in it (an ``.npz``, a ``.csv``, TFRecords). A path inside the
archive names a part of it: ``--data dog-breed.zip/labels.csv``,
``--data flowers.tgz/flower_photos``. macOS's ``__MACOSX`` resource forks and
hidden files are not extracted; an archive holding only other archives
(Kaggle's ``dogs-vs-cats.zip``: ``train.zip``, ``test1.zip``) is named as such.

Extraction goes under the system's temporary folder (``TMPDIR``), after a
check that the archive's listed sizes fit the free space there, and the folder
is removed once the data is read (images are decoded into memory; an array
file stays readable through its open mapping). Names in messages read as the
archive's: ``flowers.tgz/flower_photos/daisy/1.jpg``, never the temporary
path.
"""

from __future__ import annotations

import contextlib
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from lrfc.errors import UserError

SUFFIXES = (".zip", ".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
JUNK = "__MACOSX"  # a zip made by macOS's Finder holds each file's resource fork under it
DATA_SUFFIXES = (".npz", ".npy", ".h5", ".hdf5", ".csv", ".jsonl", ".tfrecord", ".tfrec", ".tfrecords")
SPACE_MARGIN = 1.1  # the free space extraction needs: the listed sizes and this much more


def is_archive(path: Path) -> bool:
    """Whether ``path`` names an archive by its suffix (a file: ``split`` checks it exists)."""
    return path.name.lower().endswith(SUFFIXES)


def split(spec: str) -> tuple[Path, str] | None:
    """``(archive, path inside it)`` when ``spec`` is an archive file or a path under one (``""``: the archive
    itself); None otherwise (a path that exists as it is is never looked into)."""
    path = Path(spec)
    if path.exists():
        return (path, "") if path.is_file() and is_archive(path) else None
    for parent in path.parents:
        if parent.is_file() and is_archive(parent):
            return parent, path.relative_to(parent).as_posix()
        if parent.exists():
            return None
    return None


def _members(archive: Path) -> list[tuple[str, int]]:
    """``(name, size)`` of each regular file the archive holds, junk left out (``_wanted``)."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                return [(i.filename, i.file_size) for i in z.infolist() if not i.is_dir() and _wanted(i.filename)]
        with tarfile.open(archive) as t:
            return [(m.name, m.size) for m in t.getmembers() if m.isfile() and _wanted(m.name)]
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise UserError(f"{archive}: cannot read the archive: {str(exc).strip() or type(exc).__name__}") from exc


def _wanted(name: str) -> bool:
    """Not junk, not hidden, and inside the archive's folder (no absolute name, no ``..``: those start with '.')."""
    path = PurePosixPath(name)
    return not path.is_absolute() and not any(p == JUNK or p.startswith(".") for p in path.parts)


def _extract(archive: Path, members: list[tuple[str, int]], into: Path) -> None:
    names = {name for name, _ in members}
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:  # ZipFile.extract drops '..' and a leading '/'
            for name in names:
                z.extract(name, into)
        return
    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python 3.11.4 on; regular files only anyway
    with tarfile.open(archive) as t:  # the 'data' filter refuses paths and links that leave the folder
        t.extractall(into, members=[m for m in t.getmembers() if m.name in names], **safe)


def _data_root(root: Path, archive: Path) -> Path:
    """What the extracted archive holds: its one top folder (repeatedly) when nothing is beside it, or its one
    data file; else the folder itself."""
    while True:
        entries = [p for p in root.iterdir() if not p.name.startswith(".")]
        if len(entries) == 1 and entries[0].is_dir():
            root = entries[0]
            continue
        files = [p for p in entries if p.is_file()]
        if entries and len(files) == len(entries) and all(is_archive(p) for p in files):
            raise UserError(f"{archive}: holds only other archives ({', '.join(sorted(p.name for p in files)[:4])}); "
                            "extract it and pass the archive (or folder) that holds the data")
        data = [p for p in files if p.name.lower().endswith(DATA_SUFFIXES)]
        if len(data) == 1 and len(entries) == 1:
            return data[0]
        return root


@contextlib.contextmanager
def extracted(archive: Path, inside: str = "") -> Iterator[tuple[Path, Path]]:
    """``(what to read, the extraction folder)``: the archive extracted into a temporary folder (removed on
    leaving), and the data in it (``_data_root``), or the path ``inside`` it."""
    members = _members(archive)
    if not members:
        raise UserError(f"{archive}: the archive holds no files")
    tmp = Path(tempfile.gettempdir())
    need, free = sum(size for _, size in members), shutil.disk_usage(tmp).free
    if need * SPACE_MARGIN > free:
        raise UserError(f"{archive}: extracting it needs {need / 2**30:.1f} GiB and {tmp} has {free / 2**30:.1f} GiB "
                        "free; set TMPDIR to a folder with room, or extract it yourself and pass the folder")
    with tempfile.TemporaryDirectory(prefix="lrfc-data-") as scratch:
        root = Path(scratch) / archive.name
        root.mkdir()
        _extract(archive, members, root)
        if inside:
            target = root / inside
            if not target.exists():
                tops = sorted({PurePosixPath(name).parts[0] for name, _ in members})
                raise UserError(f"{archive}: holds no '{inside}' (at its top: {', '.join(tops[:6])}"
                                f"{', ...' if len(tops) > 6 else ''})")
        else:
            target = _data_root(root, archive)
        yield target, root


def first_image(archive: Path, inside: str = "") -> bytes | None:
    """The bytes of the archive's first image file under ``inside``, read without extracting it (``frontend.peek``):
    a zip's first by name, a tar's first as stored (a compressed tar is read only that far); None if it has none."""
    from lrfc.frontend.images import IMAGE_SUFFIXES

    def wanted(name: str) -> bool:
        under = not inside or name.startswith(inside.rstrip("/") + "/")
        return under and _wanted(name) and name.lower().endswith(IMAGE_SUFFIXES)

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            names = sorted(i.filename for i in z.infolist() if not i.is_dir() and wanted(i.filename))
            return z.read(names[0]) if names else None
    with tarfile.open(archive) as t:
        for member in t:
            if member.isfile() and wanted(member.name):
                return t.extractfile(member).read()
    return None


def shown(text: str, root: Path, archive: Path) -> str:
    """``text`` with the extraction folder ``root`` named as the archive (``flowers.tgz/flower_photos/...``)."""
    return text.replace(str(root), str(archive))
