"""Which operators of a ``.tflite`` file LiteRT's XNNPACK delegate takes, and which it leaves to LiteRT's own kernels.

XNNPACK (LiteRT's default CPU delegate) replaces every run of operators it
supports with one delegate node; an operator it does not support runs on
LiteRT's reference kernels, and each such operator splits the graph, so the
file runs as several delegated *partitions* with a hand-over between each.
At fp32 every operator of the common vision models is delegated; at int8
several are not in this LiteRT (measured on keras.applications models,
docs/LOG.md 2026-12-05): ``RELU`` that is not fused into its producer (its
input feeds another layer too, as after a residual ``Add`` in Xception and
NASNet), ``AVERAGE_POOL_2D``, ``HARD_SWISH`` (MobileNetV3), ``GELU`` and the
operators of ``LayerNormalization`` (ConvNeXt), ``SOFTMAX``; and at any
precision a ``CONCATENATION`` of more than five tensors. That is why an int8
file can run slower than its fp32 twin.

The count is read from the interpreter after the delegate has been applied
(nothing is run): ``Interpreter._get_ops_details()`` lists the file's
operators and then one ``DELEGATE`` node per partition, whose inputs and
outputs are the partition's boundary tensors. An operator is delegated when
it lies between a partition's outputs and its inputs. That listing is not a
public API; where it is missing, ``litert_delegation`` returns None and
nothing is claimed. Only numpy and ``ai_edge_litert`` are needed (no
TensorFlow), like the rest of ``runtime_bench``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Optional

DELEGATE = "DELEGATE"


def litert_delegation(path: str | Path) -> Optional[dict]:
    """``{"operators", "delegated", "partitions", "not_delegated": {op: count}}`` for ``path`` on LiteRT's XNNPACK.

    ``operators`` counts the file's operators (in its main subgraph),
    ``delegated`` those XNNPACK runs, ``partitions`` its delegate nodes.
    None when ``ai_edge_litert`` is missing, refuses the file or does not
    list its nodes; never raises for those.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return None
    try:
        with quiet_fd2():  # LiteRT prints "Created TensorFlow Lite XNNPACK delegate for CPU." on fd 2
            interp = Interpreter(model_path=str(path), num_threads=1)
            interp.allocate_tensors()
        nodes = interp._get_ops_details()
    except (AttributeError, RuntimeError, ValueError):  # a file LiteRT refuses, or no node listing: nothing known
        return None
    return split_by_delegate(nodes)


@contextlib.contextmanager
def quiet_fd2():
    """fd 2 (where LiteRT's C++ logs) sent to /dev/null inside the block (lrfc's ``silenced_stderr`` too)."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def split_by_delegate(nodes: list[dict]) -> dict:
    """The delegation summary of an interpreter's node listing (``op_name``, ``index``, ``inputs``, ``outputs``)."""
    ops = [n for n in nodes if n["op_name"] != DELEGATE]
    partitions = [n for n in nodes if n["op_name"] == DELEGATE]
    producer = {int(t): n["index"] for n in ops for t in n["outputs"]}
    by_index = {n["index"]: n for n in ops}
    delegated: set[int] = set()
    for part in partitions:
        boundary = {int(t) for t in part["inputs"]}
        todo = [int(t) for t in part["outputs"]]
        while todo:  # walk back from the partition's outputs to its inputs: what lies between is inside it
            tensor = todo.pop()
            if tensor in boundary or tensor not in producer or producer[tensor] in delegated:
                continue
            node = producer[tensor]
            delegated.add(node)
            todo.extend(int(t) for t in by_index[node]["inputs"] if int(t) >= 0)
    left = Counter(n["op_name"] for n in ops if n["index"] not in delegated)
    return {"operators": len(ops), "delegated": len(ops) - sum(left.values()), "partitions": len(partitions),
            "not_delegated": dict(left.most_common())}


def left_out(delegation: dict) -> str:
    """The operators XNNPACK leaves out, by type: "RELU x11, SOFTMAX" ("" when none)."""
    return ", ".join(f"{op} x{n}" if n > 1 else op for op, n in delegation["not_delegated"].items())


def delegation_line(record: dict) -> Optional[str]:
    """One line for a file (an artifact record's JSON, ``path`` and ``delegation``) XNNPACK does not take whole.

    None when it takes every operator, or nothing is known.
    """
    delegation = record.get("delegation")
    if not delegation or not delegation["not_delegated"]:
        return None
    parts = delegation["partitions"]
    return (f"{Path(record['path']).name}: XNNPACK runs {delegation['delegated']} of its "
            f"{delegation['operators']} operators in {parts} part{'s' * (parts != 1)}; "
            f"on LiteRT's own kernels: {left_out(delegation)}")
