"""Interrupted builds: SIGINT/SIGTERM exit 130/143 with one line; SIGKILL at any point leaves the output folder as
it was (never old and new results side by side); the rerun cleans up and reuses the cache.

Real builds of the tiny model in child processes, signalled when their progress lines show which stage runs.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lrfc.common.outputs import MARKER, OutputDir

OLD = ["--finetune", "none", "--bench-runs", "0", "--formats", "tflite,onnx"]
NEW = ["--epochs", "3", "--train-samples", "6000", "--max-rounds", "1", "--bench-runs", "0", "--formats", "tflite",
       "--threshold", "0.95"]


def _cmd(model, data, out: Path, cache: Path, extra) -> list[str]:
    """A build of ``model`` on ``data`` (conftest.small_fashion_mnist: real images, 1,000 of them to validate on)."""
    return [sys.executable, "-m", "lrfc.cli", "build", str(model), "--data", str(data), "--objective", "flops",
            "--calib-samples", "200", "--step", "10", "--methods", "tucker,svd", "--out", str(out),
            "--cache-dir", str(cache), *extra]


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _signal_after(cmd, marker: str, signum: int, timeout: float = 300) -> tuple[int, str]:
    """Start ``cmd``, send ``signum`` once a stderr line starts with ``marker``; its status and stderr."""
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    seen, deadline = [], time.monotonic() + timeout
    try:
        for line in proc.stderr:
            seen.append(line)
            if line.startswith(marker):
                proc.send_signal(signum)
                break
            assert time.monotonic() < deadline, "".join(seen)
        rest = proc.stderr.read()
        return proc.wait(timeout), "".join(seen) + rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def earlier(tiny_model_path, small_fashion_mnist, tmp_path_factory):
    """An output folder holding a finished earlier build (with an ONNX file the new builds do not make)."""
    root = tmp_path_factory.mktemp("interrupts")
    out, cache = root / "out", root / "cache"
    res = subprocess.run(_cmd(tiny_model_path, small_fashion_mnist, out, cache, OLD), capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    return out, cache, _snapshot(out), small_fashion_mnist


@pytest.mark.parametrize("marker", ["data:", "score:", "round 1:"])  # during score, during fine-tuning, during lowering
def test_sigint_exits_130_and_keeps_the_earlier_results(earlier, tiny_model_path, marker):
    out, cache, old, data = earlier
    code, err = _signal_after(_cmd(tiny_model_path, data, out, cache, NEW), marker, signal.SIGINT)
    assert code == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("lrfc: interrupted by SIGINT") and "Traceback" not in err, err
    assert _snapshot(out) == old  # the finished earlier set, untouched
    assert not list(out.glob(".lrfc-*"))  # staging removed on the way out


def test_sigterm_exits_143(earlier, tiny_model_path):
    out, cache, old, data = earlier
    code, err = _signal_after(_cmd(tiny_model_path, data, out, cache, NEW), "score:", signal.SIGTERM)
    assert code == 143 and err.strip().splitlines()[-1].startswith("lrfc: interrupted by SIGTERM"), err
    assert _snapshot(out) == old and not list(out.glob(".lrfc-*"))


def test_sigkill_leaves_no_mix_and_the_rerun_cleans_up_and_reuses_the_cache(earlier, tiny_model_path):
    out, cache, old, data = earlier
    for marker in ("score:", "round 1:"):
        code, err = _signal_after(_cmd(tiny_model_path, data, out, cache, NEW), marker, signal.SIGKILL)
        assert code == -signal.SIGKILL, err
        assert _snapshot(out) == old  # a staging folder may remain, hidden; the results are the earlier set
    res = subprocess.run(_cmd(tiny_model_path, data, out, cache, [*NEW, "--json"]), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["cache"]["hits"] > 0 and report["cache"]["misses"] == 0  # every score came from the killed runs
    assert not list(out.glob(".lrfc-*"))  # stale staging folders of dead processes removed
    files = _snapshot(out)
    assert set(files) == {"model.keras", "model.tflite", "original.tflite", "plan.json", "report.html", "report.json"}
    assert "model.onnx" not in files  # the earlier build's ONNX file does not linger beside the new set


def test_a_publish_killed_midway_is_cleaned_by_the_next_run(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text("{}")
    (out / "model.tflite").write_bytes(b"half of a set")
    (out / MARKER).write_text('{"pid": 1, "files": ["model.tflite", "report.json"]}')
    (out / ".lrfc-staging-999999").mkdir()
    (out / ".lrfc-scratch-999999" / "maps").mkdir(parents=True)  # a killed build's captured maps
    (out / "notes.txt").write_text("the user's own file")
    warnings = []
    OutputDir(out).prepare(warnings.append)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert len(warnings) == 1 and "killed while publishing" in warnings[0]


def test_publish_replaces_the_whole_set_and_keeps_other_files(tmp_path):
    out = OutputDir(tmp_path / "out")
    out.prepare()
    (out.path / "model.onnx").write_text("old")
    (out.path / "report.json").write_text("old")
    (out.path / "mine.txt").write_text("the user's")
    (out.staging / "model.tflite").write_text("new")
    (out.staging / "report.json").write_text("new")
    published = out.publish()
    assert list(published) == ["model.tflite", "report.json"]  # the report last
    assert sorted(p.name for p in out.path.iterdir()) == ["mine.txt", "model.tflite", "report.json"]
    assert (out.path / "report.json").read_text() == "new"
    (out.staging / "stray.bin").write_text("x")
    with pytest.raises(ValueError, match="not result files"):
        out.publish()
    out.discard()
    assert not list(out.path.glob(".lrfc-*"))


def test_a_message_line_is_one_write_so_a_signal_cannot_split_it(monkeypatch):
    """print() writes the text and the newline apart and a SIGINT's handler can run between them: once the
    interrupt's own line landed on the end of a warning ('... resolve itlrfc: interrupted by SIGINT')."""
    import io

    from lrfc.common.progress import stderr_line

    writes = []

    class Recorder(io.StringIO):
        def write(self, text):
            writes.append(text)
            return super().write(text)

    monkeypatch.setattr(sys, "stderr", Recorder())
    stderr_line("lrfc: warning: the validation split has 1,000 samples")
    assert writes == ["lrfc: warning: the validation split has 1,000 samples\n"]
