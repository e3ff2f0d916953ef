"""bench.chains: each distinct convolution once (with its count), its chains timed through the pricer's path; the table's sums."""
import numpy as np
import pytest

from bench.chains import layer_chains, time_rows
from bench.render_chains import chains, summary


def test_distinct_convolutions_are_timed_once_each_as_they_are_and_as_their_chains(keras, tmp_path):
    keras.utils.set_random_seed(0)
    layers = keras.layers
    inp = keras.Input((12, 12, 16))
    h = layers.Conv2D(16, 3, padding="same", activation="relu", name="a")(inp)
    h = layers.Conv2D(16, 3, padding="same", activation="relu", name="b")(h)  # a's geometry: counted, not timed again
    h = layers.Conv2D(32, 1, name="pointwise")(h)
    out = layers.Dense(10, name="head")(layers.GlobalAveragePooling2D()(h))
    path = tmp_path / "m.keras"
    keras.Model(inp, out).save(path)

    rows = layer_chains(path)
    assert [(r["name"], r["layers"]) for r in rows] == [("a", 2), ("pointwise", 1), ("head", 1)]
    assert list(rows[0]["chains"]) == ["layer", "tucker 4x4", "tucker 2x2"]
    assert list(rows[1]["chains"]) == ["layer", "svd 4", "svd 2"]
    assert list(rows[2]["chains"]) == ["layer", "svd 2", "svd 1"] and rows[2]["kernel"] == "dense"
    assert rows[0]["macs"] == 12 * 12 * 9 * 16 * 16
    assert rows[0]["chain_macs"]["tucker 4x4"] == 12 * 12 * (16 * 4 + 9 * 4 * 4 + 4 * 16)

    # the "layer" chain is the model's own layer: same output on the same input
    from lrfc.search.scoring import run_stages

    model = keras.Model(inp, out)
    x = np.random.default_rng(0).standard_normal((2, 12, 12, 16)).astype(np.float32)
    layer_a = model.get_layer("a")
    np.testing.assert_allclose(run_stages(x, rows[0]["chains"]["layer"].stages, 2), layer_a(x).numpy(),
                               rtol=1e-4, atol=1e-4)

    time_rows(rows, "litert", "fp32")
    time_rows(rows, "litert", "int8")
    for r in rows:
        for precision in ("fp32", "int8"):
            assert set(r[precision]) == set(r["chains"])
            assert all(0 < v["min_ms"] <= v["p50_ms"] for v in r[precision].values())
        assert "refused" not in r


def _row(name, cin, cout, count, fp32, int8):
    def timed(layer, chain):
        return {"layer": {"min_ms": layer, "p50_ms": layer}, "tucker 1x1": {"min_ms": chain, "p50_ms": chain},
                "tucker 2x2": {"min_ms": chain * 2, "p50_ms": chain * 2}}
    return {"name": name, "kernel": [3, 3], "cin": cin, "cout": cout, "in_hw": [8, 8], "strides": [1, 1],
            "layers": count, "macs": 1000, "fp32": timed(*fp32), "int8": timed(*int8)}


def test_the_sums_weigh_each_layer_by_its_count_and_say_where_the_chain_loses():
    rows = [_row("narrow", 32, 32, 3, (0.05, 0.02), (0.010, 0.020)), _row("wide", 256, 256, 1, (0.09, 0.01), (0.006, 0.003))]
    s = summary(rows, "int8")
    assert s["layer_ms"] == pytest.approx(3 * 0.010 + 0.006) and s["chain_ms"] == pytest.approx(3 * 0.020 + 0.003)
    assert s["either_ms"] == pytest.approx(3 * 0.010 + 0.003)  # narrow keeps its layer, wide takes its chain
    assert [r["name"] for r in s["wins"]] == ["wide"] and [r["name"] for r in s["losses"]] == ["narrow"]
    record = {"runs": {"vgg/litert": {"rows": rows, "runtime": "litert", "command": "python -m bench.chains --models vgg", "seconds": 9.0,
                                      "date": "2026-12-03 05:00 UTC"}}}
    text = "\n".join(chains(record))
    assert "| narrow | 3x3 | 32 -> 32 | 8x8 | 3 | 1,000 | 0.0500 | tucker 1x1: 0.0200 | 2.50 | 0.0100 | tucker 1x1: 0.0200 | 0.50 | 0.20 |" in text
    assert "- int8: per-layer sum 0.036 ms as they are, 0.063 ms with each layer's fastest chain (0.57x); " \
           "the chain wins on 1 of 2 distinct layers (it wins where the layer's narrower side has 256 channels, " \
           "loses where it has 32); each layer as the faster of the two, 0.033 ms (1.09x)." in text
    assert "- fp32: per-layer sum 0.240 ms" in text and "(3.43x); the chain wins on 2 of 2 distinct layers; each layer as" in text


def test_a_dense_row_shows_no_kernel_or_map():
    row = dict(_row("fc1", 512, 128, 1, (0.004, 0.002), (0.005, 0.004)), kernel="dense", in_hw=[1])
    text = "\n".join(chains({"runs": {"vgg/litert": {"rows": [row], "runtime": "litert", "command": "c", "seconds": 1.0,
                                                     "date": "2026-12-03 05:00 UTC"}}}))
    assert "| fc1 | dense | 512 -> 128 | - | 1 | 1,000 | 0.0040 | tucker 1x1: 0.0020 | 2.00 |" in text
