"""load_state_dict and model_from_export on files crafted as pstrain writes
them (docs/checkpoints.md): an export, and checkpoints whose tensors are cut
over two servers. The real files of a real run: test_pstrain_run.py."""

import hashlib
import json
import os

import numpy as np
from safetensors.numpy import save_file

import pstrain
from pstrain.layers import entry_toml
from pstrain.model import read_section
from helpers import TempDirTest, require_torch


def pstrain_tensors(seq, counter_shape=()):
    """seq's state_dict under pstrain's names, FP32, num_batches_tracked as
    FP32 of `counter_shape` (pstrain may store it as [] or [1])."""
    out = {}
    for k, v in seq.state_dict().items():
        a = v.detach().numpy()
        out["layers." + k] = a.astype(np.float32).reshape(counter_shape) if k.endswith("num_batches_tracked") else a
    return out


def write_export(path, tensors, section, with_input=False):
    """An export as `pstrain ckpt export` writes it: the layers on one line in the metadata."""
    shape, entries = read_section(section)
    meta = {"format": "pstrain-model", "step": "7", "layers": "[" + ", ".join(entry_toml(e) for e in entries) + "]"}
    if with_input:
        meta["input"] = str(list(shape)) if len(shape) > 1 else str(shape[0])
    save_file(tensors, path, metadata=meta)


