"""The model's input contract: which pixel values the model expects, stated once and used everywhere.

Data meets the model in calibration, fine-tuning, evaluation, verification,
int8 representative data and ``lrfc export``'s random inputs; all of them get
their samples through ``InputContract.apply``, so a model is never fed data
scaled one way in one place and another way in the next.

Images are first brought to *unit* pixel values in [0, 1] (black 0, white 1;
``frontend.data`` knows each source's scale: 255 for 8-bit images, 16 for
scikit-learn's digits, ...). The contract maps unit values to what the model
takes, in this order:

1. channel order: ``rgb`` (as stored) or ``bgr`` (the last axis reversed);
2. range: ``0-1`` (unit values), ``0-255`` (raw pixel values) or ``-1-1``;
3. ``mean`` / ``std``: per channel (or one value for all), in the range's
   units: ``(x - mean) / std``. ImageNet/torchvision style is
   ``--input-range 0-1 --input-mean 0.485,0.456,0.406 --input-std 0.229,0.224,0.225``;
   Caffe style (keras.applications ResNet50, VGG16) is
   ``--input-range 0-255 --channel-order bgr --input-mean 103.939,116.779,123.68``.

Without flags, a file a build or ``lrfc export`` wrote keeps the contract
recorded for it: in the report.json or export.json beside it (listed by its
SHA-256) or in the file's own metadata (``lower.stamp``); ``frontend.recorded``
finds it, ``from_record`` reads it. Otherwise the
contract is *inferred* from the model (``infer_contract``):
a graph that starts with its own preprocessing (a ``Rescaling`` or
``Normalization`` layer, a ``BatchNormalization`` whose moving mean is
that of raw pixels, a trusted ``Lambda``, or the operations Keras'
``preprocess_input`` puts into a graph built on it) expects raw pixel values,
0-255; any other model gets [0, 1], lrfc's default. Layers that leave the
values as they are at inference (data augmentation such as ``RandomFlip``,
dropout and noise, ``Resizing``, crops, padding, reshapes) may come first:
the walk from the input passes them (``PASS_THROUGH``). Whether that was right
is checked on real data by the sanity gate (``frontend.sanity``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lrfc.errors import UserError

RANGES = {"0-1": (0.0, 1.0), "0-255": (0.0, 255.0), "-1-1": (-1.0, 1.0)}
CHANNEL_ORDERS = ("rgb", "bgr")
RAW_SCALE = 1 / 100  # a Rescaling scale at or below this maps raw 0-255 pixels into a small range


@dataclass(frozen=True)
class InputContract:
    """How unit pixel values in [0, 1] become the model's input values; see the module doc.

    ``source`` is ``inferred`` (from the model's graph) or ``given`` (flags);
    ``reason`` says in words where it came from.
    """

    range: str = "0-1"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    channel_order: str = "rgb"
    source: str = "inferred"
    reason: str = ""

    def __post_init__(self):
        if self.range not in RANGES:
            raise UserError(f"--input-range: received {self.range!r}; expected one of {', '.join(RANGES)}")
        if self.channel_order not in CHANNEL_ORDERS:
            raise UserError(f"--channel-order: received {self.channel_order!r}; expected one of {', '.join(CHANNEL_ORDERS)}")
        if self.std is not None and not all(s > 0 and math.isfinite(s) for s in self.std):
            raise UserError(f"--input-std: received {','.join(f'{s:g}' for s in self.std)}; expected positive numbers")
        if self.mean is not None and not all(math.isfinite(m) for m in self.mean):
            raise UserError(f"--input-mean: received {','.join(f'{m:g}' for m in self.mean)}; expected finite numbers")

    def check_channels(self, channels: int | None) -> None:
        """A clear error when the per-channel values or the channel order do not fit the model's input."""
        for flag, values in (("--input-mean", self.mean), ("--input-std", self.std)):
            if values is not None and len(values) not in (1, channels):
                raise UserError(f"{flag}: received {len(values)} values; the model input has {channels} channel"
                                f"{'s' * (channels != 1)}, so expected 1 or {channels}")
        if self.channel_order == "bgr" and channels != 3:
            raise UserError(f"--channel-order bgr: the model input has {channels} channels; channel order applies to 3")

    def apply(self, unit: np.ndarray) -> np.ndarray:
        """Unit pixel values (N, ..., C) in [0, 1] -> the model's input values, float32."""
        x = np.asarray(unit, dtype=np.float32)
        if self.channel_order == "bgr":
            x = x[..., ::-1]
        lo, hi = RANGES[self.range]
        if (lo, hi) != (0.0, 1.0):
            x = x * np.float32(hi - lo) + np.float32(lo)
        if self.mean is not None:
            x = x - np.asarray(self.mean, dtype=np.float32)
        if self.std is not None:
            x = x / np.asarray(self.std, dtype=np.float32)
        return np.ascontiguousarray(x, dtype=np.float32)

    def unapply(self, x: np.ndarray) -> np.ndarray:
        """The inverse of ``apply``: model input values -> unit pixel values."""
        x = np.asarray(x, dtype=np.float32)
        if self.std is not None:
            x = x * np.asarray(self.std, dtype=np.float32)
        if self.mean is not None:
            x = x + np.asarray(self.mean, dtype=np.float32)
        lo, hi = RANGES[self.range]
        x = (x - np.float32(lo)) / np.float32(hi - lo)
        return np.ascontiguousarray(x[..., ::-1] if self.channel_order == "bgr" else x)

    def flags(self) -> str:
        """The command-line flags that state this contract."""
        parts = [f"--input-range {self.range}"]
        if self.channel_order != "rgb":
            parts.append(f"--channel-order {self.channel_order}")
        if self.mean is not None:
            parts.append("--input-mean " + ",".join(f"{v:g}" for v in self.mean))
        if self.std is not None:
            parts.append("--input-std " + ",".join(f"{v:g}" for v in self.std))
        return " ".join(parts)

    def describe(self) -> str:
        """One line: the contract and why."""
        extra = [f"channel order {self.channel_order}"] if self.channel_order != "rgb" else []
        if self.mean is not None:
            extra.append("mean " + ",".join(f"{v:g}" for v in self.mean))
        if self.std is not None:
            extra.append("std " + ",".join(f"{v:g}" for v in self.std))
        values = f"pixel values {self.range}" + (f" ({', '.join(extra)})" if extra else "")
        return f"{values}, {self.source}: {self.reason}" if self.reason else f"{values}, {self.source}"

    def to_json(self) -> dict:
        return {"range": self.range, "mean": None if self.mean is None else list(self.mean),
                "std": None if self.std is None else list(self.std), "channel_order": self.channel_order,
                "source": self.source, "reason": self.reason}


def parse_values(text: str | None, flag: str) -> tuple[float, ...] | None:
    """``--input-mean 0.485,0.456,0.406`` -> a tuple of floats; None stays None."""
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        values = ()
    if not values:
        raise UserError(f"{flag}: received {text!r}; expected one number or a comma list, one per channel")
    return values


def given_contract(input_range: str | None, mean: str | None, std: str | None, channel_order: str | None):
    """The contract the flags state, or None when no flag was given (then it is inferred)."""
    if input_range is None and mean is None and std is None and channel_order is None:
        return None
    means, stds = parse_values(mean, "--input-mean"), parse_values(std, "--input-std")
    said = []
    if input_range is None:  # mean/std alone: their scale says which range they are in
        input_range = "0-255" if means is not None and max(abs(v) for v in means) > 1.5 else "0-1"
        said.append(f"range {input_range} from the scale of --input-mean" if means is not None else "range 0-1 (default)")
    return InputContract(input_range, means, stds, channel_order or "rgb", "given",
                         "from the command line" + (f"; {said[0]}" if said else ""))


# ------------------------------------------------------------------ inference


# Layers whose output holds the input's pixel values (resampling, crops, padding and reshapes move values, not
# their range); augmentation, dropout and noise layers too, the identity at inference (``common.training_only``).
PASS_THROUGH = frozenset({
    "InputLayer", "Identity", "ActivityRegularization",
    "Resizing", "CenterCrop", "Cropping1D", "Cropping2D", "ZeroPadding1D", "ZeroPadding2D", "Reshape", "Permute",
})


def _passes_values(layer) -> bool:
    from lrfc.common.training_only import is_augmentation, is_noise

    return type(layer).__name__ in PASS_THROUGH or is_augmentation(layer) or is_noise(layer)


def _is_layer(operation) -> bool:
    import keras

    return isinstance(operation, keras.layers.Layer)


def _op_prefix(model, nodes: dict, source):
    """The model from its input to the one tensor the operations starting at ``source`` end in (what the first layer
    after them reads), and their names; (None, names) when they end in several tensors.

    Keras' own ``preprocess_input(inputs)`` on a symbolic input puts operations, not layers, into the graph: ``x /
    127.5 - 1`` ('tf' mode: MobileNet, Xception, ResNetV2, ...), three slices, a stack and a mean ('caffe': VGG,
    ResNet50), a division by 255, a mean and a std ('torch': DenseNet).
    """
    import keras

    ends, names, frontier, seen = [], [], [source], set()
    while frontier:
        tensor = frontier.pop()
        for name, node in nodes.items():
            if name in seen or not any(t is tensor for t in node.input_tensors):
                continue
            if _is_layer(node.operation):
                if not any(t is tensor for t in ends):
                    ends.append(tensor)
                continue
            seen.add(name)
            names.append(name)
            frontier.extend(node.output_tensors)
    if len(ends) != 1:
        return None, names
    return keras.Model(model.inputs[0], ends[0]), names


def _first_layer(model):
    """The first layer from the model's (single) input that changes its values (or None), the names of the layer
    types passed on the way (``PASS_THROUGH``), and the shape of the tensor that layer reads.

    Operations (not layers) met first, Keras' ``preprocess_input`` applied to the symbolic input, come back as
    one model from the input to their result, named for them (``_op_prefix``).
    """
    from lrfc.frontend.graph import layer_nodes

    if len(model.inputs) != 1:
        return None, [], None
    nodes = layer_nodes(model)
    source, passed = model.inputs[0], []
    while True:
        reader = next((name for name, node in nodes.items() if any(t is source for t in node.input_tensors)), None)
        if reader is None:
            return None, passed, None
        layer = nodes[reader].operation
        if not _is_layer(layer):
            prefix, names = _op_prefix(model, nodes, source)
            if prefix is not None:
                prefix.name = f"operations ({', '.join(names[:4])}{', ...' if len(names) > 4 else ''})"
            return prefix, passed, tuple(model.inputs[0].shape[1:])
        outputs = nodes[reader].output_tensors
        if not _passes_values(layer) or len(outputs) != 1:
            return layer, passed, tuple(source.shape[1:])
        passed.append(type(layer).__name__)
        source = outputs[0]


def _probe(layer, shape) -> tuple[float, float]:
    """Mean output of a (Lambda) layer on an all-0 and an all-255 input."""
    lo = np.asarray(layer(np.zeros((1, *shape), np.float32)), dtype=np.float64)
    hi = np.asarray(layer(np.full((1, *shape), 255.0, np.float32)), dtype=np.float64)
    return float(lo.mean()), float(hi.mean())


def _takes_raw_pixels(lo: float, hi: float) -> bool:
    """Whether preprocessing that maps an all-0 input to ``lo`` and an all-255 one to ``hi`` (means) expects raw
    pixel values: it scales 0..255 into a small range ('tf' and 'torch' modes, ``x / 127.5 - 1``), or keeps their
    scale and takes off a mean in pixel units ('caffe' mode: -123.7..151.1; a mean above 1.5, as for Normalization)."""
    spread = hi - lo
    return (abs(hi) <= 8 and abs(spread) <= 8) or (0.9 * 255 <= spread <= 1.1 * 255 and abs(lo) > 1.5)


def infer_contract(model) -> InputContract:
    """The contract a model's own graph implies; see the module doc for the rule."""
    import keras

    layer, passed, shape = _first_layer(model)
    default = InputContract("0-1", reason="no Rescaling/Normalization layer at the input, so lrfc assumes [0, 1] "
                                          "(state the model's preprocessing with --input-range/--input-mean/--input-std)")
    if layer is None:
        return default
    kind = type(layer).__name__
    starts = "the model starts with " + (f"{', '.join(dict.fromkeys(passed))} (no change to the pixel values at "
                                         "inference), then " if passed else "")
    if isinstance(layer, keras.layers.Rescaling):
        scale = float(np.max(np.abs(np.asarray(layer.scale, dtype=np.float64))))
        offset = np.asarray(layer.offset, dtype=np.float64).ravel()
        how = f"{starts}Rescaling(scale={scale:.4g}, offset={float(offset[0]) if offset.size == 1 else 'per channel'})"
        if scale <= RAW_SCALE:
            return InputContract("0-255", reason=f"{how}, which takes raw pixel values")
        return InputContract("0-1", reason=f"{how}, whose scale takes [0, 1] values")
    if isinstance(layer, (keras.layers.Normalization, keras.layers.BatchNormalization)):
        bn = isinstance(layer, keras.layers.BatchNormalization)  # a BatchNorm on the pixels: its moving statistics
        mean, var = (layer.moving_mean, layer.moving_variance) if bn else (getattr(layer, "mean", None),
                                                                             getattr(layer, "variance", None))
        mean = np.zeros(1) if mean is None else np.asarray(mean, dtype=np.float64).ravel()
        var = np.ones(1) if var is None else np.asarray(var, dtype=np.float64).ravel()
        top = float(np.max(np.abs(mean)))
        stat, fitted = ("moving mean", "trained") if bn else ("mean", "adapted")
        if top > 1.5:
            return InputContract("0-255", reason=f"{starts}{kind} ({stat} up to {top:.4g}), "
                                                  "which takes raw pixel values")
        if top == 0 and np.allclose(var, 1.0):
            return InputContract("0-1", reason=f"{starts}an identity {kind} (mean 0, variance 1: never "
                                              f"{fitted}), which tells nothing; assuming [0, 1] (state it with --input-range)")
        return InputContract("0-1", reason=f"{starts}{kind} ({stat} up to {top:.4g}), {fitted} on [0, 1] values")
    if isinstance(layer, (keras.layers.Lambda, keras.Model)):  # a Model here: the operations _first_layer found
        one = isinstance(layer, keras.layers.Lambda)
        what = f"a Lambda layer ('{layer.name}')" if one else layer.name
        try:
            lo, hi = _probe(layer, shape)
        except Exception:  # a Lambda that cannot run on a probe tells nothing
            return InputContract("0-1", reason=f"{starts}{what} that lrfc could "
                                              "not probe; assuming [0, 1] (state it with --input-range)")
        if _takes_raw_pixels(lo, hi):
            return InputContract("0-255", reason=f"{starts}{what} that {'maps' if one else 'map'} "
                                                  f"0..255 to {lo:.3g}..{hi:.3g}: its own preprocessing")
        return InputContract("0-1", reason=f"{starts}{what} that {'is' if one else 'are'} not "
                                          "pixel preprocessing; assuming [0, 1]")
    return default


def from_record(record: dict, where: str) -> InputContract:
    """The contract a report.json or export.json (its ``input``) or a file's ``lrfc.input`` entry recorded, ``where``
    naming it: a file built with ``--input-range ...`` is verified, exported or built again under those flags
    without their being repeated."""
    mean, std = record.get("mean"), record.get("std")
    why = record.get("reason")
    return InputContract(record.get("range") or "0-1", None if mean is None else tuple(float(v) for v in mean),
                         None if std is None else tuple(float(v) for v in std), record.get("channel_order") or "rgb",
                         record.get("source") or "given", f"as {where} recorded it" + (f" ({why})" if why else ""))


def same_values(a: InputContract, b: InputContract) -> bool:
    """Whether two contracts map pixels alike (where they came from aside)."""
    return (a.range, a.mean, a.std, a.channel_order) == (b.range, b.mean, b.std, b.channel_order)


def resolve(model, given: InputContract | None) -> InputContract:
    """The contract to use: the given one (checked against the model's channels) or the inferred one."""
    contract = given if given is not None else infer_contract(model)
    shape = tuple(model.inputs[0].shape[1:])
    channels = int(shape[-1]) if len(shape) == 3 and shape[-1] is not None else None
    if channels is not None:
        contract.check_channels(channels)
    elif given is not None and (given.mean or given.std or given.channel_order != "rgb"):
        if any(len(v) != 1 for v in (given.mean or (0,), given.std or (1,))) or given.channel_order != "rgb":
            raise UserError(f"--input-mean/--input-std per channel and --channel-order apply to image inputs "
                            f"(H, W, C); this model takes {shape}")
    return contract
