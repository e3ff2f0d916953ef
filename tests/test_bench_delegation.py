"""bench.delegation: a model's four TFLite files (fp32, int8; as lowered before and with the XNNPACK forms), what
XNNPACK leaves out of each, their error against Keras and p50 side by side; and the table rendered from them."""

from bench.delegation import measure
from bench.render_delegation import delegation


def test_four_files_measured_and_rendered(keras):
    keras.utils.set_random_seed(0)
    layers = keras.layers
    inp = keras.Input((12, 12, 3))
    x = layers.Conv2D(8, 3, padding="same")(inp)
    x = layers.Add()([x, layers.Conv2D(8, 3, padding="same")(layers.ReLU()(x))])
    x = layers.AveragePooling2D(2)(x)
    model = keras.Model(inp, layers.Dense(10)(layers.Flatten()(x)), name="small")

    row = measure(model, (-1.0, 1.0), runs=3)
    files = row["files"]
    assert list(files) == ["fp32 before", "fp32 xnnpack forms", "int8 before", "int8 xnnpack forms"]
    assert files["int8 before"]["delegation"]["not_delegated"] == {"RELU": 1, "AVERAGE_POOL_2D": 1}
    assert files["int8 xnnpack forms"]["delegation"]["not_delegated"] == {}
    assert files["fp32 before"]["delegation"]["not_delegated"] == {}
    assert files["fp32 before"]["error"] < 1e-5 and files["fp32 xnnpack forms"]["error"] < 1e-5
    assert 0 < files["int8 xnnpack forms"]["error"] < 0.1 and files["int8 xnnpack forms"]["top1_agreement"] >= 0.75
    assert all(f["p50_ms"] > 0 for f in files.values())

    run = {"model": "Small", **row, "command": "python -m bench.delegation --models small",
           "date": "2026-12-05 17:00 UTC", "machine": "Xeon (AVX-512, AMX)"}
    lines = delegation({"runs": {"small": run}, "machine": {"cpu": "test"}})
    table = [l for l in lines if l.startswith("| Small |")]
    assert len(table) == 4
    assert "| int8 before | " in table[2] and "| RELU, AVERAGE_POOL_2D |" in table[2]
    assert "| int8 xnnpack forms | " in table[3] and "| 1 | none |" in table[3]
    assert any(l.startswith("int8 p50 before / with the XNNPACK forms: Small at 12x12 ") for l in lines)