def write_checkpoint(folder, tensors, config, servers=2, step=7):
    """A checkpoint folder: the flattened model cut into `servers` equal
    ranges, each server holding its pieces (whole tensors in their shape,
    slices flat) and their momentum (the weights negated), and a manifest."""
    os.makedirs(folder)
    total = sum(v.size for v in tensors.values())
    bounds = [total * s // servers for s in range(servers + 1)]
    files = [{} for _ in range(servers)]
    entries, at = [], 0
    for name, v in tensors.items():
        shards = []
        for s in range(servers):
            lo, hi = max(at, bounds[s]), min(at + v.size, bounds[s + 1])
            if lo >= hi:
                continue
            piece = v.reshape(-1)[lo - at:hi - at]
            piece = piece.reshape(v.shape) if hi - lo == v.size else piece.copy()
            files[s][name], files[s][name + ".momentum"] = piece, -piece
            shards.append({"file": f"server-{s}.safetensors", "start": lo - at, "count": hi - lo})
        entries.append({"name": name, "shape": list(v.shape), "shards": shards})
        at += v.size
    listed = []
    for s, f in enumerate(files):
        path = os.path.join(folder, f"server-{s}.safetensors")
        save_file(f, path, metadata={"format": "pstrain-checkpoint", "step": str(step), "role": "server", "index": str(s)})
        with open(path, "rb") as fh:
            data = fh.read()
        listed.append({"name": f"server-{s}.safetensors", "role": "server", "index": s, "bytes": len(data),
                       "sha256": hashlib.sha256(data).hexdigest()})
    manifest = {"format": 2, "step": step, "servers": servers, "workers": 1, "files": listed, "tensors": entries,
                "config": config, "checksum": "not checked by the bridge"}
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    return entries


class ExportTests(TempDirTest):
    def test_export_gives_the_same_model(self):
        torch = require_torch(self)
        nn = torch.nn
        torch.manual_seed(1)
        cases = [  # (Sequential, input shape, whether the export records the input shape)
            (nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Dropout(0.1), nn.Linear(4, 3)), 5, False),
            (nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.GELU(), nn.MaxPool2d(2), nn.Flatten(),
                           nn.LayerNorm(12), nn.Linear(12, 6), nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 2)), (2, 4, 4), False),
            (nn.Sequential(nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8, 2)), (2, 4, 4), True),
        ]
        for n, (seq, shape, with_input) in enumerate(cases):
            with self.subTest(n):
                seq.train()
                seq(torch.randn(5, *(shape if isinstance(shape, tuple) else (shape,))))  # running statistics move
                seq.eval()
                section = pstrain.to_model_section(seq, shape)
                path = self.path(f"m{n}.safetensors")
                write_export(path, pstrain_tensors(seq, counter_shape=(1,) if n else ()), section, with_input)
                state = pstrain.load_state_dict(path)
                self.assertEqual(set(state), set(seq.state_dict()))
                for k, v in seq.state_dict().items():
                    self.assertTrue(torch.equal(state[k], v), k)  # num_batches_tracked: int64 [] as torch keeps it
                back = pstrain.model_from_export(path)
                self.assertFalse(back.training)
                self.assertEqual(repr(back), repr(seq))
                x = torch.randn(3, *(shape if isinstance(shape, tuple) else (shape,)))
                with torch.no_grad():
                    self.assertTrue(torch.equal(back(x), seq(x)))

    def test_names_numpy_and_refusals(self):
        torch = require_torch(self)
        seq = torch.nn.Sequential(torch.nn.Linear(3, 2))
        write_export(self.path("m.safetensors"), pstrain_tensors(seq), pstrain.to_model_section(seq, 3))
        state = pstrain.load_state_dict(self.path("m.safetensors"), names="pstrain", as_numpy=True)
        self.assertEqual(sorted(state), ["layers.0.bias", "layers.0.weight"])
        self.assertIsInstance(state["layers.0.weight"], np.ndarray)
        # The input shape cannot be read from a model that starts with a pool.
        seq = torch.nn.Sequential(torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(4, 2))
        write_export(self.path("p.safetensors"), pstrain_tensors(seq), pstrain.to_model_section(seq, (1, 4, 4)))
        with self.assertRaises(pstrain.PstrainError) as c:
            pstrain.model_from_export(self.path("p.safetensors"))
        self.assertIn("pass input_shape", str(c.exception))
        self.assertEqual(len(pstrain.model_from_export(self.path("p.safetensors"), input_shape=(1, 4, 4))), 3)
        with self.assertRaises(pstrain.PstrainError) as c:
            pstrain.load_state_dict(self.path("nothing-here"))
        self.assertIn("is not a pstrain export", str(c.exception))


    def test_standardisation_is_kept_apart_from_the_weights(self):
        """An export of a run that standardised its data holds data.mean and
        data.std: load_normalization gives them, the model loads without them."""
        torch = require_torch(self)
        seq = torch.nn.Sequential(torch.nn.Linear(3, 2))
        tensors = pstrain_tensors(seq)
        mean, std = np.array([0.5, 1, 2], np.float32), np.array([1, 2, 4], np.float32)
        write_export(self.path("s.safetensors"), dict(tensors, **{"data.mean": mean, "data.std": std}), pstrain.to_model_section(seq, 3))
        self.assertEqual(sorted(pstrain.load_state_dict(self.path("s.safetensors"))), ["0.bias", "0.weight"])
        self.assertEqual(len(pstrain.model_from_export(self.path("s.safetensors"))), 1)
        got = pstrain.load_normalization(self.path("s.safetensors"))
        self.assertTrue(np.array_equal(got[0], mean) and np.array_equal(got[1], std))
        os.makedirs(self.path("run"))
        save_file({"data.mean": mean, "data.std": std}, self.path("run", "normalization.safetensors"))
        self.assertTrue(np.array_equal(pstrain.load_normalization(self.path("run"))[1], std))
        write_export(self.path("plain.safetensors"), tensors, pstrain.to_model_section(seq, 3))
        self.assertIsNone(pstrain.load_normalization(self.path("plain.safetensors")))

    def test_tensors_that_do_not_fit_the_layers(self):
        torch = require_torch(self)
        seq = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
        section = pstrain.to_model_section(seq, 3)
        tensors = pstrain_tensors(seq)
        del tensors["layers.1.num_batches_tracked"]  # not stored: torch's 0, unused in evaluation
        write_export(self.path("m.safetensors"), tensors, section)
        self.assertEqual(int(pstrain.model_from_export(self.path("m.safetensors"))[1].num_batches_tracked), 0)
        del tensors["layers.1.running_var"]
        tensors["layers.2.extra"] = np.zeros(2, np.float32)
        write_export(self.path("n.safetensors"), tensors, section)
        with self.assertRaises(pstrain.PstrainError) as c:
            pstrain.model_from_export(self.path("n.safetensors"))
        self.assertIn("(missing: layers.1.running_var; not in the model: layers.2.extra)", str(c.exception))
        with self.assertRaises(pstrain.PstrainError) as c:
            pstrain.from_model_section("[model]\ninput = 3\nlayers = [{ type = ")
        self.assertIn("not valid TOML", str(c.exception))


