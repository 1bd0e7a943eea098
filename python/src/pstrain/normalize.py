"""pstrain's input normalisation (data.normalize, docs/config.md) as a torch
module, the first module of the model `model_from_export` returns: raw
features in, the inputs pstrain's network saw out, with pstrain's arithmetic
(Normalization.apply):

- uint8 features: x' = float(x) * (1 / (255 std)) + (-mean / std), the two
  constants computed in FP32 in that order;
- float32 features: x' = (x - mean) / std in FP32;
- float64 features: (x - mean) / std in FP64, then rounded to FP32.

mean and std are buffers (they travel with state_dict, .to() and ONNX
export): one number each for "scalar" and "none" (0 and 1), one per feature,
of a sample's shape, for "standardize"."""

import math

import numpy as np
import torch
from torch import nn

from .errors import PstrainError


class Normalize(nn.Module):
    """x' = (x / 255 - mean) / std for uint8 inputs, (x - mean) / std for
    floating-point inputs, as pstrain normalises its data; the output has
    the buffers' dtype (FP32). mean and std: numbers, or arrays (numpy,
    torch, lists) of one shape, a sample's (per-feature numbers), or one
    with as many elements as a sample (an input (N, 784) takes the numbers
    of shape (1, 28, 28) in their order)."""

    def __init__(self, mean, std):
        super().__init__()
        mean, std = _floats(mean, "mean"), _floats(std, "std")
        if mean.shape != std.shape:
            raise PstrainError(f"Normalize: mean has shape {list(mean.shape)} and std {list(std.shape)}: they must have one shape")
        if mean.size == 0:
            raise PstrainError("Normalize: mean and std are empty: give a number, or one per feature")
        if not np.isfinite(mean).all():
            raise PstrainError(f"Normalize: mean[{int(np.argmin(np.isfinite(mean).reshape(-1)))}] is not finite")
        bad = ~(np.isfinite(std) & (std > 0))
        if bad.any():
            at = int(np.argmax(bad.reshape(-1)))
            raise PstrainError(f"Normalize: std[{at}] is {std.reshape(-1)[at]}: a deviation is positive and finite "
                               f"(pstrain uses 1 for a feature that has none)")
        self.register_buffer("mean", torch.from_numpy(mean))
        self.register_buffer("std", torch.from_numpy(std))

    def forward(self, x):
        m, s = self._numbers(x)
        if x.dtype == torch.uint8:
            # pstrain's affine form for bytes: both constants rounded to the buffers' precision first.
            scale = torch.div(torch.ones_like(s), s * 255)
            return x.to(m.dtype) * scale + torch.div(torch.neg(m), s)
        if x.dtype == torch.float64 and m.dtype != torch.float64:
            return ((x - m.double()) / s.double()).to(m.dtype)
        if not x.is_floating_point():
            raise PstrainError(f"Normalize takes uint8 features (bytes, read as x / 255 as pstrain reads a uint8 file) or "
                               f"floating-point ones, not {x.dtype}: convert the input to the dtype of the data pstrain trained on")
        return (x.to(m.dtype) - m) / s

    def _numbers(self, x):
        """mean and std shaped for `x` (samples, ...): as they are when they
        broadcast (one number, or a sample's shape), else reshaped to x's
        sample shape when they have as many elements."""
        m, s = self.mean, self.std
        if m.dim() == 0 or m.numel() == 1 or tuple(m.shape) == tuple(x.shape[1:]):
            return m, s
        sample = tuple(x.shape[1:])
        if x.dim() < 2 or math.prod(sample) != m.numel():
            raise PstrainError(f"Normalize holds the numbers of {m.numel()} features (shape {list(m.shape)}) but the input has "
                               f"shape {list(x.shape)}: give it (samples, features...) with {m.numel()} features per sample")
        return m.reshape(sample), s.reshape(sample)

    def extra_repr(self):
        if self.mean.numel() == 1:
            return f"mean={float(self.mean.reshape(-1)[0]):.6g}, std={float(self.std.reshape(-1)[0]):.6g}"
        return f"per feature, shape={list(self.mean.shape)}"


def _floats(v, name):
    """`v` as a C-ordered float32 numpy array."""
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    try:
        a = np.asarray(v)
    except Exception as e:  # ragged lists and the like
        raise PstrainError(f"Normalize: {name} is not a number or an array of numbers: {e}") from e
    if a.dtype.kind not in "fiu" or a.dtype == np.bool_:
        raise PstrainError(f"Normalize: {name} has dtype {a.dtype}: it is a number or an array of numbers")
    return np.array(a, dtype=np.float32, order="C")  # (np.ascontiguousarray would make a number 1-D)
