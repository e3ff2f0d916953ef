"""`--data`: built-in datasets, npz, image folders, the mapping rule and refusals."""

from __future__ import annotations

import numpy as np
import pytest

from lrfc.frontend.data import describe_fit, fit_to_input, load_data, read_fashion_mnist
from lrfc.errors import UserError


def test_fashion_mnist_is_the_real_dataset():
    x, y, xt, yt = read_fashion_mnist()
    assert x.shape == (60000, 28, 28) and xt.shape == (10000, 28, 28)
    assert x.dtype == np.uint8 and x.max() == 255
    assert np.bincount(y).tolist() == [6000] * 10
    assert np.bincount(yt).tolist() == [1000] * 10


def test_fashion_mnist_mapped_to_cifar_shape_pads_and_repeats():
    ds = load_data("fashion-mnist", (32, 32, 3), num_classes=10)
    assert ds.x.shape == (60000, 32, 32, 3) and ds.x_test.shape == (10000, 32, 32, 3)
    assert ds.x.dtype == np.float32 and 0.0 <= ds.x.min() and ds.x.max() == 1.0
    raw = read_fashion_mnist()[0][0].astype(np.float32) / 255.0
    np.testing.assert_array_equal(ds.x[0, 2:30, 2:30, 1], raw)  # centred zero padding, channel repeated
    assert ds.x[0, :2].max() == 0.0
    assert ds.fit == "28x28 images fitted to the model's 32x32x3: the channel repeated, zero-padded, centred"
    assert load_data("fashion-mnist", (28, 28, 1), num_classes=10).fit is None  # a channel axis alone: not news


def test_digits_scaled_and_flattened_for_an_mlp():
    ds = load_data("digits", (64,), num_classes=10)
    assert ds.x.shape == (1797, 64) and ds.x.max() == 1.0 and ds.x_test is None
    assert ds.summary()["classes"] == 10


def test_npz_with_test_split(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 256, (40, 12, 12, 3), dtype=np.uint8), y=rng.integers(0, 5, 40),
             x_test=rng.integers(0, 256, (8, 12, 12, 3), dtype=np.uint8), y_test=rng.integers(0, 5, 8))
    ds = load_data(str(tmp_path / "d.npz"), (12, 12, 1), num_classes=5)
    assert ds.x.shape == (40, 12, 12, 1) and ds.x_test.shape == (8, 12, 12, 1)
    assert ds.x.max() <= 1.0


def test_an_npz_in_keras_dataset_layout_x_train_y_train(tmp_path):
    """Keras' own dataset files (mnist.npz) name the arrays x_train, y_train, x_test, y_test."""
    rng = np.random.default_rng(3)
    np.savez(tmp_path / "mnist.npz", x_train=rng.integers(0, 256, (30, 8, 8), dtype=np.uint8), y_train=np.arange(30) % 3,
             x_test=rng.integers(0, 256, (12, 8, 8), dtype=np.uint8), y_test=np.arange(12) % 3)
    ds = load_data(str(tmp_path / "mnist.npz"), (8, 8, 1), num_classes=3)
    assert ds.x.shape == (30, 8, 8, 1) and ds.y.tolist() == (np.arange(30) % 3).tolist()
    assert ds.x_test.shape == (12, 8, 8, 1) and ds.y_test.tolist() == (np.arange(12) % 3).tolist()


def test_image_folder(keras, tmp_path):
    import tensorflow as tf

    rng = np.random.default_rng(1)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(6):
            img = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
            tf.io.write_file(str(tmp_path / cls / f"{i}.png"), tf.io.encode_png(img))
    (tmp_path / "cat" / "notes.txt").write_text("ignored")
    ds = load_data(str(tmp_path), (16, 16, 3), num_classes=2)
    assert ds.x.shape == (12, 16, 16, 3)
    assert ds.y.tolist() == [0] * 6 + [1] * 6  # sorted class folders: cat=0, dog=1
    assert ds.fit == "20x24x3 images fitted to the model's 16x16x3: resized bilinearly"
    tf.io.write_file(str(tmp_path / "dog" / "odd.png"), tf.io.encode_png(rng.integers(0, 256, (16, 16, 1), dtype=np.uint8)))
    small = rng.integers(1, 256, (14, 14, 3), dtype=np.uint8)  # no zero pixel: a zero border can only be padding
    tf.io.write_file(str(tmp_path / "dog" / "small.png"), tf.io.encode_png(small))
    mixed = load_data(str(tmp_path), (16, 16, 3), num_classes=2)
    assert mixed.fit == (
        "images of 3 shapes (20x24x3, 16x16x1, 14x14x3) resized bilinearly to the model's 16x16x3, each one (as "
        "keras.utils.image_dataset_from_directory does; one size for all would be zero-padded where close)")
    want = tf.image.resize(small[None].astype(np.float32) / 255, (16, 16), method="bilinear").numpy()[0]
    # cat 0..5, dog 0..5, odd, small (sorted names); held as 8-bit pixels: within half a level of the resize
    np.testing.assert_allclose(mixed.x[13], want, atol=0.5 / 255 + 1e-6)
    assert mixed.x.source.dtype == np.uint8 and mixed.values == "8-bit images"
    only = tmp_path / "only"
    (only / "dog").mkdir(parents=True)
    for i in range(3):
        tf.io.write_file(str(only / "dog" / f"{i}.png"), tf.io.encode_png(small))
    alike = load_data(str(only), (16, 16, 3), num_classes=None, min_samples=3)
    assert alike.fit == "14x14x3 images fitted to the model's 16x16x3: zero-padded, centred"
    assert alike.x[0][0].max() == 0.0 and alike.x[0][1:15, 1:15].min() > 0.0


def test_a_class_folders_subfolders_are_read_and_hidden_ones_left_out(keras, tmp_path):
    """``cat/2019/*.png`` belongs to cat, as image_dataset_from_directory reads it; ``.ipynb_checkpoints`` does not."""
    import tensorflow as tf

    img = tf.io.encode_png(np.full((8, 8, 1), 9, np.uint8))
    for rel in ("cat/a.png", "cat/2019/b.png", "cat/2019/jan/c.png", "dog/d.png", "dog/.ipynb_checkpoints/e.png",
                "dog/.f.png", "dog/notes/readme.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        tf.io.write_file(str(tmp_path / rel), img)
    seen = []

    class Bar:  # BuildState.progress's shape: a context manager whose update counts files
        def __init__(self, label, total, transient):
            seen.append((label, total, transient))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, n):
            seen.append(n)

    ds = load_data(str(tmp_path), (8, 8, 1), num_classes=2, min_samples=4, progress=Bar)
    assert ds.y.tolist() == [0, 0, 0, 1] and ds.classes == ("cat", "dog")
    assert seen == [(f"reading {tmp_path.name}", 4, True), 1, 1, 1, 1]  # a transient bar over the four files


