"""Load a user's Keras model from `.keras`, legacy `.h5`/`.hdf5` or a SavedModel directory.

Safe mode stays on: a model whose loading would run arbitrary Python (a
``Lambda`` layer) is refused unless the caller passes ``trust=True``
(``--trust-model`` on the CLI). Every problem the user can cause becomes a
``UserError`` that names the file.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from lrfc.errors import UserError

# Layer classes whose deserialization executes code stored in the file.
UNSAFE_CLASSES = frozenset({"Lambda", "TFOpLambda"})


def _unsafe_layers(config) -> list[str]:
    """Names of layers in a (possibly nested) model config that run stored code."""
    found: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("class_name") in UNSAFE_CLASSES:
                cfg = node.get("config") or {}
                found.append(f"{node['class_name']} '{cfg.get('name', '?')}'")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found


def _refuse_unsafe(path: Path, config) -> None:
    unsafe = _unsafe_layers(config)
    if unsafe:
        raise UserError(
            f"{path}: the model contains {', '.join(unsafe)}, whose loading runs code stored in the file; "
            "pass --trust-model if you trust this file"
        )


def _keras_config(path: Path) -> dict:
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as exc:
        raise UserError(f"{path}: not a readable .keras model archive ({exc})") from exc


def _h5_config(path: Path) -> dict:
    import h5py

    from lrfc.frontend import h5data

    try:
        with h5py.File(path, "r") as f:
            raw, keras_made = f.attrs.get("model_config"), h5data.keras_file(f)
    except OSError as exc:
        raise UserError(f"{path}: not a readable HDF5 model file ({exc})") from exc
    if not keras_made:
        try:
            h5data.samples_shape(path)
        except UserError:
            pass
        else:  # arrays of samples, not a model: the two arguments swapped?
            raise UserError(f"{path}: holds data (arrays of samples), not a model; give it as --data and the model "
                            "as the first argument")
    if raw is None:
        raise UserError(f"{path}: HDF5 file holds weights only (no 'model_config'); save the whole model, not save_weights()")
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    return json.loads(raw)


def _load_with_keras(path: Path, trust: bool):
    import keras

    import lrfc.decompose.ttm_layer  # noqa: F401  lrfc's own layer, for models lrfc wrote

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=not trust)
    except UserError:
        raise
    except Exception as exc:  # Keras raises many types for a bad file
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "Could not locate" in str(exc) or "Unknown layer" in str(exc):
            named = re.search(r"Could not locate (class|function) '([^']+)'", str(exc))  # deep in Keras' text
            what = f"{named.group(1)} '{named.group(2)}'" if named else f"a class ({message})"
            message = (f"it uses {what}, which Keras does not know; pass --custom-objects FILE.py, the code that "
                       "defines it, and lrfc imports that first (the Python API: import it before loading)")
        raise UserError(f"{path}: cannot load model: {message}") from exc


def import_custom_objects(specs) -> list[str]:
    """Import each ``--custom-objects`` spec (a ``.py`` file, or a module importable from the working folder) and
    make the Keras layers, models and functions it defines known to ``keras.saving.load_model`` by their names,
    registered or not (a class defined in a training script is saved as ``__main__.MyBlock``). Returns their names.

    The user's own code, run because they named it: what ``--trust-model`` allows for a Lambda in the file.
    """
    import importlib
    import importlib.util
    import inspect
    import sys

    found = []
    if specs:
        from lrfc.common.quiet import import_keras

        import_keras()  # TensorFlow's start-up lines silenced before the user's code imports it
    for spec in specs or ():
        path = Path(spec)
        try:
            if path.suffix == ".py":
                if not path.is_file():
                    raise UserError(f"--custom-objects {spec}: no such file")
                name = f"lrfc_custom_objects.{path.stem}"
                module_spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(module_spec)
                sys.modules[name] = module
                sys.path.insert(0, str(path.resolve().parent))  # it may import the files beside it
                module_spec.loader.exec_module(module)
            else:
                if "" not in sys.path and str(Path.cwd()) not in sys.path:
                    sys.path.insert(0, str(Path.cwd()))
                module = importlib.import_module(spec)
        except UserError:
            raise
        except (Exception, SystemExit) as exc:  # the user's code: any error in it is theirs, in one line
            raise UserError(f"--custom-objects {spec}: importing it failed: {type(exc).__name__}: "
                            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from exc
        import keras

        known = keras.saving.get_custom_objects()
        for attr, obj in vars(module).items():
            if getattr(obj, "__module__", None) != module.__name__ or attr.startswith("_"):
                continue
            if (inspect.isclass(obj) and issubclass(obj, keras.layers.Layer)) or inspect.isfunction(obj):
                known[obj.__name__] = obj
                found.append(obj.__name__)
    return found


def load_model(path: str | Path, trust: bool = False):
    """Load a Keras model for compilation.

    Args:
        path: a `.keras` file, a legacy `.h5`/`.hdf5` file, or a SavedModel
            directory written by tf.keras 2 (`model.save("dir")`).
        trust: allow layers whose loading runs code stored in the file.

    Returns:
        The loaded ``keras.Model`` (uncompiled).
    """
    if not Path(path).exists():
        from lrfc.errors import not_found

        raise not_found("model", path)  # as given: a URL's '//' would not survive Path
    path = Path(path)
    if path.is_dir():
        if not (path / "saved_model.pb").exists():
            raise UserError(f"{path}: a directory, but not a SavedModel (no saved_model.pb)")
        from lrfc.frontend.savedmodel import load_keras2_savedmodel

        model = load_keras2_savedmodel(path, safe_mode=not trust)
    else:
        suffix = path.suffix.lower()
        if suffix == ".keras":
            config = _keras_config(path)
        elif suffix in (".h5", ".hdf5"):
            config = _h5_config(path)
        else:
            raise UserError(f"{path}: unsupported model format {suffix or '(no suffix)'!r}; expected .keras, .h5, .hdf5 or a SavedModel directory")
        if not trust:
            _refuse_unsafe(path, config)
        model = _load_with_keras(path, trust)
    import keras

    if not isinstance(model, keras.Model):
        raise UserError(f"{path}: holds a {type(model).__name__}, not a Keras model")
    return model


def load_flat(source, trust: bool = False, input_shape: tuple[int, ...] | None = None, log=None):
    """A model file (or, from the Python API, a keras.Model) flattened into one Functional graph.

    The flattened copy shares the given model's layers (``frontend.graph.rebuild``); lrfc never changes them.
    A model trained with mixed precision (layers computing in float16 or
    bfloat16) is flattened with float32 twins of those layers instead
    (``half_precision``): TFLite's converter refuses its float16 ops and an
    edge file is float32 or int8 anyway. ``log`` (a callable) is told so.
    """
    from lrfc.common.quiet import import_keras

    keras = import_keras()
    from lrfc.frontend.graph import rebuild

    model = load_model(source, trust=trust) if isinstance(source, (str, Path)) else source
    if not isinstance(model, keras.Model):
        raise UserError(f"model: received a {type(model).__name__}; expected a path or a keras.Model")
    half = half_precision(model)
    if half and log is not None:
        log(f"model: {len(half)} layers compute in {', '.join(sorted(set(half.values())))} (mixed precision); "
            "lrfc compiles float32 twins of them, the same weights")
    return rebuild(model, replace=_float32_twins() if half else None, input_shape=input_shape)


def half_precision(model) -> dict[str, str]:
    """The leaf layers (nested models included) that compute in float16 or bfloat16: ``{name: policy name}``."""
    import keras

    found = {}
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.Model):
            continue
        policy = getattr(layer, "dtype_policy", None)
        if getattr(policy, "compute_dtype", "float32") in ("float16", "bfloat16"):
            found[layer.name] = policy.name
    return found


def _float32_twins():
    """A ``rebuild`` replace callback: each half-precision layer as a float32 copy (config and weights), once per layer."""
    import numpy as np

    from lrfc.frontend.graph import clone_call

    twins: dict[int, object] = {}

    def replace(layer):
        policy = getattr(layer, "dtype_policy", None)
        if getattr(policy, "compute_dtype", "float32") not in ("float16", "bfloat16"):
            return None
        if id(layer) not in twins:
            weights = [np.asarray(w, np.float32) if np.issubdtype(np.asarray(w).dtype, np.floating) else w
                       for w in layer.get_weights()]
            twins[id(layer)] = clone_call(layer, {**layer.get_config(), "dtype": "float32"}, weights)
        return twins[id(layer)]

    return replace
