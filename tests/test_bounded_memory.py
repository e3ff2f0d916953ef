"""Bounded memory: data mapped a chunk at a time, captured maps in files, batches sized by the memory plan.

Peaks are measured with the kernel's high-water mark (``lrfc.common.memory``), reset right before the
work, so each bound is checked on what really ran.
"""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest

from lrfc.common import memory
from lrfc.errors import UserError
from lrfc.frontend.data import load_data, read_fashion_mnist
from lrfc.frontend.samples import Samples, even_batch, head, predict
from lrfc.frontend.splits import make_splits


def test_fashion_mnist_for_a_224_model_is_held_as_its_uint8_source():
    """Mapped whole, Fashion-MNIST at 224x224x3 float32 is 40 GiB; the dataset and its splits hold 55 MB."""
    import tensorflow as tf

    tf.image.resize(np.zeros((1, 28, 28, 3), np.float32), (224, 224)).numpy()  # TensorFlow's own start-up, not counted
    memory.reset_peak()
    start = memory.peak_mb()
    ds = load_data("fashion-mnist", (224, 224, 3), 10)
    splits = make_splits(ds, 32, 0, finetune=True)
    grown = memory.peak_mb() - start
    assert ds.x.source.dtype == np.uint8 and ds.x.shape == (60000, 224, 224, 3)
    assert isinstance(splits.x_val, Samples) and len(splits.x_val) == 5000 and splits.x_calib.shape == (32, 224, 224, 3)
    assert grown < 300, grown  # the sources (55 MB), 32 mapped calibration samples (19 MB), one chunk's work
    # a mapped sample is the eager rule's: 28 -> 224 bilinear resize, grey repeated to 3 channels, /255
    raw = read_fashion_mnist()[0][7].astype(np.float32) / 255
    eager = tf.image.resize(np.repeat(raw[None, ..., None], 3, -1), (224, 224), method="bilinear").numpy()[0]
    np.testing.assert_allclose(ds.x[7], eager, atol=1e-6)


def test_samples_index_like_an_array_and_select_lazily():
    source = np.arange(40, dtype=np.uint8).reshape(10, 2, 2)
    x = Samples(source, lambda raw: raw.astype(np.float32) * 2)
    assert x.shape == (10, 2, 2) and len(x) == 10 and x.nbytes == 160
    np.testing.assert_array_equal(x[3], source[3] * 2)
    np.testing.assert_array_equal(x[2:5], source[2:5] * 2)
    np.testing.assert_array_equal(x[[7, 1]], source[[7, 1]] * 2)
    np.testing.assert_array_equal(x[4, 1], source[4, 1] * 2)
    np.testing.assert_array_equal(x[:, 0, 1], source[:, 0, 1] * 2)
    sub = x.subset([9, 0, 5])
    assert isinstance(sub, Samples) and sub.shape == (3, 2, 2)
    np.testing.assert_array_equal(np.asarray(sub), source[[9, 0, 5]] * 2)
    np.testing.assert_array_equal(np.asarray(head(sub, 2)), source[[9, 0]] * 2)
    assert x.max() == 78.0 and x.min() == 0.0
    assert sum(len(c) for c in x.chunks(4)) == 10


def test_predict_over_samples_equals_predict_over_the_mapped_array(keras):
    inp = keras.Input((6,))
    model = keras.Model(inp, keras.layers.Dense(3)(inp))
    source = np.random.default_rng(0).integers(0, 256, (600, 6), dtype=np.uint8)
    x = Samples(source, lambda raw: raw.astype(np.float32) / 255)
    np.testing.assert_allclose(predict(model, x, 64), model.predict(source / np.float32(255), verbose=0), atol=1e-6)


@pytest.mark.parametrize("n, batch, size", [(1000, 256, 250), (5000, 256, 250), (59500, 256, 256), (257, 256, 129),
                                           (600, 64, 60), (10, 256, 10), (256, 256, 256), (0, 256, 256)])