def test_an_image_that_does_not_decode_is_left_out_and_said(keras, tmp_path):
    """One damaged file among many (Kaggle's cats and dogs has some) costs that file, with a warning; a folder where
    nothing decodes is refused."""
    import tensorflow as tf

    for i in range(10):
        (tmp_path / "ok" / "0").mkdir(parents=True, exist_ok=True)
        tf.io.write_file(str(tmp_path / "ok" / "0" / f"{i}.png"), tf.io.encode_png(np.zeros((8, 8, 1), np.uint8)))
    (tmp_path / "ok" / "0" / "666.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    ds = load_data(str(tmp_path / "ok"), (8, 8, 1), num_classes=1)
    assert len(ds.x) == 10
    assert ds.notes[-1].startswith(f"{tmp_path / 'ok'}: 1 of 11 image files do not decode and were left out (first: "
                                   "0/666.jpg: ")
    (tmp_path / "bad" / "0").mkdir(parents=True)
    (tmp_path / "bad" / "0" / "1.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match=r"cannot decode images: none of its 1 image files decodes \(first: 0/1.png: "):
        load_data(str(tmp_path / "bad"), (8, 8, 1), num_classes=1)


def test_image_files_are_scaled_by_their_bit_depth_not_their_own_range(keras, tmp_path):
    """A dark 8-bit image (its brightest pixel 1) stays dark: 1/255, not 1.0, as it was when each file's own range
    chose its scale; a 16-bit PNG is decoded to 8 bits."""
    import tensorflow as tf

    (tmp_path / "a").mkdir()
    dark = np.zeros((8, 8, 1), np.uint8)
    dark[2, 3] = 1
    for i in range(10):
        tf.io.write_file(str(tmp_path / "a" / f"{i}.png"), tf.io.encode_png(dark if i else dark * 200))
    ds = load_data(str(tmp_path), (8, 8, 1), num_classes=1)
    assert ds.values == "8-bit images"
    assert ds.x[1].max() == pytest.approx(1 / 255) and ds.x[0].max() == pytest.approx(200 / 255)
    deep = np.zeros((8, 8, 1), np.uint16)
    deep[0, 0] = 257
    tf.io.write_file(str(tmp_path / "a" / "deep.png"), tf.io.encode_png(deep))
    both = load_data(str(tmp_path), (8, 8, 1), num_classes=1)  # decoded to 8 bits, as Keras' image loaders do
    assert both.values == "8-bit images" and both.x[10].max() == pytest.approx(1 / 255)


def test_an_image_folder_split_into_train_and_held_out_folders(keras, tmp_path):
    """DIR/train/<class>, DIR/val/<class>, DIR/test/<class>: train is the training data, val and test together the
    held-out split, labelled by the training folder's classes (val lacks 'dog': 'eel' stays 2)."""
    import tensorflow as tf

    rng = np.random.default_rng(2)
    for split, classes, n in (("train", ("cat", "dog", "eel"), 4), ("val", ("cat", "eel"), 2), ("test", ("eel",), 3)):
        for cls in classes:
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 256, (8, 8, 1), dtype=np.uint8)
                tf.io.write_file(str(tmp_path / split / cls / f"{i}.png"), tf.io.encode_png(img))
    ds = load_data(str(tmp_path), (8, 8, 1), num_classes=3)
    assert ds.x.shape == (12, 8, 8, 1) and ds.y.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert ds.x_test.shape == (7, 8, 8, 1) and ds.y_test.tolist() == [2] * 3 + [0] * 2 + [2] * 2  # test, then val
    assert ds.classes == ("cat", "dog", "eel")
    assert "'train' is the training data, 'test' + 'val' the held-out split" in ds.notes[-1]
    (tmp_path / "val" / "fox").mkdir()
    with pytest.raises(UserError, match="class folder 'fox' is not among the training folder's classes"):
        load_data(str(tmp_path), (8, 8, 1), num_classes=3)


def test_describe_fit_says_what_the_mapping_rule_does():
    assert describe_fit((28, 28, 1), (28, 28, 1)) is None and describe_fit((28, 28), (28, 28, 1)) is None
    assert describe_fit((224, 224, 3), (32, 32, 3)) == "224x224x3 images fitted to the model's 32x32x3: resized bilinearly"
    assert describe_fit((32, 32, 4), (32, 32, 1)) == (
        "32x32x4 images fitted to the model's 32x32x1: converted to grey (BT.601 luma)")
    assert describe_fit((30, 30, 4), (32, 32, 3)) == (
        "30x30x4 images fitted to the model's 32x32x3: alpha dropped, zero-padded, centred")
    assert describe_fit((8, 8), (64,)) == "8x8 samples flattened to 64"
    assert describe_fit((28, 28, 1), (28, 28)) is None  # the channel axis dropped for a model of rows
    assert describe_fit((1, 28, 28), (28, 28, 1)) == (  # as PyTorch code stores images
        "1x28x28 samples read as channels-first (C, H, W) and moved to channels-last (28x28x1)")
    assert describe_fit((3, 224, 224), (32, 32, 3)) == (
        "3x224x224 samples read as channels-first (C, H, W) and moved to channels-last; then resized bilinearly")


def test_mapping_rule():
    grey = np.zeros((2, 20, 20), np.uint8)
    assert fit_to_input(grey, (20, 20, 3)).shape == (2, 20, 20, 3)
    rgb = np.ones((2, 10, 10, 3), np.float32)
    np.testing.assert_allclose(fit_to_input(rgb, (10, 10, 1)), 1.0, rtol=1e-6)  # luma of white is white
    assert fit_to_input(np.zeros((2, 8, 8, 1), np.float32), (32, 32, 1)).shape == (2, 32, 32, 1)  # resized, too small to pad
    planes = np.arange(2 * 3 * 5 * 6, dtype=np.float32).reshape(2, 3, 5, 6)  # channels-first
    np.testing.assert_array_equal(fit_to_input(planes, (5, 6, 3)), planes.transpose(0, 2, 3, 1))
    assert fit_to_input(np.zeros((2, 3, 20, 20), np.float32), (20, 20, 1)).shape == (2, 20, 20, 1)  # then to grey
    rows = np.arange(2 * 28 * 28, dtype=np.float32).reshape(2, 28, 28, 1)
    np.testing.assert_array_equal(fit_to_input(rows, (28, 28)), rows[..., 0])  # grey images to a Conv1D model's rows
    with pytest.raises(UserError, match=r"samples of shape \(28, 28, 3\) cannot be mapped to the model input \(28, 28\)"):
        fit_to_input(np.zeros((2, 28, 28, 3), np.float32), (28, 28))
    with pytest.raises(UserError, match=r"samples of shape \(5, 7\) cannot be mapped to the model input \(6,\)"):
        fit_to_input(np.zeros((3, 5, 7), np.float32), (6,))


def _npz(tmp_path, x, y, name="d.npz"):
    np.savez(tmp_path / name, x=x, y=y)
    return str(tmp_path / name)


def test_refusals(tmp_path):
    x = np.random.default_rng(0).random((20, 4, 4, 1)).astype(np.float32)
    y = np.arange(20) % 3
    bad = x.copy()
    bad[3, 0, 0, 0] = np.nan
    with pytest.raises(UserError, match="NaN or Inf"):
        load_data(_npz(tmp_path, bad, y), (4, 4, 1), 3)
    with pytest.raises(UserError, match=r"labels span 0..2; the model has 2 classes \(0..1\)$"):
        load_data(_npz(tmp_path, x, y), (4, 4, 1), 2)
    with pytest.raises(UserError, match=r"labels span 1..3; the model has 3 classes \(0..2\); numbered from 1\? give "
                                        r"them from 0 \(y - 1\)"):
        load_data(_npz(tmp_path, x, y + 1), (4, 4, 1), 3)
    with pytest.raises(UserError, match="5 samples; at least 10 are needed"):
        load_data(_npz(tmp_path, x[:5], y[:5]), (4, 4, 1), 3)
    with pytest.raises(UserError, match="20 samples but 19 labels"):
        load_data(_npz(tmp_path, x, y[:19]), (4, 4, 1), 3)
    np.savez(tmp_path / "nox.npz", images=x, y=y)
    with pytest.raises(UserError, match=r"no array 'x' \(found: images, y\)"):
        load_data(str(tmp_path / "nox.npz"), (4, 4, 1), 3)
    with pytest.raises(UserError, match="data not found: nowhere.npz"):
        load_data("nowhere.npz", (4, 4, 1), 3)
    (tmp_path / "d.txt").write_text("1,2")
    with pytest.raises(UserError, match="unsupported data format '.txt'; expected .npz, .h5, .npy"):
        load_data(str(tmp_path / "d.txt"), (4, 4, 1), 3)


def test_labels_as_class_names_are_numbered_as_class_folders_are_or_by_class_names(tmp_path):
    """An npz whose ``y`` holds names: sorted and numbered 0..N-1 (a note shows how), whole numbers written as text
    are the indices they spell, and ``class_names`` (``--class-names``) numbers them in the model's order."""
    x = np.random.default_rng(0).integers(0, 256, (12, 4, 4), dtype=np.uint8)
    names = np.array(["dog", "cat", "eel"] * 4)
    np.savez(tmp_path / "named.npz", x=x, y=names, x_test=x[:6], y_test=names[:6].astype("S"))  # bytes too
    ds = load_data(str(tmp_path / "named.npz"), (4, 4, 1), 3)
    assert ds.y.tolist() == [1, 0, 2] * 4 and ds.y_test.tolist() == [1, 0, 2] * 2 and ds.classes == ("cat", "dog", "eel")
    assert ds.notes == (f"{tmp_path / 'named.npz'}: labels are class names, numbered 'cat' = 0, 'dog' = 1, 'eel' = 2 "
                        "(sorted, as class folders are; --class-names gives the model's order)",)
    given = load_data(str(tmp_path / "named.npz"), (4, 4, 1), 3, class_names=("eel", "dog", "cat"))
    assert given.y.tolist() == [1, 2, 0] * 4 and given.classes == ("eel", "dog", "cat") and given.notes == ()
    np.savez(tmp_path / "digits.npz", x=x, y=np.array([str(v) for v in np.arange(12) % 3]))
    spelled = load_data(str(tmp_path / "digits.npz"), (4, 4, 1), 3)
    assert spelled.y.tolist() == (np.arange(12) % 3).tolist() and spelled.notes == ()
    with pytest.raises(UserError, match=r"label '0' is not among --class-names \(b, a, c\)"):  # names, given names
        load_data(str(tmp_path / "digits.npz"), (4, 4, 1), 3, class_names=("b", "a", "c"))
    np.savez(tmp_path / "ints.npz", x=x, y=np.arange(12) % 3)  # indices: the names only name them
    indexed = load_data(str(tmp_path / "ints.npz"), (4, 4, 1), 3, class_names=("b", "a", "c"))
    assert indexed.y.tolist() == (np.arange(12) % 3).tolist() and indexed.classes == ("b", "a", "c")
    np.savez(tmp_path / "two.npz", x=x, y=np.array(["dog", "cat"] * 6))
    with pytest.raises(UserError, match=r"2 class names \(cat, dog\) but the model has 3 classes: sorted names"):
        load_data(str(tmp_path / "two.npz"), (4, 4, 1), 3)
    with pytest.raises(UserError, match="--class-names: received 2 names; the model has 3 classes"):
        load_data(str(tmp_path / "named.npz"), (4, 4, 1), 3, class_names=("cat", "dog"))
    with pytest.raises(UserError, match="--class-names: 'cat' is given twice"):
        load_data(str(tmp_path / "named.npz"), (4, 4, 1), 3, class_names=("cat", "dog", "cat"))
    np.savez(tmp_path / "mixed.npz", x=x, y=names, x_test=x[:6], y_test=np.arange(6) % 3)
    with pytest.raises(UserError, match=r"\(test split\): labels have dtype int64 beside class names"):
        load_data(str(tmp_path / "mixed.npz"), (4, 4, 1), 3)


def test_a_folders_classes_numbered_by_class_names(keras, tmp_path):
    import tensorflow as tf

    img = np.random.default_rng(2).integers(0, 256, (8, 8, 1), dtype=np.uint8)
    for cls in ("cat", "dog", "eel"):
        (tmp_path / cls).mkdir()
        tf.io.write_file(str(tmp_path / cls / "0.png"), tf.io.encode_png(img))
    ds = load_data(str(tmp_path), (8, 8, 1), 3, min_samples=3, class_names=("eel", "cat", "dog"))
    assert ds.y.tolist() == [1, 2, 0] and ds.classes == ("eel", "cat", "dog")  # files read cat, dog, eel
    with pytest.raises(UserError, match=r"class folder 'dog' is not among --class-names \(eel, cat, fox\)"):
        load_data(str(tmp_path), (8, 8, 1), 3, min_samples=3, class_names=("eel", "cat", "fox"))
    for cls in ("cat", "dog"):  # some of the model's classes (ImageNet's folders, a few of them): numbered the same
        (tmp_path / "some" / cls).mkdir(parents=True)
        tf.io.write_file(str(tmp_path / "some" / cls / "0.png"), tf.io.encode_png(img))
    some = load_data(str(tmp_path / "some"), (8, 8, 1), 3, min_samples=2, class_names=("eel", "cat", "dog"))
    assert some.y.tolist() == [1, 2] and some.classes == ("eel", "cat", "dog")


def test_an_npy_file_is_samples_alone(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (15, 6, 6), dtype=np.uint8)
    np.save(tmp_path / "x.npy", x)
    ds = load_data(str(tmp_path / "x.npy"), (6, 6, 1), 10, labels=False)
    assert ds.y is None and ds.x.shape == (15, 6, 6, 1) and ds.values == "uint8 0..255"
    with pytest.raises(UserError, match="a .npy file holds samples alone, no labels"):
        load_data(str(tmp_path / "x.npy"), (6, 6, 1), 10)


def test_class_folders_numbered_from_one_are_told_to_start_at_zero(keras, tmp_path):
    import tensorflow as tf

    img = np.zeros((8, 8, 1), dtype=np.uint8)
    for cls in ("1", "2", "3"):
        (tmp_path / cls).mkdir()
        tf.io.write_file(str(tmp_path / cls / "0.png"), tf.io.encode_png(img))
    with pytest.raises(UserError, match=r"class folder '3' names class 3; the model has 3 classes \(0..2\); numbered "
                                        "from 1\\? number them from 0$"):
        load_data(str(tmp_path), (8, 8, 1), 3, min_samples=3)


def test_class_names_from_a_list_or_a_file(tmp_path):
    import json

    from lrfc.frontend.data import read_class_names

    assert read_class_names(None) is None and read_class_names("cat, dog,eel") == ("cat", "dog", "eel")
    (tmp_path / "names.txt").write_text("cat\n dog\n\neel\n")
    assert read_class_names(str(tmp_path / "names.txt")) == ("cat", "dog", "eel")
    index = {str(i): [f"n0{i}", f"name {i}"] for i in range(12)}  # Keras' imagenet_class_index.json: by output index
    (tmp_path / "index.json").write_text(json.dumps(index))
    assert read_class_names(str(tmp_path / "index.json")) == tuple(f"n0{i}" for i in range(12))  # 10 after 9
    (tmp_path / "list.json").write_text(json.dumps(["b", "a"]))
    assert read_class_names(str(tmp_path / "list.json")) == ("b", "a")
    (tmp_path / "bad.json").write_text(json.dumps({"first": "cat"}))
    with pytest.raises(UserError, match="is not a JSON list of class names or an object from output index"):
        read_class_names(str(tmp_path / "bad.json"))


def _pngs(folder, names, seed=0):
    """One 8x8 grey PNG per name (its first pixel the name's index, so which image is which can be checked)."""
    import tensorflow as tf

    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        img = np.full((8, 8, 1), 100, np.uint8)
        img[0, 0] = i
        tf.io.write_file(str(folder / name), tf.io.encode_png(img))


def test_a_csv_of_image_files_and_labels_kaggle_and_keras_layouts(keras, tmp_path):
    """Kaggle's labels.csv beside train/ (ids without suffix; test/'s unlabelled images beside it), Keras'
    flow_from_dataframe columns (filename, class) among others, and one-hot columns in the outputs' order."""
    ids = [f"im{i:02d}" for i in range(12)]
    _pngs(tmp_path / "kaggle" / "train", [f"{i}.png" for i in ids])
    _pngs(tmp_path / "kaggle" / "test", ["other.png"])
    breeds = ["dingo", "akita", "collie"] * 4
    (tmp_path / "kaggle" / "labels.csv").write_text("id,breed\n" + "".join(f"{i},{b}\n" for i, b in zip(ids, breeds)))
    ds = load_data(str(tmp_path / "kaggle" / "labels.csv"), (8, 8, 1), num_classes=3)
    assert ds.y.tolist() == [2, 0, 1] * 4 and ds.classes == ("akita", "collie", "dingo")  # sorted, as folders are
    assert [round(float(ds.x[i][0, 0, 0]) * 255) for i in range(3)] == [0, 1, 2]  # the file each line names, in order
    assert ds.notes[0] == f"{tmp_path / 'kaggle' / 'labels.csv'}: 12 images from column 'id' in train/, '.png' added, " \
                          "labels from column 'breed'"
    assert "labels are class names, numbered 'akita' = 0, 'collie' = 1, 'dingo' = 2" in ds.notes[1]
    given = load_data(str(tmp_path / "kaggle" / "labels.csv"), (8, 8, 1), 3, class_names=("dingo", "akita", "collie"))
    assert given.y.tolist() == [0, 1, 2] * 4

    _pngs(tmp_path / "keras" / "cats", [f"{i}.png" for i in range(5)])
    _pngs(tmp_path / "keras" / "dogs", [f"{i}.png" for i in range(5)])
    lines = [f"{animal}s/{i}.png,{n},{animal},{i % 2},https://example.com/{n}.jpg" for n, (animal, i) in
             enumerate((a, i) for a in ("cat", "dog") for i in range(5))]  # a source URL beside the file: fine
    (tmp_path / "keras" / "frame.csv").write_text("filename,row,class,fold,url\n" + "\n".join(lines))
    frame = load_data(str(tmp_path / "keras" / "frame.csv"), (8, 8, 1), num_classes=2)
    assert frame.y.tolist() == [0] * 5 + [1] * 5 and frame.classes == ("cat", "dog")

    _pngs(tmp_path / "leaves" / "images", [f"Train_{i}.jpg" for i in range(10)])  # PNG bytes: decoded by content
    hot = ["0,1,0", "1,0,0", "0,0,1"]
    (tmp_path / "leaves" / "train.csv").write_text(
        "image_id,healthy,rust,scab\n" + "".join(f"Train_{i},{hot[i % 3]}\n" for i in range(10)))
    leaves = load_data(str(tmp_path / "leaves" / "train.csv"), (8, 8, 1), num_classes=3)
    assert leaves.y.tolist() == [1, 0, 2, 1, 0, 2, 1, 0, 2, 1] and leaves.classes == ("healthy", "rust", "scab")
    assert "labels from 3 one-hot columns (healthy, rust, scab)" in leaves.notes[0]
    with pytest.raises(UserError, match=r"3 one-hot columns \(healthy, rust, scab\) but the model has 4 classes"):
        load_data(str(tmp_path / "leaves" / "train.csv"), (8, 8, 1), num_classes=4)


def test_a_csv_that_does_not_fit_the_form_is_refused_naming_the_line_or_column(keras, tmp_path):
    _pngs(tmp_path, [f"{i}.png" for i in range(10)])
    (tmp_path / "broken.png").write_bytes(b"not a png")

    def refused(text, match, name="l.csv"):
        (tmp_path / name).write_text(text)
        with pytest.raises(UserError, match=match):
            load_data(str(tmp_path / name), (8, 8, 1), num_classes=2)

    rows = "".join(f"{i}.png,{i % 2}\n" for i in range(10))
    refused("file,label\n" + rows + "11.png,0\n12.png,1\n", r"2 of 12 listed images are not there \(first: '11.png' on "
                                                             "line 12, looked for ")
    refused("file,grade,score\n" + "".join(f"{i}.png,{i % 2},{i}\n" for i in range(10)),
            r"columns 'grade', 'score' could each be the label; name the label column 'class'")
    refused("name,a,b\n" + "".join(f"{i}.png,{i % 2},{1 - i % 2}\n" for i in range(9)) + "9.png,1,1\n",
            "line 11 has 2 classes marked 1 among the 0/1 columns .* single-label classifiers")
    refused("file,label\n0.png,1\n1.png\n", "line 3 has 1 fields; the header has 2")
    refused("file,label\n\n0.png,1\n\n1.png\n", "line 5 has 1 fields")  # blank lines are counted, not read
    refused("file,label\n" + rows + "\n11.png,0\n", r"1 of 11 listed images are not there \(first: '11.png' on line 13")
    refused("file,label\n0.png,\n", r"line 2 has no label \(column 'label'\)")
    refused("0.png,1\n1.png,0\n", "its first line names an image file; the first line is the header")
    refused("a,b\nx,cat\ny,dog\n", r"no column names an image file \(columns 'a', 'b'; first line's values 'x', 'cat'\)")
    refused("", "empty; expected a header")
    refused(",,\n,,\n", "empty; expected a header")  # a spreadsheet saved with nothing in it
    refused("url,label\nhttps://example.com/a.jpg,cat\n", r"column 'url' holds URLs \(https://example.com/a.jpg\); lrfc "
            "reads local image files: download them")
    # one damaged file among the listed: left out with its label, the rest stay aligned
    (tmp_path / "ok.csv").write_text("file,label\n" + "".join(f"{i}.png,{i % 2}\n" for i in range(3)) + "broken.png,1\n"
                                     + "".join(f"{i}.png,{i % 2}\n" for i in range(3, 10)))
    ds = load_data(str(tmp_path / "ok.csv"), (8, 8, 1), num_classes=2)
    assert ds.y.tolist() == [i % 2 for i in range(10)] and round(float(ds.x[3][0, 0, 0]) * 255) == 3
    (tmp_path / "sheet.csv").write_text("file,label\n" + rows + ",\n,\n")  # a spreadsheet's empty rows at its end
    assert load_data(str(tmp_path / "sheet.csv"), (8, 8, 1), num_classes=2).y.tolist() == [i % 2 for i in range(10)]
    assert "1 of 11 image files do not decode and were left out (first: broken.png: " in ds.notes[-1]


def test_hugging_face_image_folders_are_read_through_their_metadata_csv_or_jsonl(keras, tmp_path):
    """``datasets``' ImageFolder layout: ``train/`` and ``test/`` each holding its images and a ``metadata.jsonl``
    (or ``metadata.csv``) of ``file_name`` and ``label``; the JSON-lines list read as a CSV is, line numbers kept."""
    import json

    _pngs(tmp_path / "hf" / "train" / "images", [f"{i}.png" for i in range(12)])  # file_name: images/<i>.png
    (tmp_path / "hf" / "train" / "metadata.jsonl").write_text(
        "\n".join(json.dumps({"file_name": f"images/{i}.png", "label": ["cat", "dog"][i % 2], "text": "a pet"})
                  for i in range(12)) + "\n")
    _pngs(tmp_path / "hf" / "test", [f"{i}.png" for i in range(4)])
    (tmp_path / "hf" / "test" / "metadata.csv").write_text("file_name,label\n" + "".join(
        f"{i}.png,{['cat', 'dog'][i % 2]}\n" for i in range(4)))
    ds = load_data(str(tmp_path / "hf"), (8, 8, 1), num_classes=2)
    assert ds.y.tolist() == [0, 1] * 6 and ds.y_test.tolist() == [0, 1] * 2 and ds.classes == ("cat", "dog")
    assert ds.notes[0] == f"{tmp_path / 'hf' / 'train'}: read through its metadata.jsonl (Hugging Face's image-folder " \
                          "layout)"
    (tmp_path / "hf" / "test" / "metadata.csv").write_text("file_name,label\n" + "".join(f"{i}.png,dog\n" for i in
                                                                                         range(4)))
    only_dogs = load_data(str(tmp_path / "hf"), (8, 8, 1), num_classes=2)  # numbered by the training split's classes
    assert only_dogs.y_test.tolist() == [1] * 4 and only_dogs.classes == ("cat", "dog")
    listed = load_data(str(tmp_path / "hf" / "train" / "metadata.jsonl"), (8, 8, 1), num_classes=2)
    assert listed.y.tolist() == [0, 1] * 6 and [round(float(listed.x[i][0, 0, 0]) * 255) for i in range(3)] == [0, 1, 2]

    def refused(text, match):
        (tmp_path / "hf" / "train" / "metadata.jsonl").write_text(text)
        with pytest.raises(UserError, match=match):
            load_data(str(tmp_path / "hf" / "train"), (8, 8, 1), num_classes=2)

    refused('{"file_name": "images/0.png", "label": "cat"}\n\n{"file_name": "images/1.png", label}\n',
            "metadata.jsonl: line 3 is not a JSON object")
    refused('{"file_name": "images/0.png", "labels": ["cat", "dog"]}\n',
            "line 1's 'labels' holds lists; lrfc reads one file name and one label per line")
    _pngs(tmp_path / "captioned", [f"{i}.png" for i in range(12)])  # captions, no labels: an unlabelled build
    (tmp_path / "captioned" / "metadata.jsonl").write_text(  # reads the folder's images as it would without them
        "\n".join(json.dumps({"file_name": f"{i}.png", "text": f"photo {i}"}) for i in range(12)))
    assert load_data(str(tmp_path / "captioned"), (8, 8, 1), 2, labels=False).y is None


def test_a_folder_of_images_without_classes_points_at_a_csv_beside_it(keras, tmp_path):
    _pngs(tmp_path / "train", [f"{i}.png" for i in range(10)])
    (tmp_path / "labels.csv").write_text("id,label\n" + "".join(f"{i},{i % 2}\n" for i in range(10)))
    ds = load_data(str(tmp_path / "train"), (8, 8, 1), num_classes=2, labels=False)
    assert ds.y is None
    assert ds.notes[-1] == (f"{tmp_path / 'train'}: images without class subfolders are unlabelled; if labels.csv "
                            f"labels them, give --data {tmp_path / 'labels.csv'}")
    with pytest.raises(UserError, match=f"no class subfolders; expected DIR/<class>/<image files>, or a CSV of files "
                                        f"and labels: --data {tmp_path / 'labels.csv'}$"):
        load_data(str(tmp_path / "train"), (8, 8, 1), num_classes=2)


def _example(**features):
    """A tf.train.Example: bytes, str (as bytes) or int features."""
    import tensorflow as tf

    def feature(v):
        if isinstance(v, int):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() if isinstance(v, str) else v]))

    return tf.train.Example(features=tf.train.Features(feature={k: feature(v) for k, v in features.items()}))


