"""common.npyfile: numpy headers are parsed under one lock, so score walks in threads cannot trip CPython 3.11's AST bug."""
import ast
import sys
import threading
import time

import numpy as np
import pytest

from lrfc.common import npyfile


@pytest.fixture
def headers_seen(monkeypatch):
    """Each ``ast.literal_eval`` call (numpy's header parser) records whether the lock was held."""
    held = []
    real = ast.literal_eval

    def literal_eval(node):
        held.append(npyfile._LOCK.locked())
        return real(node)

    monkeypatch.setattr(ast, "literal_eval", literal_eval)
    return held


def test_every_numpy_read_the_walks_make_parses_its_header_under_the_lock(tmp_path, headers_seen):
    from lrfc.decompose.base import LayerStats
    from lrfc.search.scoring import opened, opened_stats

    np.save(tmp_path / "maps.npy", np.arange(12, dtype=np.float32).reshape(3, 4))
    (tmp_path / "stats").mkdir()
    np.save(tmp_path / "stats" / "input_cov.npy", np.eye(3))
    np.save(tmp_path / "stats" / "channel_cov.npy", np.eye(2))
    (tmp_path / "stats" / "samples").write_text("7")
    np.savez(tmp_path / "fit.npz", a=np.ones(2), b=np.zeros(3))

    assert opened(tmp_path / "maps.npy")[2, 3] == 11.0
    stats = opened_stats(tmp_path / "stats")
    assert isinstance(stats, LayerStats) and stats.samples == 7 and stats.channel_cov.shape == (2, 2)
    members = npyfile.arrays(tmp_path / "fit.npz")
    assert sorted(members) == ["a", "b"] and members["b"].shape == (3,)
    assert npyfile.arrays(tmp_path / "fit.npz", ("a",))["a"].tolist() == [1.0, 1.0]
    assert len(headers_seen) == 6 and all(headers_seen)  # maps, two statistics, two npz members, one more member
    assert not npyfile._LOCK.locked()


class _Cycle:
    """Cyclic garbage with a finalizer: the collector runs Python code (and may switch threads) wherever it strikes."""

    def __init__(self):
        self.me = self

    def __del__(self):
        time.sleep(0)


def test_threads_mapping_npy_files_at_once_never_raise(tmp_path):
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"a{i}.npy")
        np.save(paths[-1], np.zeros((3, 4), np.float32))
    errors, interval = [], sys.getswitchinterval()

    def work(path):
        for _ in range(1500):
            _Cycle()
            try:
                npyfile.load(path, mmap_mode="r")
            except SystemError as exc:  # without the lock: "AST constructor recursion depth mismatch", now and then
                errors.append(str(exc))

    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work, args=(p,)) for p in paths]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
