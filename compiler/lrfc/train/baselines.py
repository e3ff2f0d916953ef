"""The benchmark models: CNNs trained on Fashion-MNIST with a fixed seed.

`make baselines` runs ``python -m lrfc.train.baselines --out models``, which trains
and writes ``models/<name>.keras`` plus ``models/<name>.json`` holding the
test accuracy on Fashion-MNIST's official 10,000 test images, the seed,
epochs and training time. ``tiny`` trains in seconds and serves the tests.

| name   | structure                                                        |
|--------|------------------------------------------------------------------|
| vgg    | 8 x (3x3 conv + BN + ReLU) in 3 stages, 2 dense layers           |
| resnet | 3x3 stem + 3 stages x 2 residual blocks (13 convs + 2 projection 1x1), GAP, dense |
| tiny   | 2 convs + dense, for tests                                       |
| demo   | 4 x (3x3 conv + BN + ReLU) at 28x28 and 14x14, GAP, dense: `make demo`'s model (committed as demo/demo.keras) |
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from lrfc.common.quiet import import_keras

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10


def _conv_bn(keras, x, filters: int, name: str, strides: int = 1):
    x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=name)(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def build_vgg():
    """VGG-style: conv widths 32,32 | 64,64 | 128,128,128,128, max-pool between stages."""
    keras = import_keras()
    inp = keras.Input(INPUT_SHAPE, name="input")
    x = inp
    i = 0
    for stage, (width, convs) in enumerate([(32, 2), (64, 2), (128, 4)]):
        for _ in range(convs):
            i += 1
            x = _conv_bn(keras, x, width, f"conv{i}")
        x = keras.layers.MaxPooling2D(name=f"pool{stage + 1}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(256, activation="relu", name="fc1")(x)
    x = keras.layers.Dropout(0.3, name="drop")(x)
    out = keras.layers.Dense(NUM_CLASSES, name="logits")(x)
    return keras.Model(inp, out, name="vgg")


def _block(keras, x, filters: int, name: str, strides: int):
    shortcut = x
    y = _conv_bn(keras, x, filters, f"{name}_a", strides)
    y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_b")(y)
    y = keras.layers.BatchNormalization(name=f"{name}_b_bn")(y)
    if strides != 1 or shortcut.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 1, strides=strides, use_bias=False, name=f"{name}_proj")(shortcut)
        shortcut = keras.layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def build_resnet():
    """ResNet-style: stem 32, stages 32/64/128 with 2 basic blocks each, GAP, dense."""
    keras = import_keras()
    inp = keras.Input(INPUT_SHAPE, name="input")
    x = _conv_bn(keras, inp, 32, "stem")
    for stage, width in enumerate([32, 64, 128]):
        for block in range(2):
            x = _block(keras, x, width, f"s{stage + 1}b{block + 1}", 2 if (block == 0 and stage > 0) else 1)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(128, activation="relu", name="fc1")(x)
    out = keras.layers.Dense(NUM_CLASSES, name="logits")(x)
    return keras.Model(inp, out, name="resnet")


def build_tiny():
    """Two convolutions and a dense layer: trains to ~80% in seconds."""
    keras = import_keras()
    inp = keras.Input(INPUT_SHAPE, name="input")
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(inp)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(32, activation="relu", name="fc1")(x)
    out = keras.layers.Dense(NUM_CLASSES, name="logits")(x)
    return keras.Model(inp, out, name="tiny")


def build_demo():
    """Small enough to compress in a few minutes, with enough arithmetic per image (58M MACs) that a smaller model
    is a measurably faster one: conv widths 32, 64 | 128, 128, max-pool between, GAP, dense."""
    keras = import_keras()
    inp = keras.Input(INPUT_SHAPE, name="input")
    x = _conv_bn(keras, inp, 32, "conv1")
    x = _conv_bn(keras, x, 64, "conv2")
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = _conv_bn(keras, x, 128, "conv3")
    x = _conv_bn(keras, x, 128, "conv4")
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(NUM_CLASSES, name="logits")(x)
    return keras.Model(inp, out, name="demo")


BUILDERS = {"vgg": build_vgg, "resnet": build_resnet, "tiny": build_tiny, "demo": build_demo}
EPOCHS = {"vgg": 8, "resnet": 8, "tiny": 1, "demo": 4}


def train(name: str, out_dir: str | Path, epochs: int | None = None, seed: int = 0, train_samples: int | None = None) -> dict:
    """Train one baseline on Fashion-MNIST and save ``<name>.keras`` and ``<name>.json``.

    Returns:
        The record written to ``<name>.json`` (test accuracy etc.).
    """
    keras = import_keras()
    import numpy as np

    from lrfc.common.atomic import atomic_path, write_text
    from lrfc.frontend.data import load_data

    keras.utils.set_random_seed(seed)
    ds = load_data("fashion-mnist", INPUT_SHAPE, NUM_CLASSES)
    x, y = np.asarray(ds.x), ds.y
    if train_samples:
        x, y = x[:train_samples], y[:train_samples]
    model = BUILDERS[name]()
    epochs = EPOCHS[name] if epochs is None else epochs
    schedule = keras.optimizers.schedules.CosineDecay(1e-3 * 2, decay_steps=epochs * (len(x) // 128 + 1))
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x, y, batch_size=128, epochs=epochs, verbose=2, shuffle=True)
    seconds = time.perf_counter() - start
    _, acc = model.evaluate(np.asarray(ds.x_test), ds.y_test, batch_size=512, verbose=0)
    out_dir = Path(out_dir)
    with atomic_path(out_dir / f"{name}.keras") as tmp:
        model.save(tmp)
    record = {"model": name, "dataset": "fashion-mnist", "test_accuracy": round(float(acc), 4), "epochs": epochs,
              "seed": seed, "train_samples": len(x), "train_seconds": round(seconds, 1), "params": int(model.count_params())}
    write_text(out_dir / f"{name}.json", json.dumps(record, indent=2) + "\n")
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="models")
    parser.add_argument("--models", default="vgg,resnet")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in args.models.split(","):
        print(json.dumps(train(name, args.out, args.epochs, args.seed)))


if __name__ == "__main__":
    main()
