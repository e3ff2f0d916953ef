"""A CSV that lists image files and their labels (``--data labels.csv``), or the same as JSON lines.

The form Kaggle's image datasets and Keras' ``flow_from_dataframe`` use: a
header, one column naming each image file and one holding its label::

    id,breed                      filename,class            image_id,healthy,rust,scab
    000bec18,boston_bull          cats/1.jpg,cat            Train_0,0,1,0
    001513df,dingo                dogs/7.jpg,dog            Train_1,1,0,0

Files are named relative to the CSV's folder (or absolutely); a name without
an image suffix gets the one that finds the file, and names that are all found
in one subfolder of the CSV's folder (Kaggle's ``labels.csv`` beside
``train/``) are read there. The label is a class index or a class name
(``frontend.data`` numbers them as it numbers an npz's), or a row of 0/1
columns, one per class, with a single 1 (one-hot; the headers name the
classes). Which column is which is found from the values, and from Keras'
names (``filename``, ``class``) and common ones where the values leave a choice.
Hugging Face's image folders list theirs as ``metadata.csv`` (read as any
CSV) or ``metadata.jsonl``, one JSON object per line (``{"file_name":
"0001.png", "label": 3}``): the first object's keys are the header.
This module reads the text alone; ``frontend.data`` reads the images.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from lrfc.errors import UserError
from lrfc.frontend.images import IMAGE_SUFFIXES

FILE_NAMES = ("filename", "file", "filepath", "file_name", "path", "image", "image_id", "image_name", "img", "id")
LABEL_NAMES = ("class", "label", "labels", "class_name", "category", "target", "y")
MAX_BYTES = 200 * 2**20  # a label list, not a dataset: 200 MiB is millions of rows


@dataclass(frozen=True)
class ListedImages:
    """The image files a CSV lists, each one's label as written (an index or a class name), and how it was read."""

    files: tuple[Path, ...]
    labels: tuple[str, ...]
    root: Path                      # the folder the names were read in
    classes: tuple[str, ...] | None  # one-hot columns' headers, in column order (the outputs' order); None otherwise
    note: str


def read(path: Path) -> ListedImages:
    """Read ``path``; anything that does not fit the form is refused in one line naming the line or column."""
    header, rows, lines = _rows(path)
    file_col, root, suffix = _file_column(path, header, rows)
    files = tuple(_resolve(root, row[file_col], suffix) for row in rows)
    missing = [i for i, f in enumerate(files) if not f.is_file()]
    if missing:
        first = missing[0]
        raise UserError(f"{path}: {len(missing):,} of {len(rows):,} listed images are not there (first: "
                        f"'{rows[first][file_col]}' on line {lines[first]}, looked for {files[first]})")
    others = [i for i in range(len(header)) if i != file_col]
    labels, classes, what = _labels(path, header, rows, others, lines)
    where = "" if root == path.parent else f" in {root.name}/"
    added = f", '{suffix}' added" if suffix else ""
    note = (f"{path}: {len(rows):,} images from column '{header[file_col]}'{where}{added}, labels from {what}")
    return ListedImages(files, labels, root, classes, note)


