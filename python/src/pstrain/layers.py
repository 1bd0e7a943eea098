"""The layer table of pstrain's [model] section (docs/models.md), without
torch: each layer kind's keys with their defaults, the TOML text of an
entry, and the shape of a layer's output.

A shape is a tuple: (features,) for a flat input, (channels, height, width)
for an image. Height and width may be None when they are not known (a model
rebuilt from an export that does not record its input shape): they are then
taken from the weights where a layer needs them.
"""

import math

from .errors import PstrainError

REQUIRED = object()

# The elementwise activations: pstrain's type -> the torch.nn module's class name.
ACTIVATIONS = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid", "gelu": "GELU", "silu": "SiLU"}

# type -> {key: (python type, default or REQUIRED)}, in the order entries are written.
KINDS = {
    "conv2d": {"channels": (int, REQUIRED), "kernel": (int, REQUIRED), "stride": (int, 1), "padding": (int, 0)},
    **{t: {} for t in ACTIVATIONS},
    "maxpool2d": {"kernel": (int, REQUIRED), "stride": (int, None)},
    "avgpool2d": {"kernel": (int, REQUIRED), "stride": (int, None)},
    "flatten": {},
    "dense": {"units": (int, REQUIRED)},
    "dropout": {"p": (float, 0.5)},
    "batchnorm": {"momentum": (float, 0.1), "eps": (float, 1e-5)},
    "layernorm": {"eps": (float, 1e-5)},
}

# The smallest value of each key (all are at least this; p is also below 1).
MINIMUM = {"channels": 1, "kernel": 1, "stride": 1, "padding": 0, "units": 1, "p": 0.0, "momentum": 0.0, "eps": 0.0}


def layer_error(index, entry_type, why):
    return PstrainError(f"model.layers[{index}] ({entry_type}) {why}")


def normalize(entry, index):
    """Entry `index` of model.layers with every key of its kind, defaults
    filled in (a pooling stride defaults to its kernel), in writing order."""
    if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
        raise PstrainError(f"model.layers[{index}] is {entry!r}: each layer is a table with a string 'type' "
                           f"(one of {', '.join(KINDS)})")
    kind = entry["type"]
    if kind not in KINDS:
        raise PstrainError(f"model.layers[{index}] has unknown type '{kind}' (known: {', '.join(KINDS)})")
    keys = KINDS[kind]
    for k in entry:
        if k != "type" and k not in keys:
            takes = ", ".join(f"'{n}'" for n in keys) or "no options"
            raise layer_error(index, kind, f"has key '{k}', which {kind} does not take ({kind} takes {takes})")
    out = {"type": kind}
    for k, (typ, default) in keys.items():
        v = entry.get(k, default)
        if v is REQUIRED:
            raise layer_error(index, kind, f"needs '{k}'")
        if v is None and k == "stride":
            v = out["kernel"]
        out[k] = _checked(v, typ, k, index, kind)
    return out


def _checked(v, typ, key, index, kind):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (typ is int and not isinstance(v, int)):
        raise layer_error(index, kind, f"has {key} = {v!r}: it must be {'an integer' if typ is int else 'a number'}")
    v = typ(v)
    if not math.isfinite(v) or v < MINIMUM[key] or (key == "p" and v >= 1) or (key == "eps" and v <= 0):
        bound = "in [0, 1)" if key == "p" else "positive" if key == "eps" else f"at least {MINIMUM[key]}"
        raise layer_error(index, kind, f"has {key} = {v!r}: it must be {bound}")
    return v


def entry_toml(entry):
    """`{ type = "conv2d", channels = 32, kernel = 5, stride = 1, padding = 2 }`"""
    parts = [f'type = "{entry["type"]}"'] + [f"{k} = {_toml_number(entry[k])}" for k in KINDS[entry["type"]]]
    return "{ " + ", ".join(parts) + " }"


def _toml_number(v):
    return str(v) if isinstance(v, int) else repr(float(v))


def input_toml(shape):
    """model.input: an integer for a flat input, else the shape as an array."""
    return str(shape[0]) if len(shape) == 1 else "[" + ", ".join(str(d) for d in shape) + "]"


def section_toml(shape, entries):
    """The [model] section of `entries` on inputs of `shape`."""
    lines = ["[model]", f"input = {input_toml(shape)}", "layers = ["]
    lines += [f"  {entry_toml(e)}," for e in entries]
    return "\n".join(lines + ["]"]) + "\n"


def parse_input(value, where="model.input"):
    """model.input (an integer feature count, or a shape) as a shape tuple."""
    dims = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(dims, (list, tuple)) or not dims or len(dims) not in (1, 3) \
            or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
        raise PstrainError(f"{where} is {value!r}: it must be a positive feature count (784) "
                           f"or a shape [channels, height, width] of positive integers ([1, 28, 28])")
    return tuple(dims)


def output_shape(entry, shape, index):
    """The shape layer `index` (a normalized entry) gives on inputs of `shape`."""
    kind = entry["type"]
    if kind in ("conv2d", "maxpool2d", "avgpool2d"):
        if len(shape) != 3:
            raise layer_error(index, kind, f"needs an input of shape [channels, height, width], its input has shape {list(shape)}")
        pad = entry.get("padding", 0)
        hw = tuple(_window(d, entry["kernel"], entry["stride"], pad, index, kind) for d in shape[1:])
        return ((entry["channels"],) if kind == "conv2d" else shape[:1]) + hw
    if kind == "flatten":
        return (None if None in shape else math.prod(shape),)
    if kind == "dense":
        if len(shape) != 1:
            raise layer_error(index, kind, f"needs a flat input, its input has shape {list(shape)}: add {{ type = \"flatten\" }} before it")
        return (entry["units"],)
    if kind == "batchnorm" and len(shape) not in (1, 3):
        raise layer_error(index, kind, f"needs a flat or [channels, height, width] input, its input has shape {list(shape)}")
    return shape


def _window(size, kernel, stride, padding, index, kind):
    if size is None:
        return None
    if size + 2 * padding < kernel:
        raise layer_error(index, kind, f"has kernel {kernel}, larger than its input ({size}, padding {padding})")
    return (size + 2 * padding - kernel) // stride + 1
