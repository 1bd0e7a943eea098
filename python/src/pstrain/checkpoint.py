"""Reading pstrain's weights: an export (`pstrain ckpt export`: one
safetensors file, the layers in its metadata) or a checkpoint folder
(`runs/<name>/checkpoints/step-<N>`: manifest.json and one safetensors file
per rank, a tensor cut over several servers stored as 1-D slices that the
manifest's `shards` place). docs/checkpoints.md has both formats."""

import hashlib
import importlib.util
import json
import math
import os
import re
import tomllib
from collections import OrderedDict

import numpy as np
from safetensors import safe_open

from . import layers as L
from .errors import PstrainError, need_torch
from .files import read_regular
from .model import build_sequential, read_section


def load_state_dict(path, *, names="torch", as_numpy=None, state=""):
    """The model's tensors from `path`: an export (.safetensors), a
    checkpoint folder (step-<N>), or a run directory (its newest checkpoint,
    the one checkpoints/LATEST names).

    names: "torch" gives nn.Sequential's keys ("0.weight"), "pstrain" keeps
    pstrain's ("layers.0.weight"). as_numpy: numpy arrays instead of torch
    tensors (default: only when torch is not installed). state: an optimizer
    state of a checkpoint instead of the weights ("momentum": the tensors
    "<name>.momentum" the servers keep). num_batches_tracked becomes torch's
    int64 scalar."""
    if names not in ("torch", "pstrain"):
        raise PstrainError(f"names is {names!r}: it is 'torch' (\"0.weight\") or 'pstrain' (\"layers.0.weight\")")
    source = resolve(path)
    tensors = _read(source, state)[0]
    if names == "torch" and not is_ctr(tensors):
        tensors = {_torch_name(k, source): v for k, v in tensors.items()}
    if as_numpy is None:
        as_numpy = importlib.util.find_spec("torch") is None
    if as_numpy:
        return tensors
    torch = need_torch("load_state_dict (as_numpy=False)")
    return {k: torch.from_numpy(np.array(v)) for k, v in tensors.items()}


def model_from_export(path, input_shape=None, *, normalize=True):
    """The torch model of an export, checkpoint folder or run directory, with
    its weights loaded, in eval mode, that takes the features as they are in
    the data files (raw inputs) and gives pstrain's predictions.

    It is nn.Sequential(OrderedDict(data=Normalize(mean, std), layers=net)):
    `model.data` normalises the inputs as the run did (data.normalize,
    docs/config.md; uint8 features are read as x / 255 first) and
    `model.layers` is pstrain's network, module i its layer i. The
    state_dict's keys are then the export's tensor names (data.mean,
    data.std, layers.0.weight, ...). The layers come from the export's
    metadata (or the checkpoint's configuration); the input shape from the
    metadata when it records one, else `input_shape`, else the weights (the
    first dense, conv2d or layernorm layer's).

    normalize:
      True (default): the run's own normalisation. An export carries it
        when the run standardised its data (data.normalize = "standardize",
        the default for npz, safetensors and csv files: tensors data.mean
        and data.std); a checkpoint folder or run directory always tells it
        (its configuration, and worker 0's file for "standardize"). An
        export without those tensors is refused with what to pass instead:
        its run normalised with "scalar" (the default for idx files) or
        "none", which an export does not record.
      False: the network alone (what this function returned before), for inputs
        already normalised as pstrain fed them.
      (mean, std): these numbers (each one number, or one per feature, as
        load_normalization gives them), for an export that lacks them; a
        default Fashion-MNIST idx run: (0.2860, 0.3530).

    A CTR model (embedding tables) is returned as a CTRModel: pstrain does
    not normalise its inputs (normalize=True and False give the same)."""
    torch = need_torch("model_from_export")
    _check_normalize_argument(normalize)
    source = resolve(path)
    state, meta = _read(source)
    if is_ctr(state):
        if normalize is not True and normalize is not False:
            raise PstrainError(f"{source} is a CTR model's, whose inputs pstrain does not normalise: "
                               f"call model_from_export without normalize")
        return _ctr_from_export(torch, source, state, meta)
    config = read_manifest(source)["config"] if meta is None else None
    shape, entries = read_section(config) if meta is None else _export_layers(source, meta)
    if input_shape is not None:
        shape = L.parse_input(input_shape, where="input_shape")
    params = {k: v.shape for k, v in state.items()}
    shape = shape or _guess_input(entries, params, source)
    seq = build_sequential(entries, shape, params)
    missing, unexpected = seq.load_state_dict({_torch_name(k, source): torch.from_numpy(np.array(v)) for k, v in state.items()},
                                              strict=False)
    # A batch counter pstrain did not store stays torch's 0: evaluation does not use it.
    missing = [k for k in missing if not k.endswith(".num_batches_tracked")]
    if missing or unexpected:
        raise PstrainError(f"{source}: its tensors do not fit the model its layers describe "
                           f"(missing: {', '.join('layers.' + k for k in missing) or 'none'}; "
                           f"not in the model: {', '.join('layers.' + k for k in unexpected) or 'none'})")
    if normalize is False:
        return seq.eval()
    if normalize is True:
        mean, std = _run_normalization(source, config, meta)
    else:
        mean, std = normalize
    from .normalize import Normalize  # imports torch
    norm = Normalize(mean, std)
    features = math.prod(shape) if None not in shape else None
    if norm.mean.numel() != 1 and features is not None and norm.mean.numel() != features:
        raise PstrainError(f"{source}: the normalisation has numbers for {norm.mean.numel()} features "
                           f"(shape {list(norm.mean.shape)}) but the model takes {features} (input {list(shape)})")
    return torch.nn.Sequential(OrderedDict([("data", norm), ("layers", seq)])).eval()


