"""The bridge on a real pstrain run (the release build, $PSTRAIN_BIN_DIR):
an MLP trained on Fashion-MNIST with 2 workers and 1 server, exported with
`pstrain ckpt export`, scores in torch exactly what pstrain's own evaluation
reported; a run on 2 servers (a tensor cut between them) loads from its
checkpoint folder as from its export; the run's logs read back; runs on
npz files (data.normalize = "auto": each pixel standardised) score on the
raw pixels in torch what pstrain reported (issue 21)."""

import gzip
import json
import os
import shutil
import tempfile
import tomllib
import unittest

import numpy as np

import pstrain
from helpers import require_pandas, require_torch, run_pstrain

STEPS = 150


def fashion_bytes(data_dir, prefix="t10k"):
    """Fashion-MNIST's images (prefix "train" or "t10k") as they are in the
    files, (N, 784) uint8, and labels."""
    with gzip.open(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz")) as f:
        x = np.frombuffer(f.read()[16:], np.uint8).reshape(-1, 784).copy()  # writable: torch.from_numpy warns otherwise
    with gzip.open(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz")) as f:
        y = np.frombuffer(f.read()[8:], np.uint8).copy()
    return x, y


def fashion_test_set(data_dir):
    """Fashion-MNIST's test images as pstrain feeds them (Dataset.gather:
    p * (1 / (255 std)) + (-mean / std) in FP32, mean 0.2860, std 0.3530), and labels."""
    x, y = fashion_bytes(data_dir)
    mean, std = np.float32(0.2860), np.float32(0.3530)
    scale, shift = np.float32(1) / (np.float32(255) * std), -mean / std
    return x.astype(np.float32) * scale + shift, y


class RealRunTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="pstrain-py-run-")
        run_pstrain(["launch", "--workers", "2", "--servers", "1", "--epochs", "1", "--set", f"train.max_steps={STEPS}",
                     "--run-dir", "a"], cwd=cls.dir)
        run_pstrain(["ckpt", "export", "a", "--out", "a.safetensors"], cwd=cls.dir)
        run_pstrain(["launch", "--workers", "1", "--servers", "2", "--epochs", "1", "--set", "data.kind=synthetic",
                     "--set", "data.synthetic_train=512", "--set", "data.synthetic_test=256", "--run-dir", "b"], cwd=cls.dir)
        run_pstrain(["ckpt", "export", "b", "--out", "b.safetensors"], cwd=cls.dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, True)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def pstrain_eval(self):
        with open(self.path("a", "logs", "server-0.jsonl")) as f:
            evals = [r for r in map(json.loads, f) if r["event"] == "eval"]
        self.assertTrue(evals, "pstrain wrote no eval record")
        return evals[-1]

    def test_torch_model_from_the_export_scores_as_pstrain(self):
        """Tolerance: 0.01 points (1 of the 10,000 test images): torch's and
        OpenBLAS's FP32 sums may round differently next to a tie. The
        network alone (normalize=False), on the images normalised by hand."""
        torch = require_torch(self)
        model = pstrain.model_from_export(self.path("a.safetensors"), normalize=False)
        self.assertEqual([type(m).__name__ for m in model], ["Linear", "ReLU", "Linear", "ReLU", "Linear"])
        with open(self.path("a", "run.toml"), "rb") as f:
            x, y = fashion_test_set(tomllib.load(f)["data"]["dir"])
        with torch.no_grad():
            predicted = model(torch.from_numpy(x)).argmax(1).numpy()
        accuracy = float((predicted == y).mean())
        reported = self.pstrain_eval()
        self.assertEqual((reported["step"], reported["test_samples"]), (STEPS, len(y)))
        self.assertGreater(accuracy, 0.6)
        print(f"\n  torch {accuracy:.4f}, pstrain {reported['test_accuracy']:.4f} (step {STEPS}, {len(y)} images)", end=" ")
        self.assertLessEqual(abs(accuracy - reported["test_accuracy"]), 0.0001 + 1e-12,
                             f"torch {accuracy} vs pstrain {reported['test_accuracy']}")

    def test_idx_run_takes_raw_images_from_its_run_directory(self):
        """An idx run normalises with "scalar" (data.normalize = "auto"),
        which its export records in its metadata (normalize, mean, std): the
        export's model, the run directory's (its configuration: Fashion-MNIST's
        0.2860 and 0.3530) and the export's with those numbers given take the
        raw bytes and give the network's outputs on the images normalised by
        hand (atol 1e-5; the same predictions). An export without that
        metadata (written before it existed) is refused, saying what to pass."""
        torch = require_torch(self)
        with open(self.path("a", "run.toml"), "rb") as f:
            data_dir = tomllib.load(f)["data"]["dir"]
        raw, y = fashion_bytes(data_dir)
        x, _ = fashion_test_set(data_dir)
        bare = pstrain.model_from_export(self.path("a.safetensors"), normalize=False)
        with torch.no_grad():
            want = bare(torch.from_numpy(x))
            for model in (pstrain.model_from_export(self.path("a.safetensors")),
                          pstrain.model_from_export(self.path("a")),
                          pstrain.model_from_export(self.path("a.safetensors"), normalize=(0.2860, 0.3530))):
                self.assertEqual((model.data.mean.item(), model.data.std.item()), (np.float32(0.2860), np.float32(0.3530)))
                got = model(torch.from_numpy(raw))
                self.assertTrue(torch.equal(model.data(torch.from_numpy(raw)), torch.from_numpy(x)))
                self.assertTrue(torch.allclose(got, want, rtol=0, atol=1e-5))
                self.assertTrue(torch.equal(got.argmax(1), want.argmax(1)))
        from safetensors import safe_open
        from safetensors.numpy import load_file, save_file
        with safe_open(self.path("a.safetensors"), framework="np") as f:
            meta = f.metadata()
        self.assertEqual((meta["normalize"], meta["mean"], meta["std"]), ("scalar", "0.286", "0.353"))
        old = self.path("old.safetensors")
        save_file(load_file(self.path("a.safetensors")), old, metadata={k: v for k, v in meta.items() if k not in ("normalize", "mean", "std")})
        with self.assertRaises(pstrain.PstrainError) as c:
            pstrain.model_from_export(old)
        self.assertIn("does not record how its run normalised the inputs", str(c.exception))

    def test_checkpoint_folder_gives_the_exported_weights(self):
        torch = require_torch(self)
        for run in ("a", "b"):
            with self.subTest(run), open(self.path(run, "checkpoints", "LATEST")) as f:
                folder = self.path(run, "checkpoints", f.read().strip())
                with open(os.path.join(folder, "manifest.json")) as m:
                    shards = {t["name"]: len(t["shards"]) for t in json.load(m)["tensors"]}
                if run == "b":  # 2 servers: a tensor is cut between their files
                    self.assertGreater(max(shards.values()), 1, shards)
                export = pstrain.load_state_dict(self.path(f"{run}.safetensors"))
                for source in (folder, self.path(run)):
                    state = pstrain.load_state_dict(source)
                    self.assertEqual(sorted(state), sorted(export))
                    for k in export:
                        self.assertTrue(torch.equal(state[k], export[k]), f"{source}: {k}")
                # Both runs normalise with Fashion-MNIST's numbers (a: idx's "scalar"; b: the synthetic set's).
                self.assertEqual(repr(pstrain.model_from_export(self.path(run))),
                                 repr(pstrain.model_from_export(self.path(f"{run}.safetensors"), normalize=(0.2860, 0.3530))))

    def test_run_log_reads_back(self):
        require_pandas(self)
        df = pstrain.read_run_log(self.path("a"))
        steps = df[df.event == "step"]
        self.assertEqual(steps.groupby(["role", "index"]).size().to_dict(),
                         {("server", 0): STEPS, ("worker", 0): STEPS, ("worker", 1): STEPS})
        self.assertEqual(sorted(steps["rank"].unique().tolist()), [0, 1, 2])
        self.assertEqual(df[df.event == "eval"]["test_accuracy"].iloc[-1], self.pstrain_eval()["test_accuracy"])
        self.assertEqual(df[df.role == "launcher"]["event"].tolist()[:1], ["launch"])
        self.assertIn("exit", df[df.role == "launcher"]["event"].tolist())
        self.assertEqual(len(pstrain.read_run_log(self.path("a"), as_frame=False)), len(df))


CNN_LAYERS = ('[{type="conv2d", channels=8, kernel=5, padding=2}, {type="batchnorm"}, {type="relu"}, {type="maxpool2d", kernel=2}, '
              '{type="flatten"}, {type="dropout", p=0.25}, {type="dense", units=10}]')


class RealCNNRunTests(unittest.TestCase):
    """A convolutional network with batchnorm and dropout trained by pstrain
    (W=2 S=1, AdamW), exported, built in torch from the export's metadata
    with the run's normalisation (idx: Fashion-MNIST's numbers, which the
    export does not record): torch in evaluation mode (batchnorm's running
    statistics the servers kept, dropout off) scores on the raw images what
    pstrain's evaluation reported."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="pstrain-py-cnn-")
        run_pstrain(["launch", "--workers", "2", "--servers", "1", "--epochs", "1", "--set", "train.max_steps=120",
                     "--set", "model.input=[1, 28, 28]", "--set", f"model.layers={CNN_LAYERS}", "--set", "train.batch_size=64",
                     "--set", 'train.optimizer="adamw"', "--set", "train.lr=0.002", "--set", "train.weight_decay=0.01",
                     "--run-dir", "cnn"], cwd=cls.dir)
        run_pstrain(["ckpt", "export", "cnn", "--out", "cnn.safetensors"], cwd=cls.dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, True)

    def test_torch_cnn_from_the_export_scores_as_pstrain(self):
        """Tolerance: 0.01 points (1 of the 10,000 test images)."""
        torch = require_torch(self)
        model = pstrain.model_from_export(os.path.join(self.dir, "cnn.safetensors"), normalize=(0.2860, 0.3530))
        self.assertEqual([type(m).__name__ for m in model.layers],
                         ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Flatten", "Dropout", "Linear"])
        self.assertEqual(int(model.layers[1].num_batches_tracked), 120, "one count per step, kept by the server")
        with open(os.path.join(self.dir, "cnn", "run.toml"), "rb") as f:
            x, y = fashion_bytes(tomllib.load(f)["data"]["dir"])
        with torch.no_grad():
            predicted = model(torch.from_numpy(x).reshape(-1, 1, 28, 28)).argmax(1).numpy()
        accuracy = float((predicted == y).mean())
        with open(os.path.join(self.dir, "cnn", "logs", "server-0.jsonl")) as f:
            reported = [r for r in map(json.loads, f) if r["event"] == "eval"][-1]
        self.assertEqual(reported["step"], 120)
        self.assertGreater(accuracy, 0.7)
        print(f"\n  torch {accuracy:.4f}, pstrain {reported['test_accuracy']:.4f} (CNN, step 120)", end=" ")
        self.assertLessEqual(abs(accuracy - reported["test_accuracy"]), 0.0001 + 1e-12,
                             f"torch {accuracy} vs pstrain {reported['test_accuracy']}")


NPZ_STEPS = 100
NPZ_TRAIN, NPZ_TEST = 12800, 2000  # 100 steps of 128: one epoch


class RealNpzRunTests(unittest.TestCase):
    """Issue 21: Fashion-MNIST written with write_npz (the first 12,800
    training and 2,000 test images) and trained by pstrain (the default MLP,
    W=2 S=1) with data.normalize = "auto", which standardises each pixel
    with the training set's own mean and deviation; once as uint8 images of
    shape (1, 28, 28), once as float32 pixels / 255 of shape (784,). The
    model of the export scores the raw test arrays, as written, exactly as
    pstrain's evaluation reported: before, it was the network alone, which
    needed load_normalization applied by hand (the documented example did
    not, and scored 57.07% where pstrain reported 81.17%)."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="pstrain-py-npz-")
        data_dir = "/usr/share/datasets/fashion-mnist"  # the default data.dir (pstrain's own default idx run reads it too)
        x, y = fashion_bytes(data_dir, "train")
        xt, yt = fashion_bytes(data_dir)
        cls.sets = {"uint8": (x[:NPZ_TRAIN].reshape(-1, 1, 28, 28), y[:NPZ_TRAIN], xt[:NPZ_TEST].reshape(-1, 1, 28, 28), yt[:NPZ_TEST]),
                    "float32": (x[:NPZ_TRAIN].astype(np.float32) / 255, y[:NPZ_TRAIN], xt[:NPZ_TEST].astype(np.float32) / 255, yt[:NPZ_TEST])}
        for kind, (a, b, at, bt) in cls.sets.items():
            pstrain.write_npz(os.path.join(cls.dir, f"{kind}-train.npz"), a, b)
            pstrain.write_npz(os.path.join(cls.dir, f"{kind}-test.npz"), at, bt)
            run_pstrain(["launch", "--workers", "2", "--servers", "1", "--epochs", "1", "--set", f"train.max_steps={NPZ_STEPS}",
                         "--set", 'data.format="npz"', "--set", f'data.train="{kind}-train.npz"', "--set", f'data.test="{kind}-test.npz"',
                         "--run-dir", kind], cwd=cls.dir)
            run_pstrain(["ckpt", "export", kind, "--out", f"{kind}.safetensors"], cwd=cls.dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, True)

    def test_export_scores_raw_npz_data_as_pstrain(self):
        """Tolerance: 1 of the 2,000 test images (torch's and OpenBLAS's
        FP32 sums may round differently next to a tie); against the network
        on the features normalised by hand (load_normalization, pstrain's
        arithmetic): the same predictions, logits within atol 1e-5."""
        torch = require_torch(self)
        for kind, (_, _, x, y) in self.sets.items():
            with self.subTest(kind):
                export = os.path.join(self.dir, f"{kind}.safetensors")
                model = pstrain.model_from_export(export)
                flat = x.reshape(len(x), 784)  # the MLP takes 784 features; the numbers are of the sample's shape
                with torch.no_grad():
                    logits = model(torch.from_numpy(flat))
                accuracy = float((logits.argmax(1).numpy() == y).mean())
                with open(os.path.join(self.dir, kind, "logs", "server-0.jsonl")) as f:
                    reported = [r for r in map(json.loads, f) if r["event"] == "eval"][-1]
                self.assertEqual((reported["step"], reported["test_samples"]), (NPZ_STEPS, NPZ_TEST))
                self.assertGreater(accuracy, 0.6)
                self.assertLessEqual(abs(accuracy - reported["test_accuracy"]), 1 / NPZ_TEST + 1e-12,
                                     f"torch {accuracy} vs pstrain {reported['test_accuracy']}")
                # By hand, as docs/python.md says pstrain normalises.
                mean, std = (a.reshape(784) for a in pstrain.load_normalization(export))
                if x.dtype == np.uint8:
                    by_hand = flat.astype(np.float32) * (np.float32(1) / (np.float32(255) * std)) + (-mean / std)
                else:
                    by_hand = (flat - mean) / std
                bare = pstrain.model_from_export(export, normalize=False)
                with torch.no_grad():
                    want = bare(torch.from_numpy(by_hand))
                    unnormalised = float((bare(torch.from_numpy(flat.astype(np.float32) / (255 if x.dtype == np.uint8 else 1)))
                                          .argmax(1).numpy() == y).mean())
                self.assertTrue(torch.allclose(logits, want, rtol=0, atol=1e-5), f"largest difference {(logits - want).abs().max()}")
                self.assertTrue(torch.equal(logits.argmax(1), want.argmax(1)))
                print(f"\n  {kind} npz: torch {accuracy:.4f}, pstrain {reported['test_accuracy']:.4f}, the network alone on "
                      f"x{' / 255' if x.dtype == np.uint8 else ''} {unnormalised:.4f}; smallest pixel std {std.min():.5f}", end=" ")
                # "auto" standardises each pixel: near-constant corner pixels get a tiny deviation (docs/config.md).
                self.assertLess(float(std.min()), 0.01)
                self.assertEqual([type(m).__name__ for m in model], ["Normalize", "Sequential"])
                # The run directory (its newest checkpoint, worker 0's file) gives the same model.
                from_run = pstrain.model_from_export(os.path.join(self.dir, kind))
                self.assertEqual(repr(from_run), repr(model))
                for k, v in model.state_dict().items():
                    self.assertTrue(torch.equal(from_run.state_dict()[k], v), k)
