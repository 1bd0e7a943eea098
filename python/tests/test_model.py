"""torch nn.Sequential <-> [model] section: every supported layer round
trips to the same modules, TOML and outputs; everything else is refused
with the module and its index."""

import os
import re
import subprocess
import tomllib
import unittest

import pstrain
from helpers import pstrain_bin, require_torch

# The network PyTorch's and TensorFlow's Fashion-MNIST tutorials use, as
# the contract between the bridge and pstrain writes it.
CNN_SECTION = """[model]
input = [1, 28, 28]
layers = [
  { type = "conv2d", channels = 32, kernel = 5, stride = 1, padding = 2 },
  { type = "relu" },
  { type = "maxpool2d", kernel = 2, stride = 2 },
  { type = "conv2d", channels = 64, kernel = 5, stride = 1, padding = 2 },
  { type = "relu" },
  { type = "maxpool2d", kernel = 2, stride = 2 },
  { type = "flatten" },
  { type = "dense", units = 1024 },
  { type = "relu" },
  { type = "dropout", p = 0.5 },
  { type = "dense", units = 10 },
]
"""


def networks(nn):
    """(name, Sequential, input shape): every layer kind and option the bridge supports."""
    return [
        ("mlp", nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)), 784),
        ("cnn", nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 5, padding=2),
                              nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(), nn.Linear(3136, 1024), nn.ReLU(), nn.Dropout(0.5),
                              nn.Linear(1024, 10)), (1, 28, 28)),
        ("activations", nn.Sequential(nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 8), nn.Sigmoid(), nn.Linear(8, 6), nn.GELU(), nn.SiLU(),
                                      nn.Dropout(0.25), nn.Linear(6, 3)), (12,)),
        ("strides-and-avgpool", nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.GELU(), nn.AvgPool2d(3, stride=2),
                                              nn.Conv2d(4, 5, 2), nn.MaxPool2d(2, stride=1), nn.Flatten(), nn.Linear(20, 2)),
         (3, 17, 17)),
        ("batchnorm", nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3, eps=1e-3, momentum=0.2), nn.ReLU(), nn.Flatten(),
                                    nn.Linear(3 * 6 * 6, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Linear(16, 4)), (2, 8, 8)),
        ("layernorm", nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.LayerNorm([2, 5, 5], eps=1e-6), nn.Sigmoid(),
                                    nn.Flatten(), nn.LayerNorm(50), nn.Linear(50, 5)), (1, 5, 5)),
    ]


class RoundTripTests(unittest.TestCase):
    def test_every_supported_network_round_trips(self):
        torch = require_torch(self)
        for name, seq, shape in networks(torch.nn):
            with self.subTest(name):
                text = pstrain.to_model_section(seq, shape)
                back = pstrain.from_model_section(text)
                self.assertEqual(repr(back), repr(seq))  # same modules with the same options
                self.assertEqual(pstrain.to_model_section(back, shape), text)
                self.assertEqual({k: v.shape for k, v in back.state_dict().items()},
                                 {k: v.shape for k, v in seq.state_dict().items()})
                # Same weights (and running statistics, moved off their initial values) -> same outputs.
                seq.train()
                seq(torch.randn(4, *([shape] if isinstance(shape, int) else shape)))
                back.load_state_dict(seq.state_dict())
                seq.eval(), back.eval()
                x = torch.randn(3, *([shape] if isinstance(shape, int) else shape))
                with torch.no_grad():
                    self.assertTrue(torch.equal(back(x), seq(x)), name)

    def test_tutorial_cnn_gives_the_contract_text(self):
        torch = require_torch(self)
        cnn = dict((n, (s, i)) for n, s, i in networks(torch.nn))["cnn"]
        self.assertEqual(pstrain.to_model_section(*cnn), CNN_SECTION)

    def test_section_forms_and_defaults(self):
        torch = require_torch(self)
        nn = torch.nn
        run_toml = '[run]\nname = "x"\n\n[model]\ninput = 6\nlayers = [{ type = "dense", units = 3 }, { type = "maxpool2d", kernel = 2 }]\n'
        with self.assertRaises(pstrain.PstrainError):  # a pool on a flat input
            pstrain.from_model_section(run_toml)
        doc = tomllib.loads(CNN_SECTION)
        for given in (doc, doc["model"], CNN_SECTION):
            self.assertEqual(len(pstrain.from_model_section(given)), 11)
        seq = pstrain.from_model_section({"input": [3, 9, 9], "layers": [
            {"type": "conv2d", "channels": 4, "kernel": 3}, {"type": "maxpool2d", "kernel": 3}, {"type": "batchnorm"},
            {"type": "dropout"}, {"type": "layernorm"}, {"type": "flatten"}, {"type": "dense", "units": 2}]})
        self.assertEqual(repr(seq), repr(nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(3, 3), nn.BatchNorm2d(4), nn.Dropout(0.5),
                                                       nn.LayerNorm([4, 2, 2]), nn.Flatten(), nn.Linear(16, 2))))