def test_even_batch_leaves_the_last_batch_short_by_fewer_rows_than_batches(n, batch, size):
    assert even_batch(n, batch) == size
    if n:
        batches = -(-n // size)
        assert size <= batch and batches == -(-n // batch) and batches * size - n < batches


def test_predict_traces_one_shape_when_the_last_batch_is_short(keras):
    """1,000 samples at a batch of 256: four of 250, one trace (3 x 256 + 232 traced the step twice), same outputs."""
    inp = keras.Input((6,))
    model = keras.Model(inp, keras.layers.Dense(3)(inp))
    x = np.random.default_rng(1).normal(size=(1003, 6)).astype(np.float32)  # 4 x 251: the last one short by 1
    out = predict(model, x, 256)
    assert model.predict_function.experimental_get_tracing_count() == 1
    np.testing.assert_allclose(out, np.asarray(model(x)), atol=1e-6)
    samples = Samples(np.asarray(x))
    np.testing.assert_allclose(predict(model, samples, 256), out, atol=1e-6)
    assert model.predict_function.experimental_get_tracing_count() == 1
    seen = []  # the progress callback gets each batch's own sample count, short last one included
    np.testing.assert_allclose(predict(model, samples, 256, progress=seen.append), out, atol=1e-6)
    assert seen == [251, 251, 251, 250]


def _conv_model(keras):
    from lrfc.frontend.graph import rebuild

    inp = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inp)
    h = keras.layers.Conv2D(8, 3, padding="same", name="c2")(h)
    out = keras.layers.Dense(4, name="d")(keras.layers.GlobalAveragePooling2D()(h))
    return rebuild(keras.Model(inp, out))


def test_spilled_calibration_samples_are_mapped_per_access_and_leave_memory(tmp_path):
    """After capture a build's calibration samples live in a file; each read maps it afresh, read-only."""
    ds = load_data("fashion-mnist", (224, 224, 3), 10)
    splits = make_splits(ds, 256, 0, finetune=False)
    held = np.array(splits.x_calib)
    memory.release()
    before = memory.resident_bytes()
    spilled = splits.spilled(tmp_path / "calibration.npy")
    del splits
    memory.release()
    freed = (before - memory.resident_bytes()) / 2**20
    assert freed > 100, freed  # the 147 MiB of mapped samples went to the file
    first = spilled.x_calib
    assert isinstance(first, np.memmap) and not first.flags.writeable and first is not spilled.x_calib
    np.testing.assert_array_equal(first, held)
    assert spilled.to_json()["calibration"] == len(spilled.x_calib) == 256


def test_captured_maps_go_to_files_and_equal_the_in_memory_capture(keras, tmp_path):
    from lrfc.frontend.catalogue import describe_model
    from lrfc.search.calibrate import MapStore
    from lrfc.search.stage import capture_tasks

    model = _conv_model(keras)
    rows = {r.name: r for r in describe_model(model)}
    x = np.random.default_rng(1).random((20, 16, 16, 3)).astype(np.float32)
    in_memory = capture_tasks(model, rows, ["c1", "c2", "d"], x, True)
    store = MapStore(tmp_path / "maps")
    on_disk = capture_tasks(model, rows, ["c1", "c2", "d"], x, True, store=store, batch_size=2)
    c1 = MapStore.stem("c1")
    assert store.bytes > 0 and sorted(p.name for p in (tmp_path / "maps").iterdir())[:2] == [f"{c1}.inputs.npy", f"{c1}.reference.npy"]
    assert MapStore.stem("a/b") != MapStore.stem("a_b")  # names that sanitise alike still get their own files
    for name in ("c1", "c2", "d"):
        a, b = in_memory[name], on_disk[name]
        assert isinstance(b.inputs, np.memmap) and not isinstance(a.inputs, np.memmap)
        np.testing.assert_array_equal(a.inputs, b.inputs)
        np.testing.assert_allclose(a.reference, b.reference, atol=1e-6)
        assert a.key() == b.key()  # the cache keys do not depend on where the maps live
        # the statistics come from other batches (the capture ran 2 samples at a time) but estimate the same moments
        np.testing.assert_allclose(a.stats.channel_cov, b.stats.channel_cov, rtol=0.2, atol=1e-3)
    # a task shipped to a worker carries its arrays, not file names
    shipped = pickle.loads(pickle.dumps(on_disk["c2"]))
    assert isinstance(shipped.captured, np.ndarray) and not isinstance(shipped.captured, np.memmap)
    np.testing.assert_array_equal(shipped.inputs, in_memory["c2"].inputs)
    assert shipped.key() == in_memory["c2"].key()


def test_a_wide_dense_layer_s_statistics_are_its_vectors_in_one_file_and_the_plan_counts_them(keras, tmp_path,
                                                                                                  monkeypatch):
    """A Dense after a Flatten that sees fewer vectors than it has inputs (above EXPLICIT_MAX, here lowered to 64)
    keeps its calibration vectors (rows.npy, 20 x 768), not a 768 x 768 moment; they are mapped back, shipped to a
    worker as arrays, and the memory plan counts them instead of the moment."""
    import pickle

    from lrfc.decompose import stats as stats_mod
    from lrfc.frontend.catalogue import describe_model
    from lrfc.frontend.graph import rebuild
    from lrfc.frontend.memory_plan import FACTOR_COPIES, factorization_bytes, statistics_bytes
    from lrfc.search.calibrate import MapStore
    from lrfc.search.stage import capture_tasks

    monkeypatch.setattr(stats_mod, "EXPLICIT_MAX", 64)
    inp = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(3, 3, padding="same", name="c1")(inp)
    model = rebuild(keras.Model(inp, keras.layers.Dense(4, name="wide")(keras.layers.Flatten()(h))))
    rows = {r.name: r for r in describe_model(model)}
    x = np.random.default_rng(3).random((20, 16, 16, 3)).astype(np.float32)
    store = MapStore(tmp_path / "maps")
    tasks = capture_tasks(model, rows, ["c1", "wide"], x, True, store=store, batch_size=8)
    folder = tmp_path / "maps" / f"{MapStore.stem('wide')}.stats"
    assert sorted(p.name for p in folder.iterdir()) == ["rows.npy", "samples"]
    held = tasks["wide"].stats
    assert held.input_cov is None and isinstance(held.rows, np.memmap) and held.rows.shape == (20, 768)
    flat = tasks["wide"].inputs.reshape(20, 768).astype(np.float64)
    np.testing.assert_allclose(stats_mod.moment(held), flat.T @ flat / 20, rtol=1e-6, atol=1e-9)
    shipped = pickle.loads(pickle.dumps(tasks["wide"]))
    assert isinstance(shipped.stats.rows, np.ndarray) and not isinstance(shipped.stats.rows, np.memmap)
    assert statistics_bytes(rows.values(), {"wide"}, calib_samples=20) == 16 * 768 * 20
    assert statistics_bytes(rows.values(), {"wide"}, calib_samples=1000) == 16 * 768 * 768
    # a walk preparing the largest layer's factorization holds float64 copies of its weights: the layer term has them
    assert factorization_bytes(rows.values(), {"c1", "wide"}) == FACTOR_COPIES * 8 * (768 * 4 + 4)


def test_an_eager_call_holds_every_activation_of_its_batch_so_the_plan_sizes_batches_by_their_sum(keras):
    """ResNet50 at 64x64: 256 samples in one eager call take 2.6 GB more; the plan's batch (88) about 1 GB."""
    from lrfc.frontend.catalogue import describe_model
    from lrfc.frontend.memory_plan import MB, plan_memory
    from lrfc.search.sensitivity import probabilities

    model = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classes=10)
    rows = describe_model(model)
    plan = plan_memory(model, rows, [r.name for r in rows if r.methods], 0, 64 * 64 * 3 * 4, 16, 8 * 2**30, 64 * MB)
    assert 11 * MB < plan.activation_per_sample < 12.5 * MB and (plan.capture_batch, plan.predict_batch) == (64, 88)
    x = np.random.default_rng(2).random((88, 64, 64, 3)).astype(np.float32)
    probabilities(model, x[:4])  # the call's own start-up
    memory.reset_peak()
    start = memory.peak_mb()
    probabilities(model, x, batch=plan.predict_batch)
    grown = memory.peak_mb() - start
    assert 0.5 * plan.predict_batch * plan.activation_per_sample / MB < grown < 1.5 * plan.predict_batch * plan.activation_per_sample / MB, grown


