"""runtime_bench.sandbox: a file LiteRT aborts on fails its gate in one line; lrfc's own process never loads it.

The model (``conftest.cancelling_model``) is built to hit what keras.applications MobileNetV3Large (untrained,
factorized) hit: a 1x1 convolution whose calibrated output is exactly zero (its weights cancel over two copies of
one tensor), so its requantization scale is far past the 256 XNNPACK creates, after a HARD_SWISH that lrfc rewrites
for XNNPACK. With
ai-edge-litert 2.3.0 the file without the rewrite fails to load cleanly ("failed to create XNNPACK runtime"); with
it, LiteRT frees memory twice and aborts the process.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from lrfc.lower.tflite import export_tflite
from runtime_bench.sandbox import first_run, last_words
from conftest import cancelling_model, run_cli


@pytest.fixture(scope="module")
def aborting(tmp_path_factory, keras):
    """The int8 file LiteRT aborts on, the same model's file it refuses cleanly, and the model."""
    model, calibration = cancelling_model(keras)
    folder = tmp_path_factory.mktemp("sandbox")
    crashes = export_tflite(model, folder / "crashes.tflite", "int8", calibration, xnnpack=True)
    refused = export_tflite(model, folder / "refused.tflite", "int8", calibration, xnnpack=False)
    return crashes, refused, model, calibration


def test_first_run_says_how_the_runtime_died_or_refused(aborting, tmp_path):
    crashes, refused, model, calibration = aborting
    assert first_run(crashes).startswith("its runtime crashed loading or running it (SIGABRT): ")
    assert "double free" in first_run(crashes)
    assert first_run(refused).startswith("ValueError: ") and "failed to create XNNPACK runtime" in first_run(refused)
    fine = export_tflite(model, tmp_path / "fp32.tflite", "fp32")
    assert first_run(fine) is None
    assert last_words("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\nfree(): double free\n\n") == \
        "free(): double free"


def test_the_gate_and_inspect_fail_such_a_file_in_one_line_and_live(aborting, tmp_path):
    """The gate runs an int8 TFLite file in a child first: a crash there is this file's failure, not the build's
    (before, ``lrfc build`` on the MobileNetV3Large ended with exit status 134 and no message). Lowered with
    ``keep_failed`` (a reference to time), a file that did not run is not kept: it would take the benchmark's
    worker down with it."""
    from lrfc.lower.artifact_info import artifact_info, render_artifact_info
    from lrfc.lower.artifacts import lower
    from lrfc.lower.verify import gate, reference_outputs

    crashes, _, model, calibration = aborting
    record = gate(crashes, "tflite", "int8", calibration, reference_outputs(model, calibration))
    assert not record.passed and record.top1_agreement is None and record.delegation is None
    assert record.error.startswith("crashes.tflite (int8) does not run in LiteRT (XNNPACK on, its default): its "
                                   "runtime crashed loading or running it (SIGABRT): ")
    info = artifact_info(crashes)
    assert info["refused"] == first_run(crashes) and info["delegation"] is None
    assert f"LiteRT    cannot run it: {info['refused']}" in render_artifact_info(info)
    (kept,) = lower(model, tmp_path, precision="int8", formats=("tflite",), calibration=calibration,
                    keep_failed=True)
    assert not kept.passed and "crashed" in kept.error and not (tmp_path / "model.tflite").exists()


