"""bench.render_foreign: refused rows keep lrfc's one line, built rows their numbers, judged without issue 14's targets."""
from bench.foreign import MODELS, ROWS
from bench.render_foreign import foreign

TRAINED = {"architecture": "MobileNetV2 (alpha 0.35)", "file": "m.h5", "epochs": 1, "train_samples": 5000,
           "train_s": 21.7, "bn_momentum": [0.999], "train_accuracy": 0.36, "keras_test_accuracy": 0.1}


def _file(p50: float, verified=True) -> dict:
    return {"p50_ms": p50, "p90_ms": p50 * 1.2, "accuracy": 0.84, "file_bytes": 1000, "peak_rss_mb": 50.0,
            "verified": verified}


def test_refused_and_built_rows():
    built = {"model": "m", "trained": {**TRAINED, "epochs": 6, "bn_momentum": [0.9]}, "flags": "", "exit": 0,
             "wall_s": 154.0, "peak_rss_mb": 2191.0, "date": "2026-12-03 12:10 UTC", "command": "lrfc build m.h5",
             "input": {"range": "0-255", "source": "inferred", "data_values": "float32 0..1"},
             "accuracy_before": 0.8189, "accuracy_after": 0.8484, "drop_points": -2.95, "test_before": None,
             "test_after": None, "params_removed_pct": 54.0, "macs_removed_pct": 21.0, "macs_before": 1196592,
             "macs_after": 945840, "budget": {"max_drop": 1.0, "drop": -2.95, "met": True, "validation_samples": 1900},
             "latency": {"onnxruntime-cpu": {"original fp32": _file(0.218), "original int8": _file(0.168),
                                             "lrfc fp32": _file(0.190), "lrfc int8": _file(0.150, verified=False)}},
             "fastest": {"onnxruntime-cpu": {"model": "original", "precision": "int8", "name": "original.int8.onnx",
                                             "p50_ms": 0.168, "verified": True, "faster_unverified": {
                                                 "model": "compressed", "precision": "int8",
                                                 "name": "model.int8.onnx", "p50_ms": 0.150, "verified": False}}}}
    refused = {"model": "m", "trained": TRAINED, "flags": "--channel-order bgr", "exit": 2, "wall_s": 10.0,
               "date": "2026-12-03 12:05 UTC", "command": "lrfc build m.h5", "refusal": "lrfc: error: at chance | x"}
    text = "\n".join(foreign({"machine": {}, "runs": {"m/refused": refused, "m/built": built}}))
    assert "| m/refused | MobileNetV2 (alpha 0.35), `m.h5` | 1 epoch on 5,000 images (0.4 min), BN momentum 0.999; " in text
    assert "| `--channel-order bgr` | - | refused (exit 2) after 10 s: lrfc: error: at chance / x |" in text
    assert ("validation 81.89% → 84.84% (drop -2.95, met, 1,900 samples); no test split in the data; 54.0% params, "
            "21.0% MACs removed; 2.6 min, peak RSS 2,191 MiB |") in text
    assert ("| m/built | Xeon (AVX-512, AMX) | ONNX Runtime CPU | 1.15x | 1.12x (lrfc int8 failed verification) | "
            "0.88x | 1.27x |") in text
    assert "(target)" not in text  # issue 14's targets are its baselines', not these models'
    assert "| lrfc int8 | 0.150 | 0.180 | 84.00% (failed verification: timed, not published) |" in text
    assert ("- m/built, ONNX Runtime CPU: fastest verified file original.int8.onnx (the original at int8), p50 0.168 "
            "ms; model.int8.onnx (lrfc at int8, 0.150 ms) ran faster but failed the verification gate.") in text
    assert "lrfc fp32 0.190 ms is slower than original int8 0.168 ms (0.88x)." in text
    assert text.count("`lrfc build m.h5`") == 2
    # a loss to a file that failed the gate says so; a model without BatchNorm (ConvNeXt) says that
    built["latency"]["onnxruntime-cpu"]["original int8"]["verified"] = False
    built["trained"] = {**built["trained"], "bn_momentum": []}
    text = "\n".join(foreign({"machine": {}, "runs": {"m/built": built}}))
    assert ("lrfc fp32 0.190 ms is slower than original int8 0.168 ms (0.88x; original int8 failed verification "
            "(timed, not published)).") in text
    assert "6 epochs on 5,000 images (0.4 min), no BatchNorm; " in text
    # a build that exits 1 (a file of lrfc's failed its gate) keeps its numbers and says why it failed
    failed = {**built, "exit": 1, "failed": "lrfc: error: model.tflite (int8) failed verification (try --qat)"}
    text = "\n".join(foreign({"machine": {}, "runs": {"m/int8": failed}}))
    assert ("21.0% MACs removed; 2.6 min, peak RSS 2,191 MiB; **exit 1**: lrfc: error: model.tflite (int8) failed "
            "verification (try --qat) |") in text
    assert "| m/int8 | Xeon (AVX-512, AMX) | ONNX Runtime CPU | 1.15x |" in text


def test_every_row_names_a_model_and_the_data_it_writes():
    assert {model for model, _, _ in ROWS.values()} == set(MODELS)
    assert {data for _, data, _ in ROWS.values()} == {"png", "png-named", "npz", "npz-binary", "csv-onehot", "tfds",
                                                     "kaggle-zip"}  # write_data's kinds
