"""tf2onnx's conversion of a traced Keras model, in a fraction of the memory; the same ONNX model.

``convert(fn, spec, opset)`` is ``tf2onnx.convert.from_function`` taken apart
so that nothing heavy outlives its step, plus one fix inside tf2onnx and
one operator it lacks (``erfc_as_erf``).
``python -m bench.lower_memory`` on keras.applications ResNet50 at 64x64 (90
MB of weights, VmHWM reset before each conversion): tf2onnx without its
snapshots rose +3.91-3.94 GiB above the loaded model in 5.8-6.1 s, this way
+1.48-1.61 GiB in 4.4-5.1 s, with the same operators in order, the same
weights and identical ONNX Runtime outputs (the files differ only in the
names tf2onnx generates, numbered per process). Where the memory went:

* **tf2onnx's optimizers, +90 MB a pass, 24 passes.** After each pass
  ``Node.update_proto`` rewrites every node's ``NodeProto`` in place
  (``del op.attribute[:]``, then ``extend``); protobuf's upb backend keeps
  removed elements in the message's arena until the message is freed, and
  ``extend`` copies the attribute values (the weights of every Const) in
  again. ``_install_proto_fix`` makes the rewrite a no-op when the proto
  already holds what it would write (most nodes, most passes), and rebuilds
  into a fresh proto otherwise, so the old one and its arena can go. Live
  memory, not freed heap: neither ``gc.collect`` nor ``malloc_trim`` gave it
  back.
* **The frozen function, ~7x the weights in reference cycles,** kept alive
  by ``from_function`` through grappler. Here it is dropped and collected
  (``common.memory.release``) before grappler runs. Grappler itself (about
  11 copies of the weights while it runs) is what is left of the peak.

``tf_loader.from_function`` also retries a freezing error about resource
types; that error here reaches ``lower.onnx.export_onnx``, which converts once
more the default way. ``convert._convert_common`` is tf2onnx's own (private)
last step of ``from_graph_def``; the public one re-imports the graph and
peaked +0.24 GiB higher. tf2onnx is pinned (``FIXED_VERSION``); under another
version the method is left as tf2onnx has it (the conversion is the same,
only heavier).
"""

from __future__ import annotations

import threading

from onnx import NodeProto

FIXED_VERSION = "1.17.0"  # the tf2onnx whose Node.update_proto the fix was written against
_REBUILT = ("input", "output", "attribute")  # the fields tf2onnx's update_proto rewrites
_LOCK = threading.Lock()


def _fresh_like(op: NodeProto) -> NodeProto:
    """A new NodeProto with ``op``'s fields, except those ``update_proto`` writes."""
    fresh = NodeProto()
    for field, value in op.ListFields():
        if field.name in _REBUILT:
            continue
        if hasattr(value, "extend"):  # a repeated field
            getattr(fresh, field.name).extend(value)
        elif hasattr(value, "CopyFrom"):  # a message
            getattr(fresh, field.name).CopyFrom(value)
        else:
            setattr(fresh, field.name, value)
    return fresh


def _install_proto_fix() -> None:
    """Replace ``tf2onnx.graph.Node.update_proto`` (once per process) with the copy-free version."""
    import tf2onnx
    from tf2onnx.graph import Node

    if tf2onnx.__version__ != FIXED_VERSION:
        return
    with _LOCK:
        if getattr(Node.update_proto, "_lrfc", False):
            return
        rebuild = Node.update_proto

        def update_proto(self, external_tensor_storage=None):
            op = self._op
            if not self.get_body_graphs():  # Loop / If / Scan bodies are remade by every rebuild: tf2onnx's way
                attrs = list(self.get_onnx_attrs(external_tensor_storage).values())
                if list(op.input) == self.input and list(op.output) == self.output and list(op.attribute) == attrs:
                    return
            self._op = _fresh_like(op)
            rebuild(self, external_tensor_storage)

        update_proto._lrfc = True
        Node.update_proto = update_proto


def erfc_as_erf(graph_def):
    """``graph_def`` with every ``Erfc(x)`` written ``1 - Erf(x)``, in place: tf2onnx 1.17 has no Erfc.

    TensorFlow computes the exact GELU (``tf.nn.gelu(approximate=False)``,
    Keras' ``"gelu"`` activation, keras.applications ConvNeXt) with Erfc;
    ONNX and tf2onnx have Erf. The Sub node keeps the Erfc node's name, so
    its consumers read it unchanged.
    """
    import tensorflow as tf

    for node in [n for n in graph_def.node if n.op == "Erfc"]:
        dtype = node.attr["T"].type
        x, device = node.input[0], node.device
        erf = graph_def.node.add(name=f"{node.name}/erf", op="Erf", input=[x], device=device)
        erf.attr["T"].type = dtype
        one = graph_def.node.add(name=f"{node.name}/one", op="Const", device=device)
        one.attr["dtype"].type = dtype
        one.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(1.0, dtype=tf.dtypes.as_dtype(dtype)))
        node.op = "Sub"
        del node.input[:]
        node.input.extend([one.name, erf.name])
    return graph_def


def convert(fn, spec, opset: int):
    """``tf2onnx.convert.from_function(fn, input_signature=(spec,), opset=opset)``'s model proto, leaner."""
    import tensorflow as tf
    from tf2onnx import convert as tf2onnx_convert, tf_loader

    from lrfc.common.memory import release

    _install_proto_fix()
    concrete = fn.get_concrete_function(spec)
    inputs = [t.name for t in concrete.inputs if t.dtype != tf.dtypes.resource]
    outputs = [t.name for t in concrete.outputs if t.dtype != tf.dtypes.resource]
    renames = tf2onnx_convert.tensor_names_from_structed(concrete, inputs, outputs)
    with tf.device("/cpu:0"):
        frozen = tf_loader.convert_variables_to_constants_v2(concrete, lower_control_flow=False,
                                                             aggressive_inlining=True)
        graph_def = erfc_as_erf(tf_loader.fix_freezing_errors_part2(frozen.graph.as_graph_def(add_shapes=True)))
        name = concrete.name
        del frozen, concrete
        release()  # the frozen function's cycles, when they are worth a collection (big models)
        with tf.Graph().as_default():  # grappler exports a meta graph: graph mode
            graph_def = tf_loader.tf_optimize(inputs, outputs, graph_def)
        proto, _ = tf2onnx_convert._convert_common(graph_def, name=name,
                                                   continue_on_error=True, opset=opset, input_names=inputs,
                                                   output_names=outputs, tensors_to_rename=renames)
    return proto
