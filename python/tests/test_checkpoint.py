"""load_state_dict and model_from_export on files crafted as pstrain writes
them (docs/checkpoints.md): an export, and checkpoints whose tensors are cut
over two servers. The real files of a real run: test_pstrain_run.py."""

import hashlib
import json
import os

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

import pstrain
from pstrain.checkpoint import canonical_json
from pstrain.layers import entry_toml
from pstrain.model import read_section
from helpers import TempDirTest, in_child, require_torch, run_pstrain


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
    manifest = {"format": 2, "run": "run", "step": step, "epoch": 0, "epochCursor": 0, "stepsPerEpoch": 10, "totalSteps": 20,
                "seed": 1, "dataOrder": "", "rng": "", "lrSchedule": "constant", "learningRate": 0.1,
                "scaler": {"scale": 65536.0, "goodSteps": 0, "hysteresisLeft": 2, "skipped": 0, "overflowsAtMin": 0,
                           "lastFiniteStep": step - 1},
                "servers": servers, "workers": 1, "precision": "fp32", "compression": "none", "build": "test", "configHash": "0",
                "config": config, "created": 1737000000.25, "files": listed, "tensors": entries}
    write_manifest(folder, manifest)
    return entries


def write_manifest(folder, manifest, checksum=None):
    """manifest.json as pstrain writes it: pretty-printed, sorted keys, sealed
    with the SHA-256 of its canonical form (or `checksum`)."""
    manifest = dict(manifest, checksum=checksum or seal(manifest))
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)