def _write_records(path, examples, compressed=False):
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path), "GZIP" if compressed else None) as w:
        for e in examples:
            w.write(e.SerializeToString())


def _png(i):
    import tensorflow as tf

    img = np.full((8, 8, 1), 100, np.uint8)
    img[0, 0] = i
    return tf.io.encode_png(img).numpy()


def test_tfrecords_as_tfds_prepares_them_and_as_tf_image_pipelines_write_them(keras, tmp_path):
    """A TFDS folder (image + label, split by shard name) and a GZIP file in TF's image/encoded convention."""
    tfds = tmp_path / "fashion_mnist" / "3.0.1"
    tfds.mkdir(parents=True)
    for shard, range_ in ((0, range(0, 6)), (1, range(6, 12))):
        _write_records(tfds / f"fashion_mnist-train.tfrecord-0000{shard}-of-00002",
                       [_example(image=_png(i), label=i % 3) for i in range_])
    _write_records(tfds / "fashion_mnist-test.tfrecord-00000-of-00001",
                   [_example(image=_png(50 + i), label=2) for i in range(4)])
    (tfds / "features.json").write_text("{}")  # TFDS' metadata beside the shards: not read
    ds = load_data(str(tfds), (8, 8, 1), num_classes=3)
    assert ds.y.tolist() == [i % 3 for i in range(12)] and ds.y_test.tolist() == [2] * 4
    assert [round(float(ds.x[i][0, 0, 0]) * 255) for i in (0, 6, 11)] == [0, 6, 11]  # shards in order
    assert round(float(ds.x_test[3][0, 0, 0]) * 255) == 53 and ds.values == "8-bit images"
    assert f"{tfds} (training shards): 12 records from 2 files, images from 'image', labels from 'label'" in ds.notes
    assert ds.notes[-1] == (f"{tfds}: 2 training shards are the training data, test (1 shard) the held-out split "
                            "(halved into validation and test)")

    names = ["cat", "dog", "eel"]
    slim = [_example(**{"image/encoded": _png(i), "image/height": 8, "image/width": 8,
                        "image/class/text": names[i % 3], "image/format": "png"}) for i in range(10)]
    _write_records(tmp_path / "pets.tfrecord", slim, compressed=True)
    pets = load_data(str(tmp_path / "pets.tfrecord"), (8, 8, 1), num_classes=3)  # sizes are not labels: names are
    assert pets.y.tolist() == [i % 3 for i in range(10)] and pets.classes == ("cat", "dog", "eel")
    assert pets.x_test is None and "labels from 'image/class/text'" in pets.notes[0]
    given = load_data(str(tmp_path / "pets.tfrecord"), (8, 8, 1), 3, class_names=("eel", "dog", "cat"))
    assert given.y.tolist() == [[2, 1, 0][i % 3] for i in range(10)]

    _write_records(tmp_path / "labelled.tfrecord", [_example(**{"image/encoded": _png(i), "image/class/label": i % 2,
                                                                "image/height": 8}) for i in range(10)])
    assert load_data(str(tmp_path / "labelled.tfrecord"), (8, 8, 1), 2).y.tolist() == [i % 2 for i in range(10)]


