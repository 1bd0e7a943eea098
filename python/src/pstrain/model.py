"""torch nn.Sequential <-> pstrain [model] section.

Module i of the Sequential is layer i of model.layers, so the state_dict
key "3.weight" is pstrain's tensor "layers.3.weight". Only modules with an
exact pstrain equivalent are accepted (docs/python.md lists them); anything
else is refused with a message naming the module and its index.
"""

import tomllib

from . import layers as L
from .errors import PstrainError, need_torch


# ---------------------------------------------------------------------------
# torch -> [model]
# ---------------------------------------------------------------------------

def to_model_section(seq, input_shape):
    """The TOML text of the [model] section of `seq` (a torch nn.Sequential)
    on inputs of `input_shape` (a feature count, or (channels, height, width))."""
    torch = need_torch("to_model_section")
    if not isinstance(seq, torch.nn.Sequential):
        raise PstrainError(f"to_model_section takes a torch.nn.Sequential, not {type(seq).__name__}")
    first = shape = L.parse_input(input_shape, where="input_shape")
    entries = []
    for i, m in enumerate(seq):
        e = L.normalize(entry_of(torch.nn, m, i, shape), i)
        shape = L.output_shape(e, shape, i)
        entries.append(e)
    return L.section_toml(first, entries)


def _refuse(m, i, why):
    return PstrainError(f"module {i} ({m!r}) has no pstrain equivalent: {why}")


def _square(m, i, name, value):
    """A torch size that is one integer or (k, k)."""
    if isinstance(value, int):
        return value
    if isinstance(value, (tuple, list)) and len(value) == 2 and value[0] == value[1]:
        return int(value[0])
    raise _refuse(m, i, f"pstrain takes a square {name} (one integer), this is {value!r}")


def _expect(m, i, ok, why):
    if not ok:
        raise _refuse(m, i, why)


def entry_of(nn, m, i, shape):
    """The model.layers entry of module `i`, whose input has `shape`."""
    activation = {getattr(nn, name): t for t, name in L.ACTIVATIONS.items()}.get(type(m))
    if activation is not None:
        _expect(m, i, getattr(m, "approximate", "none") == "none", "pstrain's gelu is the exact erf form (approximate='none')")
        return {"type": activation}
    if type(m) is nn.Conv2d:
        return _conv2d(m, i, shape)
    if type(m) in (nn.MaxPool2d, nn.AvgPool2d):
        return _pool(nn, m, i)
    if type(m) is nn.Flatten:
        _expect(m, i, m.start_dim == 1 and m.end_dim in (-1, len(shape)), "pstrain's flatten is nn.Flatten() (start_dim=1, end_dim=-1)")
        return {"type": "flatten"}
    if type(m) is nn.Linear:
        _expect(m, i, m.bias is not None, "pstrain's dense layer has a bias (bias=True)")
        _expect(m, i, len(shape) != 1 or m.in_features == shape[0],
                f"it takes {m.in_features} features, its input has {shape[0]}")
        return {"type": "dense", "units": m.out_features}
    if type(m) is nn.Dropout:
        return {"type": "dropout", "p": float(m.p)}
    if type(m) in (nn.BatchNorm1d, nn.BatchNorm2d):
        return _batchnorm(nn, m, i, shape)
    if type(m) is nn.LayerNorm:
        _expect(m, i, m.elementwise_affine and getattr(m, "bias", True) is not None,
                "pstrain's layernorm has a weight and a bias (elementwise_affine=True, bias=True)")
        _expect(m, i, tuple(m.normalized_shape) == tuple(shape),
                f"pstrain's layernorm normalizes its whole input, of shape {list(shape)}; this one normalizes {list(m.normalized_shape)}")
        return {"type": "layernorm", "eps": float(m.eps)}
    raise _refuse(m, i, f"pstrain has no layer for {type(m).__name__} (it has: {', '.join(L.KINDS)})")


def _conv2d(m, i, shape):
    k = _square(m, i, "kernel_size", m.kernel_size)
    s = _square(m, i, "stride", m.stride)
    pad = m.padding
    if pad == "valid":
        pad = 0
    elif pad == "same":
        _expect(m, i, s == 1 and k % 2 == 1, "padding='same' needs stride 1 and an odd kernel in pstrain")
        pad = (k - 1) // 2
    pad = _square(m, i, "padding", pad)
    _expect(m, i, _square(m, i, "dilation", m.dilation) == 1, "pstrain's conv2d has no dilation (dilation=1)")
    _expect(m, i, m.groups == 1, "pstrain's conv2d has no groups (groups=1)")
    _expect(m, i, m.bias is not None, "pstrain's conv2d has a bias (bias=True)")
    _expect(m, i, m.padding_mode == "zeros", "pstrain's conv2d pads with zeros (padding_mode='zeros')")
    _expect(m, i, len(shape) != 3 or m.in_channels == shape[0],
            f"it takes {m.in_channels} channels, its input has shape {list(shape)}")
    return {"type": "conv2d", "channels": m.out_channels, "kernel": k, "stride": s, "padding": pad}


