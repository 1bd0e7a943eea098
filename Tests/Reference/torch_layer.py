"""PyTorch's output for one pstrain layer, for Tests/PSCoreTests/LayerTests.swift.

usage: /usr/bin/python3 torch_layer.py CASE_DIR
CASE_DIR/case.json: {"type", "options", "input": [shape of a sample], "batch",
                     "params": [[name, shape], ...], "training": bool}
CASE_DIR/x.bin, params.bin, dy.bin: float32 little-endian, row-major.
Writes CASE_DIR/out.bin: y, dx, then the gradient of each trained tensor in
params order, then (batchnorm in training) the updated running_mean and
running_var, all float32. The layer is built from PyTorch's module of the
same name, given the same weights; the loss is sum(y * dy).
"""
import json
import sys

import numpy as np
import torch

d = sys.argv[1]
case = json.load(open(d + "/case.json"))
t, o, shape, batch = case["type"], case["options"], case["input"], case["batch"]
x = torch.tensor(np.fromfile(d + "/x.bin", dtype="<f4").reshape([batch] + shape), dtype=torch.float64 if case.get("double") else torch.float32)
x.requires_grad_(True)
flat = np.fromfile(d + "/params.bin", dtype="<f4")
dy_np = np.fromfile(d + "/dy.bin", dtype="<f4")

if t == "conv2d":
    m = torch.nn.Conv2d(shape[0], o["channels"], o["kernel"], stride=o.get("stride", 1), padding=o.get("padding", 0))
elif t == "maxpool2d":
    m = torch.nn.MaxPool2d(o["kernel"], stride=o.get("stride", o["kernel"]))
elif t == "avgpool2d":
    m = torch.nn.AvgPool2d(o["kernel"], stride=o.get("stride", o["kernel"]))
elif t == "flatten":
    m = torch.nn.Flatten()
elif t == "dropout":
    m = torch.nn.Dropout(o.get("p", 0.5))
elif t == "batchnorm":
    cls = torch.nn.BatchNorm1d if len(shape) == 1 else torch.nn.BatchNorm2d
    m = cls(shape[0], eps=o.get("eps", 1e-5), momentum=o.get("momentum", 0.1))
elif t == "layernorm":
    m = torch.nn.LayerNorm(shape, eps=o.get("eps", 1e-5))
elif t == "dense":
    m = torch.nn.Linear(shape[0], o["units"])
else:
    m = {"relu": torch.nn.ReLU(), "tanh": torch.nn.Tanh(), "sigmoid": torch.nn.Sigmoid(), "gelu": torch.nn.GELU(), "silu": torch.nn.SiLU()}[t]

state = m.state_dict()
off = 0
for name, pshape in case["params"]:
    key = name.split(".", 2)[2]
    n = int(np.prod(pshape)) if pshape else 1
    v = torch.tensor(flat[off:off + n]).reshape(pshape)
    state[key] = v.to(state[key].dtype)
    off += n
m.load_state_dict(state)
m.train(case["training"])
y = m(x)
dy = torch.tensor(dy_np).reshape(y.shape)
(y * dy).sum().backward()
outs = [y.detach().reshape(-1), x.grad.reshape(-1)]
named = dict(m.named_parameters())
for name, _ in case["params"]:
    key = name.split(".", 2)[2]
    if key in named:
        outs.append(named[key].grad.reshape(-1))
if t == "batchnorm" and case["training"]:
    outs += [m.running_mean.reshape(-1), m.running_var.reshape(-1)]
np.concatenate([o.to(torch.float32).numpy() for o in outs]).astype("<f4").tofile(d + "/out.bin")
