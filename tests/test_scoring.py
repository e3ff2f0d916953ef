"""Similarity scoring: the reference response, the search along the grid, the cache."""

from __future__ import annotations

import numpy as np
import pytest

from lrfc.search import scoring
from lrfc.search.cache import Cache


@pytest.fixture(scope="module")
def conv_task(keras):
    from lrfc.frontend.catalogue import describe_model
    from lrfc.frontend.graph import rebuild
    from lrfc.search.scoring import make_task

    inp = keras.Input((12, 12, 6))
    model = rebuild(keras.Model(inp, keras.layers.Conv2D(10, 3, strides=2, padding="same", activation="relu", name="c")(inp)))
    rng = np.random.default_rng(0)
    layer = model.get_layer("c")
    layer.set_weights([rng.normal(size=(3, 3, 6, 10)).astype("float32"), rng.normal(size=10).astype("float32")])
    x = rng.normal(size=(40, 12, 12, 6)).astype("float32")
    return make_task(layer, describe_model(model)[0], x), layer, x


def test_reference_is_the_linear_response_without_bias(keras, conv_task):
    task, layer, x = conv_task
    import tensorflow as tf

    expected = tf.nn.conv2d(x, layer.kernel, strides=2, padding="SAME").numpy()
    np.testing.assert_allclose(task.reference, expected, atol=1e-5)
    assert task.reference.min() < 0  # before the fused ReLU


@pytest.mark.parametrize("multiplier", [1, 2])
def test_a_separable_layer_s_reference_runs_its_depthwise_part_at_its_depth_multiplier(keras, multiplier):
    """A SeparableConv2D's task: the inputs through its depthwise part (``multiplier`` maps per channel), then
    the pointwise kernel, no bias; the pointwise factorized at full rank scores 1."""
    from lrfc.frontend.catalogue import describe_model
    from lrfc.frontend.graph import rebuild
    from lrfc.search.scoring import make_task, similarity
    import tensorflow as tf

    inp = keras.Input((9, 9, 4))
    sep = keras.layers.SeparableConv2D(6, 3, padding="same", depth_multiplier=multiplier, dilation_rate=2, name="s")
    model = rebuild(keras.Model(inp, sep(inp)))
    layer = model.get_layer("s")
    rng = np.random.default_rng(1)
    layer.set_weights([w + rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()])
    x = rng.normal(size=(16, 9, 9, 4)).astype("float32")
    task = make_task(layer, describe_model(model)[0], x)
    depthwise = tf.nn.depthwise_conv2d(x, layer.depthwise_kernel, [1, 1, 1, 1], "SAME", dilations=[2, 2]).numpy()
    assert depthwise.shape[-1] == 4 * multiplier
    expected = tf.nn.conv2d(depthwise, layer.pointwise_kernel, 1, "VALID").numpy()
    np.testing.assert_allclose(task.reference, expected, atol=1e-4)
    from lrfc import decompose

    full = decompose.get("svd").max_ranks(task.info.geometry)
    assert full == (min(4 * multiplier, 6),)
    assert similarity(task, "svd", full, False, Cache(enabled=False)) == pytest.approx(1.0, abs=1e-5)


def test_full_rank_scores_one_and_lower_ranks_less(conv_task):
    from lrfc.search.scoring import similarity

    task, _, _ = conv_task
    cache = Cache(enabled=False)
    assert similarity(task, "tucker", (6, 10), False, cache) == pytest.approx(1.0, abs=1e-6)
    low = similarity(task, "tucker", (2, 2), False, cache)
    mid = similarity(task, "tucker", (4, 6), False, cache)
    assert 0 < low < mid < 1.0


def test_search_finds_the_first_passing_grid_point_with_few_scores(monkeypatch, conv_task):
    from lrfc.search import scoring

    task, _, _ = conv_task
    grid = [(a, b) for a in range(1, 7) for b in range(1, 11)]  # 60 points, all within max ranks (6, 10)
    index = {r: i for i, r in enumerate(grid)}
    calls = []

    def fake(task_, method, ranks, aware, cache):
        calls.append(ranks)
        return (index[ranks] + 1) / 60.0  # monotone in the grid index

    monkeypatch.setattr(scoring, "similarity", fake)
    cands = scoring.score_method(task, "tucker", grid, 0.62, Cache(enabled=False), fit="off")
    passing = [c for c in cands if c.similarity >= 0.62]
    first = next(i for i in range(60) if (i + 1) / 60 >= 0.62)  # what a linear walk finds
    # the first passing point, then the front above it at doubling distances and the last point
    assert [index[c.ranks] for c in passing] == sorted({first, first + 1, first + 2, first + 4, first + 8, first + 16, 59})
    assert len(set(calls)) <= 16 < len(grid)
    assert [index[c.ranks] for c in cands] == sorted(index[c.ranks] for c in cands)
    none = scoring.score_method(task, "tucker", grid, 1.5, Cache(enabled=False), fit="off")
    assert all(c.similarity < 1.5 for c in none) and none[-1].ranks == grid[-1]


