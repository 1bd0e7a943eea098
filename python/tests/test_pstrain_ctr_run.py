"""The bridge on a real click-through-rate run (the release build,
$PSTRAIN_BIN_DIR): `pstrain data make-ctr --preset tiny` writes a synthetic
Criteo-format click log, pstrain trains its configuration with 2 workers
and 2 servers, `pstrain ckpt export` writes each table whole; the CTR model
built from the export scores, in torch, the test AUC and log loss that
pstrain's own evaluation reported."""

import json
import os
import shutil
import tempfile
import unittest

import numpy as np

import pstrain
from pstrain.ctr import auc, log_loss, read_ctr
from helpers import require_torch, run_pstrain


def assert_scores_as_pstrain(case, run_dir, model, test, rows):
    """The torch model's test AUC and log loss against pstrain's last `eval`
    record of run_dir: AUC within 1e-3 (pstrain's comes from 65,536-bin
    histograms, ties within a bin counting one half; torch's is exact), log
    loss within 1e-4 relative (float32 against float64 sums). Returns that
    record."""
    import torch
    with open(os.path.join(run_dir, "logs", "server-0.jsonl")) as f:
        ev = [r for r in map(json.loads, f) if r["event"] == "eval"][-1]
    with torch.no_grad():
        ids = [torch.from_numpy(r) for r in rows]
        offsets = [torch.from_numpy(o[:-1].astype(np.int64)) for o in test.offsets]
        z = model(torch.from_numpy(test.dense), ids, offsets).numpy()
    case.assertEqual(len(z), ev["test_samples"])
    case.assertAlmostEqual(auc(test.labels, z), ev["auc"], delta=1e-3)
    case.assertAlmostEqual(log_loss(test.labels, z), ev["logloss"], delta=1e-4 * ev["logloss"])
    return ev


class RealCTRRunTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="pstrain-py-ctr-")
        run_pstrain(["data", "make-ctr", "--preset", "tiny", "--out", "data"], cwd=cls.dir)
        run_pstrain(["launch", "--config", "data/ctr.toml", "--workers", "2", "--servers", "2", "--epochs", "2",
                     "--run-dir", "r"], cwd=cls.dir)
        run_pstrain(["ckpt", "export", "r", "--out", "r.safetensors"], cwd=cls.dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, True)

    def test_torch_model_from_the_export_scores_as_pstrain(self):
        """Tolerances as assert_scores_as_pstrain states them."""
        require_torch(self)
        model = pstrain.model_from_export(os.path.join(self.dir, "r.safetensors"))
        self.assertEqual(type(model).__name__, "CTRModel")
        test = read_ctr(os.path.join(self.dir, "data", "test.tsv"), "criteo")
        tables = [{"rows": e.num_embeddings, "hash": False} for e in model.embeddings]
        ev = assert_scores_as_pstrain(self, os.path.join(self.dir, "r"), model, test, test.rows_of(tables))
        self.assertGreater(ev["auc"], 0.65, "the tiny planted model is learnt")
        # Each table whole, with PyTorch's EmbeddingBag name and shape.
        sd = model.state_dict()
        self.assertEqual(tuple(sd["embeddings.0.weight"].shape), (2000, 16))


class FieldsRunTests(unittest.TestCase):
    """Tables that name their fields, on the same real run: one table
    (rows 2000) shared by fields 0, 1 and 2, one hashed table for fields 3,
    5 and 7, the other 20 fields left out; pstrain trains it and the torch
    model from the export scores what pstrain reported."""

    TABLES = ('model.tables=[{type="embedding_bag",rows=2000,dim=8,fields=[0,1,2]},'
              '{type="embedding_bag",rows=512,dim=8,hash=true,fields=[3,5,7]}]')

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="pstrain-py-ctr-fields-")
        run_pstrain(["data", "make-ctr", "--preset", "tiny", "--out", "data"], cwd=cls.dir)
        run_pstrain(["launch", "--config", "data/ctr.toml", "--workers", "2", "--servers", "2", "--epochs", "2",
                     "--set", cls.TABLES, "--run-dir", "r"], cwd=cls.dir)
        run_pstrain(["ckpt", "export", "r", "--out", "r.safetensors"], cwd=cls.dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, True)

    def test_shared_and_chosen_fields_score_as_pstrain(self):
        """Tolerances as assert_scores_as_pstrain states them."""
        require_torch(self)
        model = pstrain.model_from_export(os.path.join(self.dir, "r.safetensors"))
        self.assertEqual(model.features, [(0, 0), (1, 0), (2, 0), (3, 1), (5, 1), (7, 1)])
        test = read_ctr(os.path.join(self.dir, "data", "test.tsv"), "criteo")
        ev = assert_scores_as_pstrain(self, os.path.join(self.dir, "r"), model, test, test.rows_of(model.tables))
        self.assertGreater(ev["auc"], 0.58, "six fields of the planted model are learnt (0.62 measured; 0.5 is chance)")
        sd = model.state_dict()
        self.assertEqual(tuple(sd["embeddings.0.weight"].shape), (2000, 8))
        self.assertEqual(tuple(sd["layers.0.weight"].shape), (64, 13 + 6 * 8))


if __name__ == "__main__":
    unittest.main()