def test_tfrecords_unlabelled_damaged_or_not_images_are_said_in_one_line(keras, tmp_path):
    import tensorflow as tf

    _write_records(tmp_path / "bare.tfrecord", [_example(image=_png(i)) for i in range(10)])
    bare = load_data(str(tmp_path / "bare.tfrecord"), (8, 8, 1), 2, labels=False)
    assert bare.y is None and "(no label feature: unlabelled)" in bare.notes[0]
    with pytest.raises(UserError, match="its records have no label feature"):
        load_data(str(tmp_path / "bare.tfrecord"), (8, 8, 1), 2)
    # one damaged image: left out with its label
    records = [_example(image=_png(i), label=i % 2) for i in range(10)]
    records.insert(3, _example(image=b"\x89PNG broken", label=1))
    _write_records(tmp_path / "damaged.tfrecord", records)
    ds = load_data(str(tmp_path / "damaged.tfrecord"), (8, 8, 1), 2)
    assert ds.y.tolist() == [i % 2 for i in range(10)] and round(float(ds.x[3][0, 0, 0]) * 255) == 3
    assert "1 of 11 image files do not decode and were left out (first: record 4: " in ds.notes[-1]

    def refused(name, examples, match):
        _write_records(tmp_path / name, examples)
        with pytest.raises(UserError, match=match):
            load_data(str(tmp_path / name), (8, 8, 1), 2)

    raw = tf.io.serialize_tensor(tf.zeros((8, 8, 1), tf.uint8)).numpy()
    refused("raw.tfrecord", [_example(image_raw=raw, label=0)] * 10,
            r"no feature holds an encoded image \(PNG, JPEG, GIF, BMP, WebP, TIFF\) in its first record \(features: "
            r"image_raw, "
            r"label\); bytes feature 'image_raw' holds no encoded image .* tf.io.encode_png")
    refused("gap.tfrecord", [_example(image=_png(0), label=0)] * 2 + [_example(image=_png(0))],
            "record 3 has no feature 'label', which the first record has")
    (tmp_path / "junk.tfrecord").write_bytes(b"this is not a TFRecord file at all")
    with pytest.raises(UserError, match="junk.tfrecord: not a readable TFRecord file"):
        load_data(str(tmp_path / "junk.tfrecord"), (8, 8, 1), 2)