class CheckpointTests(TempDirTest):
    def setUp(self):
        super().setUp()
        torch = require_torch(self)
        torch.manual_seed(2)
        self.seq = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.BatchNorm1d(5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
        self.tensors = pstrain_tensors(self.seq, counter_shape=(1,))
        self.tensors["layers.1.num_batches_tracked"] = np.array([4.0], dtype=np.float32)
        self.run = self.path("run")
        self.folder = os.path.join(self.run, "checkpoints", "step-7")
        config = '[run]\nname = "run"\n\n' + pstrain.to_model_section(self.seq, 6)
        self.entries = write_checkpoint(self.folder, self.tensors, config)
        with open(os.path.join(self.run, "checkpoints", "LATEST"), "w") as f:
            f.write("step-7\n")

    def test_slices_over_two_servers_are_assembled(self):
        self.assertTrue(any(len(e["shards"]) == 2 for e in self.entries))  # a tensor really is cut
        for path in (self.folder, self.run):  # a run directory: the checkpoint LATEST names
            state = pstrain.load_state_dict(path, names="pstrain", as_numpy=True)
            self.assertEqual(set(state), set(self.tensors))
            for k, v in self.tensors.items():
                if k.endswith("num_batches_tracked"):
                    self.assertEqual((state[k].dtype, state[k].shape, int(state[k])), (np.int64, (), 4))
                else:
                    np.testing.assert_array_equal(state[k], v, err_msg=k)
        momentum = pstrain.load_state_dict(self.folder, names="pstrain", as_numpy=True, state="momentum")
        np.testing.assert_array_equal(momentum["layers.0.weight"], -self.tensors["layers.0.weight"])

    def test_model_from_a_checkpoint_uses_its_configuration(self):
        torch = require_torch(self)
        model = pstrain.model_from_export(self.folder)
        self.assertEqual(repr(model), repr(self.seq))
        self.assertEqual(int(model[1].num_batches_tracked), 4)
        self.assertTrue(torch.equal(model[3].weight, torch.from_numpy(self.tensors["layers.3.weight"])))

    def test_damage_is_named(self):
        path = os.path.join(self.folder, "server-1.safetensors")
        with open(path, "rb") as f:
            data = bytearray(f.read())
        data[-1] ^= 1
        with open(path, "wb") as f:
            f.write(data)
        with self.assertRaises(pstrain.PstrainError) as c:
            pstrain.load_state_dict(self.folder)
        self.assertIn("server-1.safetensors does not match the manifest", str(c.exception))
        mpath = os.path.join(self.folder, "manifest.json")
        with open(mpath) as f:
            m = json.load(f)
        m["tensors"][0]["shards"][0]["start"] = 1  # elements 0..<1 in no shard
        with open(mpath, "w") as f:
            json.dump(m, f)
        with self.assertRaises(pstrain.PstrainError) as c:
            pstrain.load_state_dict(self.folder)
        self.assertIn("the shards of layers.0.weight", str(c.exception))
        with self.assertRaises(pstrain.PstrainError) as c:
            pstrain.load_state_dict(os.path.join(self.folder, "server-0.safetensors"))
        self.assertIn("pass the checkpoint's folder", str(c.exception))