def _check_normalize_argument(normalize):
    if normalize is True or normalize is False:
        return
    if isinstance(normalize, (tuple, list)) and len(normalize) == 2:
        return
    raise PstrainError(f"normalize is {normalize!r}: it is True (the run's normalisation), False (the network alone, for "
                       f"inputs already normalised) or (mean, std)"
                       + (" (load_normalization gives None for a run that did not standardise: pass its run directory "
                          "or checkpoint folder, whose configuration tells its normalisation)" if normalize is None else ""))


# Fashion-MNIST's published numbers (Normalization.fashionMNIST): the
# defaults of data.mean and data.std, and what data.kind = "synthetic" uses.
FASHION_MNIST = (0.2860, 0.3530)


def _run_normalization(source, config, meta=None):
    """(mean, std) with which the run of `source` normalised its inputs:
    the export's data.mean and data.std; for a checkpoint folder, the rule
    its configuration resolves to (DataSection.normalizeInEffect,
    DataSplit.open): "none" is (0, 1), "scalar" (data.mean, data.std),
    "standardize" worker 0's tensors."""
    if config is None:  # an export
        found = load_normalization(source)
        rule = (meta or {}).get("normalize")
        if found is None and rule == "none":
            return 0.0, 1.0
        if found is None and rule == "scalar":
            try:
                mean, std = float(meta["mean"]), float(meta["std"])
                if math.isfinite(mean) and math.isfinite(std) and std > 0:
                    return mean, std
            except (KeyError, ValueError):
                pass
            raise PstrainError(f"{source}: its metadata says normalize = scalar without a finite mean and a positive std "
                               f"(damaged or crafted export): pass normalize=(mean, std)")
        if found is None:
            raise PstrainError(
                f"{source} does not record how its run normalised the inputs: an export holds the numbers (data.mean, "
                f"data.std) only when the run standardised its data (data.normalize = \"standardize\", the default for "
                f"npz, safetensors and csv files), not for \"scalar\" (the default for idx files) or \"none\". Pass the run "
                f"directory or the checkpoint folder instead (their configuration tells it), normalize=(mean, std) "
                f"(a default Fashion-MNIST idx run: normalize=(0.2860, 0.3530)), or normalize=False for the network "
                f"alone, on inputs already normalised as pstrain fed them")
        mean, std = found
        if mean.dtype != np.float32 or std.dtype != np.float32 or mean.size != std.size or mean.size == 0:
            raise PstrainError(f"{source}: {' and '.join(NORMALIZATION)} must be FP32 tensors of one size (damaged or crafted export)")
        return mean, std
    try:
        data = tomllib.loads(config).get("data", {})
    except tomllib.TOMLDecodeError as e:
        raise PstrainError(f"{source}: the configuration in its manifest is not valid TOML: {e}") from e
    if not isinstance(data, dict):
        raise PstrainError(f"{source}: the configuration's data is not a table")
    if data.get("kind", "fashion-mnist") == "synthetic":
        return FASHION_MNIST  # the synthetic set's bytes, always with Fashion-MNIST's numbers
    fmt, rule = data.get("format", "idx"), data.get("normalize", "auto")
    if rule == "auto":
        rule = "scalar" if fmt == "idx" else "standardize"
    if rule == "none":
        return 0.0, 1.0
    if rule == "scalar":
        return data.get("mean", FASHION_MNIST[0]), data.get("std", FASHION_MNIST[1])
    if rule == "standardize":
        found = _checkpoint_normalization(source)
        if found is None:
            raise PstrainError(f"{source}: its run standardised its data (data.normalize = \"standardize\") but worker 0's file "
                               f"holds no data.mean and data.std: pass normalize=(mean, std) (load_normalization of the run "
                               f"directory reads its normalization.safetensors), or normalize=False")
        return found
    raise PstrainError(f"{source}: the configuration's data.normalize is {rule!r}, not one this bridge knows "
                       f"(none, scalar, standardize, auto): pass normalize=(mean, std) or normalize=False")


