"""lrfc: an edge-deployment compiler for CNNs built on hybrid low-rank factorization.

The Python API (``lrfc.api``, also reachable as ``lrfc.build``, ``lrfc.export``,
``lrfc.verify``, ``lrfc.inspect``, ``lrfc.bench``) does what the CLI does.

``import lrfc`` is cheap (no TensorFlow): the CLI starts fast. It does make
the one custom layer lrfc writes into ``.keras`` files (``TTMatrixDense``)
known to Keras, so ``keras.saving.load_model`` opens every model lrfc wrote:
at once when Keras is already imported, otherwise the moment it is.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

_API = ("build", "export", "verify", "inspect", "bench", "BuildResult")


def __getattr__(name: str):
    """``lrfc.build`` and the rest of the API, imported on first use."""
    if name in _API:
        from lrfc import api

        return getattr(api, name)
    raise AttributeError(f"module 'lrfc' has no attribute {name!r}")

_KERAS_LAYERS = ("lrfc.decompose.ttm_layer",)


def _register_keras_layers() -> None:
    for name in _KERAS_LAYERS:
        importlib.import_module(name)  # each registers its layers with keras.saving.register_keras_serializable


class _DelegatingLoader(importlib.abc.Loader):
    """Keras' own loader, plus lrfc's registrations once the module has run."""

    def __init__(self, loader, finder):
        self._loader, self._finder = loader, finder

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        if self._finder in sys.meta_path:
            sys.meta_path.remove(self._finder)
        try:
            _register_keras_layers()
        except Exception:  # never break the user's `import keras`; lrfc's own loader registers again
            pass

    def __getattr__(self, name):  # resources, get_data, ...: Keras' loader answers
        return getattr(self._loader, name)


class _OnKerasImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loader of the ``keras`` package until it has been imported.

    It stays on ``sys.meta_path`` until then: TensorFlow looks keras up with
    ``importlib.util.find_spec`` before it imports it.
    """

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras" or "keras" in sys.modules:
            return None
        at = sys.meta_path.index(self)
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec("keras")
        finally:
            sys.meta_path.insert(at, self)
        if spec is not None and spec.loader is not None:
            spec.loader = _DelegatingLoader(spec.loader, self)
        return spec


if "keras" in sys.modules:
    _register_keras_layers()
elif not any(isinstance(f, _OnKerasImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _OnKerasImport())