class RefusalTests(unittest.TestCase):
    def assertRefused(self, seq, shape, *fragments):
        with self.assertRaises(pstrain.PstrainError) as c:
            pstrain.to_model_section(seq, shape)
        for f in fragments:
            self.assertIn(f, str(c.exception))

    def test_modules_without_an_exact_pstrain_layer(self):
        torch = require_torch(self)
        nn = torch.nn
        self.assertRefused(nn.Sequential(nn.Linear(4, 4), nn.LSTM(4, 4)), 4, "module 1 (LSTM(", "no layer for LSTM")
        self.assertRefused(nn.Sequential(nn.Linear(4, 4, bias=False)), 4, "module 0 (Linear(", "bias=True")
        self.assertRefused(nn.Sequential(nn.ReLU(), nn.Conv2d(1, 2, (5, 3))), (1, 8, 8), "module 1 (Conv2d(", "square kernel_size")
        self.assertRefused(nn.Sequential(nn.Conv2d(2, 2, 3, groups=2)), (2, 8, 8), "module 0", "groups=1")
        self.assertRefused(nn.Sequential(nn.Conv2d(1, 2, 3, bias=False)), (1, 8, 8), "module 0", "bias=True")
        self.assertRefused(nn.Sequential(nn.MaxPool2d(2, ceil_mode=True)), (1, 9, 9), "module 0 (MaxPool2d(", "ceil_mode=False")
        self.assertRefused(nn.Sequential(nn.AvgPool2d(3, padding=1)), (1, 9, 9), "module 0 (AvgPool2d(", "padding=0")
        self.assertRefused(nn.Sequential(nn.GELU(approximate="tanh")), 4, "module 0 (GELU(", "approximate='none'")
        self.assertRefused(nn.Sequential(nn.BatchNorm2d(4)), 4, "module 0 (BatchNorm2d(", "BatchNorm1d")
        self.assertRefused(nn.Sequential(nn.BatchNorm1d(4, momentum=None)), 4, "module 0", "momentum")
        self.assertRefused(nn.Sequential(nn.Conv2d(1, 2, 3), nn.LayerNorm(6)), (1, 8, 8), "module 1 (LayerNorm(", "[2, 6, 6]")
        self.assertRefused(nn.Sequential(nn.Linear(5, 4)), 4, "module 0", "takes 5 features, its input has 4")
        self.assertRefused(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Linear(6, 2)), (1, 8, 8),
                           "model.layers[1] (dense) needs a flat input", "flatten")
        self.assertRefused(nn.Sequential(nn.Flatten(0)), (1, 8, 8), "module 0 (Flatten(", "start_dim=1")
        self.assertRefused(nn.Sequential(nn.Sequential(nn.ReLU())), 4, "module 0 (Sequential(", "no layer for Sequential")

    def test_bad_sections_name_the_layer_and_the_key(self):
        require_torch(self)
        cases = [
            ({"type": "dense"}, "model.layers[0] (dense) needs 'units'"),
            ({"type": "dense", "units": 3, "bias": 1}, "has key 'bias', which dense does not take"),
            ({"type": "softmax"}, "model.layers[0] has unknown type 'softmax'"),
            ({"type": "dense", "units": 2.5}, "units = 2.5: it must be an integer"),
            ({"type": "dropout", "p": 1.0}, "p = 1.0: it must be in [0, 1)"),
            ({"type": "batchnorm", "eps": 0}, "eps = 0.0: it must be positive"),
        ]
        for layer, fragment in cases:
            with self.subTest(fragment), self.assertRaises(pstrain.PstrainError) as c:
                pstrain.from_model_section({"input": 4, "layers": [layer]})
            self.assertIn(fragment, str(c.exception))
        with self.assertRaises(pstrain.PstrainError) as c:
            pstrain.from_model_section({"input": [1, 28], "layers": []})
        self.assertIn("model.input is [1, 28]", str(c.exception))


class RegistryTest(unittest.TestCase):
    def test_layer_table_is_pstrains_registry(self):
        """layers.KINDS against pstrain's own registry (LayerKinds.all), read
        from the built executable's messages: the same types, and for each
        the same keys in the same order."""
        from pstrain import layers as L

        def refusal(entry):
            p = subprocess.run([os.path.join(pstrain_bin(), "pstrain"), "launch", "--dry-run", "--set", f"model.layers=[{entry}]"],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 64, p.stdout + p.stderr)
            return p.stderr
        known = re.search(r"\(known: ([a-z0-9, ]+)\)", refusal('{type="nonexistent"}'))
        self.assertIsNotNone(known)
        types = known.group(1).split(", ")
        self.assertEqual(sorted(types), sorted(L.KINDS))
        for t in types:
            text = refusal(f'{{type="{t}",zz_unknown=1}}')
            takes = re.search(r"\(" + t + r" takes (no options|[^)]*)\)", text)
            self.assertIsNotNone(takes, text)
            keys = [] if takes.group(1) == "no options" else re.findall(r"'([a-z_]+)'", takes.group(1))
            self.assertEqual(keys, list(L.KINDS[t]), t)