def seal(manifest):
    return hashlib.sha256(canonical_json(manifest)).hexdigest()


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
                back = pstrain.model_from_export(path, normalize=False)  # crafted: no data.mean, data.std
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
        self.assertEqual(len(pstrain.model_from_export(self.path("p.safetensors"), input_shape=(1, 4, 4), normalize=False)), 3)
        with self.assertRaises(pstrain.PstrainError) as c:
            pstrain.load_state_dict(self.path("nothing-here"))
        self.assertIn("is not a pstrain export", str(c.exception))


    def test_standardisation_is_kept_apart_from_the_weights(self):
        """An export of a run that standardised its data holds data.mean and
        data.std: load_normalization gives them, load_state_dict leaves them
        out, and model_from_export puts them in its first module (data)."""
        torch = require_torch(self)
        seq = torch.nn.Sequential(torch.nn.Linear(3, 2))
        tensors = pstrain_tensors(seq)
        mean, std = np.array([0.5, 1, 2], np.float32), np.array([1, 2, 4], np.float32)
        write_export(self.path("s.safetensors"), dict(tensors, **{"data.mean": mean, "data.std": std}), pstrain.to_model_section(seq, 3))
        self.assertEqual(sorted(pstrain.load_state_dict(self.path("s.safetensors"))), ["0.bias", "0.weight"])
        model = pstrain.model_from_export(self.path("s.safetensors"))
        self.assertEqual([type(m).__name__ for m in model], ["Normalize", "Sequential"])
        self.assertEqual(len(model.layers), 1)
        self.assertTrue(np.array_equal(model.data.mean.numpy(), mean) and np.array_equal(model.data.std.numpy(), std))
        self.assertEqual(len(pstrain.model_from_export(self.path("s.safetensors"), normalize=False)), 1)
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
        self.assertEqual(int(pstrain.model_from_export(self.path("m.safetensors"), normalize=False)[1].num_batches_tracked), 0)
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
        self.assertEqual(repr(model.layers), repr(self.seq))
        self.assertEqual(int(model.layers[1].num_batches_tracked), 4)
        self.assertTrue(torch.equal(model.layers[3].weight, torch.from_numpy(self.tensors["layers.3.weight"])))
        # The configuration has no [data]: pstrain's defaults, idx files with Fashion-MNIST's numbers ("scalar").
        self.assertEqual((model.data.mean.item(), model.data.std.item()), (np.float32(0.2860), np.float32(0.3530)))
        self.assertEqual(repr(pstrain.model_from_export(self.folder, normalize=False)), repr(self.seq))

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
        m = self.manifest()
        m["tensors"][0]["shards"][0]["start"] = 1  # elements 0..<1 in no shard
        write_manifest(self.folder, m)
        with self.assertRaises(pstrain.PstrainError) as c:
            pstrain.load_state_dict(self.folder)
        self.assertIn("field tensors[0] (layers.0.weight).shards[0].start is 1: elements 0..<1 of the tensor are in no shard",
                      str(c.exception))
        with self.assertRaises(pstrain.PstrainError) as c:
            pstrain.load_state_dict(os.path.join(self.folder, "server-0.safetensors"))
        self.assertIn("pass the checkpoint's folder", str(c.exception))

    def manifest(self):
        """The checkpoint's manifest as a dict, without its checksum."""
        with open(os.path.join(self.folder, "manifest.json")) as f:
            m = json.load(f)
        del m["checksum"]
        return m

    def refused(self, path, *words):
        """load_state_dict(path) fails with a PstrainError holding every one of `words`."""
        with self.assertRaises(pstrain.PstrainError) as c:
            pstrain.load_state_dict(path, as_numpy=True)
        for w in words:
            self.assertIn(w, str(c.exception))
        return str(c.exception)

    def test_checksum_is_checked(self):
        """An edit that keeps the JSON valid is refused, as pstrain refuses it
        (the bridge computes the canonical form pstrain's checksum covers)."""
        mpath = os.path.join(self.folder, "manifest.json")
        m = self.manifest()
        m["tensors"][0]["shape"] = [3, 10]  # another shape, same element count: without the checksum it would load
        write_manifest(self.folder, m, checksum=seal(self.manifest()))
        self.refused(self.folder, mpath, "field checksum is", "the manifest was edited or damaged")
        with open(mpath, "w") as f:
            json.dump(m, f)
        self.refused(self.folder, mpath, "field checksum is missing")

    def test_canonical_form_matches_pstrain(self):
        """Manifests pstrain wrote (the fuzzer's seeds, fuzz/corpus/manifest;
        the first byte is the harness's control byte) hash to their own
        checksum under the bridge's canonical form."""
        from pstrain.checkpoint import MANIFEST, _decode
        corpus = os.path.join(ROOT, "fuzz", "corpus", "manifest")
        for name in ("valid", "valid-compact"):
            with open(os.path.join(corpus, name), "rb") as f:
                doc = json.loads(f.read()[1:])
            self.assertEqual(seal(_decode(doc, MANIFEST, "", name)), doc["checksum"], name)

    def test_manifest_fields_are_checked(self):
        """Every field the bridge uses is decoded with its type and range and
        checked as pstrain checks it (sealed, so that the checksum passes):
        each bad value is a PstrainError naming the manifest and the field."""
        mpath = os.path.join(self.folder, "manifest.json")
        huge = 1 << 31
        cases = [
            (lambda m: m["tensors"][0].update(shape=[-5, -6]), "field tensors[0] (layers.0.weight).shape is [-5, -6]"),
            (lambda m: m["tensors"][0].update(shape=[5, 2.5]), "field tensors[0].shape[1]: 2.5 is not an integer"),
            (lambda m: m["tensors"][0].update(shape=[5, "6"]), "field tensors[0].shape[1]: 6 is not an integer"),
            (lambda m: m["tensors"][0].update(shape=[5, True]), "field tensors[0].shape[1]: True is not an integer"),
            (lambda m: m["tensors"][0].update(shape=[1 << 63, 1]),
             "field tensors[0].shape[0]: 9223372036854775808 is not an integer that fits"),
            (lambda m: m["tensors"][0].update(shape=[huge, huge, 4]), "field tensors[0] (layers.0.weight).shape is", "overflows an Int"),
            (lambda m: m["tensors"][0].update(shape=None), "field tensors[0].shape: expected an array"),
            (lambda m: m["tensors"][0]["shards"][0].update(count=-4), "field tensors[0] (layers.0.weight).shards[0].count is -4"),
            (lambda m: m["tensors"][0]["shards"][0].update(start=-1), "field tensors[0] (layers.0.weight).shards[0].start is -1: negative"),
            (lambda m: m["tensors"][0]["shards"][0].update(count=1e300), "field tensors[0].shards[0].count: 1e+300 is not an integer"),
            (lambda m: m["tensors"][0]["shards"][0].update(file="../../x"), "shards[0].file is '../../x', which contains '/'"),
            (lambda m: m["tensors"][0]["shards"][0].update(file="other.safetensors"),
             "shards[0].file is other.safetensors, which the manifest's files list does not hold"),
            (lambda m: m["tensors"][0]["shards"].append(dict(m["tensors"][0]["shards"][-1])), "overlaps the one before it"),
            (lambda m: m["tensors"].__setitem__(0, "layers.0.weight"), "field tensors[0]: expected an object"),
            (lambda m: m["tensors"][0].pop("shards"), "field tensors[0].shards is missing"),
            (lambda m: m["files"][0].update(bytes="12"), "field files[0].bytes: 12 is not an integer"),
            (lambda m: m["files"][0].update(name=".."), "field files[0].name is '..', which names a folder"),
            (lambda m: m["files"][0].update(name="a\0b"), "field files[0].name is 'a\\x00b', which contains a NUL byte"),
            (lambda m: m["files"][0].update(name="x" * 256), "which is longer than 255 bytes"),
            (lambda m: m["files"].append(dict(m["files"][0])), "field files[2].name lists server-0.safetensors a second time"),
            (lambda m: m["files"][0].update(sha256=None), "field files[0].sha256: expected a String, found null"),
            (lambda m: m.update(files={}), "field files: expected an array"),
            (lambda m: m.update(step=8), "field step is 8 but the folder is named step-7"),
            (lambda m: m["scaler"].update(scale=0), "field scaler.scale is 0.0: a loss scale is a positive finite number"),
            (lambda m: m["scaler"].update(goodSteps=-1), "field scaler.goodSteps is -1: a count is never negative"),
            (lambda m: m["scaler"].update(lastFiniteStep=-2), "field scaler.lastFiniteStep is -2"),
            (lambda m: m.update(learningRate=-0.5), "field learningRate is -0.5: a learning rate is finite and not negative"),
            (lambda m: m.update(epochCursor=-3), "field epochCursor is -3: it is never negative"),
            (lambda m: m.update(servers=0), "field servers is 0: a run has at least one server"),
            (lambda m: m.update(workers=-1), "field workers is -1"),
            (lambda m: m.update(seed=-1), "field seed: -1 is not an integer that fits in a UInt64"),
            (lambda m: m.update(created=10 ** 400), "field created: 1000"),
            (lambda m: m.update(config=["[model]"]), "field config: expected a String"),
            (lambda m: m.pop("learningRate"), "field learningRate is missing"),
            (lambda m: m["scaler"].pop("scale"), "field scaler.scale is missing"),
            (lambda m: m.update(format=1), "field format is 1; this bridge reads format 2"),
            (lambda m: m.update(format="2"), "not a JSON object with an integer field format"),
        ]
        good = self.manifest()
        for i, (mutate, *words) in enumerate(cases):
            with self.subTest(i, words=words[0]):
                m = json.loads(json.dumps(good))
                mutate(m)
                try:
                    write_manifest(self.folder, m)
                except Exception:  # a value the canonical form cannot encode: any checksum, the decoder refuses first
                    write_manifest(self.folder, m, checksum="0" * 64)
                self.refused(self.folder, mpath, *words)
        for text, words in [(b"[1, 2]", "not a JSON object"), (b'{"format": 2, "step": NaN}', "is not valid JSON"),
                            (b"\xff{}", "is not valid JSON"), (b"", "is not valid JSON")]:
            with open(mpath, "wb") as f:
                f.write(text)
            self.refused(self.folder, mpath, words)
        write_manifest(self.folder, good)
        self.assertEqual(len(pstrain.load_state_dict(self.folder, as_numpy=True)), len(self.tensors))

    def test_values_a_run_cannot_hold_are_refused(self):
        """A weight that is not finite, or a sum of squares below 0 (Adam's
        exp_avg_sq, Adagrad's sum), in a file that matches its manifest, is
        refused as pstrain refuses it (CheckpointStore.shardPiece)."""
        files = {}
        for s in range(2):  # each server's tensors, with an exp_avg_sq beside each momentum
            with safe_open(os.path.join(self.folder, f"server-{s}.safetensors"), framework="np") as f:
                files[s] = {k: f.get_tensor(k) for k in f.keys()}
            files[s].update({k.replace(".momentum", ".exp_avg_sq"): np.abs(v) for k, v in files[s].items() if k.endswith(".momentum")})
        name = next(k for k in files[1] if not k.endswith((".momentum", ".exp_avg_sq")) and files[1][k].size > 1)
        path = os.path.join(self.folder, "server-1.safetensors")
        for key, value, state, words in [(name, np.nan, "", f"{name}[1] is nan, which a checkpoint of a healthy run never holds (finite)"),
                                         (name + ".momentum", -np.inf, "momentum", f"{name}.momentum[1] is -inf"),
                                         (name + ".exp_avg_sq", -1.0, "exp_avg_sq", f"{name}.exp_avg_sq[1] is -1.0, which a checkpoint of "
                                                                                    f"a healthy run never holds (finite and not negative)")]:
            with self.subTest(key):
                changed = {s: dict(t) for s, t in files.items()}
                changed[1][key] = changed[1][key].copy()
                changed[1][key].reshape(-1)[1] = value
                m = self.manifest()
                for s, tensors in changed.items():
                    save_file(tensors, os.path.join(self.folder, f"server-{s}.safetensors"))
                    with open(os.path.join(self.folder, f"server-{s}.safetensors"), "rb") as f:
                        data = f.read()
                    m["files"][s].update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
                write_manifest(self.folder, m)
                other = "exp_avg_sq" if state == "" else ""  # its values are fine: it loads
                self.assertEqual(len(pstrain.load_state_dict(self.folder, as_numpy=True, state=other)), len(self.tensors))
                with self.assertRaises(pstrain.PstrainError) as c:
                    pstrain.load_state_dict(self.folder, as_numpy=True, state=state)
                self.assertIn(f"{path}: ", str(c.exception))
                self.assertIn(words, str(c.exception))

    def test_memory_follows_the_files_not_the_manifest(self):
        """A manifest whose shape and shard claim 2^62 elements (an Int, so
        the manifest passes) allocates nothing for them: the file's piece is
        refused first."""
        m = self.manifest()
        m["tensors"][0]["shape"] = [1 << 31, 1 << 31]
        m["tensors"][0]["shards"] = [{"file": "server-0.safetensors", "start": 0, "count": 1 << 62}]
        write_manifest(self.folder, m)
        self.refused(self.folder, "server-0.safetensors lacks layers.0.weight with 4611686018427387904 FP32 elements")

    def test_only_regular_files_are_read(self):
        """A listed file that is a link to /dev/zero, a FIFO, a folder, or a
        regular file larger than the manifest says, is refused from fstat
        before a byte of it is read (in a child process with 4 GiB of
        address space and a time limit: reading first would exhaust memory
        or block)."""
        path = os.path.join(self.folder, "server-1.safetensors")
        os.rename(path, path + ".kept")
        sparse = self.path("sparse")
        with open(sparse, "wb") as f:
            f.truncate(64 << 30)  # 64 GiB, no blocks
        for kind, make, words in [
                ("/dev/zero", lambda: os.symlink("/dev/zero", path), "is not a regular file"),
                ("FIFO", lambda: os.mkfifo(path), "is not a regular file"),
                ("folder", lambda: os.mkdir(path), "is not a regular file"),
                ("64 GiB", lambda: os.symlink(sparse, path), f"({64 << 30} bytes, the manifest says"),
                ("missing", lambda: None, "server-1.safetensors is missing: the checkpoint is incomplete")]:
            with self.subTest(kind):
                make()
                try:
                    out = in_child(self, f"pstrain.load_state_dict({self.folder!r}, as_numpy=True)")
                    self.assertIn("PstrainError", out)
                    self.assertIn(path + " ", out)
                    self.assertIn(words, out)
                finally:
                    if os.path.isdir(path) and not os.path.islink(path):
                        os.rmdir(path)
                    elif os.path.lexists(path):
                        os.unlink(path)
        os.rename(path + ".kept", path)
        mpath = os.path.join(self.folder, "manifest.json")
        os.rename(mpath, mpath + ".kept")
        os.symlink("/dev/zero", mpath)
        out = in_child(self, f"pstrain.checkpoint.read_manifest({self.folder!r})")
        self.assertIn(f"PstrainError: {mpath} is not a regular file", out)

    def test_latest_names_a_checkpoint_of_this_run(self):
        """checkpoints/LATEST holds step-<N>, a folder of the same
        checkpoints/: a path to another run's checkpoint (relative or
        absolute) is refused, not loaded; so is a name that is not step-<N>
        or names no folder."""
        other = self.path("other", "run")
        other_tensors = {k: v + 1 for k, v in self.tensors.items()}
        write_checkpoint(os.path.join(other, "checkpoints", "step-5"), other_tensors, "", step=5)
        latest = os.path.join(self.run, "checkpoints", "LATEST")
        for text in ["../../other/run/checkpoints/step-5\n", os.path.join(other, "checkpoints", "step-5") + "\n",
                     "step-5/../../../other/run/checkpoints/step-5", "step-07", "step-+7", "step-\u0667", "7", "", "step-7x",
                     "step-7\x1c", "step-7\x00"]:  # (str.strip() would take \x1c; pstrain trims Unicode's White_Space only)
            with self.subTest(text):
                with open(latest, "w") as f:
                    f.write(text)
                msg = self.refused(self.run, latest, "must hold the name of a checkpoint folder")
                self.assertIn("not a checkpoint name", msg)
        with open(latest, "w") as f:
            f.write("step-9\n")
        self.refused(self.run, latest, "names step-9, which is not a folder in")
        with open(latest, "wb") as f:
            f.write(b"step-7 \xff")
        self.refused(self.run, latest, "is not UTF-8 text")
        with open(latest, "w") as f:
            f.write(" step-7\r\n")  # whitespace around the name is not part of it (pstrain trims it too)
        self.assertEqual(len(pstrain.load_state_dict(self.run, as_numpy=True)), len(self.tensors))
        os.unlink(latest)
        os.mkfifo(latest)
        out = in_child(self, f"pstrain.load_state_dict({self.run!r}, as_numpy=True)")
        self.assertIn(f"PstrainError: {latest} is not a regular file", out)

    def test_normalization_of_a_checkpoint_is_checked(self):
        """load_normalization reads worker 0's file of a checkpoint through
        the checked reader (NormalizationFile.load): a file that does not
        match the manifest is refused, not used."""
        mean, std = np.arange(6, dtype=np.float32), np.ones(6, dtype=np.float32)
        path = os.path.join(self.folder, "worker-0.safetensors")
        save_file({"data.mean": mean, "data.std": std}, path)
        with open(path, "rb") as f:
            data = f.read()
        m = self.manifest()
        m["files"].append({"name": "worker-0.safetensors", "role": "worker", "index": 0, "bytes": len(data),
                           "sha256": hashlib.sha256(data).hexdigest()})
        write_manifest(self.folder, m)
        for source in (self.folder, self.run):
            got = pstrain.load_normalization(source)
            self.assertTrue(np.array_equal(got[0], mean) and np.array_equal(got[1], std))
        save_file({"data.mean": mean + 1, "data.std": std}, path)  # same size, other values
        with self.assertRaises(pstrain.PstrainError) as c:
            pstrain.load_normalization(self.folder)
        self.assertIn("worker-0.safetensors does not match the manifest (SHA-256 mismatch)", str(c.exception))