def test_scores_persist_in_the_cache(tmp_path, conv_task):
    from lrfc.search.scoring import similarity

    task, _, _ = conv_task
    first = Cache(tmp_path)
    value = similarity(task, "cp", (3,), False, first)
    first.close()
    second = Cache(tmp_path)
    assert similarity(task, "cp", (3,), False, second) == value
    assert (second.hits, second.misses) == (1, 0)
    second.close()


@pytest.mark.parametrize("n", [1, 2, 5, 17, 64])
def test_first_passing_finds_the_boundary_in_few_calls(n):
    for boundary in range(n + 1):  # boundary == n: nothing passes
        calls = []
        found = scoring.first_passing(lambda i: calls.append(i) or i >= boundary, n)
        assert found == (boundary if boundary < n else None)
        assert len(calls) <= 2 * max(1, n).bit_length() + 2, (n, boundary, calls)


def test_the_default_fit_scores_only_the_data_aware_fit_and_auto_keeps_the_better(monkeypatch, conv_task):
    from lrfc.options import DEFAULT
    from lrfc.search.calibrate import input_stats

    task, _, x = conv_task
    task = scoring.LayerTask(task.info, task.weights, task.captured, task.response, input_stats(x, task.info.geometry))
    grid = [(a, a) for a in range(1, 7)]
    calls = []

    def fake(task_, method, ranks, aware, cache):
        calls.append((ranks, aware))
        if aware:
            return ranks[0] / 6.0 + 0.01
        return ranks[0] / 6.0 + (0.02 if ranks[0] == 3 else 0.0)  # the weight-only fit wins at rank 3 only

    monkeypatch.setattr(scoring, "similarity", fake)
    assert DEFAULT["fit"] == "on"
    on = scoring.score_method(task, "tucker", grid, 0.55, Cache(enabled=False), fit=DEFAULT["fit"])
    assert calls and all(aware for _, aware in calls)  # one fit per rank: half the auto mode's work
    assert all(c.data_aware for c in on)
    calls.clear()
    auto = scoring.score_method(task, "tucker", grid, 0.55, Cache(enabled=False), fit="auto")
    assert {aware for _, aware in calls} == {True, False} and len(calls) == 2 * len({r for r, _ in calls})
    by_rank = {c.ranks: c for c in auto}
    assert by_rank[(3, 3)].data_aware is False and by_rank[(3, 3)].similarity == pytest.approx(0.52)  # weight-only won
    assert all(c.data_aware for r, c in by_rank.items() if r != (3, 3))


def test_a_cached_cp_preparation_leaves_the_layers_moment_out_of_its_file_and_gets_it_back(tmp_path, conv_task,
                                                                                           monkeypatch):
    """CP's data-aware preparation borrows the layer's input moment: its pickle (the cache's file, a Ray job) leaves
    it out, and ``prepared_for`` attaches it again, so a preparation read back fits exactly as the one computed."""
    import pickle

    from lrfc.decompose import cp
    from lrfc.search.calibrate import input_stats
    from lrfc.search.scoring import make_task, prepared_for

    monkeypatch.setattr(cp, "_fit_dir", [None])  # fits in memory only: each truncate below fits afresh
    monkeypatch.setattr(cp, "_fits", type(cp._fits)())
    monkeypatch.setattr(cp, "_held", [0])
    base, layer, x = conv_task
    task = make_task(layer, base.info, x, input_stats(x, base.info.geometry))
    first = Cache(tmp_path)
    computed = prepared_for(task, "cp", True, first)
    np.testing.assert_array_equal(computed.sigma, task.stats.input_cov)
    files = list((tmp_path / "prepared").glob("*.pkl"))
    assert len(files) == 1 and files[0].stat().st_size < computed.sigma.nbytes  # 54 x 54 float64: 23 KB alone
    bare = pickle.loads(files[0].read_bytes())
    assert bare.sigma is None and bare.key == computed.key
    with pytest.raises(ValueError, match="attach"):
        cp.truncate(bare, (3,))
    fitted = cp.truncate(computed, (3,))
    first.close()
    cp.forget_fits()  # a fresh process: the fit is made again, from the preparation read back
    second = Cache(tmp_path)
    read = prepared_for(task, "cp", True, second)
    assert read is not computed
    np.testing.assert_array_equal(read.sigma, task.stats.input_cov)
    again = cp.truncate(read, (3,))
    assert again is not fitted
    for a, b in zip(again.arrays, fitted.arrays):
        np.testing.assert_array_equal(a, b)
    second.close()