def test_a_build_of_a_model_litert_aborts_on_ends_in_one_line(tmp_path, keras):
    """The same cancellation inside a 28x28 classifier, built for ``host-int8`` under ``--objective latency``: the
    whole-model timing's worker dies on the original's int8 file (the ladder stays as priced, and the report says
    why), the original's file is a reference that does not run, lrfc's own int8 TFLite file does not run either:
    the build publishes its ONNX file and ends with exit status 1 and one line naming the crash, no traceback."""
    keras.utils.set_random_seed(0)
    layers = keras.layers
    inp = keras.Input((28, 28, 1))
    x = layers.Conv2D(8, 3, strides=2, activation="relu")(inp)
    h = layers.Activation("hard_swish")(layers.Conv2D(16, 1)(x))
    zero = layers.Conv2D(8, 1, use_bias=False, name="cancel")(layers.Concatenate()([h, h]))
    z = layers.Activation("hard_swish")(zero)
    y = layers.Conv2D(256, 1, activation="relu")(layers.Add()([z, layers.Conv2D(8, 1)(h)]))
    # wide enough that its chains beat it at int8 on LiteRT too (narrow ones do not here): a ladder to time
    y = layers.GlobalAveragePooling2D()(layers.Conv2D(256, 3, padding="same", activation="relu")(y))
    model = keras.Model(inp, layers.Dense(10)(y))
    w = np.random.default_rng(0).standard_normal((1, 1, 16, 8)).astype(np.float32)
    model.get_layer("cancel").set_weights([np.concatenate([w, -w], axis=2)])
    model.save(tmp_path / "m.keras")
    out = tmp_path / "o"
    res = run_cli("build", str(tmp_path / "m.keras"), "--data", "fashion-mnist", "--target", "host-int8",
                  "--objective", "latency", "--finetune", "none", "--allow-low-accuracy", "--calib-samples", "64",
                  "--bench-runs", "10", "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
                  "--cost-db", str(tmp_path / "costs.sqlite"), timeout=600)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith(
        "lrfc: error: model.tflite (int8) does not run in LiteRT (XNNPACK on, its default): its runtime crashed "
        "loading or running it (SIGABRT): "), res.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["budget_search"]["levels"] >= 1  # a ladder to time
    assert report["whole_model"]["status"].startswith(
        "estimated: timing the whole models on litert failed (benchmark worker for the original: the worker exited "
        "while loading (exit status -6): ")
    arts = {a["path"].rsplit("/", 1)[-1]: a for a in report["artifacts"] if a.get("variant") is None}
    assert not arts["original.tflite"]["passed"] and "crashed" in arts["original.tflite"]["error"]
    assert arts["model.onnx"]["passed"] and (out / "model.onnx").is_file()
    assert not (out / "model.tflite").exists() and not (out / "original.tflite").exists()


def test_the_files_the_runtime_will_not_load_are_named_at_once_and_the_others_are_timed(aborting, tmp_path,
                                                                                        monkeypatch):
    """runtime_bench names every file its workers would not load (``FileRefused.refused``), and the price stage's
    batch timing drops those chains and times the rest in one more run: keras.applications EfficientNetB0
    (untrained) at ``host-int8`` had one such chain (stem_conv as Tensor-Train, its int8 file refused by XNNPACK)
    among 149, and the build ended in a traceback; ResNet50V2 had 23 in one batch, each a worker start and a reload
    of the batch while they were named one at a time."""
    import shutil

    from lrfc.cost import latency
    from lrfc.cost.devices import DeviceLink
    from runtime_bench.measure import bench
    from runtime_bench.runners import FileRefused

    _, refused, model, _ = aborting
    fine = export_tflite(model, tmp_path / "fine.tflite", "fp32")
    again = shutil.copy(refused, tmp_path / "again.tflite")
    for memory in (False, True):
        with pytest.raises(FileRefused) as err:
            bench([fine, refused, fine, again], runs=2, warmup=0, rounds=1, memory=memory)
        assert err.value.path == str(refused) and list(err.value.refused) == [str(refused), str(again)]
        assert all(m.startswith(f"{p}: ") and "failed to create XNNPACK runtime" in m
                   for p, m in err.value.refused.items())
        assert str(err.value).endswith(" (and 1 more file refused)")

    files = [fine, refused, fine, again]
    monkeypatch.setattr(latency, "lower_chain", lambda chain, path, precision, *rest: shutil.copy(files[chain], path))
    runs = []
    timed = DeviceLink.bench
    monkeypatch.setattr(DeviceLink, "bench", lambda self, paths, **kw: runs.append(len(paths)) or timed(self, paths, **kw))
    result = latency.time_chains(DeviceLink(), "litert", "int8", 1, [0, 1, 2, 3])
    assert runs == [4, 2]  # the refusals named in one answer, the rest timed in one more run
    assert [r is None for r in result["results"]] == [False, True, False, True]
    assert all(r["p50_ms"] > 0 for r in result["results"] if r is not None)
    assert list(result["refused"]) == [1, 3]
    assert all(m.startswith("cannot allocate tensors at batch 1: ") for m in result["refused"].values())
    assert result["device"] is not None