def test_the_first_samples_shape_is_read_cheaply_for_the_input_shape_hint(keras, tmp_path):
    """``frontend.peek``: a header or one decoded image, whatever the form; None where it cannot tell."""
    from lrfc.frontend.peek import first_sample_shape
    from lrfc.frontend.stage import _size_hint

    import tensorflow as tf

    np.savez(tmp_path / "a.npz", x=np.zeros((5, 40, 30, 3), np.uint8), y=np.zeros(5))
    np.savez_compressed(tmp_path / "k.npz", x_train=np.zeros((5, 3, 20, 24), np.float32))  # PyTorch's (C, H, W)
    np.save(tmp_path / "g.npy", np.zeros((5, 12, 14), np.uint8))
    (tmp_path / "cls" / "cat").mkdir(parents=True)
    tf.io.write_file(str(tmp_path / "cls" / "cat" / "0.jpg"), tf.io.encode_jpeg(np.zeros((50, 60, 3), np.uint8)))
    (tmp_path / "l.csv").write_text("file,label\ncls/cat/0.jpg,0\n")
    _write_records(tmp_path / "r.tfrecord", [_example(image=_png(0), label=0)])
    import h5py

    with h5py.File(tmp_path / "h.h5", "w") as f:
        f["train_set_x"], f["train_set_y"] = np.zeros((3, 64, 64, 3), np.uint8), np.zeros(3)
    import tarfile
    import zipfile

    with tarfile.open(tmp_path / "t.tgz", "w:gz") as t:  # an archive's first image, read without extracting it
        t.add(tmp_path / "cls", arcname="photos")
    with zipfile.ZipFile(tmp_path / "z.zip", "w") as z:
        z.writestr("__MACOSX/photos/._a.png", b"fork")
        z.write(tmp_path / "cls" / "cat" / "0.jpg", "photos/cat/0.jpg")
    forms = ("a.npz", "k.npz", "g.npy", "cls", "l.csv", "r.tfrecord", "h.h5", "t.tgz", "z.zip", "z.zip/photos/cat")
    assert [first_sample_shape(str(tmp_path / n)) for n in forms] \
        == [(40, 30, 3), (3, 20, 24), (12, 14), (50, 60, 3), (50, 60, 3), (8, 8, 1), (64, 64, 3)] + [(50, 60, 3)] * 3
    assert first_sample_shape(str(tmp_path / "z.zip" / "photos" / "dog")) is None
    assert first_sample_shape("fashion-mnist") == (28, 28, 1) and first_sample_shape(str(tmp_path / "none")) is None
    assert first_sample_shape((np.zeros((2, 4, 4)), np.zeros(2))) is None
    assert _size_hint((None, None, 3), str(tmp_path / "g.npy")) == "e.g. --input-shape 12,14,3 (--data's first " \
                                                                   "sample is 12x14)"
    assert _size_hint((None, None, None), str(tmp_path / "k.npz")).startswith("e.g. --input-shape 20,24,3 ")
    assert _size_hint((None, None, 3), str(tmp_path / "none")) == "e.g. --input-shape 224,224,3"