def pstrain_inputs(x, mean, std):
    """What pstrain feeds its network for the raw features `x` (numpy), with
    its arithmetic (Normalization.apply, docs/config.md): uint8 as
    float(x) * (1 / (255 std)) + (-mean / std) with both constants in FP32,
    float32 as (x - mean) / std in FP32, float64 in FP64 rounded to FP32."""
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    if x.dtype == np.uint8:
        return x.astype(np.float32) * (np.float32(1) / (np.float32(255) * std)) + (-mean / std)
    if x.dtype == np.float64:
        return ((x - mean.astype(np.float64)) / std.astype(np.float64)).astype(np.float32)
    return (x - mean) / std


def add_worker_file(folder, mean, std):
    """Worker 0's file of a checkpoint with the run's standardisation
    (NormalizationFile), listed in its manifest, as pstrain writes it."""
    path = os.path.join(folder, "worker-0.safetensors")
    save_file({"data.mean": mean, "data.std": std}, path)
    with open(path, "rb") as f:
        data = f.read()
    with open(os.path.join(folder, "manifest.json")) as f:
        m = json.load(f)
    del m["checksum"]
    m["files"].append({"name": "worker-0.safetensors", "role": "worker", "index": 0, "bytes": len(data),
                       "sha256": hashlib.sha256(data).hexdigest()})
    write_manifest(folder, m)


