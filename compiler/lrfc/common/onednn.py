"""TensorFlow's oneDNN CPU kernels on, on every x86 CPU, unless the user says otherwise.

TensorFlow turns its oneDNN kernels on by default only where the CPU has
AVX-512-class features (AVX512_VNNI, AVX512_BF16, AMX); elsewhere it runs its
Eigen kernels. On an AVX2-only AMD EPYC (2 cores, this project's machine on
2026-12-02) the Eigen kernels trained the baseline models 2-3x slower (Keras
``fit``, batch 128, random weights, the same process each way:
VGG-style 150 -> 442 samples/s, ResNet-style 75 -> 150; inference equal:
1,187 / 735 samples/s either way; ``/tmp`` script, 2026-12-02 10:05 UTC),
and fine-tuning is most of a build. Their depthwise kernel also refuses
unequal strides, which the oneDNN one takes (``decompose.cp.fused`` no
longer needs them).

The variable is read when TensorFlow is imported, so ``enable`` runs before
that (``common.quiet.import_keras``). A value the user exported wins
(``TF_ENABLE_ONEDNN_OPTS=0`` gives the Eigen kernels back).
"""

from __future__ import annotations

import os
import sys

VARIABLE = "TF_ENABLE_ONEDNN_OPTS"


def enable() -> bool:
    """Ask for oneDNN unless the user chose or TensorFlow is already imported; whether this call set it."""
    if VARIABLE in os.environ or "tensorflow" in sys.modules:
        return False
    os.environ[VARIABLE] = "1"
    return True
