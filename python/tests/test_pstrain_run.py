"""The bridge on a real pstrain run (the release build, $PSTRAIN_BIN_DIR):
an MLP trained on Fashion-MNIST with 2 workers and 1 server, exported with
`pstrain ckpt export`, scores in torch exactly what pstrain's own evaluation
reported; a run on 2 servers (a tensor cut between them) loads from its
checkpoint folder as from its export; the run's logs read back."""

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


def fashion_test_set(data_dir):
    """Fashion-MNIST's test images as pstrain feeds them (Dataset.gather:
    p * (1 / (255 std)) + (-mean / std) in FP32, mean 0.2860, std 0.3530), and labels."""
    with gzip.open(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz")) as f:
        x = np.frombuffer(f.read()[16:], np.uint8).reshape(-1, 784)
    with gzip.open(os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz")) as f:
        y = np.frombuffer(f.read()[8:], np.uint8)
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
        OpenBLAS's FP32 sums may round differently next to a tie."""
        torch = require_torch(self)
        model = pstrain.model_from_export(self.path("a.safetensors"))
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
                self.assertEqual(repr(pstrain.model_from_export(self.path(run))),
                                 repr(pstrain.model_from_export(self.path(f"{run}.safetensors"))))

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
    (W=2 S=1, AdamW), exported, built in torch from the export's metadata:
    torch in evaluation mode (batchnorm's running statistics the servers
    kept, dropout off) scores what pstrain's evaluation reported."""

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
        model = pstrain.model_from_export(os.path.join(self.dir, "cnn.safetensors"))
        self.assertEqual([type(m).__name__ for m in model],
                         ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Flatten", "Dropout", "Linear"])
        self.assertEqual(int(model[1].num_batches_tracked), 120, "one count per step, kept by the server")
        with open(os.path.join(self.dir, "cnn", "run.toml"), "rb") as f:
            x, y = fashion_test_set(tomllib.load(f)["data"]["dir"])
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
