"""What a lowered file says about itself: the input contract it was made under, and the class names.

A file travels alone: the app developer who gets ``model.tflite`` does not
get the build's report.json, and a model that takes raw pixels less the
Caffe mean looks, from its tensors, like one that takes [0, 1]. So before
the gate every file gets, as text entries of its format's own metadata
(TFLite: ``Model.metadata``, one buffer each; ONNX: ``metadata_props``,
which ONNX Runtime shows as ``get_modelmeta().custom_metadata_map`` and
Netron lists):

* ``lrfc.input``: the contract as JSON (``range``, ``mean``, ``std``,
  ``channel_order``, ``source``: given or inferred, and ``flags``, the
  command-line flags that state it);
* ``lrfc.labels``: the class names by output index, as JSON, when the data
  named them (an image folder's class folders);
* ``lrfc.version``.

A build's ``model.keras`` carries the same entries as a ``lrfc.json`` member
of its archive. ``lrfc verify``, ``lrfc export`` and ``lrfc build`` of a file
with no report beside it read its contract from here (``read_stamp``,
through ``frontend.recorded``) when no input flag is given. These are
not the TFLite Support ``TFLITE_METADATA`` tables that the Task Library
and MediaPipe read (lrfc cannot write those without that package's schema).
"""

from __future__ import annotations

import json
from pathlib import Path

PREFIX = "lrfc."


def stamp_entries(contract, classes=None) -> dict[str, str]:
    """The entries to write for ``contract`` (an ``InputContract``) and the class names (or None)."""
    from lrfc import __version__

    entries = {"lrfc.input": json.dumps({"range": contract.range, "mean": _listed(contract.mean),
                                         "std": _listed(contract.std), "channel_order": contract.channel_order,
                                         "source": contract.source, "flags": contract.flags()}),
               "lrfc.version": __version__}
    names = [str(c) for c in classes or ()]
    if any(n not in ("", str(i)) for i, n in enumerate(names)):  # folders named by index ("" a missing one): nothing more
        entries["lrfc.labels"] = json.dumps(names)
    return entries


def _listed(values):
    return None if values is None else [float(v) for v in values]


def stamp(path: str | Path, fmt: str, entries: dict[str, str]) -> None:
    """Write ``entries`` into the file at ``path`` in place (an entry of the same name is replaced); ``fmt`` is
    ``tflite``, ``onnx`` or ``keras`` (a ``.keras`` archive gets a ``lrfc.json`` member, which Keras' loader
    leaves alone)."""
    path = Path(path)
    if fmt == "keras":
        _stamp_keras(path, entries)
        return
    if fmt == "onnx":
        import onnx

        proto = onnx.load(str(path))
        kept = [p for p in proto.metadata_props if p.key not in entries]
        del proto.metadata_props[:]
        proto.metadata_props.extend(kept)
        for key, value in entries.items():
            proto.metadata_props.add(key=key, value=value)
        onnx.save(proto, str(path))
        return
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(path.read_bytes()))
    model.metadata = [m for m in model.metadata or [] if _text(m.name) not in entries]
    model.buffers = model.buffers or []
    for key, value in entries.items():
        buffer = schema.BufferT()
        buffer.data = bytearray(value.encode())
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name, entry.buffer = key, len(model.buffers) - 1
        model.metadata.append(entry)
    path.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))


KERAS_MEMBER = "lrfc.json"


def _stamp_keras(path: Path, entries: dict[str, str]) -> None:
    import zipfile

    with zipfile.ZipFile(path) as archive:
        if KERAS_MEMBER not in archive.namelist():
            old = None
        else:
            old = json.loads(archive.read(KERAS_MEMBER))
    if old is None:
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr(KERAS_MEMBER, json.dumps(entries))
        return
    rewritten = path.with_name(path.name + ".stamping")  # a zip cannot drop a member: copy the others
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(rewritten, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            if item.filename != KERAS_MEMBER:
                target.writestr(item, source.read(item.filename))
        target.writestr(KERAS_MEMBER, json.dumps(old | entries))
    rewritten.replace(path)


def _text(name) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)


def read_stamp(path: str | Path) -> dict[str, str]:
    """The ``lrfc.*`` entries of a ``.tflite``, ``.onnx`` or ``.keras`` file (empty when it has none or cannot be
    read)."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".keras":
            import zipfile

            with zipfile.ZipFile(path) as archive:
                if KERAS_MEMBER not in archive.namelist():
                    return {}
                entries = json.loads(archive.read(KERAS_MEMBER))
            return {k: str(v) for k, v in entries.items() if k.startswith(PREFIX)}
        if path.suffix.lower() == ".onnx":
            import onnx

            proto = onnx.load(str(path), load_external_data=False)
            return {p.key: p.value for p in proto.metadata_props if p.key.startswith(PREFIX)}
        if path.suffix.lower() == ".tflite":
            from ai_edge_litert import schema_py_generated as schema

            model = schema.Model.GetRootAs(bytearray(path.read_bytes()), 0)
            out = {}
            for i in range(model.MetadataLength()):
                entry = model.Metadata(i)
                name = _text(entry.Name())
                if name.startswith(PREFIX):
                    out[name] = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes().decode()
            return out
    except Exception:  # a damaged or foreign file: it says nothing; the gate reports what is wrong with it
        return {}
    return {}