def test_a_cache_on_disk_holds_one_layers_prepared_factorizations_in_memory(tmp_path):
    from lrfc.search.cache import PREPARED_IN_MEMORY, Cache

    cache = Cache(tmp_path / "cache")
    computed = []
    for i in range(PREPARED_IN_MEMORY + 5):
        cache.prepared(f"k{i}", lambda i=i: computed.append(i) or np.full(4, i))
    assert len(cache.entries()[1]) == PREPARED_IN_MEMORY
    np.testing.assert_array_equal(cache.prepared("k0", lambda: pytest.fail("recomputed")), np.full(4, 0))  # from disk
    memory_only = Cache(enabled=False)
    for i in range(PREPARED_IN_MEMORY + 5):
        memory_only.prepared(f"k{i}", lambda i=i: i)
    assert len(memory_only.entries()[1]) == PREPARED_IN_MEMORY + 5  # nowhere else to keep them
    cache.close()


def test_the_memory_plan_sizes_batches_and_refuses_a_budget_too_small(keras, monkeypatch):
    from lrfc.frontend.catalogue import describe_model
    from lrfc.frontend.memory_plan import MB, RUNTIME_BYTES, plan_memory, parse_size

    model = _conv_model(keras)
    rows = describe_model(model)
    targets = ["c1", "c2", "d"]
    sample = 16 * 16 * 3 * 4
    roomy = plan_memory(model, rows, targets, 10 * MB, sample, 100, 8 * 2**30, 64 * MB)
    assert (roomy.capture_batch, roomy.predict_batch) == (64, 256)
    # 3*3*3 and 3*3*8 patch moments, and the dense layer's 8x8, in float64
    assert roomy.statistics == 8 * (27 ** 2 + 3 ** 2) + 8 * (72 ** 2 + 8 ** 2) + 16 * 8 ** 2
    tight = plan_memory(model, rows, targets, 10 * MB, sample, 100, roomy.fixed + 5 * roomy.activation_per_sample, 64 * MB)
    # every layer's output, the input too: what an eager call holds for one sample
    assert roomy.activation_per_sample == 4 * (16 * 16 * 3 + 2 * 16 * 16 * 8 + 8 + 4)
    assert (tight.capture_batch, tight.predict_batch) == (5, 5)
    # the converters' peak, 192 MiB + 17 x the weights, counts too: over this budget it is a warning, not a refusal
    assert tight.lowering == roomy.lowering == 192 * MB + 17 * 4 * model.count_params()
    assert tight.expected_peak == tight.fixed + max(5 * tight.activation_per_sample, tight.lowering) > tight.budget
    batch = roomy.predict_batch * roomy.activation_per_sample
    assert roomy.lowering_warning() is None
    # one walk per core in the score stage, as many as the room beside the first layer's maps holds
    from lrfc.frontend import memory_plan

    assert tight.score_threads == 1 and roomy.score_threads == memory_plan.cores()
    monkeypatch.setattr(memory_plan, "cores", lambda: 8)
    # an extra walk needs its layer term beside the batch, not instead of it
    two_more = plan_memory(model, rows, targets, 10 * MB, sample, 100, roomy.fixed + batch + 2 * roomy.layer + 100,
                           64 * MB)
    assert two_more.predict_batch == roomy.predict_batch
    assert two_more.score_threads == 3 and "3 score threads" in two_more.describe()
    assert two_more.expected_peak == two_more.fixed + max(two_more.lowering, batch + 2 * two_more.layer)
    one_less = plan_memory(model, rows, targets, 10 * MB, sample, 100, roomy.fixed + batch + 2 * roomy.layer - 100,
                           64 * MB)
    assert one_less.score_threads == 2
    assert plan_memory(model, rows, targets, 10 * MB, sample, 100, 8 * 2**30, 64 * MB).score_threads == 8
    assert re.fullmatch(r"--memory-budget: lowering this model needs about \S+ GB \(.*\), over the budget of .*",
                        tight.lowering_warning())
    with pytest.raises(UserError, match="--memory-budget: .* cannot hold this build"):
        plan_memory(model, rows, targets, 10 * MB, sample, 100, RUNTIME_BYTES, 64 * MB)
    assert parse_size("4G") == 4 * 2**30 and parse_size("512MiB") == 512 * MB and parse_size("2.5gb") == int(2.5 * 2**30)
    with pytest.raises(UserError, match="not a size"):
        parse_size("four")