def is_ctr(tensors):
    """Whether `tensors` are a CTR model's (embedding tables): its torch
    names are pstrain's (CTRModel's state_dict)."""
    return any(k.startswith("embeddings.") for k in tensors)


def _ctr_from_export(torch, source, state, meta):
    """The CTRModel of a CTR model's export or checkpoint, weights loaded, in eval mode."""
    from .ctr_model import ctr_model_from_section
    if meta is None:
        section = read_manifest(source)["config"]
    elif "tables" in meta and "layers" in meta:
        fields = ["tables", "layers"] + [k for k in ("input", "interaction") if k in meta]
        section = "\n".join(f"{k} = {meta[k]}" for k in fields)
    else:
        raise PstrainError(f"{source}: a CTR model's export whose metadata lacks 'tables' or 'layers': build the model "
                           f"with ctr_model_from_section(<the run's [model] section>) and load "
                           f"load_state_dict({str(source)!r}) into it")
    model = ctr_model_from_section(section)
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, strict=False)
    if missing or unexpected:
        raise PstrainError(f"{source}: its tensors do not fit the CTR model its configuration describes "
                           f"(missing: {', '.join(missing) or 'none'}; not in the model: {', '.join(unexpected) or 'none'})")
    return model.eval()


def _read(source, state=""):
    """(tensors by pstrain name, num_batches_tracked as torch keeps it; the
    export's metadata, or None for a checkpoint folder)."""
    if os.path.isdir(source):
        return with_counters(read_checkpoint(source, state)), None
    if state:
        raise PstrainError(f"{source} is an export, which holds the weights only; optimizer state ({state!r}) is in a checkpoint folder")
    tensors, meta = read_export(source)
    return with_counters(tensors), meta


def _export_layers(source, meta):
    """(input shape or None, normalized entries) from an export's metadata."""
    if "layers" not in meta:
        raise PstrainError(f"{source}: its metadata has no 'layers' (not written by pstrain ckpt export): "
                           f"build the model with from_model_section and load load_state_dict({source!r}) into it")
    try:
        doc = tomllib.loads("layers = " + meta["layers"] + ("\ninput = " + meta["input"] if "input" in meta else ""))
    except tomllib.TOMLDecodeError as e:
        raise PstrainError(f"{source}: its metadata's layers (or input) is not valid TOML: {e}") from e
    entries = [L.normalize(e, i) for i, e in enumerate(doc["layers"])]
    return (L.parse_input(doc["input"], where=f"{source}: metadata input") if "input" in doc else None), entries


def _guess_input(entries, params, source):
    """The input shape the first layer with weights implies (height and
    width unknown for a conv2d), or an error asking for it."""
    for i, e in enumerate(entries):
        w = params.get(f"layers.{i}.weight")
        if e["type"] == "conv2d":
            return (int(w[1]), None, None)
        if e["type"] in ("dense", "layernorm"):
            if any(x["type"] in ("maxpool2d", "avgpool2d") for x in entries[:i]):
                break
            return (int(w[1]),) if e["type"] == "dense" else tuple(int(d) for d in w)
        if e["type"] == "batchnorm":
            break
    raise PstrainError(f"{source} does not record the model's input shape and its layers do not tell it: "
                       f"pass input_shape (a feature count, or (channels, height, width))")


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------

