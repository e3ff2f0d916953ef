"""Load a SavedModel directory written by tf.keras 2 (``model.save("dir")``) as a Keras 3 model.

Keras 3 reads ``.keras`` and ``.h5`` but not this layout, and ``tf.saved_model.load``
would give back traced functions, not layers lrfc can factorize. Two files in the
directory are enough to rebuild the layer graph with its weights:

* ``keras_metadata.pb``: a ``SavedMetadata`` protobuf (``repeated SavedObject nodes = 1``;
  ``SavedObject``: ``node_id = 2``, ``node_path = 3``, ``identifier = 4``, ``metadata = 5``
  (JSON), ``version = 6``). The ``root`` node's JSON holds the model config; each layer's
  node names the layer at its object-graph path (``root.layer_with_weights-1.layer-0``).
  Keras 3 ships no generated module for it, so the wire format is decoded here.
* ``variables/variables.*``: a TF checkpoint. Its keys are NOT layer paths that can be
  guessed: a variable is stored once, under the first path a breadth-first walk finds,
  so a nested model's kernel is typically ``variables/2/.ATTRIBUTES/VARIABLE_VALUE``
  rather than ``layer_with_weights-1/layer_with_weights-0/kernel/...``. The checkpoint's
  own object graph (``_CHECKPOINTABLE_OBJECT_GRAPH``) records every edge, so weights are
  found by walking it: model node, then the child ``layer-i``/``layer_with_weights-j``
  holding the layer (identified by name through the metadata), then the child named
  after the weight (``kernel``, ``moving_mean``...). Optimizer slots, metrics
  (``keras_api``) and private state (``_random_generator``...) are skipped.

The model is rebuilt with the legacy-config path Keras 3 uses for Keras-2 ``.h5`` files,
after a few Keras-2 config keys Keras 3 rejects are dropped. Every weight of the rebuilt
model must receive a stored value and every stored layer weight must be used; anything
else is a ``UserError`` naming the weight, never a weight silently left at its initializer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lrfc.errors import UserError
from lrfc.frontend.load import UNSAFE_CLASSES
from lrfc.common.quiet import import_keras

if TYPE_CHECKING:
    import keras

METADATA_FILE = "keras_metadata.pb"
CHECKPOINT_PREFIX = Path("variables") / "variables"
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"

# Config keys tf.keras 2 wrote that the Keras 3 constructor of the same class rejects,
# with the value at which dropping them changes nothing (ANY: Keras 2 never used it).
# A key holding any other value is kept, so Keras 3 reports it instead of lrfc losing it.
ANY = object()
_CONV_GROUPS = {"groups": 1}  # inherited from Keras 2's base Conv; these Keras 3 classes take no `groups`
_UNUSED_KERNEL = {"kernel_initializer": ANY, "kernel_regularizer": ANY, "kernel_constraint": ANY}
KERAS2_ONLY_KEYS = {
    "Conv1DTranspose": _CONV_GROUPS, "Conv2DTranspose": _CONV_GROUPS, "Conv3DTranspose": _CONV_GROUPS,
    "DepthwiseConv1D": _CONV_GROUPS, "DepthwiseConv2D": _CONV_GROUPS,
    "SeparableConv1D": {**_CONV_GROUPS, **_UNUSED_KERNEL}, "SeparableConv2D": {**_CONV_GROUPS, **_UNUSED_KERNEL},
    **{f"SpatialDropout{n}D": {"trainable": ANY, "noise_shape": None} for n in (1, 2, 3)},
    "SimpleRNN": {"time_major": False}, "GRU": {"time_major": False}, "LSTM": {"time_major": False},
    "MultiHeadAttention": {"query_shape": None, "key_shape": None, "value_shape": None},
}

MODEL_CLASSES = frozenset({"Sequential", "Functional", "Model"})

# (Keras 3 class, Keras 3 weight name) -> the attribute name tf.keras 2 stored it under.
WEIGHT_ALIASES = {
    ("DepthwiseConv1D", "kernel"): "depthwise_kernel",
    ("DepthwiseConv2D", "kernel"): "depthwise_kernel",
}

# Layers tf.keras 2 made for TensorFlow ops applied to Keras tensors (`x * 2`, `x[:, 0]`);
# Keras 3 has no such classes.
TF_OP_CLASSES = frozenset({"TFOpLambda", "SlicingOpLambda"})

# Object-graph edges that lead to no layer weight of their own: optimizer slots, metrics,
# the flat variable lists (whose entries are also reached through the layers), functions.
NON_LAYER_EDGES = frozenset({
    "optimizer", "keras_api", "variables", "trainable_variables", "non_trainable_variables",
    "regularization_losses", "signatures",
})


@dataclass(frozen=True)
class MetadataNode:
    """One ``SavedObject`` of ``keras_metadata.pb``."""

    node_id: int
    node_path: str
    identifier: str
    metadata: str


def load_keras2_savedmodel(path: Path, safe_mode: bool = True) -> keras.Model:
    """Rebuild a tf.keras 2 SavedModel directory as a Keras 3 model with its trained weights.

    Args:
        path: the directory ``model.save("dir")`` wrote under tf.keras 2 (``saved_model.pb``,
            ``keras_metadata.pb``, ``variables/``).
        safe_mode: refuse layers whose loading runs code stored in the file (``Lambda``).

    Returns:
        An uncompiled ``keras.Model`` (Sequential or Functional) with every weight restored.

    Raises:
        UserError: the directory is not a tf.keras 2 SavedModel, its files are unreadable, its
            config cannot be rebuilt in Keras 3, or its weights do not fit the rebuilt layers.
    """
    path = Path(path)
    _check_layout(path)
    nodes = _read_metadata(path)
    root = _root_metadata(path, nodes)
    config = _model_config(path, root)
    _refuse_unloadable(path, config, safe_mode)
    model = _rebuild(path, config, root, safe_mode)
    graph = CheckpointGraph.open(path)
    layer_names = graph.layer_names(nodes)
    _assign_weights(path, model, graph, layer_names)
    return model


# --- directory and metadata -------------------------------------------------------------


def _check_layout(path: Path) -> None:
    if not path.is_dir() or not (path / "saved_model.pb").is_file():
        raise UserError(f"{path}: not a SavedModel directory (expected saved_model.pb in it)")
    if not (path / METADATA_FILE).is_file():
        raise UserError(
            f"{path} is a TensorFlow SavedModel without Keras metadata ({METADATA_FILE}); it holds no layer "
            "graph (Keras 3 model.export() and tf.saved_model.save() write such directories). Save the model "
            "as .keras (model.save('model.keras')) or .h5"
        )
    if not (path / f"{CHECKPOINT_PREFIX}.index").is_file():
        raise UserError(f"{path}: SavedModel without weights (expected {CHECKPOINT_PREFIX}.index)")


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def _protobuf_fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """Decode one protobuf message into ``(field number, value)`` pairs.

    Varints come back as ints, length-delimited fields as bytes; fixed 32/64-bit fields
    are skipped (SavedMetadata has none). Anything malformed raises ValueError.
    """
    fields: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        tag, pos = _read_varint(data, pos)
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise ValueError("field number 0")
        if wire_type == 0:
            value, pos = _read_varint(data, pos)
            fields.append((number, value))
        elif wire_type == 2:
            length, pos = _read_varint(data, pos)
            if pos + length > len(data):
                raise ValueError("length-delimited field runs past the end")
            fields.append((number, data[pos:pos + length]))
            pos += length
        elif wire_type in (1, 5):
            pos += 8 if wire_type == 1 else 4
            if pos > len(data):
                raise ValueError("fixed-width field runs past the end")
        else:
            raise ValueError(f"unsupported wire type {wire_type}")
    return fields


def _read_metadata(path: Path) -> list[MetadataNode]:
    """Parse ``keras_metadata.pb`` into its nodes."""
    file = path / METADATA_FILE
    try:
        nodes = []
        for number, value in _protobuf_fields(file.read_bytes()):
            if number != 1:
                continue
            if not isinstance(value, bytes):
                raise ValueError("'nodes' is not a message")
            fields = dict(_protobuf_fields(value))
            nodes.append(MetadataNode(
                node_id=int(fields.get(2, 0)),
                node_path=bytes(fields.get(3, b"")).decode("utf-8"),
                identifier=bytes(fields.get(4, b"")).decode("utf-8"),
                metadata=bytes(fields.get(5, b"")).decode("utf-8"),
            ))
    except (ValueError, TypeError, OSError) as exc:  # UnicodeDecodeError is a ValueError
        raise UserError(f"{file}: not a readable Keras SavedMetadata protobuf ({exc})") from exc
    return nodes


def _root_metadata(path: Path, nodes: list[MetadataNode]) -> dict:
    roots = [node for node in nodes if node.node_path == "root"]
    if not roots:
        raise UserError(f"{path / METADATA_FILE}: no 'root' node; expected the metadata tf.keras 2 writes with model.save(dir)")
    try:
        metadata = json.loads(roots[0].metadata)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path / METADATA_FILE}: the root node's metadata is not JSON ({exc})") from exc
    if not isinstance(metadata, dict):
        raise UserError(f"{path / METADATA_FILE}: the root node's metadata is a {type(metadata).__name__}, expected a JSON object")
    if roots[0].identifier == "_tf_keras_model":  # Sequential and Functional are _tf_keras_sequential/_network
        raise UserError(
            f"{path}: the model is a subclassed keras.Model ({metadata.get('class_name', '?')!r}) whose layer graph "
            "lives in Python code (call()), not in the file; lrfc needs a Sequential or Functional model"
        )
    return metadata


def _model_config(path: Path, root: dict) -> dict:
    """The ``{"class_name", "config"}`` dict of the whole model, upgraded for Keras 3."""
    config = root.get("model_config")
    if not isinstance(config, dict) or "config" not in config:
        config = {"class_name": root.get("class_name"), "config": root.get("config")}
    if not isinstance(config.get("config"), dict):
        raise UserError(
            f"{path}: the saved {root.get('class_name', 'model')!r} has no layer config (a subclassed keras.Model "
            "without get_config()); lrfc needs a Sequential or Functional model"
        )
    from keras.src.legacy.saving import json_utils  # decodes Keras-2 "__tuple__"/"TensorShape" encodings

    config = json_utils.decode(json.dumps(config))
    _upgrade_config(config)
    return config


def _layers_of_class(config, classes: frozenset[str]) -> list[str]:
    """``"Class 'name'"`` for every layer of one of ``classes`` in a (nested) model config."""
    found: list[str] = []
    if isinstance(config, dict):
        if config.get("class_name") in classes:
            layer_config = config.get("config") if isinstance(config.get("config"), dict) else {}
            found.append(f"{config['class_name']} '{layer_config.get('name', '?')}'")
        for value in config.values():
            found += _layers_of_class(value, classes)
    elif isinstance(config, (list, tuple)):
        for value in config:
            found += _layers_of_class(value, classes)
    return found


def _refuse_unloadable(path: Path, config: dict, safe_mode: bool) -> None:
    """Refuse, before building anything, layers Keras 3 cannot or (in safe mode) must not rebuild."""
    tf_ops = _layers_of_class(config, TF_OP_CLASSES)
    if tf_ops:
        raise UserError(
            f"{path}: the model applies TensorFlow ops to Keras tensors ({', '.join(tf_ops[:4])}), saved by tf.keras 2 "
            "as layers Keras 3 does not have; replace them by Keras layers (e.g. Rescaling, Multiply) and save again"
        )
    unsafe = _layers_of_class(config, UNSAFE_CLASSES) if safe_mode else []
    if unsafe:
        raise UserError(
            f"{path}: the model contains {', '.join(unsafe)}, whose loading runs code stored in the file; "
            "load it with safe_mode=False (--trust-model) if you trust this file"
        )


def _upgrade_config(node) -> None:
    """Rewrite, in place, what Keras 3 reads differently in a Keras-2 model config."""
    if isinstance(node, dict):
        config = node.get("config")
        if isinstance(config, dict):
            for key, harmless in KERAS2_ONLY_KEYS.get(node.get("class_name"), {}).items():
                if key in config and (harmless is ANY or config[key] == harmless):
                    del config[key]
        if node.get("class_name") == "Lambda" and isinstance(config, dict) and isinstance(config.get("function"), tuple):
            # Keras 2 stored (bytecode, defaults, closure) as a "__tuple__"; Keras 3 converts only a list.
            config["function"] = list(config["function"])
        if node.get("class_name") in MODEL_CLASSES and isinstance(config, dict):
            _upgrade_functional(config)
        for value in node.values():
            _upgrade_config(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _upgrade_config(value)


def _upgrade_functional(config: dict) -> None:
    """Adapt the call-graph part of a Keras-2 Functional config to how Keras 3 rebuilds it.

    Node numbers: a tf.keras 2 model built from an Input owns a call node 0 linking its
    input to its output, so configs count the calls of such a nested model from 1
    (Keras 2's ``_should_skip_first_node``). Keras 3 models have no such node: their
    first call is node 0. Keras 3 already shifts ``output_layers`` entries that name a
    nested Functional, but neither ``inbound_nodes`` nor entries naming a Sequential.

    Single input: Keras 2 wrote ``input_layers`` as a list even for one input; kept as
    a list, Keras 3 expects ``model([x])`` and warns on ``model(x)``.
    """
    layers = config.get("layers")
    if not isinstance(layers, list):
        return
    nested = {}  # name -> class name, for nested models that own a Keras-2 node 0
    for entry in layers:
        if (isinstance(entry, dict) and entry.get("class_name") in MODEL_CLASSES
                and _starts_with_input_layer(entry.get("config"))):
            nested[entry.get("name") or entry["config"].get("name")] = entry["class_name"]

    def shift(ref, names):
        if isinstance(ref, (list, tuple)) and len(ref) >= 3 and isinstance(ref[0], str) and isinstance(ref[1], int):
            if ref[0] in names and ref[1] >= 1:
                return type(ref)([ref[0], ref[1] - 1, *ref[2:]])
            return ref
        if isinstance(ref, (list, tuple)):
            return type(ref)(shift(item, names) for item in ref)
        return ref

    if nested:
        for entry in layers:
            if isinstance(entry, dict) and isinstance(entry.get("inbound_nodes"), list):
                entry["inbound_nodes"] = shift(entry["inbound_nodes"], set(nested))
        sequential = {name for name, class_name in nested.items() if class_name == "Sequential"}
        if "output_layers" in config:
            config["output_layers"] = shift(config["output_layers"], sequential)
    inputs = config.get("input_layers")
    if isinstance(inputs, list) and len(inputs) == 1 and isinstance(inputs[0], list):
        config["input_layers"] = inputs[0]


def _starts_with_input_layer(config) -> bool:
    layers = config.get("layers") if isinstance(config, dict) else None
    return bool(layers) and isinstance(layers[0], dict) and layers[0].get("class_name") == "InputLayer"


def _error_summary(exc: Exception) -> str:
    """One line out of a Keras exception (some put a whole config dict on their first line)."""
    text = str(exc).strip()
    if "Exception encountered:" in text:
        text = text.split("Exception encountered:", 1)[1]
    line = next((part.strip() for part in text.splitlines() if part.strip()), type(exc).__name__)
    return line if len(line) <= 300 else line[:297] + "..."


def _rebuild(path: Path, config: dict, root: dict, safe_mode: bool):
    keras = import_keras()
    from keras.src.legacy.saving import saving_options, saving_utils
    from keras.src.saving import serialization_lib

    try:
        with saving_options.keras_option_scope(use_legacy_config=True), serialization_lib.SafeModeScope(safe_mode):
            model = saving_utils.model_from_config(config, custom_objects=keras.saving.get_custom_objects())
    except Exception as exc:  # Keras raises ValueError/TypeError/KeyError for configs it cannot rebuild
        message = _error_summary(exc)
        unknown = re.search(r"(?:Unknown layer|Could not locate class): '([^']+)'", message)
        if unknown:
            message = (f"unknown layer class '{unknown.group(1)}'; lrfc loads models built from Keras layers, or custom "
                       "layers registered with keras.saving.register_keras_serializable before loading")
        raise UserError(f"{path}: cannot rebuild the tf.keras 2 model config in Keras 3: {message}") from exc
    if not isinstance(model, keras.Model):
        raise UserError(f"{path}: the saved root object is a {type(model).__name__}, expected a Keras model")
    if not model.built:
        # A Sequential saved without an Input layer: tf.keras 2 recorded the shape it was built with.
        shape = root.get("build_input_shape")
        if isinstance(shape, dict):
            shape = shape.get("items")
        if not isinstance(shape, list):
            raise UserError(f"{path}: the model was saved unbuilt and without 'build_input_shape'; cannot create its weights")
        model.build(tuple(shape))
    return model


# --- checkpoint ---------------------------------------------------------------------------


@dataclass
class CheckpointGraph:
    """The checkpoint's object graph: which child sits under which node, which node holds which tensor."""

    path: Path
    reader: object  # tf.train.CheckpointReader
    children: list[dict[str, int]]  # node id -> {local name: child node id}
    keys: dict[int, str]  # variable node id -> checkpoint key of its value
    full_names: dict[int, str]  # variable node id -> the variable's TF name, e.g. "conv2d/kernel"

    @classmethod
    def open(cls, path: Path) -> CheckpointGraph:
        import_keras()
        import tensorflow as tf
        from tensorflow.core.protobuf import trackable_object_graph_pb2

        prefix = path / CHECKPOINT_PREFIX
        try:
            reader = tf.train.load_checkpoint(str(prefix))
            graph = trackable_object_graph_pb2.TrackableObjectGraph()
            graph.ParseFromString(reader.get_tensor(OBJECT_GRAPH_KEY))
        except Exception as exc:  # tf.errors.OpError, DecodeError, ValueError: all mean "unreadable"
            raise UserError(f"{prefix}: not a readable TF checkpoint with an object graph ({_error_summary(exc)})") from exc
        children = [{ref.local_name: ref.node_id for ref in node.children} for node in graph.nodes]
        keys, full_names = {}, {}
        for node_id, node in enumerate(graph.nodes):
            for attribute in node.attributes:
                if attribute.name == "VARIABLE_VALUE":
                    keys[node_id] = attribute.checkpoint_key
                    full_names[node_id] = attribute.full_name
        return cls(path, reader, children, keys, full_names)

    def resolve(self, node_path: str) -> int | None:
        """Node id of a metadata path such as ``root.layer_with_weights-1.layer-0``."""
        node_id = 0
        for name in node_path.split(".")[1:]:
            node_id = self.children[node_id].get(name) if node_id < len(self.children) else None
            if node_id is None:
                return None
        return node_id

    def layer_names(self, nodes: list[MetadataNode]) -> dict[int, str]:
        """Checkpoint node id -> layer name, from the metadata of every saved layer."""
        names = {}
        for node in nodes:
            if node.node_path == "root":
                continue
            node_id = self.resolve(node.node_path)
            if node_id is None:
                continue
            try:
                name = json.loads(node.metadata).get("name")
            except (json.JSONDecodeError, AttributeError):
                continue
            if isinstance(name, str):
                names[node_id] = name
        return names

    def layer_variables(self) -> dict[int, str]:
        """Every variable reachable from the root through layers: node id -> a path to it, for messages."""
        found: dict[int, str] = {}
        queue, seen = [(0, "")], {0}
        while queue:
            node_id, node_path = queue.pop(0)
            if node_id in self.keys:
                found[node_id] = node_path
            for name, child in self.children[node_id].items():
                if child in seen or name in NON_LAYER_EDGES or name.startswith("_"):
                    continue
                seen.add(child)
                queue.append((child, f"{node_path}/{name}" if node_path else name))
        return found


def _assign_weights(path: Path, model, graph: CheckpointGraph, layer_names: dict[int, str]) -> None:
    """Copy every weight of ``model`` from the checkpoint; raise on any weight left out either way."""
    assigned: set[int] = set()
    _assign_model(path, model, 0, graph, layer_names, assigned)
    left = {node_id: where for node_id, where in graph.layer_variables().items() if node_id not in assigned}
    if left:
        listing = ", ".join(sorted(f"{graph.full_names[node_id] or '?'} at {where}" for node_id, where in left.items())[:8])
        raise UserError(
            f"{path}: {len(left)} stored layer weight(s) have no place in the model rebuilt by Keras 3 ({listing}); "
            "expected every saved weight to be loaded"
        )


def _assign_model(path: Path, model, node_id: int, graph, layer_names, assigned: set[int]) -> None:
    keras = import_keras()
    by_name = {
        layer_names[child]: child
        for name, child in graph.children[node_id].items()
        if name.startswith("layer") and child in layer_names
    }
    for index, layer in enumerate(model.layers):
        child = by_name.get(layer.name)
        if child is None:  # no metadata names it: fall back on tf.keras 2's own numbering of model.layers
            child = graph.children[node_id].get(f"layer-{index}")
            if child in layer_names and layer_names[child] != layer.name:
                child = None
        if child is None:
            if layer.weights:
                raise UserError(f"{path}: no saved layer named '{layer.name}' (expected one holding its {len(layer.weights)} weight(s))")
            continue
        if isinstance(layer, keras.Model):
            _assign_model(path, layer, child, graph, layer_names, assigned)
        else:
            _assign_layer(path, layer, child, graph, assigned)


def _assign_layer(path: Path, layer, node_id: int, graph: CheckpointGraph, assigned: set[int]) -> None:
    import numpy as np

    stored = {name: child for name, child in graph.children[node_id].items() if child in graph.keys}
    class_name = type(layer).__name__
    for weight in layer.weights:
        name = weight.name.split("/")[-1].split(":")[0]
        child = stored.get(name, stored.get(WEIGHT_ALIASES.get((class_name, name), "")))
        if child is None:
            raise UserError(
                f"{path}: no saved value for weight '{weight.path}' of {class_name} '{layer.name}'; "
                f"the layer's saved weights are {sorted(stored) or 'none'}"
            )
        if child in assigned:
            raise UserError(f"{path}: saved weight {graph.keys[child]} matches more than one weight (again '{weight.path}' "
                            f"of {class_name} '{layer.name}'); expected one stored value per weight")
        value = graph.reader.get_tensor(graph.keys[child])
        if tuple(value.shape) != tuple(weight.shape):
            raise UserError(
                f"{path}: saved weight {graph.keys[child]} has shape {tuple(value.shape)}, but '{weight.path}' of "
                f"{class_name} '{layer.name}' expects {tuple(weight.shape)}"
            )
        weight.assign(np.asarray(value, dtype=weight.dtype))
        assigned.add(child)
