"""Which allocator TensorFlow's CPU kernels draw from, chosen before TensorFlow allocates anything.

TensorFlow's oneDNN kernels (on wherever lrfc imports TensorFlow: ``common.onednn``) allocate from a pool of
their own (``mklcpu``, a best-fit allocator over regions that double as it
grows) that never hands memory back: once a stage has held a large working
set, every later stage carries it (``test_bounded_memory``'s two 128 MiB
convolution outputs: 417 MB stay resident on the pool, under 1 MB on the
system allocator). ``TF_ONEDNN_USE_SYSTEM_ALLOCATOR=1`` sends those kernels to ``malloc``,
whose freed pages ``common.memory.release`` returns between stages, so the
memory plan's formula (``frontend.memory_plan``) is what a build holds, not
its history (``python -m bench.scale``, 2026-12-01 afternoon, the code of
then; later rows in docs/SCALING.md): ResNet50 at 64x64, whole
``--finetune none`` build, peak 4.55 -> 3.56 GiB (``lower``, which
converted with the earlier stages' pool resident); at 224x224 up to
``score``, 4.12 -> 4.03 GiB.

What it costs, measured side by side (``TF_ONEDNN_USE_SYSTEM_ALLOCATOR=0``
or unset, ``python -m bench.scale --child score -- MODEL ...``, the row's
flags; docs/SCALING.md): time where tensors are too large for
malloc's heap (over 32 MB: mapped and faulted in afresh on every call):
MobileNetV2 at 224x224 loads 26 % and scores 51 % slower (score peak 2.70
-> 2.10 GiB); ResNet50 at 64x64 built in 10.1 minutes against 8.8 (an
earlier run, idle). Small models take the same time, but each score walk's
thread keeps a malloc arena, so their score stage peaks 0.3-0.4 GB higher
(the demo: 1,254-1,275 -> 1,618-1,652 MiB, two runs each). A user with
memory to spare who wants the time back sets
``TF_ONEDNN_USE_SYSTEM_ALLOCATOR=0``.

The variable is read when the pool is first created, at TensorFlow's first
allocation, so ``run_build`` sets it before it imports TensorFlow
(importing alone allocates nothing). A value the user exported wins; a
process that imported TensorFlow before the build keeps what it has.
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