def resolve(path):
    """An export file, a checkpoint folder, or a run directory's newest checkpoint."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return path
    if os.path.isfile(os.path.join(path, "manifest.json")):
        return path
    ckpts = os.path.join(path, "checkpoints")
    if os.path.isdir(ckpts):
        latest = os.path.join(ckpts, "LATEST")
        if os.path.lexists(latest):
            return _latest(ckpts, latest)
        steps = [n for n in os.listdir(ckpts) if STEP_NAME.fullmatch(n)]
        if not steps:
            raise PstrainError(f"{ckpts} holds no checkpoint (step-<N>)")
        return os.path.join(ckpts, max(steps, key=lambda n: int(n[5:])))
    raise PstrainError(f"{path} is not a pstrain export (.safetensors), checkpoint folder (with manifest.json) "
                       f"or run directory (with checkpoints/)")


# A checkpoint's folder name as pstrain writes it and as LATEST holds it
# (CheckpointStore.choose compares LATEST with "step-\(step)"): ASCII digits,
# no sign, no leading zero.
STEP_NAME = re.compile(r"step-(0|[1-9][0-9]*)")
LATEST_MAX_BYTES = 64  # as pstrain reads it (CheckpointStore.latestName)
# What pstrain trims around the name (Unicode's White_Space): str.strip()
# would also take \x1c-\x1f, which Python counts as whitespace.
WHITE_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def _latest(ckpts, latest):
    """The checkpoint folder LATEST names: only a step-<N> folder of this
    checkpoints/ folder, never a path ("../../other/checkpoints/step-5", "/x"),
    so that a run directory never loads another run's checkpoint."""
    def check_size(n):
        if n > LATEST_MAX_BYTES:
            raise PstrainError(f"{latest} has {n} bytes: it holds one checkpoint name (step-<N>)")
    fix = (f"it must hold the name of a checkpoint folder of {ckpts} (step-<N>, as pstrain writes it): write the newest "
           f"complete one's name into it (pstrain ckpt list shows them), or pass the checkpoint folder itself")
    try:
        name = read_regular(latest, check_size).decode("utf-8").strip(WHITE_SPACE)
    except UnicodeDecodeError as e:
        raise PstrainError(f"{latest} is not UTF-8 text: {fix}") from e
    if not STEP_NAME.fullmatch(name):
        raise PstrainError(f"{latest} holds {name[:80]!r}, not a checkpoint name: {fix}")
    folder = os.path.join(ckpts, name)
    if not os.path.isdir(folder):
        raise PstrainError(f"{latest} names {name}, which is not a folder in {ckpts}: {fix}")
    return folder


def read_export(path):
    """(tensors by pstrain name, metadata) of an export file."""
    try:
        with safe_open(path, framework="np") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types
        raise PstrainError(f"{path} is not a readable safetensors file: {e}") from e
    if meta.get("format") == "pstrain-checkpoint":
        raise PstrainError(f"{path} is one rank's file of a checkpoint, which may hold slices of tensors: "
                           f"pass the checkpoint's folder ({os.path.dirname(path) or '.'})")
    for k in NORMALIZATION:  # the data's, not the model's: load_normalization
        tensors.pop(k, None)
    return tensors, meta


# The standardisation of a run's data (data.normalize = "standardize"):
# FP32 tensors of a sample's shape in the export, the run directory's
# normalization.safetensors and each checkpoint's worker-0.safetensors.
NORMALIZATION = ("data.mean", "data.std")


def load_normalization(path):
    """(mean, std), numpy float32 arrays of a sample's shape, with which a run
    standardised its inputs: x' = (x / 255 - mean) / std for uint8 features,
    (x - mean) / std for float ones; None when it did not standardise.
    path: an export, a run directory or a checkpoint folder."""
    path = os.fspath(path)
    if os.path.isfile(path):
        candidates = [path]
    elif os.path.isfile(os.path.join(path, "manifest.json")):
        return _checkpoint_normalization(path)
    else:
        candidates = [os.path.join(path, "normalization.safetensors")]
    for c in candidates:
        if not os.path.isfile(c):
            continue
        try:
            with safe_open(c, framework="np") as f:
                if all(k in f.keys() for k in NORMALIZATION):
                    return tuple(f.get_tensor(k) for k in NORMALIZATION)
        except Exception as e:  # safetensors raises its own error types
            raise PstrainError(f"{c} is not a readable safetensors file: {e}") from e
    if os.path.isdir(os.path.join(path, "checkpoints")):
        return _checkpoint_normalization(resolve(path))
    return None