def _pool(nn, m, i):
    k = _square(m, i, "kernel_size", m.kernel_size)
    s = _square(m, i, "stride", m.stride if m.stride is not None else k)
    _expect(m, i, _square(m, i, "padding", m.padding) == 0, "pstrain's pooling has no padding (padding=0)")
    _expect(m, i, not m.ceil_mode, "pstrain's pooling rounds sizes down (ceil_mode=False)")
    if type(m) is nn.MaxPool2d:
        _expect(m, i, _square(m, i, "dilation", m.dilation) == 1 and not m.return_indices,
                "pstrain's maxpool2d has no dilation and returns no indices")
        return {"type": "maxpool2d", "kernel": k, "stride": s}
    _expect(m, i, m.divisor_override is None, "pstrain's avgpool2d divides by the window's size (divisor_override=None)")
    return {"type": "avgpool2d", "kernel": k, "stride": s}


def _batchnorm(nn, m, i, shape):
    want = nn.BatchNorm1d if len(shape) == 1 else nn.BatchNorm2d
    _expect(m, i, type(m) is want, f"its input has shape {list(shape)}, so pstrain's batchnorm is {want.__name__} there")
    _expect(m, i, m.affine and m.track_running_stats and m.momentum is not None,
            "pstrain's batchnorm has a weight and a bias and keeps running statistics with a momentum "
            "(affine=True, track_running_stats=True, momentum a number)")
    _expect(m, i, m.num_features == shape[0], f"it has {m.num_features} features, its input has shape {list(shape)}")
    return {"type": "batchnorm", "momentum": float(m.momentum), "eps": float(m.eps)}


# ---------------------------------------------------------------------------
# [model] -> torch
# ---------------------------------------------------------------------------

def read_section(text_or_dict):
    """(input shape, normalized entries) of a [model] section given as TOML
    text (the section, a whole configuration such as run.toml, or its body)
    or as a dict (the parsed section or document)."""
    try:
        doc = tomllib.loads(text_or_dict) if isinstance(text_or_dict, str) else text_or_dict
    except tomllib.TOMLDecodeError as e:
        raise PstrainError(f"the model section is not valid TOML: {e}") from e
    if not isinstance(doc, dict):
        raise PstrainError(f"a model section is TOML text or a dict, not {type(doc).__name__}")
    model = doc.get("model", doc)
    for key in ("input", "layers"):
        if key not in model:
            raise PstrainError(f"the model section has no '{key}' (it needs input = <features or shape> and layers = [...])")
    if not isinstance(model["layers"], list):
        raise PstrainError("model.layers must be an array of layer tables")
    return L.parse_input(model["input"]), [L.normalize(e, i) for i, e in enumerate(model["layers"])]


def from_model_section(text_or_dict):
    """The torch nn.Sequential of a [model] section (see read_section), with
    torch's default initialisation: load a state_dict into it for pstrain's weights."""
    shape, entries = read_section(text_or_dict)
    return build_sequential(entries, shape)


def build_sequential(entries, shape, param_shapes=None):
    """nn.Sequential of normalized `entries` on inputs of `shape`. Dimensions
    of `shape` that are None are taken from `param_shapes` ("layers.<i>.weight"
    -> shape) where a layer needs them (a dense layer after a flatten of an
    image whose size is unknown, a layernorm)."""
    torch = need_torch("from_model_section")
    modules = []
    for i, e in enumerate(entries):
        modules.append(_module(torch.nn, e, i, shape, param_shapes or {}))
        shape = L.output_shape(e, shape, i)
    return torch.nn.Sequential(*modules)


def _module(nn, e, i, shape, params):
    kind = e["type"]
    if kind in L.ACTIVATIONS:
        return getattr(nn, L.ACTIVATIONS[kind])()
    if kind == "flatten":
        return nn.Flatten()
    if kind == "dropout":
        return nn.Dropout(e["p"])
    if kind == "conv2d":
        L.output_shape(e, shape, i)  # refuses a flat input
        return nn.Conv2d(shape[0], e["channels"], e["kernel"], stride=e["stride"], padding=e["padding"])
    if kind == "maxpool2d":
        return nn.MaxPool2d(e["kernel"], e["stride"])
    if kind == "avgpool2d":
        return nn.AvgPool2d(e["kernel"], e["stride"])
    if kind == "dense":
        L.output_shape(e, shape, i)  # refuses an image input
        return nn.Linear(_known(shape, params, i, kind, 1)[0], e["units"])
    if kind == "batchnorm":
        L.output_shape(e, shape, i)
        cls = nn.BatchNorm1d if len(shape) == 1 else nn.BatchNorm2d
        return cls(shape[0], eps=e["eps"], momentum=e["momentum"])
    if kind == "layernorm":
        return nn.LayerNorm(list(_known(shape, params, i, kind, None)), eps=e["eps"])
    raise AssertionError(kind)


def _known(shape, params, i, kind, dim):
    """`shape` with unknown dimensions read from layer i's weight (its
    dimensions from `dim` on, or the whole weight shape)."""
    if None not in shape:
        return shape
    w = params.get(f"layers.{i}.weight")
    if w is None:
        raise L.layer_error(i, kind, "needs its input's size, which is unknown: give the input shape")
    return tuple(w[dim:] if dim is not None else w)