def test_a_training_split_too_big_for_memory_is_streamed(keras):
    """The streamed path trains on the same samples, a batch mapped at a time, and learns."""
    from lrfc.train.finetune import FinetuneConfig, evaluate, finetune

    rng = np.random.default_rng(3)
    source = rng.integers(0, 256, (512, 4, 4, 1), dtype=np.uint8)
    y = (source.reshape(512, -1).mean(1) > 127).astype(np.int64)
    x = Samples(source, lambda raw: raw.astype(np.float32) / 255)
    accuracies = {}
    for mode, limit in (("streamed", 0), ("in memory", 2**30)):
        keras.utils.set_random_seed(0)
        inp = keras.Input((4, 4, 1))
        model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(inp)))
        before = evaluate(model, x, y)
        result = finetune(model, x, y, FinetuneConfig(epochs=8, batch_size=32, learning_rate=0.05, distill=False,
                                                      in_memory_bytes=limit))
        accuracies[mode] = evaluate(model, x, y)
        assert result.epochs == 8 and accuracies[mode] > before + 0.15, (mode, before, accuracies)
    assert abs(accuracies["streamed"] - accuracies["in memory"]) < 0.1, accuracies


def test_repair_and_verification_passes_keep_to_the_plans_batch(keras):
    """Reconstruction's prefix, BN re-estimation, the gate's reference and QAT's ranges hold a batch's activations
    each, so each keeps to the plan's cap (ResNet50 at 64x64: 256 at once was 2.9 GB)."""
    from lrfc.factorize.reconstruct import _inputs_of
    from lrfc.frontend.samples import cap_batches
    from lrfc.lower.verify import reference_outputs
    from lrfc.train.bn import reestimate_bn
    from lrfc.train.qat import output_ranges

    seen = []

    class Record(keras.layers.Layer):  # notes each concrete batch that passes
        def call(self, t):
            import tensorflow as tf

            if t.shape[0] is not None and tf.executing_eagerly():  # not while a compiled step is traced
                seen.append(int(t.shape[0]))
            return t

        def compute_output_shape(self, shape):
            return shape

    inp = keras.Input((8, 8, 1))
    x = Record()(inp)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    out = keras.layers.Dense(3, name="head")(keras.layers.Flatten()(x))
    model = keras.Model(inp, out)
    data = np.random.default_rng(3).random((50, 8, 8, 1)).astype(np.float32)
    compiled = model.predict_on_batch

    def predict_on_batch(batch):  # the gate's reference goes through the compiled step: its Python runs once per trace
        seen.append(len(batch))
        return compiled(batch)

    model.predict_on_batch = predict_on_batch
    cap_batches(7)
    try:
        calls = [lambda: _inputs_of(model, model.get_layer("head"), data),
                 lambda: reestimate_bn(model, data),
                 lambda: reference_outputs(model, data),
                 lambda: output_ranges(model, ["conv"], data)]
        for call in calls:
            seen.clear()
            call()
            assert seen and max(seen) == 7 and sum(seen) == 50, seen
    finally:
        cap_batches(None)