def _checkpoint_normalization(folder):
    """(mean, std) from worker 0's file of a checkpoint, read through the
    checked reader as pstrain reads it (NormalizationFile.load); None when
    the manifest lists no such file or it holds neither tensor."""
    m = read_manifest(folder)
    name = "worker-0.safetensors"
    if not any(f["name"] == name for f in m["files"]):
        return None
    t = _read_listed(folder, m, name)
    if not all(k in t for k in NORMALIZATION):
        return None
    mean, std = (t[k] for k in NORMALIZATION)
    if mean.dtype != np.float32 or std.dtype != np.float32 or mean.size != std.size or mean.size == 0:
        raise PstrainError(f"{os.path.join(folder, name)}: {' and '.join(NORMALIZATION)} must be FP32 tensors of one size "
                           f"(damaged or crafted checkpoint)")
    return mean, std


# manifest.json as pstrain's Manifest (Codable) declares it: every field
# required but `checksum` and those marked Optional (Swift optionals: absent
# when nil, as JSONEncoder leaves them out), with its type. The reader
# decodes these fields only (others are ignored, as Swift's decoder ignores
# them) and the checksum covers exactly them.
INT, UINT64, DOUBLE, STRING = "Int", "UInt64", "Double", "String"


class Optional:
    """A field Swift declares optional: absent (or null) reads as None and is not encoded."""
    def __init__(self, schema):
        self.schema = schema


MANIFEST = {
    "format": INT, "run": STRING, "step": INT, "epoch": INT, "epochCursor": INT, "stepsPerEpoch": INT, "totalSteps": INT,
    "seed": UINT64, "dataOrder": STRING, "rng": STRING, "lrSchedule": STRING, "learningRate": DOUBLE,
    "scaler": {"scale": DOUBLE, "goodSteps": INT, "hysteresisLeft": INT, "skipped": INT, "overflowsAtMin": INT,
               "lastFiniteStep": INT},
    "servers": INT, "workers": INT, "precision": STRING, "compression": STRING, "build": STRING, "configHash": STRING,
    "config": STRING, "created": DOUBLE,
    "files": [{"name": STRING, "role": STRING, "index": INT, "bytes": INT, "sha256": STRING}],
    "tensors": [{"name": STRING, "shape": [INT], "shards": [{"file": STRING, "start": INT, "count": INT}]}],
    # The servers' optimizer state names (Manifest.optimizerStates; absent in manifests before issue 22).
    "optimizerStates": Optional([STRING]),
}
MANIFEST_MAX_BYTES = 64 << 20  # Manifest.maxBytes
MAX_FILE_NAME = 255  # Manifest.maxFileNameLength, in UTF-8 bytes
INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1


def read_manifest(folder):
    """The manifest of the checkpoint in `folder`, decoded and checked as
    pstrain's checked reader does (CheckpointStore.readManifest and check)
    before any other file is opened: a regular file of at most 64 MiB,
    format 2, every field of its type, the checksum (the SHA-256 of the
    canonical form), the step against the folder's name, values a run can
    hold, the world, the file names, and shards that cover each tensor
    exactly."""
    mpath = os.path.join(folder, "manifest.json")

    def check_size(n):
        if n > MANIFEST_MAX_BYTES:
            raise PstrainError(f"{mpath} has {n} bytes, more than a manifest may have ({MANIFEST_MAX_BYTES}): "
                               f"it is not a pstrain manifest")
    data = read_regular(mpath, check_size, missing=f"{mpath} is missing: {folder} is not a complete checkpoint")
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise PstrainError(f"{mpath} is not valid JSON: {e}") from e
    fmt = doc.get("format") if isinstance(doc, dict) else None
    if _integer(fmt) is None:
        raise PstrainError(f"{mpath} is not a valid manifest: not a JSON object with an integer field format")
    if _integer(fmt) != 2:
        raise PstrainError(f"{mpath}: field format is {fmt!r}; this bridge reads format 2 (docs/checkpoints.md): the "
                           f"checkpoint was written by another version of pstrain")
    m = _decode(doc, MANIFEST, "", mpath)
    stored = doc.get("checksum")
    if stored is not None and not isinstance(stored, str):
        raise PstrainError(f"{mpath} is not a valid manifest: field checksum: expected a String")
    _check(m, stored, folder, mpath)
    return m


