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
import tomllib

import numpy as np
from safetensors import safe_open

from . import layers as L
from .errors import PstrainError, need_torch
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


def model_from_export(path, input_shape=None):
    """The torch nn.Sequential of an export, checkpoint folder or run
    directory, with its weights loaded, in eval mode. The layers come from
    the export's metadata (or the checkpoint's configuration); the input
    shape from the metadata when it records one, else `input_shape`, else
    the weights (the first dense, conv2d or layernorm layer's)."""
    torch = need_torch("model_from_export")
    source = resolve(path)
    state, meta = _read(source)
    if is_ctr(state):
        return _ctr_from_export(torch, source, state, meta)
    shape, entries = read_section(read_manifest(source)["config"]) if meta is None else _export_layers(source, meta)
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
    return seq.eval()


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
        if os.path.isfile(latest):
            with open(latest) as f:
                name = f.read().strip()
        else:
            steps = [n for n in os.listdir(ckpts) if n.startswith("step-") and n[5:].isdigit()]
            if not steps:
                raise PstrainError(f"{ckpts} holds no checkpoint (step-<N>)")
            name = max(steps, key=lambda n: int(n[5:]))
        return os.path.join(ckpts, name)
    raise PstrainError(f"{path} is not a pstrain export (.safetensors), checkpoint folder (with manifest.json) "
                       f"or run directory (with checkpoints/)")


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
        candidates = [os.path.join(path, "worker-0.safetensors")]
    else:
        candidates = [os.path.join(path, "normalization.safetensors")]
        if os.path.isdir(os.path.join(path, "checkpoints")):
            candidates.append(os.path.join(resolve(path), "worker-0.safetensors"))
    for c in candidates:
        if not os.path.isfile(c):
            continue
        try:
            with safe_open(c, framework="np") as f:
                if all(k in f.keys() for k in NORMALIZATION):
                    return tuple(f.get_tensor(k) for k in NORMALIZATION)
        except Exception as e:  # safetensors raises its own error types
            raise PstrainError(f"{c} is not a readable safetensors file: {e}") from e
    return None


def read_manifest(folder):
    mpath = os.path.join(folder, "manifest.json")
    try:
        with open(mpath, "rb") as f:
            m = json.load(f)
    except (OSError, ValueError) as e:
        raise PstrainError(f"{mpath} cannot be read as JSON: {e}") from e
    if not isinstance(m, dict) or m.get("format") != 2:
        raise PstrainError(f"{mpath}: field format is {m.get('format') if isinstance(m, dict) else None!r}; "
                           f"this bridge reads format 2 (docs/checkpoints.md)")
    return m


def read_checkpoint(folder, state=""):
    """Every tensor of the checkpoint in `folder` (its weights, or optimizer
    state `state`), assembled from the rank files' slices as the manifest
    places them. Each file read is checked against the manifest's size and
    SHA-256 first; `pstrain ckpt verify` checks everything else."""
    m = read_manifest(folder)
    mpath = os.path.join(folder, "manifest.json")
    listed = {f["name"]: f for f in m.get("files", [])}
    files = {}
    out = {}
    for t in m.get("tensors", []):
        name, shape = t["name"], tuple(t["shape"])
        key = f"{name}.{state}" if state else name
        total = math.prod(shape)
        flat = np.empty(total, dtype=np.float32)
        at = 0
        for sh in sorted(t["shards"], key=lambda s: s["start"]):
            if sh["start"] != at or sh["count"] <= 0 or sh["start"] + sh["count"] > total:
                raise PstrainError(f"{mpath}: the shards of {name} do not cover its {total} elements once, in order "
                                   f"(a shard starts at {sh['start']} with {sh['count']}, expected a start of {at})")
            if sh["file"] not in files:
                files[sh["file"]] = _read_listed(folder, listed, sh["file"], mpath)
            piece = files[sh["file"]].get(key)
            if piece is None or piece.dtype != np.float32 or piece.size != sh["count"]:
                raise PstrainError(f"{os.path.join(folder, sh['file'])} lacks {key} with {sh['count']} FP32 elements "
                                   f"(the manifest's shard of {name} says so)")
            flat[at:at + sh["count"]] = piece.reshape(-1)
            at += sh["count"]
        if at != total:
            raise PstrainError(f"{mpath}: the shards of {name} cover {at} of its {total} elements")
        out[name] = flat.reshape(shape)
    return out


def _read_listed(folder, listed, name, mpath):
    """A rank file the manifest lists, after checking its size and SHA-256."""
    if name not in listed or not name or "/" in name or name in (".", ".."):
        raise PstrainError(f"{mpath} names the file {name!r}, which its files list does not hold as a plain file name")
    path = os.path.join(folder, name)
    with open(path, "rb") as f:
        data = f.read()
    if len(data) != listed[name]["bytes"] or hashlib.sha256(data).hexdigest() != listed[name]["sha256"]:
        raise PstrainError(f"{path} does not match the manifest ({len(data)} bytes, the manifest says "
                           f"{listed[name]['bytes']}, or a SHA-256 mismatch): damaged; use another checkpoint")
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