RESIDUE_CODE = """
import json
from lrfc.common import allocator, memory
chosen = allocator.choose()
from lrfc.common.quiet import import_keras
keras = import_keras()
import numpy as np
inp = keras.Input((128, 128, 8))
model = keras.Model(inp, keras.layers.Conv2D(64, 3, padding="same")(keras.layers.Conv2D(64, 3, padding="same")(inp)))
x = np.ones((32, 128, 128, 8), np.float32)
model(x[:1], training=False)
memory.release(force=True)
before = memory.resident_bytes()
model(x, training=False)  # two 128 MiB outputs
memory.release(force=True)
print(json.dumps({"chosen": chosen, "residue": memory.resident_bytes() - before}))
"""


def _residue(given: dict) -> dict:
    """What a fresh process chose and kept resident after one big eager call; ``given``: its allocator variable."""
    import json
    import os
    import subprocess
    import sys

    from lrfc.common.allocator import VARIABLE

    env = {k: v for k, v in os.environ.items() if k != VARIABLE} | given
    res = subprocess.run([sys.executable, "-c", RESIDUE_CODE], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_a_build_allocates_from_the_system_so_a_stages_tensors_leave_with_it():
    """TensorFlow's oneDNN pool keeps what a big call held; the system allocator, which builds choose, gives it back."""
    from lrfc.common.allocator import VARIABLE

    system = _residue({})
    pool = _residue({VARIABLE: "0"})
    assert system["chosen"] == "system"
    assert pool["chosen"] == f"oneDNN pool ({VARIABLE}=0 as given)"
    assert system["residue"] < 64 * 2**20, system
    assert pool["residue"] > 192 * 2**20, pool  # the canary: if TensorFlow's pool starts giving back, revisit the choice


def test_a_process_that_started_tensorflow_first_keeps_its_allocator(keras, monkeypatch):
    import os

    from lrfc.common import allocator

    monkeypatch.delenv(allocator.VARIABLE, raising=False)
    assert allocator.choose() == "as TensorFlow started (imported before the build)"
    assert allocator.VARIABLE not in os.environ


ONEDNN_CODE = """
import json, os
from lrfc.common.quiet import import_keras
import_keras()
import numpy as np, tensorflow as tf
x = tf.constant(np.ones((1, 6, 6, 2), np.float32))
w = tf.constant(np.ones((3, 1, 2, 1), np.float32))
try:
    ok = tf.nn.depthwise_conv2d(x, w, strides=[1, 2, 1, 1], padding="SAME").shape.as_list() == [1, 3, 6, 2]
except tf.errors.InvalidArgumentError:
    ok = False
print(json.dumps({"variable": os.environ.get("TF_ENABLE_ONEDNN_OPTS"), "unequal_strides_ran": ok}))
"""


def _onednn(given: dict) -> dict:
    """What a fresh process that imports TensorFlow through lrfc has: the variable, and whether oneDNN's depthwise
    kernel ran (TensorFlow's Eigen one refuses unequal strides)."""
    import json
    import os
    import subprocess
    import sys

    from lrfc.common.onednn import VARIABLE

    env = {k: v for k, v in os.environ.items() if k != VARIABLE} | given
    res = subprocess.run([sys.executable, "-c", ONEDNN_CODE], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_lrfc_asks_for_onednn_unless_the_user_said_no():
    """On a CPU where TensorFlow leaves oneDNN off (no AVX-512), lrfc's import turns it on; a user's 0 wins anywhere."""
    assert _onednn({}) == {"variable": "1", "unequal_strides_ran": True}
    assert _onednn({"TF_ENABLE_ONEDNN_OPTS": "0"}) == {"variable": "0", "unequal_strides_ran": False}


def test_onednn_is_left_alone_once_tensorflow_is_imported(keras, monkeypatch):
    import os

    from lrfc.common import onednn

    monkeypatch.delenv(onednn.VARIABLE, raising=False)
    assert onednn.enable() is False and onednn.VARIABLE not in os.environ
