"""Run and time exported models on a device: numpy and one runtime (LiteRT or ONNX Runtime), no TensorFlow.

The package is copied alone onto devices, so it imports nothing from lrfc
and nothing heavier than numpy and the runtime it is asked for.

* ``run``: outputs of a model on a batch (correctness checks).
* ``runners``: one registry entry per runtime (load a file, run once).
* ``worker``: the child process that holds loaded models and times them.
* ``measure``: ``bench(paths, ...)``, latency percentiles and peak memory.
* ``device``: the fingerprint of the machine and runtime a number came from.
* ``delegation``: which operators of a ``.tflite`` file LiteRT's XNNPACK delegate takes.
* ``remote``: the same measurement on an ``ssh://`` device; ``run_bench`` picks local or remote.
* ``__main__``: the agent command line, ``python -m runtime_bench PATH... --json``.
"""