def _no_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def _integer(v):
    """A JSON number as Swift decodes an Int (or UInt64): an integer, also
    when written with a fraction or an exponent that leaves none; else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return None


def _decode(v, schema, field, mpath):
    """`v` decoded as `schema` (a type, a dict of fields, a one-element list
    of the element's schema), or a PstrainError naming the field."""
    def bad(why):
        return PstrainError(f"{mpath} is not a valid manifest: field {field or '(the document)'}: {why}")
    if isinstance(schema, dict):
        if not isinstance(v, dict):
            raise bad("expected an object")
        out = {}
        for k, sub in schema.items():
            if isinstance(sub, Optional):
                out[k] = None if v.get(k) is None else _decode(v[k], sub.schema, f"{field}.{k}" if field else k, mpath)
                continue
            if k not in v:
                raise PstrainError(f"{mpath} is not a valid manifest: field {field + '.' if field else ''}{k} is missing")
            out[k] = _decode(v[k], sub, f"{field}.{k}" if field else k, mpath)
        return out
    if isinstance(schema, list):
        if not isinstance(v, list):
            raise bad("expected an array")
        return [_decode(x, schema[0], f"{field}[{i}]", mpath) for i, x in enumerate(v)]
    if v is None:
        raise bad(f"expected {'an' if schema == INT else 'a'} {schema}, found null")
    if schema == STRING:
        if not isinstance(v, str):
            raise bad("expected a String")
        return v
    if schema == DOUBLE:
        try:
            x = None if isinstance(v, bool) or not isinstance(v, (int, float)) else float(v)
        except OverflowError:  # an integer beyond the doubles
            x = None
        if x is None or not math.isfinite(x):
            raise bad(f"{str(v)[:40]} is not a number that fits in a Double")
        return x
    i = _integer(v)
    lo, hi = (0, (1 << 64) - 1) if schema == UINT64 else (INT_MIN, INT_MAX)
    if i is None or not lo <= i <= hi:
        raise bad(f"{str(v)[:40]} is not an integer that fits in {'a UInt64' if schema == UINT64 else 'an Int (64 bits)'}")
    return i


def canonical_json(m):
    """The bytes the manifest's checksum covers (Manifest.canonicalJSON): its
    fields without `checksum`, as Swift's JSONEncoder writes them with
    sorted keys, compact."""
    return _encode(m, MANIFEST).encode("utf-8")


def _required(schema):
    return schema.schema if isinstance(schema, Optional) else schema


def _encode(v, schema):
    if isinstance(schema, dict):
        keys = [k for k in sorted(schema) if not (isinstance(schema[k], Optional) and v.get(k) is None)]
        return "{" + ",".join(f"{_swift_string(k)}:{_encode(v[k], _required(schema[k]))}" for k in keys) + "}"
    if isinstance(schema, list):
        return "[" + ",".join(_encode(x, schema[0]) for x in v) + "]"
    if schema == STRING:
        return _swift_string(v)
    if schema == DOUBLE:
        return _swift_double(v)
    return str(v)


# JSONEncoder's escapes: '"', '\\', '/' (escaped unless .withoutEscapingSlashes),
# \b \f \n \r \t, and \u00XX (lowercase hexadecimal) for the other controls;
# everything else as UTF-8.
_ESCAPES = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPES.update({chr(c): f"\\u{c:04x}" for c in range(0x20) if chr(c) not in _ESCAPES})
_TO_ESCAPE = re.compile('[\x00-\x1f"\\\\/]')


def _swift_string(text):
    return '"' + _TO_ESCAPE.sub(lambda c: _ESCAPES[c.group()], text) + '"'


def _swift_double(x):
    """A double as Swift's JSONEncoder writes it: its description with a
    final ".0" dropped. The description is Python's repr (the shortest
    digits that read back, exponential below 1e-4, the exponent signed and
    of two digits at least) except that it turns exponential above 2^53,
    not from 1e16: "0.1", "65536", "1e-05", "9.007199254740994e+15",
    "-0" (checked against checksums pstrain computed)."""
    r = repr(x)
    if abs(x) > 2.0 ** 53 and "e" not in r:  # an integer of 16 digits
        sign, digits = ("-", r[1:-2]) if r.startswith("-") else ("", r[:-2])
        mantissa = digits.rstrip("0")
        r = sign + mantissa[0] + ("." + mantissa[1:] if len(mantissa) > 1 else "") + f"e+{len(digits) - 1:02d}"
    return r[:-2] if r.endswith(".0") else r


def _check(m, stored, folder, mpath):
    """CheckpointStore.check: every check that needs only the manifest and
    the name of its folder."""
    def bad(field, why):
        return PstrainError(f"{mpath}: field {field} {why}")
    if not stored:
        raise bad("checksum", "is missing: every manifest of format 2 carries its own SHA-256; the manifest was edited or damaged")
    computed = hashlib.sha256(canonical_json(m)).hexdigest()
    if stored != computed:
        raise bad("checksum", f"is {stored} but the manifest's content hashes to {computed}: the manifest was edited or "
                              f"damaged after it was written; use another checkpoint")
    name = os.path.basename(os.path.normpath(folder))
    if m["step"] < 0 or name != f"step-{m['step']}":
        raise bad("step", f"is {m['step']} but the folder is named {name}: a checkpoint's folder is step-<its step>; give it "
                          f"back its name (step-{m['step']}) or use another checkpoint")
    # The values themselves, not only their checksum: what a resume would start from.
    sc = m["scaler"]
    if not (math.isfinite(sc["scale"]) and sc["scale"] > 0):
        raise bad("scaler.scale", f"is {sc['scale']}: a loss scale is a positive finite number")
    for k in ("goodSteps", "hysteresisLeft", "skipped", "overflowsAtMin"):
        if sc[k] < 0:
            raise bad(f"scaler.{k}", f"is {sc[k]}: a count is never negative")
    if sc["lastFiniteStep"] < -1:
        raise bad("scaler.lastFiniteStep", f"is {sc['lastFiniteStep']}: a step number or -1")
    if not (math.isfinite(m["learningRate"]) and m["learningRate"] >= 0):
        raise bad("learningRate", f"is {m['learningRate']}: a learning rate is finite and not negative")
    for k in ("epoch", "epochCursor", "stepsPerEpoch", "totalSteps"):
        if m[k] < 0:
            raise bad(k, f"is {m[k]}: it is never negative")
    if m["servers"] < 1:
        raise bad("servers", f"is {m['servers']}: a run has at least one server")
    if m["workers"] < 1:
        raise bad("workers", f"is {m['workers']}: a run has at least one worker")
    listed = set()
    for i, f in enumerate(m["files"]):
        _check_file_name(f["name"], f"files[{i}].name", bad)
        if f["name"] in listed:
            raise bad(f"files[{i}].name", f"lists {f['name']} a second time")
        listed.add(f["name"])
    for i, t in enumerate(m["tensors"]):
        _check_shards(t, f"tensors[{i}] ({t['name']})", listed, bad)


def _check_file_name(name, field, bad):
    """A name from a manifest must be a plain file name inside the checkpoint folder."""
    why = ("is empty" if not name
           else f"is longer than {MAX_FILE_NAME} bytes" if len(name.encode("utf-8", "surrogatepass")) > MAX_FILE_NAME
           else "names a folder" if name in (".", "..")
           else "contains '/'" if "/" in name
           else "contains a NUL byte" if "\0" in name
           else None)
    if why:
        raise bad(field, f"is {name[:300]!r}, which {why}: a checkpoint names only plain files inside its own folder; the "
                         f"manifest is damaged or crafted and nothing is read from it")


def element_count(shape):
    """The product of `shape`, or None when a dimension is negative or the
    product overflows an Int (Safetensors.checkedProduct)."""
    p = 1
    for d in shape:
        if d < 0:
            return None
        p *= d
        if p > INT_MAX:
            return None
    return p


def _check_shards(t, field, listed, bad):
    """The shards of a tensor, in order of start: each inside the tensor,
    none overlapping, together covering it, each naming a listed file."""
    total = element_count(t["shape"])
    if total is None:
        raise bad(f"{field}.shape", f"is {t['shape']}: a dimension is negative or the element count overflows an Int")
    at = 0
    for i in sorted(range(len(t["shards"])), key=lambda i: t["shards"][i]["start"]):
        sh, f = t["shards"][i], f"{field}.shards[{i}]"
        _check_file_name(sh["file"], f"{f}.file", bad)
        if sh["file"] not in listed:
            raise bad(f"{f}.file", f"is {sh['file']}, which the manifest's files list does not hold: its content cannot be "
                                   f"verified and it is not read")
        if sh["start"] < 0:
            raise bad(f"{f}.start", f"is {sh['start']}: negative")
        if sh["count"] <= 0:
            raise bad(f"{f}.count", f"is {sh['count']}: a shard holds at least one element")
        if sh["start"] > at:
            raise bad(f"{f}.start", f"is {sh['start']}: elements {at}..<{sh['start']} of the tensor are in no shard")
        if sh["start"] < at:
            raise bad(f"{f}.start", f"is {sh['start']}: the shard overlaps the one before it, which ends at {at}")
        if sh["start"] + sh["count"] > total:
            raise bad(f"{f}.count", f"is {sh['count']}: from start {sh['start']} it runs past the tensor's {total} elements")
        at += sh["count"]
    if at != total:
        raise bad(f"{field}.shards", f"cover {at} of the tensor's {total} elements")


def read_checkpoint(folder, state=""):
    """Every tensor of the checkpoint in `folder` (its weights, or optimizer
    state `state`), assembled from the rank files' slices as the manifest
    places them. The manifest is checked first (read_manifest), each file
    read against the manifest's size and SHA-256; `pstrain ckpt verify`
    checks everything else. Memory is allocated for what the files hold,
    never for what the manifest claims."""
    m = read_manifest(folder)
    files = {}
    out = {}
    for t in m["tensors"]:
        name = t["name"]
        key = f"{name}.{state}" if state else name
        pieces = []
        for sh in sorted(t["shards"], key=lambda s: s["start"]):  # _check: back to back, covering the tensor
            if sh["file"] not in files:
                files[sh["file"]] = _read_listed(folder, m, sh["file"])
            piece = files[sh["file"]].get(key)
            if piece is None or piece.dtype != np.float32 or piece.size != sh["count"]:
                raise PstrainError(f"{os.path.join(folder, sh['file'])} lacks {key} with {sh['count']} FP32 elements "
                                   f"(the manifest's shard of {name} says so): damaged or crafted checkpoint")
            piece = piece.reshape(-1)
            # Values a run can hold (CheckpointStore.shardPiece): finite, and not negative for the
            # states that are sums of squares (Adam's exp_avg_sq, Adagrad's sum, RMSprop's square_avg).
            wrong = ~np.isfinite(piece) | (piece < 0) if state in NON_NEGATIVE_STATES else ~np.isfinite(piece)
            if wrong.any():
                at = int(np.argmax(wrong))
                raise PstrainError(f"{os.path.join(folder, sh['file'])}: {key}[{at}] is {piece[at]}, which a checkpoint of a healthy "
                                   f"run never holds ({'finite and not negative' if state in NON_NEGATIVE_STATES else 'finite'}): "
                                   f"the run had diverged, or the file was edited; use another checkpoint")
            pieces.append(piece)
        flat = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
        out[name] = flat.reshape(t["shape"])
    return out


NON_NEGATIVE_STATES = ("exp_avg_sq", "sum", "square_avg")


def _read_listed(folder, m, name):
    """A rank file the manifest lists (CheckpointStore.readListedFile): a
    regular file whose size from fstat is the manifest's `bytes` before a
    byte is read, then its SHA-256, then its safetensors header."""
    entry = next((f for f in m["files"] if f["name"] == name), None)
    if entry is None:
        raise PstrainError(f"{os.path.join(folder, 'manifest.json')}: field files does not list {name!r}: the file cannot "
                           f"be verified and is not read")
    path = os.path.join(folder, name)

    def check_size(n):
        if n != entry["bytes"]:
            raise PstrainError(f"{path} does not match the manifest ({n} bytes, the manifest says {entry['bytes']}): "
                               f"truncated or damaged; use another checkpoint")
    data = read_regular(path, check_size, missing=f"{path} is missing: the checkpoint is incomplete")
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise PstrainError(f"{path} does not match the manifest (SHA-256 mismatch): damaged; use another checkpoint")
    from safetensors.numpy import load
    try:
        return load(data)
    except Exception as e:
        raise PstrainError(f"{path} is not a readable safetensors file: {e}") from e


def with_counters(tensors):
    """`tensors` with every num_batches_tracked as torch keeps it."""
    return {k: _counter(k, v) if k.endswith(".num_batches_tracked") else v for k, v in tensors.items()}


def _counter(name, v):
    """num_batches_tracked as torch keeps it: an int64 scalar (pstrain may
    store it as FP32 of shape [] or [1])."""
    flat = np.asarray(v).reshape(-1)
    if flat.size != 1 or not float(flat[0]).is_integer():
        raise PstrainError(f"{name} is {flat.tolist()}: a count of batches is one whole number")
    return np.array(int(flat[0]), dtype=np.int64)


def _torch_name(key, source):
    """pstrain's "layers.3.weight" as nn.Sequential's "3.weight"."""
    if not key.startswith("layers."):
        raise PstrainError(f"{source}: tensor {key} is not named layers.<i>.<name>, as pstrain names a model's tensors")
    return key[len("layers."):]
