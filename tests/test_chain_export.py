"""Every registered method's chain, exported to TFLite and ONNX and run in LiteRT and ONNX Runtime.

Real conversions and real runtimes, no mocks: for each entry of the registry
(whatever it holds) and geometries suited to its KIND, the chain at a mid
rank is built in Keras, lowered with ``lrfc.lower``, run through
``runtime_bench.run`` and compared with Keras.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from lrfc.common.quiet import import_keras

keras = import_keras()

from lrfc.decompose import METHODS, LayerWeights, get  # noqa: E402
from lrfc.decompose.chain import chain_model  # noqa: E402
from lrfc.geometry import ConvGeometry, DenseGeometry  # noqa: E402
from lrfc.lower.onnx import export_onnx  # noqa: E402
from lrfc.lower.tflite import export_tflite  # noqa: E402
from runtime_bench.run import run_onnx, run_tflite  # noqa: E402

TOLERANCE = 1e-4

# KIND -> case name -> (geometry, Keras input shape)
GEOMETRIES = {
    "conv": {
        "conv3x3_s2_same": (ConvGeometry((3, 3), 6, 8, (9, 9), (5, 5), strides=(2, 2), padding="same"), (9, 9, 6)),
        "conv1x7_valid": (ConvGeometry((1, 7), 6, 8, (5, 12), (5, 6), padding="valid"), (5, 12, 6)),
    },
    "dense": {
        "dense_rank2": (DenseGeometry(24, 20), (24,)),
        "dense_rank3": (DenseGeometry(24, 20, tokens=5), (5, 24)),
        "conv_1x1": (ConvGeometry((1, 1), 12, 16, (4, 5), (4, 5)), (4, 5, 12)),
    },
}

CASES = [(name, case) for name, mod in METHODS.items() for case in GEOMETRIES[mod.KIND]]


def kernel_shape(geom) -> tuple[int, ...]:
    if isinstance(geom, DenseGeometry):
        return (geom.in_features, geom.out_features)
    return (*geom.kernel, geom.cin, geom.cout)


def op_names(path) -> list[str]:
    from ai_edge_litert.interpreter import Interpreter

    return [op["op_name"] for op in Interpreter(model_path=str(path))._get_ops_details()]


@pytest.mark.parametrize("name,case", CASES, ids=[f"{n}-{c}" for n, c in CASES])
def test_chain_exports_match_keras(name, case, tmp_path):
    mod = get(name)
    geom, in_shape = GEOMETRIES[mod.KIND][case]
    rng = np.random.default_rng(0)
    weights = LayerWeights(rng.standard_normal(kernel_shape(geom)).astype(np.float32),
                           rng.standard_normal(geom.cout if isinstance(geom, ConvGeometry) else geom.out_features)
                           .astype(np.float32))
    ranks = tuple(max(1, r // 2) for r in mod.max_ranks(geom))
    factors = mod.truncate(mod.prepare(weights, geom), ranks)
    model = chain_model(in_shape, mod.stages(factors, geom, "relu"), spatial_rank=2, name=f"{name}_chain")
    x = rng.standard_normal((4, *in_shape)).astype(np.float32)
    ref = np.asarray(model(x, training=False))

    tflite = export_tflite(model, tmp_path / "chain.tflite")
    onnx_path = export_onnx(model, tmp_path / "chain.onnx")
    d_tflite = float(np.abs(run_tflite(tflite, x) - ref).max())
    d_onnx = float(np.abs(run_onnx(onnx_path, x) - ref).max())
    print(f"{name} {case} ranks {ranks}: max |diff| tflite {d_tflite:.2e}, onnx {d_onnx:.2e}")
    assert d_tflite < TOLERANCE and d_onnx < TOLERANCE, (d_tflite, d_onnx)

    ops = op_names(tflite)
    assert not [op for op in ops if op.startswith("Flex") or op in ("CUSTOM", "DELEGATE")], ops
    if name == "ttm":  # the custom layer lowers to plain builtins only
        assert set(ops) <= {"RESHAPE", "TRANSPOSE", "FULLY_CONNECTED", "BATCH_MATMUL", "ADD", "RELU"}, ops


def test_ttm_layer_with_unknown_inner_length_exports(tmp_path):
    from lrfc.decompose.ttm_layer import TTMatrixDense

    inp = keras.Input((None, 24))
    model = keras.Model(inp, TTMatrixDense((4, 3, 2), (2, 2, 5), (3, 4), activation="relu")(inp))
    x = np.random.default_rng(3).standard_normal((3, 7, 24)).astype(np.float32)
    ref = np.asarray(model(x))
    d_tflite = float(np.abs(run_tflite(export_tflite(model, tmp_path / "m.tflite"), x) - ref).max())
    d_onnx = float(np.abs(run_onnx(export_onnx(model, tmp_path / "m.onnx"), x) - ref).max())
    assert d_tflite < TOLERANCE and d_onnx < TOLERANCE, (d_tflite, d_onnx)
    assert not [op for op in op_names(tmp_path / "m.tflite") if op.startswith("Flex") or op == "CUSTOM"]


def test_fp16_export_and_bad_arguments(tmp_path):
    model = keras.Sequential([keras.Input((24,)), keras.layers.Dense(20, activation="relu")])
    x = np.random.default_rng(1).standard_normal((3, 24)).astype(np.float32)
    path = export_tflite(model, tmp_path / "half.tflite", precision="fp16")
    assert float(np.abs(run_tflite(path, x) - np.asarray(model(x))).max()) < 1e-2
    with pytest.raises(ValueError, match="received 'int8'"):
        export_tflite(model, tmp_path / "q.tflite", precision="int8")
    with pytest.raises(ValueError, match="received 19"):
        export_onnx(model, tmp_path / "m.onnx", opset=19)
    assert not (tmp_path / "q.tflite").exists() and not (tmp_path / "m.onnx").exists()


def test_onnx_input_is_named_and_batch_is_dynamic(tmp_path):
    import onnxruntime as ort

    model = keras.Sequential([keras.Input((5, 24)), keras.layers.Dense(7)])
    path = export_onnx(model, tmp_path / "m.onnx")
    (inp,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()
    assert inp.name == "input" and not isinstance(inp.shape[0], int) and inp.shape[1:] == [5, 24]
    x = np.random.default_rng(2).standard_normal((6, 5, 24)).astype(np.float32)
    assert float(np.abs(run_onnx(path, x) - np.asarray(model(x))).max()) < TOLERANCE


def test_runtime_bench_imports_no_tensorflow():
    code = ("import sys, runtime_bench.run; "
            "bad = [m for m in ('tensorflow', 'keras', 'tf2onnx', 'tensorly') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
