"""``--data`` as an archive (``frontend.archive``): read as the folder or file it holds, named as the archive's in
everything said, its temporary extraction removed; the archives it cannot read refused in one line."""

from __future__ import annotations

import shutil
import tarfile
import tempfile
import zipfile

import numpy as np
import pytest

from lrfc.errors import UserError
from lrfc.frontend.data import load_data
from lrfc.options import check_data_spec


def _pngs(folder, count, value, prefix=""):
    import tensorflow as tf

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        img = np.full((8, 8, 1), value, np.uint8)
        img[0, 0] = i
        tf.io.write_file(str(folder / f"{prefix}{i}.png"), tf.io.encode_png(img))


def _zip(path, root, junk=()):
    with zipfile.ZipFile(path, "w") as z:
        for f in sorted(root.rglob("*")):
            z.write(f, f.relative_to(root.parent).as_posix())
        for name in junk:
            z.writestr(name, b"\x00\x05\x16\x07 resource fork")
    return path


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """The system's temporary folder, here: what extraction leaves behind is seen."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_a_tgz_and_a_zip_of_class_folders_read_as_the_folder(keras, tmp_path, scratch):
    """TensorFlow's flower_photos.tgz layout (one top folder of class folders), and the same as a zip made by macOS's
    Finder (``__MACOSX`` forks, a ``.DS_Store``): the samples, labels and classes of the folder itself; notes name the
    archive; nothing is left in the temporary folder."""
    src = tmp_path / "src" / "flower_photos"
    _pngs(src / "daisy", 6, 50)
    _pngs(src / "tulips", 6, 200)
    _pngs(src / "roses" / ".ipynb_checkpoints", 1, 0)  # hidden: left out, as in a folder
    _pngs(src / "roses", 10, 120)
    (src / "tulips" / "broken.png").write_bytes(b"not a png")
    folder = load_data(str(src), (8, 8, 1), num_classes=3)
    tgz = tmp_path / "flower_photos.tgz"
    with tarfile.open(tgz, "w:gz") as t:
        t.add(src, arcname="flower_photos")
    finder = _zip(tmp_path / "flowers.zip", src, junk=("__MACOSX/flower_photos/daisy/._0.png",
                                                       "flower_photos/.DS_Store"))
    for archive in (tgz, finder):
        ds = load_data(str(archive), (8, 8, 1), num_classes=3)
        assert ds.name == str(archive) and ds.classes == folder.classes == ("daisy", "roses", "tulips")
        assert np.array_equal(ds.y, folder.y) and np.array_equal(np.asarray(ds.x), np.asarray(folder.x))
        assert ds.notes == tuple(n.replace(str(src), f"{archive}/flower_photos") for n in folder.notes)
        assert ds.notes[0] == (f"{archive}/flower_photos: 1 of 23 image files do not decode and were left out "
                               "(first: tulips/broken.png: Unknown image file format. One of JPEG, JPEG XL, PNG, GIF, "
                               "BMP, WebP required.)")
        assert not list(scratch.iterdir())
    inside = load_data(f"{tgz}/flower_photos/roses", (8, 8, 1), labels=False)  # a path inside it: a part of it
    assert inside.y is None and len(inside.x) == 10 and not list(scratch.iterdir())


def test_a_path_inside_a_zip_names_kaggles_labels_csv_and_an_npz_alone_is_read_as_itself(keras, tmp_path, scratch):
    """Kaggle's download: labels.csv beside train/ and test/. The zip alone is a folder of unlabelled images whose
    note names the CSV inside the zip; that path then reads it. A zip holding one .npz reads as the .npz."""
    root = tmp_path / "src" / "dog-breed"
    _pngs(root / "train", 10, 90)
    _pngs(root / "test", 2, 90, prefix="unlabelled")
    (root / "labels.csv").write_text("id,breed\n" + "".join(f"{i},{'akita' if i % 2 else 'collie'}\n" for i in range(10)))
    kaggle = _zip(tmp_path / "dog-breed.zip", root)
    with pytest.raises(UserError, match=f"or a CSV of files and labels: --data {kaggle}/dog-breed/labels.csv$"):
        load_data(str(kaggle), (8, 8, 1), num_classes=2)
    check_data_spec(f"{kaggle}/dog-breed/labels.csv")  # preflight: under an archive, looked for once extracted
    ds = load_data(f"{kaggle}/dog-breed/labels.csv", (8, 8, 1), num_classes=2)
    assert ds.y.tolist() == [1, 0] * 5 and ds.classes == ("akita", "collie")
    assert ds.notes[0].startswith(f"{kaggle}/dog-breed/labels.csv: 10 images from column 'id' in train/")
    with pytest.raises(UserError, match=r"dog-breed.zip: holds no 'dog-breed/label.csv' \(at its top: dog-breed\)"):
        load_data(f"{kaggle}/dog-breed/label.csv", (8, 8, 1), num_classes=2)

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (20, 8, 8, 1), dtype=np.uint8), np.arange(20) % 2
    np.savez(tmp_path / "d.npz", x=x, y=y)
    with zipfile.ZipFile(tmp_path / "arrays.zip", "w") as z:
        z.write(tmp_path / "d.npz", "d.npz")
    arrays = load_data(str(tmp_path / "arrays.zip"), (8, 8, 1), num_classes=2)
    assert np.array_equal(arrays.y, y) and np.allclose(np.asarray(arrays.x), x / 255.0, atol=1e-6)
    assert not list(scratch.iterdir())


def test_archives_that_cannot_be_read_are_refused_in_one_line(tmp_path, scratch, monkeypatch):
    """Archives of archives (Kaggle's dogs-vs-cats.zip), damaged or empty archives, too little free space, a
    missing archive in preflight."""
    inner = tmp_path / "train.zip"
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("train/cat.0.jpg", b"x")
    with zipfile.ZipFile(tmp_path / "dogs-vs-cats.zip", "w") as z:
        z.write(inner, "train.zip")
        z.write(inner, "test1.zip")
    with pytest.raises(UserError, match=r"holds only other archives \(test1.zip, train.zip\); extract it"):
        load_data(str(tmp_path / "dogs-vs-cats.zip"), (8, 8, 1), num_classes=2)
    (tmp_path / "damaged.tar.gz").write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    with pytest.raises(UserError, match=r"damaged.tar.gz: cannot read the archive: "):
        load_data(str(tmp_path / "damaged.tar.gz"), (8, 8, 1), num_classes=2)
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as z:
        z.writestr("__MACOSX/._x", b"")
    with pytest.raises(UserError, match=r"empty.zip: the archive holds no files"):
        load_data(str(tmp_path / "empty.zip"), (8, 8, 1), num_classes=2)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10, 10, 1))
    with pytest.raises(UserError, match=r"train.zip: extracting it needs 0.0 GiB and .* has 0.0 GiB free; set TMPDIR"):
        load_data(str(inner), (8, 8, 1), num_classes=2)
    with pytest.raises(UserError, match="data not found: .*missing.zip/labels.csv"):
        check_data_spec(str(tmp_path / "missing.zip" / "labels.csv"))
    assert not list(scratch.iterdir())


def test_members_that_would_land_outside_the_folder_are_not_extracted(tmp_path, scratch):
    """A tar's absolute or ``..`` names (and a zip's, which ``ZipFile.extract`` would clean anyway) are left out:
    nothing of the archive is written outside its temporary folder."""
    import io

    from lrfc.frontend import archive

    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as t:
        for name in ("../escaped.png", "/abs.png", "data/sub/../../../up.png", "data/ok.png"):
            info = tarfile.TarInfo(name)
            info.size = 4
            t.addfile(info, io.BytesIO(b"\x89PNG"))
    assert [name for name, _ in archive._members(evil)] == ["data/ok.png"]
    with archive.extracted(evil) as (target, root):
        assert target == root / "data" and [p.name for p in target.iterdir()] == ["ok.png"]
    assert not list(scratch.iterdir()) and not (tmp_path / "escaped.png").exists() and not (tmp_path / "up.png").exists()