def test_tfrecords_in_train_and_val_folders_as_kaggle_ships_them(keras, tmp_path):
    """``train/*.tfrec`` and ``val/*.tfrec`` with ``class`` and a text ``id``: the two splits; the competition's
    unlabelled ``test/`` is left out, and said."""
    for split, count, labelled in (("train", 12, True), ("val", 6, True), ("test", 5, False)):
        (tmp_path / split).mkdir()
        records = [_example(image=_png(i), id=f"{split}{i}", **({"class": i % 2} if labelled else {}))
                   for i in range(count)]
        _write_records(tmp_path / split / f"00-8x8-{count}.tfrec", records)
    ds = load_data(str(tmp_path), (8, 8, 1), num_classes=2)
    assert ds.y.tolist() == [i % 2 for i in range(12)] and ds.y_test.tolist() == [i % 2 for i in range(6)]
    assert ds.notes[-1] == (f"{tmp_path}: 'train' is the training data, 'val' the held-out split (halved into "
                            "validation and test); 'test' left out: its records have no labels")
    only = load_data(str(tmp_path / "train"), (8, 8, 1), num_classes=2)  # one folder of shards: one split
    assert len(only.x) == 12 and only.x_test is None


def test_arrays_in_an_hdf5_file_as_courses_and_keras_tutorials_hand_them_over(keras, tmp_path):
    """``train_set_x``/``train_set_y``/``test_set_x``/``test_set_y`` with ``list_classes`` (a course's cat files),
    an npz's names, labels stored as one row; a Keras model given as data is refused naming the mistake."""
    import h5py

    rng = np.random.default_rng(0)
    x, xt = rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8), rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    with h5py.File(tmp_path / "cats.h5", "w") as f:
        f["train_set_x"], f["train_set_y"] = x, np.arange(20) % 2
        f["test_set_x"], f["test_set_y"] = xt, (np.arange(6) % 2)[None]  # (1, N): one row
        f["list_classes"] = np.array([b"non-cat", b"cat"])
    ds = load_data(str(tmp_path / "cats.h5"), (8, 8, 3), 2)
    assert ds.y.tolist() == [i % 2 for i in range(20)] and ds.y_test.tolist() == [0, 1, 0, 1, 0, 1]
    assert ds.values == "uint8 0..255" and np.allclose(ds.x[3], x[3] / 255) and len(ds.x_test) == 6
    with h5py.File(tmp_path / "nested.hdf5", "w") as f:
        f["data/images"], f["data/labels"] = x, np.array([b"cat", b"dog"] * 10)
    named = load_data(str(tmp_path / "nested.hdf5"), (8, 8, 3), 2)
    assert named.y.tolist() == [0, 1] * 10 and named.classes == ("cat", "dog") and named.x_test is None
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["x"], f["images"], f["y"] = x, x, np.zeros(20)
    with pytest.raises(UserError, match="datasets 'images' and 'x' could both be the samples of the training split"):
        load_data(str(tmp_path / "two.h5"), (8, 8, 3), 2)
    with h5py.File(tmp_path / "bare.h5", "w") as f:
        f["x"] = x
    assert load_data(str(tmp_path / "bare.h5"), (8, 8, 3), 2, labels=False).y is None
    with pytest.raises(UserError, match="no dataset of labels beside the samples"):
        load_data(str(tmp_path / "bare.h5"), (8, 8, 3), 2)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
    model.save(tmp_path / "model.h5")
    with pytest.raises(UserError, match="model.h5: a Keras model file, not data"):
        load_data(str(tmp_path / "model.h5"), (8, 8, 3), 2)
    from lrfc.frontend.load import load_model

    with pytest.raises(UserError, match="cats.h5: holds data \\(arrays of samples\\), not a model; give it as --data"):
        load_model(str(tmp_path / "cats.h5"))  # the two arguments swapped
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(UserError, match="junk.h5: not a readable HDF5 file"):
        load_data(str(tmp_path / "junk.h5"), (8, 8, 3), 2)