class NormalizationTests(TempDirTest):
    """Issue 21: the model model_from_export returns takes raw features and
    normalises them as the run did (data.normalize), so that it gives
    pstrain's predictions without a step the user must know about."""

    def setUp(self):
        super().setUp()
        self.torch = require_torch(self)
        self.torch.manual_seed(3)
        rng = np.random.default_rng(3)
        # A sample's shape, as pstrain stores data.mean and data.std; one feature near-constant
        # (std 0.00063, as the issue measured at Fashion-MNIST's corners), one constant (std 1).
        self.mean = rng.uniform(0, 0.5, (1, 4, 4)).astype(np.float32)
        self.std = rng.uniform(0.1, 0.5, (1, 4, 4)).astype(np.float32)
        self.std[0, 0, 0], self.std[0, 0, 1], self.mean[0, 0, 1] = 0.00063, 1, 0
        self.seq = self.torch.nn.Sequential(self.torch.nn.Flatten(), self.torch.nn.Linear(16, 5), self.torch.nn.ReLU(),
                                            self.torch.nn.Linear(5, 3))
        self.raw = {"uint8": rng.integers(0, 256, (64, 1, 4, 4), dtype=np.uint8),
                    "float32": rng.uniform(0, 1, (64, 1, 4, 4)).astype(np.float32),
                    "float64": rng.uniform(0, 1, (64, 1, 4, 4))}

    def export(self, name, seq, input_shape, normalization=True, with_input=True):
        tensors = pstrain_tensors(seq)
        if normalization:
            tensors.update({"data.mean": self.mean, "data.std": self.std})
        write_export(self.path(name), tensors, pstrain.to_model_section(seq, input_shape), with_input)
        return self.path(name)

    def test_exported_model_gives_pstrains_predictions_on_raw_features(self):
        """The model of a standardised run's export, on raw uint8, float32
        and float64 features, gives the outputs of the network on the
        features normalised by hand as pstrain normalises them (atol 1e-5,
        the same argmax; measured: equal), and its first module gives
        exactly the inputs pstrain's network saw (bit for bit). Before issue
        21 the model was the network alone: on x / 255 it is another model."""
        torch = self.torch
        path = self.export("s.safetensors", self.seq, (1, 4, 4))
        mean, std = pstrain.load_normalization(path)
        model = pstrain.model_from_export(path)
        for kind, x in self.raw.items():
            with self.subTest(kind), torch.no_grad():
                want_inputs = pstrain_inputs(x, mean, std)
                got, want = model(torch.from_numpy(x)), self.seq(torch.from_numpy(want_inputs))
                self.assertTrue(torch.allclose(got, want, rtol=0, atol=1e-5), f"largest difference {(got - want).abs().max()}")
                self.assertTrue(torch.equal(got.argmax(1), want.argmax(1)))
                self.assertTrue(torch.equal(model.data(torch.from_numpy(x)), torch.from_numpy(want_inputs)))
                self.assertEqual(got.dtype, torch.float32)
                # What the issue saw: the network alone on x / 255 (or x) is another model.
                plain = torch.from_numpy(x.astype(np.float32) / (255 if x.dtype == np.uint8 else 1))
                self.assertFalse(torch.allclose(self.seq(plain), want, rtol=0, atol=1e-2))
        self.assertIsInstance(model.data, pstrain.Normalize)
        self.assertFalse(model.training)
        with safe_open(path, framework="np") as f:
            self.assertEqual(sorted(model.state_dict()), sorted(f.keys()))  # the export's names: data.mean, layers.1.weight, ...
        self.assertEqual(repr(pstrain.model_from_export(path, normalize=False)), repr(self.seq))
        # A flat model (model.input = 16) of a run whose samples are (1, 4, 4): the numbers follow the features' order.
        flat = self.torch.nn.Sequential(self.torch.nn.Linear(16, 3))
        model = pstrain.model_from_export(self.export("flat.safetensors", flat, 16, with_input=False))
        x = self.raw["uint8"].reshape(64, 16)
        want_inputs = torch.from_numpy(pstrain_inputs(x, mean.reshape(16), std.reshape(16)))
        with torch.no_grad():
            self.assertTrue(torch.allclose(model(torch.from_numpy(x)), flat(want_inputs), rtol=0, atol=1e-5))
            self.assertTrue(torch.equal(model.data(torch.from_numpy(x)), want_inputs))

    def test_checkpoint_gives_the_rule_its_configuration_resolves_to(self):
        """A checkpoint folder or run directory: data.normalize of its
        configuration, "auto" resolved as pstrain resolves it."""
        torch = self.torch
        model_toml = pstrain.to_model_section(self.seq, (1, 4, 4))
        cases = [  # ([data] of the configuration, (mean, std) or None for the per-feature numbers of worker 0's file)
            ('format = "idx"\nnormalize = "none"', (0.0, 1.0)),
            ('format = "npz"\nnormalize = "scalar"\nmean = 0.5\nstd = 0.25', (0.5, 0.25)),
            ('format = "idx"', (0.2860, 0.3530)),  # auto: scalar for idx, data.mean and data.std's defaults
            ('format = "idx"\nmean = 0.1\nstd = 2.0', (0.1, 2.0)),
            ('kind = "synthetic"\nmean = 0.5', (0.2860, 0.3530)),  # the synthetic set always uses Fashion-MNIST's numbers
            ('format = "npz"', None),  # auto: standardize for npz
            ('format = "csv"\nnormalize = "standardize"', None),
        ]
        for n, (data, want) in enumerate(cases):
            with self.subTest(data):
                run = self.path(f"run{n}")
                folder = os.path.join(run, "checkpoints", "step-7")
                write_checkpoint(folder, pstrain_tensors(self.seq), f'[data]\n{data}\n\n{model_toml}')
                if want is None:
                    with self.assertRaises(pstrain.PstrainError) as c:
                        pstrain.model_from_export(folder)
                    self.assertIn("holds no data.mean and data.std", str(c.exception))
                    add_worker_file(folder, self.mean, self.std)
                model = pstrain.model_from_export(run)  # its newest checkpoint
                m, s = (self.mean, self.std) if want is None else (np.float32(want[0]), np.float32(want[1]))
                self.assertTrue(np.array_equal(model.data.mean.numpy(), m) and np.array_equal(model.data.std.numpy(), s))
                x = self.raw["uint8"]
                with torch.no_grad():
                    self.assertTrue(torch.equal(model.data(torch.from_numpy(x)), torch.from_numpy(pstrain_inputs(x, m, s))))
        # "none" still reads bytes as x / 255, float features as they are.
        model = pstrain.model_from_export(self.path("run0"))
        with torch.no_grad():
            self.assertTrue(torch.equal(model.data(torch.from_numpy(self.raw["uint8"])),
                                        torch.from_numpy(self.raw["uint8"].astype(np.float32) * (np.float32(1) / np.float32(255)))))
            self.assertTrue(torch.equal(model.data(torch.from_numpy(self.raw["float32"])), torch.from_numpy(self.raw["float32"])))

    def test_a_normalisation_that_cannot_be_found_is_refused(self):
        """An export of a "scalar" (idx) or "none" run holds no numbers: the
        model is refused, saying what to pass, never built without them."""
        torch = self.torch
        path = self.export("plain.safetensors", self.seq, (1, 4, 4), normalization=False)
        with self.assertRaises(pstrain.PstrainError) as c:
            pstrain.model_from_export(path)
        for words in ("does not record how its run normalised the inputs", "Pass the run directory or the checkpoint folder",
                      "normalize=(0.2860, 0.3530)", "normalize=False"):
            self.assertIn(words, str(c.exception))
        model = pstrain.model_from_export(path, normalize=(0.2860, 0.3530))
        self.assertEqual((model.data.mean.item(), model.data.std.item()), (np.float32(0.2860), np.float32(0.3530)))
        model = pstrain.model_from_export(path, normalize=(self.mean, self.std))  # as load_normalization gives them
        x = self.raw["float32"]
        with torch.no_grad():
            self.assertTrue(torch.equal(model.data(torch.from_numpy(x)), torch.from_numpy(pstrain_inputs(x, self.mean, self.std))))
        self.assertEqual(repr(pstrain.model_from_export(path, normalize=False)), repr(self.seq))
        for bad, words in [(None, "load_normalization gives None"), ("auto", "it is True"), ((1, 2, 3), "it is True")]:
            with self.subTest(bad), self.assertRaises(pstrain.PstrainError) as c:
                pstrain.model_from_export(path, normalize=bad)
            self.assertIn(words, str(c.exception))
        with self.assertRaises(pstrain.PstrainError) as c:
            pstrain.model_from_export(path, normalize=(np.zeros(4), np.ones(4)))
        self.assertIn("the normalisation has numbers for 4 features (shape [4]) but the model takes 16", str(c.exception))
        with self.assertRaises(pstrain.PstrainError) as c:
            pstrain.Normalize(0.5, 0.0)
        self.assertIn("std[0] is 0.0: a deviation is positive and finite", str(c.exception))
        with self.assertRaises(pstrain.PstrainError) as c:
            model(torch.zeros(2, 1, 4, 4, dtype=torch.int64))
        self.assertIn("not torch.int64", str(c.exception))
        with self.assertRaises(pstrain.PstrainError) as c:
            model.data(torch.zeros(2, 15))
        self.assertIn("holds the numbers of 16 features (shape [1, 4, 4]) but the input has shape [2, 15]", str(c.exception))


