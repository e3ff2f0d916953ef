"""Keep the terminal for lrfc's own lines: TensorFlow's banner, its log lines and Python warnings stay out.

``TF_CPP_MIN_LOG_LEVEL=3`` alone does not silence the oneDNN/absl lines and
disabling oneDNN costs speed (see the dependency notes; ``common.onednn``
turns it on where TensorFlow would not), so file descriptor
2 is pointed at /dev/null for the duration of the import only. After it,
TensorFlow's Python loggers (tf.function retracing warnings in budget
rounds, ...) are set to errors only and Python warnings (a Keras
``UserWarning`` when loading a legacy .h5, ...) are ignored, unless
``set_verbose(True)`` (``lrfc --verbose``) asked to see everything.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

_verbose = False


def set_verbose(verbose: bool) -> None:
    """Show (True) or hide (False) other libraries' warnings and log lines from now on."""
    global _verbose
    _verbose = verbose
    if not verbose:
        warnings.filterwarnings("ignore")
    _quiet_loggers()


def verbose() -> bool:
    """Whether ``lrfc --verbose`` asked to see everything (tracebacks of what a build survived included)."""
    return _verbose


def _quiet_loggers() -> None:
    level = logging.WARNING if _verbose else logging.ERROR
    for name in ("tensorflow", "absl", "keras", "tf2onnx", "h5py"):
        logging.getLogger(name).setLevel(level)
    if "absl.logging" in sys.modules:
        sys.modules["absl.logging"].set_verbosity("warning" if _verbose else "error")


def silenced_stderr():
    """Send fd 2 (what C++ libraries write to) to /dev/null inside the block (runtime_bench's, which cannot import lrfc)."""
    from runtime_bench.delegation import quiet_fd2

    return quiet_fd2()


def import_keras():
    """Import keras (and TensorFlow under it) quietly; returns the keras module."""
    from lrfc.common import onednn

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    onednn.enable()  # before TensorFlow is imported: it reads the variable then
    if "keras" in sys.modules:
        return sys.modules["keras"]
    with silenced_stderr():
        import tensorflow  # noqa: F401
        import keras
    _quiet_loggers()
    return keras
