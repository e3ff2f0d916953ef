"""Import TensorFlow/Keras without the banner of oneDNN/absl lines on stderr.

``TF_CPP_MIN_LOG_LEVEL=3`` alone does not silence them and disabling oneDNN
costs speed (see the dependency notes), so file descriptor 2 is pointed at
/dev/null for the duration of the import only.
"""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def silenced_stderr():
    """Send fd 2 (what C++ libraries write to) to /dev/null inside the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_keras():
    """Import keras (and TensorFlow under it) quietly; returns the keras module."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "keras" in sys.modules:
        return sys.modules["keras"]
    with silenced_stderr():
        import tensorflow  # noqa: F401
        import keras
    return keras
