"""Which allocator TensorFlow's CPU kernels draw from, chosen before TensorFlow allocates anything.

TensorFlow's oneDNN kernels (on by default on x86) allocate from a pool of
their own (``mklcpu``, a best-fit allocator over regions that double as it
grows) that never hands memory back: once a stage has held a large working
set, every later stage carries it. keras.applications ResNet50 at 64x64
called eagerly on 250 samples left 3.6 GB resident through it, 0.44 GB with
the system allocator; a whole ``--finetune none`` build went from 4.55 GiB
to 3.73 GiB at its peak (``lower``, converting with the earlier stages'
pool still resident). ``TF_ONEDNN_USE_SYSTEM_ALLOCATOR=1`` sends those
kernels to ``malloc``, whose freed pages ``common.memory.release`` returns
between stages, so the memory plan's formula (``frontend.memory_plan``) is
what a build holds, not its history. The price is time: tensors too large
for the heap are mapped and faulted in afresh on every call (ResNet50's
predict at 64x64, batch 250: 10-20 % slower side by side here); small
models' tensors come from the heap and see no difference.

The variable is read when the pool is first created, at TensorFlow's first
allocation, so it is set before the first import of TensorFlow (importing
alone allocates nothing). A value the user exported wins; a process that
imported TensorFlow before the build keeps what it has.
"""

from __future__ import annotations

import os
import sys

VARIABLE = "TF_ONEDNN_USE_SYSTEM_ALLOCATOR"
_chosen: list[str] = []  # what ``choose`` found or set, for the memory plan to report


def choose() -> str:
    """Use the system allocator unless told otherwise or too late; returns what this process uses, in words."""
    value = os.environ.get(VARIABLE)
    if value is not None:
        kind = "system" if value.strip().lower() in ("1", "true") else "oneDNN pool"
        chosen = f"{kind} ({VARIABLE}={value} as given)"
    elif "tensorflow" in sys.modules:
        chosen = "as TensorFlow started (imported before the build)"
    else:
        os.environ[VARIABLE] = "1"
        chosen = "system"
    _chosen[:] = [chosen]
    return chosen


def chosen() -> str:
    """What ``choose`` said last in this process; "" before it ran."""
    return _chosen[0] if _chosen else ""
