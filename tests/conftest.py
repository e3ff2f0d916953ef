"""Shared fixtures: quiet Keras import, small real models saved to disk."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The suite's TensorFlow allocates as a build's does (lrfc.common.allocator), whichever test starts it;
# child processes inherit the choice.
from lrfc.common import allocator, onednn  # noqa: E402

allocator.choose()
onednn.enable()  # as every build has it, whichever test imports TensorFlow first
# Builds that name no --cache-dir / --cost-db write here, never into the user's ~/.cache/lrfc
# (child processes inherit it).
os.environ["LRFC_CACHE_DIR"] = tempfile.mkdtemp(prefix="lrfc-test-cache-")
os.environ.pop("LRFC_COST_DB", None)
atexit.register(shutil.rmtree, os.environ["LRFC_CACHE_DIR"], ignore_errors=True)
# runtime_bench keeps the lowest core round trip read since boot (runtime_bench.cores): per test session here
os.environ["RUNTIME_BENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="runtime-bench-test-cache-")
atexit.register(shutil.rmtree, os.environ["RUNTIME_BENCH_CACHE_DIR"], ignore_errors=True)


@pytest.fixture(scope="session")
def keras():
    from lrfc.common.quiet import import_keras

    return import_keras()


def residual_cnn(keras, shape, name: str):
    """A small residual Functional CNN with logit outputs (Conv-BN-ReLU, a residual conv, GAP, Dense), seed 0."""
    keras.utils.set_random_seed(0)
    layers = keras.layers
    inp = keras.Input(shape)
    h = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(8, 3, padding="same")(inp)))
    h = layers.Add()([h, layers.Conv2D(8, 3, padding="same", activation="relu")(h)])
    h = layers.GlobalAveragePooling2D()(layers.MaxPooling2D()(h))
    return keras.Model(inp, layers.Dense(10)(h), name=name)


def cancelling_model(keras):
    """A model whose int8 file XNNPACK will not prepare, and its calibration samples (tests/test_sandbox.py's doc).

    A 1x1 convolution whose calibrated output is exactly zero (its weights cancel over two copies of one tensor),
    so its requantization scale is far past what XNNPACK creates: exported at int8 with ``xnnpack=False`` LiteRT
    refuses the file cleanly ("failed to create XNNPACK runtime"); with lrfc's XNNPACK rewrite it aborts the process.
    """
    keras.utils.set_random_seed(0)
    layers = keras.layers
    inp = keras.Input((8, 8, 3))
    h = layers.Activation("hard_swish")(layers.Conv2D(8, 1)(inp))
    zero = layers.Conv2D(4, 1, use_bias=False, name="cancel")(layers.Concatenate()([h, h]))
    z = layers.Activation("hard_swish")(zero)
    y = layers.GlobalAveragePooling2D()(layers.Conv2D(4, 1)(layers.Add()([z, layers.Conv2D(4, 1)(h)])))
    model = keras.Model(inp, y)
    w = np.random.default_rng(0).standard_normal((1, 1, 8, 4)).astype(np.float32)
    model.get_layer("cancel").set_weights([np.concatenate([w, -w], axis=2)])
    return model, np.random.default_rng(1).uniform(0, 1, (32, 8, 8, 3)).astype(np.float32)


def onnx_runtime_ops(path, out_dir) -> dict[str, int]:
    """How many of each operator ONNX Runtime's CPU provider runs for ``path``, after its QDQ fusions.

    Level "extended" applies the QDQ fusions but not the NCHWc layout pass,
    whose operators depend on the CPU.
    """
    from collections import Counter
    from pathlib import Path

    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(Path(out_dir) / f"runs.{Path(path).name}")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return dict(Counter(n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node))


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real `lrfc` entry point in a child process."""
    return subprocess.run([sys.executable, "-m", "lrfc.cli", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def small_fashion_mnist(tmp_path_factory):
    """Real Fashion-MNIST, fewer of it: the first 8,000 training and 2,000 test images as an npz (``--data``).

    A build on it validates on 1,000 images and reports 1,000 (the built-in
    data: 5,000 each); evaluating those each round was most of a small test
    build's fine-tuning stage (the demo model's latency build: 72 -> 44 s of it, 14.6 and 24.3 s training).
    Tests of the built-in data's own splits use ``fashion-mnist``.
    """
    import numpy as np

    from lrfc.frontend.data import read_fashion_mnist

    x, y, x_test, y_test = read_fashion_mnist()
    path = tmp_path_factory.mktemp("data") / "fashion-mnist-small.npz"
    np.savez(path, x=x[:8000], y=y[:8000], x_test=x_test[:2000], y_test=y_test[:2000])
    return path


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory, keras):
    """The `tiny` baseline trained for one epoch on 6,000 Fashion-MNIST images."""
    from lrfc.train.baselines import train

    out = tmp_path_factory.mktemp("tiny")
    train("tiny", out, epochs=1, train_samples=6000)
    return out / "tiny.keras"


@pytest.fixture(scope="session")
def untrained_model_path(tmp_path_factory, keras):
    """The `tiny` architecture with its random initial weights: it scores at chance on any data."""
    from lrfc.train.baselines import build_tiny

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("untrained") / "untrained.keras"
    build_tiny().save(path)
    return path


@pytest.fixture(scope="session")
def rescaling_model_path(tmp_path_factory, keras):
    """A CNN that starts with its own Rescaling(1/255), trained 1 epoch on 6,000 raw 0-255 Fashion-MNIST images."""
    from lrfc.frontend.data import read_fashion_mnist

    keras.utils.set_random_seed(0)
    x, y, _, _ = read_fashion_mnist()
    layers = keras.layers
    inp = keras.Input((28, 28, 1), name="input")
    h = layers.Rescaling(1 / 255.0, name="rescale")(inp)
    h = layers.Conv2D(8, 3, activation="relu", name="conv1")(h)
    h = layers.MaxPooling2D(name="pool1")(h)
    h = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="conv2")(h)
    h = layers.Dense(32, activation="relu", name="fc1")(layers.Flatten(name="flatten")(h))
    model = keras.Model(inp, layers.Dense(10, name="logits")(h), name="rescaled")
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:6000, ..., None].astype("float32"), y[:6000], batch_size=128, epochs=1, verbose=0)
    path = tmp_path_factory.mktemp("rescaling") / "rescaling.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def two_models(tmp_path_factory, keras):
    """Two real TFLite files, one with 4x the convolution's channels."""
    from lrfc.lower.tflite import export_tflite

    out = tmp_path_factory.mktemp("agree")
    paths = []
    for name, width in (("wide", 32), ("narrow", 8)):
        inputs = keras.Input((16, 16, 8))
        x = keras.layers.Conv2D(width, 3, activation="relu")(inputs)
        paths.append(out / f"{name}.tflite")
        export_tflite(keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(x))), paths[-1])
    return paths
