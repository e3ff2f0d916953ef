"""The real `lrfc` entry point: exit codes, one-line errors, lazy imports, JSON shapes."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import run_cli


def test_user_errors_are_one_line_exit_2(tmp_path):
    for args, needle in [
        (["inspect", str(tmp_path / "missing.keras")], "model not found"),
        (["profiles", "show", "jetson-tx9"], "unknown profile 'jetson-tx9'"),
        (["inspect", str(tmp_path / "missing.keras"), "--input-shape", "a,b"], "--input-shape"),
    ]:
        res = run_cli(*args)
        assert res.returncode == 2, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lrfc: error:") and needle in lines[0], res.stderr
        assert "Traceback" not in res.stderr


def test_verbose_shows_the_traceback(tmp_path):
    res = run_cli("--verbose", "inspect", str(tmp_path / "missing.keras"))
    assert res.returncode == 2
    assert "Traceback" in res.stderr and "model not found" in res.stderr.splitlines()[-1]


def test_usage_error_exit_2_in_one_line():
    res = run_cli("inspect")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "Missing argument" in res.stderr


def test_a_missing_data_path_fails_before_tensorflow_loads(tmp_path):
    """It used to be reported after TensorFlow had loaded (20-30 s)."""
    code = (
        "import sys\n"
        "from lrfc.cli import main\n"
        f"status = main(['build', {str(tmp_path / 'm.keras')!r}, '--data', {str(tmp_path / 'nowhere.npz')!r}])\n"
        "print(status, 'tensorflow' in sys.modules)\n"
    )
    (tmp_path / "m.keras").write_bytes(b"")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stdout.split() == ["2", "False"], res.stderr
    assert res.stderr.strip().endswith("nowhere.npz (expected fashion-mnist, digits, an .npz, .npy, .h5, .csv or TFRecord "
                                     "file, an image folder, or an archive of one)")


def test_help_and_profiles_do_not_import_tensorflow():
    code = (
        "import sys, io, contextlib\n"
        "from lrfc.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['profiles', 'list']) == 0\n"
        "    assert main(['profiles', 'show', 'jetson', '--json']) == 0\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'tf2onnx', 'tensorly', 'numpy', 'onnxruntime', 'ray') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"


def test_version_names_lrfc_and_the_packages_it_lowers_with_without_tensorflow():
    """`lrfc --version`, as every tool a user knows has it: lrfc's version (pyproject.toml's), then the converters'
    and runtimes' versions a bug report needs; read from package metadata, so TensorFlow is not imported."""
    import tomllib
    from importlib import metadata
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    code = ("import sys\nfrom lrfc.cli import main\ncode = main(['--version'])\n"
            "print([m for m in ('tensorflow', 'keras', 'tf2onnx', 'onnxruntime') if m in sys.modules], code)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    first, packages, loaded = res.stdout.strip().splitlines()
    assert first == f"lrfc {project['version']}"
    for name in ("tensorflow-cpu", "keras", "tf2onnx", "onnxruntime", "ai-edge-litert"):
        assert f"{name} {metadata.version(name)}" in packages
    assert packages.endswith(f"; Python {sys.version.split()[0]}") and loaded == "[] 0"


def test_profiles_json():
    res = run_cli("profiles", "list", "--json")
    names = [p["name"] for p in json.loads(res.stdout)]
    for name in ("host", "jetson-nano", "jetson-xavier-nx", "jetson-orin-nano", "jetson-agx-orin", "raspberry-pi-4",
                 "raspberry-pi-5", "coral-edgetpu", "x86-nvidia-gpu"):
        assert name in names
    shown = json.loads(run_cli("profiles", "show", "jetson", "--json").stdout)
    assert shown["name"] == "jetson-orin-nano"


def test_inspect_json_on_a_legacy_h5_sequential(keras, tmp_path):
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(10)])
    model.save(tmp_path / "seq.h5")
    res = run_cli("inspect", str(tmp_path / "seq.h5"), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["total_params"] == model.count_params()
    conv = report["layers"][0]
    assert conv == {"name": conv["name"], "type": "Conv2D", "output_shape": [None, 13, 13, 8], "params": 80,
                    "macs": 13 * 13 * 9 * 8, "methods": ["tucker", "cp", "tt"]}
    assert report["layers"][-1]["methods"] == ["svd", "qr", "ttm"]
    assert report["total_macs"] == 13 * 13 * 9 * 8 + 13 * 13 * 8 * 10
    assert "Warning" not in res.stderr, res.stderr  # Keras' legacy-.h5 UserWarning is not lrfc's to print
    table = run_cli("inspect", str(tmp_path / "seq.h5")).stdout
    assert "total" in table.splitlines()[-2] and f"{model.count_params():,}" in table.splitlines()[-2]
    assert table.splitlines()[-1].startswith("input: pixel values 0-1, inferred: no Rescaling/Normalization layer")
    assert report["input"]["range"] == "0-1" and report["input"]["source"] == "inferred"


def test_help_shows_every_bracket_its_source_has():
    """Rich reads ``[word]`` in a help text as markup and drops it: ``--executor``'s help said "pip install 'lrfc'"."""
    import re

    import typer
    from typer.testing import CliRunner

    from lrfc.cli import app

    def commands(group, path):
        for name, sub in getattr(group, "commands", {}).items():
            yield from commands(sub, [*path, name]) if hasattr(sub, "commands") else [([*path, name], sub)]

    found = []
    for path, command in commands(typer.main.get_command(app), []):
        shown = CliRunner().invoke(app, [*path, "--help"], terminal_width=2000, env={"COLUMNS": "2000"}).output
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        for token in (t for text in texts for t in re.findall(r"\[[^\]]*\]", text)):  # "[id, name]" too
            found.append(token)
            assert token in shown, f"lrfc {' '.join(path)} --help lost {token}"
    assert "[ray]" in found and "[id, name]" in found  # the walk reached the build command's options