def test_a_flat_folder_is_labelled_by_file_names_that_name_the_models_classes(keras, tmp_path):
    """Kaggle's Dogs vs. Cats (``cat.0.jpg``), the Oxford-IIIT pets (``Abyssinian_1.jpg``, ``american_bulldog_2``);
    a camera's ``IMG_0001`` or prefixes that are not the model's classes leave the folder unlabelled."""
    _pngs(tmp_path / "dogs-vs-cats", [f"{a}.{i}.png" for a in ("dog", "cat") for i in range(5)])
    ds = load_data(str(tmp_path / "dogs-vs-cats"), (8, 8, 1), num_classes=2)  # labels needed: the names give them
    assert ds.y.tolist() == [0] * 5 + [1] * 5 and ds.classes == ("cat", "dog")  # files read cat.0 .. dog.4
    assert ds.notes[0] == (f"{tmp_path / 'dogs-vs-cats'}: no class subfolders; labelled by the file names' prefixes, "
                           "numbered 'cat' = 0, 'dog' = 1 (sorted, as class folders are; --class-names gives the "
                           "model's order)")
    pets = ["Abyssinian_1.png", "Abyssinian_12.png", "american_bulldog_3.png", "american_bulldog (4).png",
            "Bengal_5.png", "Bengal-6.png"]
    _pngs(tmp_path / "pets", pets)
    order = ("american_bulldog", "Abyssinian", "Bengal")
    named = load_data(str(tmp_path / "pets"), (8, 8, 1), 3, min_samples=6, class_names=order)
    by_file = dict(zip(sorted(pets), named.y.tolist()))
    assert by_file == {"Abyssinian_1.png": 1, "Abyssinian_12.png": 1, "Bengal-6.png": 2, "Bengal_5.png": 2,
                       "american_bulldog (4).png": 0, "american_bulldog_3.png": 0}
    assert load_data(str(tmp_path / "pets"), (8, 8, 1), 4, min_samples=6, labels=False).y is None  # 3 of 4 classes
    _pngs(tmp_path / "phone", [f"IMG_{i:04d}.png" for i in range(5)] + [f"PXL_{i}.png" for i in range(5)])
    assert load_data(str(tmp_path / "phone"), (8, 8, 1), 2, labels=False).y is None
    for split, n in (("train", 6), ("val", 4)):  # flat training and held-out folders: numbered alike
        _pngs(tmp_path / "split" / split, [f"{a}.{i}.png" for a in ("cat", "dog") for i in range(n // 2)])
    both = load_data(str(tmp_path / "split"), (8, 8, 1), 2, min_samples=6)
    assert both.y.tolist() == [0, 0, 0, 1, 1, 1] and both.y_test.tolist() == [0, 0, 1, 1]


def test_tiff_webp_and_netpbm_images_are_read_and_kinds_nothing_reads_are_counted(keras, tmp_path):
    """TIFF (8- and 16-bit, as microscopes and scanners write it) through Pillow, WebP through TensorFlow, a 16-bit
    TIFF scaled by its depth as a 16-bit PNG is; a float TIFF is left out saying why, a phone's HEIC counted."""
    from PIL import Image

    import tensorflow as tf

    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    (tmp_path / "a").mkdir()
    Image.fromarray(rgb).save(tmp_path / "a" / "0.tif")
    Image.fromarray(rgb).save(tmp_path / "a" / "1.webp", lossless=True)
    Image.fromarray(rgb).save(tmp_path / "a" / "2.ppm")
    deep = np.full((8, 8), 257 * 200, np.uint16)
    Image.fromarray(deep).save(tmp_path / "a" / "3.tiff")
    tf.io.write_file(str(tmp_path / "a" / "4.png"), tf.io.encode_png(deep[..., None]))
    Image.fromarray(rng.random((8, 8)).astype(np.float32)).save(tmp_path / "a" / "5.tif")
    (tmp_path / "a" / "6.heic").write_bytes(b"not read")
    (tmp_path / "a" / "7.HEIC").write_bytes(b"not read")
    ds = load_data(str(tmp_path), (8, 8, 3), num_classes=1, min_samples=5)
    assert len(ds.x) == 5 and ds.values == "8-bit images"
    for i in range(3):  # TIFF, lossless WebP, PPM: the same pixels
        np.testing.assert_allclose(ds.x[i], rgb / np.float32(255), atol=1e-6)
    np.testing.assert_allclose(ds.x[3], ds.x[4], atol=1e-6)  # 16-bit TIFF and PNG: 200/255 alike
    assert ds.x[3].max() == pytest.approx(200 / 255)
    assert ("1 of 6 image files do not decode and were left out (first: a/5.tif: a floating-point image has no "
            "bit depth to scale by; give its values in an .npz instead)") in ds.notes[-2]
    assert ds.notes[-1] == (f"{tmp_path}: 2 image files of kinds lrfc cannot decode were not read (.heic: 2); convert "
                            "them to PNG or JPEG to include them")
    _write_records(tmp_path / "t.tfrecord", [_example(image=(tmp_path / "a" / name).read_bytes(), label=0)
                                             for name in ("0.tif", "1.webp") * 5])  # found by their bytes too
    records = load_data(str(tmp_path / "t.tfrecord"), (8, 8, 3), num_classes=1)
    np.testing.assert_allclose(records.x[0], rgb / np.float32(255), atol=1e-6)
    np.testing.assert_allclose(records.x[1], rgb / np.float32(255), atol=1e-6)