def _rows(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """The header, each row's stripped values, and each row's line in the file (blank lines, and rows of empty
    fields as spreadsheets end a sheet with, are left out but counted)."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise UserError(f"{path}: {path.stat().st_size / 2**20:,.0f} MiB is not a list of image files and labels")
        text = path.read_text(encoding="utf-8-sig")  # Excel writes a byte-order mark
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read it as text ({exc})") from exc
    first = next((line for line in text.splitlines() if line.strip()), None)
    if first is None:
        raise UserError(f"{path}: empty; expected a header and one line per image (file name, label)")
    if path.suffix.lower() == ".jsonl":
        return _json_lines(path, text)
    try:
        dialect = csv.Sniffer().sniff(first, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(text.splitlines(), dialect)
    parsed, numbers = [], []
    for row in reader:
        if any(v.strip() for v in row):
            parsed.append(row)
            numbers.append(reader.line_num)  # a quoted field over several lines: the line the row ends on
    if not parsed:  # rows of empty fields alone
        raise UserError(f"{path}: empty; expected a header and one line per image (file name, label)")
    header = [h.strip() for h in parsed[0]]
    if len(header) < 2:
        raise UserError(f"{path}: its header has one column ('{header[0]}'); expected a file-name column and a label "
                        "column (or one 0/1 column per class)")
    rows, lines = [[v.strip() for v in row] for row in parsed[1:]], numbers[1:]
    for n, row in zip(lines, rows):
        if len(row) != len(header):
            raise UserError(f"{path}: line {n} has {len(row)} fields; the header has {len(header)}")
    if not rows:
        raise UserError(f"{path}: a header and no images; expected one line per image (file name, label)")
    if any(_resolve(path.parent, h, s).is_file() for h in header for s in ("", *IMAGE_SUFFIXES) if h):
        raise UserError(f"{path}: its first line names an image file; the first line is the header (column names, "
                        "e.g. filename,class)")
    return header, rows, lines


def _json_lines(path: Path, text: str) -> tuple[list[str], list[list[str]], list[int]]:
    """``_rows`` of a JSON-lines list (Hugging Face's ``metadata.jsonl`` beside an image folder): one object per
    line; the first object's keys are the header, a key a line leaves out is an empty field."""
    import json

    objects, lines = [], []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: line {n} is not a JSON object ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise UserError(f"{path}: line {n} is not a JSON object (one per line: {{\"file_name\": ..., "
                            "\"label\": ...}})")
        objects.append(obj)
        lines.append(n)
    header = list(objects[0])
    if len(header) < 2:
        raise UserError(f"{path}: its objects have one key ('{header[0] if header else ''}'); expected a file-name key "
                        "and a label key")
    for n, obj in zip(lines, objects):
        several = next((k for k in header if isinstance(obj.get(k), (list, dict))), None)
        if several is not None:
            raise UserError(f"{path}: line {n}'s '{several}' holds {type(obj[several]).__name__}s; lrfc reads one "
                            "file name and one label per line")
    rows = [["" if obj.get(k) is None else str(obj[k]).strip() for k in header] for obj in objects]
    return header, rows, lines


def _resolve(root: Path, name: str, suffix: str) -> Path:
    return root / (name + suffix)  # an absolute name stays absolute


def _file_column(path: Path, header: list[str], rows: list[list[str]]) -> tuple[int, Path, str]:
    """The column naming the images, the folder they are in and the suffix to add. A column's first value chooses
    the folder (the CSV's or one of its subfolders) and suffix. A column named as files are (``filename``, ``id``,
    ...) whose first value finds one is it; else the first column whose every value finds one, a column named as
    labels are last (labels 0, 1 may find 0.png, 1.png); else the one that finds most (``read`` names the files
    that are not there)."""
    base = path.parent
    roots = [base, *sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))]
    for i, name in enumerate(header):
        if name.lower() in FILE_NAMES and (where := _place(rows[0][i], roots)) is not None:
            return i, *where
    best, best_found = None, 0
    for i in sorted(range(len(header)), key=lambda i: (header[i].lower() in LABEL_NAMES, i)):
        where = _place(rows[0][i], roots)
        if where is None:
            continue
        found = sum(_resolve(where[0], row[i], where[1]).is_file() for row in rows)
        if found == len(rows):
            return i, *where
        if found > best_found:
            best, best_found = (i, *where), found
    if best is not None:
        return best
    urls = [h for i, h in enumerate(header) if rows[0][i].lower().startswith(("http://", "https://", "gs://", "s3://"))]
    if urls:  # a source-URL column beside a file column is fine; URLs alone are not images lrfc can read
        raise UserError(f"{path}: column '{urls[0]}' holds URLs ({rows[0][header.index(urls[0])]}); lrfc reads local "
                        "image files: download them and list their paths")
    shown = ", ".join(f"'{h}'" for h in header[:6])
    raise UserError(f"{path}: no column names an image file (columns {shown}; first line's values "
                    f"{', '.join(repr(v) for v in rows[0][:6])}); expected file names relative to {base} or one of "
                    "its subfolders")


def _place(name: str, roots: list[Path]) -> tuple[Path, str] | None:
    """The folder among ``roots`` and the suffix (none, or an image suffix added) that make ``name`` an image file."""
    if not name:
        return None
    for root in roots:
        for suffix in ("", *IMAGE_SUFFIXES, *(s.upper() for s in IMAGE_SUFFIXES)):
            found = _resolve(root, name, suffix)
            if found.suffix.lower() in IMAGE_SUFFIXES and found.is_file():
                return root, suffix
    return None


def _labels(path: Path, header: list[str], rows: list[list[str]], others: list[int], lines: list[int]):
    """Each row's label (text), one-hot columns' class names, and which column(s) gave them; ``lines``: each row's
    line in the file, for the refusals."""
    if len(others) > 1 and all(_binary(rows, i) for i in others):
        ones = [[i for i in others if float(row[i]) == 1] for row in rows]
        several = next((i for i, hot in enumerate(ones) if len(hot) != 1), None)
        if several is None:
            classes = tuple(header[i] for i in others)
            what = f"{len(others)} one-hot columns ({', '.join(classes[:4])}{', ...' if len(classes) > 4 else ''})"
            return tuple(header[hot[0]] for hot in ones), classes, what
        count = len(ones[several])
        raise UserError(f"{path}: line {lines[several]} has {count} classes marked 1 among the 0/1 columns "
                        f"({', '.join(header[i] for i in others[:4])}{', ...' if len(others) > 4 else ''}); lrfc "
                        "compiles single-label classifiers: one 1 per line")
    if len(others) == 1:
        col = others[0]
    else:
        named = [i for i in others if header[i].lower() in LABEL_NAMES]
        if len(named) != 1:
            shown = ", ".join(f"'{header[i]}'" for i in others[:6])
            raise UserError(f"{path}: columns {shown} could each be the label; name the label column 'class' (as Keras' "
                            "flow_from_dataframe) or 'label', or keep only the file and label columns")
        col = named[0]
    empty = next((n for n, row in zip(lines, rows) if not row[col]), None)
    if empty is not None:
        raise UserError(f"{path}: line {empty} has no label (column '{header[col]}')")
    labels = tuple(row[col] for row in rows)
    return labels, None, f"column '{header[col]}'"


def _binary(rows: list[list[str]], col: int) -> bool:
    return all(row[col] in ("0", "1", "0.0", "1.0") for row in rows)