class PstrainChecksumTest(TempDirTest):
    def test_pstrain_verifies_what_the_bridge_seals(self):
        """The canonical form the bridge hashes is the one pstrain hashes:
        checkpoints sealed by the bridge, with strings that JSON escapes and
        doubles at the edges of Swift's number formats (2^53, 1e-4, 1e16,
        -0, subnormal), pass `pstrain ckpt verify`."""
        strings = ['a/b"c\\d', "\n\r\t\b\f\x01\x1f\x7f", "é 😀 \u2028 </script>", ""]
        doubles = [(0.0, 0.1, 65536.0), (-0.0, -0.0, 1e-05), (-9999999999999998.0, 1e-4, 9.999999999999999e-05),
                   (2.0 ** 53, 2.0 ** 53 + 2, 1e16), (1e22, 5e-324, 1.7976931348623157e308), (1737000000.123456, 123.456, 1e15)]
        run = self.path("run")
        for step, (created, lr, scale) in enumerate(doubles):  # (a scale is positive, a learning rate not negative)
            folder = os.path.join(run, "checkpoints", f"step-{step}")
            w = np.arange(6, dtype=np.float32)
            os.makedirs(folder)
            save_file({"w": w, "w.momentum": -w}, os.path.join(folder, "server-0.safetensors"))
            with open(os.path.join(folder, "server-0.safetensors"), "rb") as f:
                data = f.read()
            write_manifest(folder, {
                "format": 2, "run": strings[step % len(strings)], "step": step, "epoch": 0, "epochCursor": 0, "stepsPerEpoch": 1,
                "totalSteps": 1, "seed": (1 << 64) - 1, "dataOrder": strings[(step + 1) % len(strings)], "rng": "",
                "lrSchedule": "constant",
                "learningRate": lr, "scaler": {"scale": scale, "goodSteps": 0, "hysteresisLeft": 2, "skipped": 0, "overflowsAtMin": 0,
                                               "lastFiniteStep": -1},
                "servers": 1, "workers": 1, "precision": "fp32", "compression": "none", "build": "x/y", "configHash": "0", "config": "",
                "created": created, "files": [{"name": "server-0.safetensors", "role": "server", "index": 0, "bytes": len(data),
                                               "sha256": hashlib.sha256(data).hexdigest()}],
                "tensors": [{"name": "w", "shape": [2, 3], "shards": [{"file": "server-0.safetensors", "start": 0, "count": 6}]}]})
            self.assertEqual(len(pstrain.load_state_dict(folder, names="pstrain", as_numpy=True)), 1)
        out = run_pstrain(["ckpt", "verify", run], cwd=self.dir)
        self.assertEqual(out.count(": ok ("), len(doubles), out)
