"""``TTMatrixDense``: a dense layer whose kernel is stored as TT-matrix cores.

The one custom layer lrfc builds (no chain of plain layers can express a
TT-matrix). ``y = x W + b`` on the last axis of an input of any rank, with
``W`` given by the cores ``G_k`` (r_{k-1}, m_k, n_k, r_k) as documented in
``lrfc.decompose.ttm``. The contraction is one reshape / transpose / matmul
per core over the whole batch (the sequence ``ttm.contraction_steps``
describes and ``ttm.cost`` counts), so it lowers to TFLite builtins
(RESHAPE, TRANSPOSE, FULLY_CONNECTED / BATCH_MATMUL, ADD) and to ONNX through
tf2onnx. Importing this module registers the layer for ``.keras`` loading.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from lrfc.decompose.ttm import contraction_steps


@keras.saving.register_keras_serializable(package="lrfc")
class TTMatrixDense(keras.layers.Layer):
    """Dense layer with a TT-matrix kernel, ``in = prod(in_modes)``, ``out = prod(out_modes)``.

    Args:
        in_modes: ``(m_1, ..., m_d)``, row-major split of the input features.
        out_modes: ``(n_1, ..., n_d)``, row-major split of the output features.
        ranks: ``(r_1, ..., r_{d-1})``, the inner TT ranks.
        use_bias: add a bias of size ``out`` (after the contraction).
        activation: a Keras activation, applied last.
    """

    def __init__(self, in_modes, out_modes, ranks, use_bias=True, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.in_modes = tuple(int(m) for m in in_modes)
        self.out_modes = tuple(int(n) for n in out_modes)
        self.ranks = tuple(int(r) for r in ranks)
        if len(self.in_modes) != len(self.out_modes) or len(self.ranks) != len(self.in_modes) - 1:
            raise ValueError(f"TTMatrixDense needs d in-modes, d out-modes and d-1 ranks; received in_modes "
                             f"{self.in_modes}, out_modes {self.out_modes}, ranks {self.ranks}")
        if min(self.in_modes + self.out_modes + self.ranks, default=1) < 1:
            raise ValueError(f"TTMatrixDense modes and ranks must be >= 1; received in_modes {self.in_modes}, "
                             f"out_modes {self.out_modes}, ranks {self.ranks}")
        self.use_bias = bool(use_bias)
        self.activation = keras.activations.get(activation)
        self.in_features = math.prod(self.in_modes)
        self.out_features = math.prod(self.out_modes)
        self._steps = contraction_steps(self.in_modes, self.out_modes, self.ranks)

    def build(self, input_shape):
        if input_shape[-1] != self.in_features:
            raise ValueError(f"TTMatrixDense with in_modes {self.in_modes} takes {self.in_features} features on the "
                             f"last axis, received input shape {tuple(input_shape)}")
        # Glorot-like scale: a kernel entry sums prod(ranks) products of d core entries.
        target = 2.0 / (self.in_features + self.out_features)
        std = (target / math.prod(self.ranks)) ** (0.5 / len(self.in_modes))
        self.cores = [
            self.add_weight(name=f"core_{k}", shape=(rp, m, n, r),
                            initializer=keras.initializers.RandomNormal(stddev=std))
            for k, (m, _, rp, n, r) in enumerate(self._steps)
        ]
        self.bias = self.add_weight(name="bias", shape=(self.out_features,), initializer="zeros") if self.use_bias else None

    def call(self, inputs):
        lead = tuple(inputs.shape[1:-1])
        if all(isinstance(s, int) for s in lead):
            out_shape = (-1, *lead, self.out_features)
        else:  # unknown inner sizes: take them from the tensor at run time
            out_shape = (*ops.shape(inputs)[:-1], self.out_features)
        z = inputs
        for core, (m, rest, rp, n, r) in zip(self.cores, self._steps):
            # (N, i_k, rest, a_{k-1}) -> (N rest, i_k a_{k-1}) @ (i_k a_{k-1}, j_k a_k)
            z = ops.reshape(z, (-1, m, rest, rp))
            z = ops.transpose(z, (0, 2, 1, 3))
            z = ops.reshape(z, (-1, m * rp))
            kernel = ops.reshape(ops.transpose(ops.cast(core, z.dtype), (1, 0, 2, 3)), (m * rp, n * r))
            z = ops.matmul(z, kernel)
        z = ops.reshape(z, out_shape)
        if self.bias is not None:
            z = z + ops.cast(self.bias, z.dtype)
        return self.activation(z) if self.activation is not None else z

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.out_features)

    def get_config(self):
        config = super().get_config()
        config.update(in_modes=list(self.in_modes), out_modes=list(self.out_modes), ranks=list(self.ranks),
                      use_bias=self.use_bias, activation=keras.activations.serialize(self.activation))
        return config
