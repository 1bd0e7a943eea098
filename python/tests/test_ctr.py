"""The CTR bridge (docs/python.md, "CTR"): CTRModel's names and shapes, the
hash against an independent implementation on Python ints, the Criteo and
libsvm readers on small files written here, AUC against a pairwise count,
CTR exports and checkpoints, and scripts/lib/torch_ctr.py training a tiny
synthetic click log in one process and as DDP over gloo."""

import json
import math
import os
import subprocess
import sys

import numpy as np
from safetensors.numpy import save_file

import pstrain
from pstrain import ctr
from helpers import TempDirTest, in_child, require_torch, write_synthetic_criteo

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TORCH_CTR = os.path.join(ROOT, "scripts", "lib", "torch_ctr.py")
M64 = (1 << 64) - 1


def ref_splitmix64(x):
    """splitmix64 on Python ints, written from the spec."""
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def ref_bucket(i, table, rows):
    return ref_splitmix64(i ^ ((table * 0x9E3779B97F4A7C15) & M64)) % rows


SECTION = {
    "input": [3], "loss": "bce", "interaction": "none",
    "tables": [{"type": "embedding_bag", "rows": 10, "dim": 4},
               {"type": "embedding_bag", "rows": 7, "dim": 2, "mode": "mean", "hash": True}],
    "layers": [{"type": "dense", "units": 5}, {"type": "relu"}, {"type": "dense", "units": 1}],
}


def config_text(train, test, epochs=2, fmt="criteo", tables=None, extra=""):
    tables = tables or ",\n".join('  { type = "embedding_bag", rows = 64, dim = 4, hash = true }' for _ in range(26))
    return f"""[model]
input = [{13 if fmt == "criteo" else 0}]
loss = "bce"
tables = [
{tables}
]
layers = [ {{ type = "dense", units = 16 }}, {{ type = "relu" }}, {{ type = "dense", units = 1 }} ]
[data]
format = "{fmt}"
train = "{train}"
test = "{test}"
[train]
epochs = {epochs}
batch_size = 64
lr = 0.05
optimizer = "adagrad"
sparse_optimizer = "adagrad"
sparse_lr = 0.1
{extra}"""


class ModelTest(TempDirTest):
    def test_count_stands_for_tables_alike(self):
        """`count = N` in a table entry is N tables alike, as pstrain reads it
        (26 hand-written lines for a Criteo log were the alternative)."""
        tables = ctr.parse_tables({"tables": [{"type": "embedding_bag", "rows": 10, "dim": 4, "count": 3},
                                              {"type": "embedding_bag", "rows": 7, "dim": 2, "hash": True}]})
        self.assertEqual([(t["rows"], t["dim"], t["hash"]) for t in tables], [(10, 4, False)] * 3 + [(7, 2, True)])
        for bad in (0, 4097, True, 2.0):
            with self.assertRaises(pstrain.PstrainError) as c:
                ctr.parse_tables({"tables": [{"type": "embedding_bag", "rows": 10, "dim": 4, "count": bad}]})
            self.assertIn("count", str(c.exception))

    def test_fields_choose_and_share(self):
        """`fields` in every entry: a table embeds the fields named (one bag
        each, in order), a field may be left out, and the errors pstrain
        gives are given here too."""
        torch = require_torch(self)
        section = dict(SECTION, tables=[{"type": "embedding_bag", "rows": 10, "dim": 4, "fields": [2, 0]},
                                        {"type": "embedding_bag", "rows": 7, "dim": 2, "mode": "mean", "fields": [1]}])
        m = pstrain.ctr_model_from_section(section)
        self.assertEqual(m.features, [(2, 0), (0, 0), (1, 1)])
        self.assertEqual(tuple(m.state_dict()["layers.0.weight"].shape), (5, 3 + 4 + 4 + 2))
        dense = torch.randn(2, 3)
        ids = [torch.tensor([1, 2]), torch.tensor([4]), torch.tensor([9, 3]), torch.tensor([99])]  # field 3: no table reads it
        offsets = [torch.tensor([0, 1]), torch.tensor([0, 0]), torch.tensor([0, 2]), torch.tensor([0, 1])]
        out = m(dense, ids, offsets)
        w0, w1 = m.embeddings[0].weight, m.embeddings[1].weight
        bag2, bag0 = torch.stack([w0[9] + w0[3], torch.zeros(4)]), torch.stack([w0[1], w0[2]])
        bag1 = torch.stack([torch.zeros(2), w1[4]])
        want = m.layers(torch.cat([dense, bag2, bag0, bag1], 1)).squeeze(1)
        self.assertTrue(torch.allclose(out, want, atol=1e-6), (out, want))
        # rows_of: per field, the rows of the table that embeds it, hashed with that table's index; none for a field left out.
        ids = [np.array([3, 12], dtype=np.uint64), np.array([5, 6], dtype=np.uint64), np.array([8], dtype=np.uint64)]
        d = ctr.CTRData(labels=np.zeros(2, np.float32), dense=np.zeros((2, 0), np.float32), ids=ids,
                        offsets=[np.array([0, 1, 2])] * 2 + [np.array([0, 1, 1])], weights=[None] * 3, source="three fields")
        rows = d.rows_of([{"rows": 7, "hash": True, "fields": [1]}, {"rows": 9, "hash": True, "fields": [0]}])
        self.assertEqual(rows[0].tolist(), [ref_bucket(i, 1, 9) for i in (3, 12)])
        self.assertEqual(rows[1].tolist(), [ref_bucket(i, 0, 7) for i in (5, 6)])
        self.assertEqual(rows[2].tolist(), [], "field 2 is left out")
        with self.assertRaises(pstrain.PstrainError) as cm:
            d.rows_of([{"rows": 7, "hash": True, "fields": [3]}])
        self.assertIn("model.tables[0] names field 3 but three fields has 3", str(cm.exception))
        cases = [
            ([{"type": "embedding_bag", "rows": 3, "dim": 2, "fields": [0]}, {"type": "embedding_bag", "rows": 3, "dim": 2}],
             "model.tables[1] has no fields while other tables name theirs"),
            ([{"type": "embedding_bag", "rows": 3, "dim": 2, "fields": [0, 1]}, {"type": "embedding_bag", "rows": 3, "dim": 2, "fields": [1]}],
             "model.tables[1] names field 1, which model.tables[0] embeds already"),
            ([{"type": "embedding_bag", "rows": 3, "dim": 2, "fields": [0], "count": 2}], "has both count and fields"),
            ([{"type": "embedding_bag", "rows": 3, "dim": 2, "fields": []}], "takes an array of field numbers"),
            ([{"type": "embedding_bag", "rows": 3, "dim": 2, "fields": [1, 1]}], "names a field twice"),
        ]
        for tables, words in cases:
            with self.assertRaises(pstrain.PstrainError, msg=words) as cm:
                ctr.parse_tables({"tables": tables})
            self.assertIn(words, str(cm.exception))

    def test_names_shapes_and_forward(self):
        torch = require_torch(self)
        m = pstrain.ctr_model_from_section({"model": SECTION})
        shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
        self.assertEqual(shapes, {"embeddings.0.weight": (10, 4), "embeddings.1.weight": (7, 2),
                                  "layers.0.weight": (5, 9), "layers.0.bias": (5,),
                                  "layers.2.weight": (1, 5), "layers.2.bias": (1,)})
        for e in m.embeddings:
            self.assertTrue(e.sparse)
            self.assertLessEqual(float(e.weight.abs().max()), 0.05)
        self.assertEqual([e.mode for e in m.embeddings], ["sum", "mean"])
        dense = torch.randn(3, 3)
        ids = [torch.tensor([1, 2, 9]), torch.tensor([4, 5])]
        offsets = [torch.tensor([0, 2, 2]), torch.tensor([0, 0, 0])]  # row 1 of table 0 and rows 0, 1 of table 1 empty
        out = m(dense, ids, offsets)
        self.assertEqual(tuple(out.shape), (3,))
        w0, w1 = m.embeddings[0].weight, m.embeddings[1].weight
        bag0 = torch.stack([w0[1] + w0[2], torch.zeros(4), w0[9]])
        bag1 = torch.stack([torch.zeros(2), torch.zeros(2), (w1[4] + w1[5]) / 2])
        want = m.layers(torch.cat([dense, bag0, bag1], 1)).squeeze(1)
        self.assertTrue(torch.allclose(out, want, atol=1e-6), (out, want))

    def test_fm_term(self):
        torch = require_torch(self)
        section = dict(SECTION, interaction="fm", input=[0],
                       tables=[{"type": "embedding_bag", "rows": 5, "dim": 3}] * 3)
        m = pstrain.ctr_model_from_section(section)
        ids = [torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([4, 4])]
        offsets = [torch.tensor([0, 1])] * 3
        out = m(torch.zeros(2, 0), ids, offsets)
        v = torch.stack([torch.stack([m.embeddings[f].weight[int(ids[f][r])] for f in range(3)]) for r in range(2)])
        pairs = sum((v[:, a] * v[:, b]).sum(1) for a in range(3) for b in range(a + 1, 3))  # sum over pairs of <v_a, v_b>
        mlp = m.layers(torch.cat([torch.zeros(2, 0)] + [m.embeddings[f].weight[ids[f]] for f in range(3)], 1)).squeeze(1)
        self.assertTrue(torch.allclose(out, mlp + pairs, atol=1e-6), (out, mlp + pairs))

    def test_bad_sections(self):
        require_torch(self)
        cases = [
            (dict(SECTION, tables=[{"type": "embedding", "rows": 3, "dim": 2}]), "model.tables[0] has type"),
            (dict(SECTION, tables=[{"type": "embedding_bag", "rows": 0, "dim": 2}]), "rows = 0"),
            (dict(SECTION, tables=[{"type": "embedding_bag", "rows": 3, "dim": 2, "mode": "max"}]), "mode = 'max'"),
            (dict(SECTION, tables=[{"type": "embedding_bag", "rows": 3, "dim": 2, "size": 1}]), "has key 'size'"),
            (dict(SECTION, interaction="fm"), "every table of one dim"),
            (dict(SECTION, layers=[{"type": "dense", "units": 2}]), "ends with 2 outputs"),
            (dict(SECTION, input=[-1]), "model.input is [-1]"),
            ({k: v for k, v in SECTION.items() if k != "tables"}, "no 'tables'"),
        ]
        for section, words in cases:
            with self.assertRaises(pstrain.PstrainError, msg=words) as cm:
                pstrain.ctr_model_from_section(section)
            self.assertIn(words, str(cm.exception))


class HashTest(TempDirTest):
    def test_known_values(self):
        # splitmix64's first two outputs from state 0 (Vigna's reference generator).
        self.assertEqual(ref_splitmix64(0), 0xE220A8397B1DCDAF)
        self.assertEqual(ref_splitmix64(0x9E3779B97F4A7C15), 0x6E789E6AA1B965F4)
        self.assertEqual(int(ctr.splitmix64(np.array([0], dtype=np.uint64))[0]), 0xE220A8397B1DCDAF)

    def test_bucket_against_python_ints(self):
        rng = np.random.default_rng(5)
        ids = [0, 1, 2, M64, M64 - 1, 1 << 63, 0x9E3779B97F4A7C15] + [int(x) for x in rng.integers(0, 1 << 63, 200)] \
            + [int(x) | (1 << 63) for x in rng.integers(0, 1 << 63, 50)]
        for table in (0, 1, 7, 25, 1000):
            for rows in (1, 2, 1000, 999_983, 10_000_000, (1 << 40) + 3):
                got = ctr.bucket(np.array(ids, dtype=np.uint64), table, rows)
                want = [ref_bucket(i, table, rows) for i in ids]
                self.assertEqual(got.tolist(), want, (table, rows))


class ReaderTest(TempDirTest):
    def write(self, name, text):
        with open(self.path(name), "w", newline="") as f:
            f.write(text)
        return self.path(name)

    def test_criteo(self):
        ints = ["5", "", "-3", "0", "123456789012", "1", "2", "3", "4", "", "-1", "7", "8"]
        cats = ["a1b2", "", "FFFFFFFFFFFFFFFF", "0"] + ["1f"] * 21 + [""]
        row1 = "\t".join(["1"] + ints + cats)
        row2 = "\t".join(["0"] + [""] * 13 + [""] * 26)
        path = self.write("a.tsv", row1 + "\r\n\n" + row2)  # CRLF, a blank line, no final newline
        d = pstrain.read_criteo(path)
        self.assertEqual(d.labels.tolist(), [1.0, 0.0])
        self.assertEqual(d.dense.dtype, np.float32)
        want = [np.float32(math.log1p(max(int(v), 0))) if v else 0.0 for v in ints]
        self.assertEqual(d.dense[0].tolist(), [float(w) for w in want])
        self.assertEqual(d.dense[1].tolist(), [0.0] * 13)
        self.assertEqual(len(d.ids), 26)
        self.assertEqual(d.ids[0].tolist(), [0xA1B2])
        self.assertEqual(d.offsets[0].tolist(), [0, 1, 1])
        self.assertEqual(d.offsets[1].tolist(), [0, 0, 0])
        self.assertEqual(d.ids[2].tolist(), [M64])
        self.assertEqual(d.ids[3].tolist(), [0])
        self.assertEqual(d.ids[25].tolist(), [])
        self.assertEqual(d.ids[2].dtype, np.uint64)

    def test_criteo_many_chunks_against_python(self):
        rng = np.random.default_rng(9)
        lines, want = [], []
        for r in range(400):
            cells = [str(int(rng.integers(0, 2)))]
            cells += ["" if rng.random() < 0.2 else str(int(rng.integers(-9, 10 ** int(rng.integers(1, 17))))) for _ in range(13)]
            cells += ["" if rng.random() < 0.2 else format(int(rng.integers(0, 1 << 62)) * 3, "x") for _ in range(26)]
            lines.append("\t".join(cells))
        path = self.write("b.tsv", "\n".join(lines) + "\n")
        old, ctr.CHUNK = ctr.CHUNK, 1000  # many chunks, lines cut at their borders
        try:
            d = pstrain.read_criteo(path)
        finally:
            ctr.CHUNK = old
        for r, line in enumerate(lines):
            cells = line.split("\t")
            self.assertEqual(d.labels[r], int(cells[0]))
            for j in range(13):
                v = int(cells[1 + j]) if cells[1 + j] else 0
                self.assertEqual(d.dense[r, j], np.float32(math.log1p(max(v, 0))), (r, j))
            for j in range(26):
                a, b = d.offsets[j][r], d.offsets[j][r + 1]
                self.assertEqual(d.ids[j][a:b].tolist(), [int(cells[14 + j], 16)] if cells[14 + j] else [], (r, j))

    def test_criteo_refusals(self):
        good = "\t".join(["1"] + ["1"] * 13 + ["ab"] * 26)
        cases = [
            ("\t".join(["1"] + ["1"] * 13 + ["ab"] * 25), "line 2 has 39 tab-separated fields"),
            ("\t".join(["2"] + ["1"] * 13 + ["ab"] * 26), "line 2, field label: '2' is not 0 or 1"),
            ("\t".join(["1"] + ["1"] * 4 + ["1.5"] + ["1"] * 8 + ["ab"] * 26), "line 2, field I5: '1.5' is not an integer"),
            ("\t".join(["1"] + ["-"] + ["1"] * 12 + ["ab"] * 26), "line 2, field I1: '-'"),
            ("\t".join(["1"] + ["1"] * 13 + ["ab"] * 3 + ["xyz"] + ["ab"] * 22), "line 2, field C4: 'xyz' is not a hexadecimal id"),
            ("\t".join(["1"] + ["1"] * 13 + ["1" * 17] + ["ab"] * 25), "line 2, field C1"),
        ]
        for i, (bad, words) in enumerate(cases):
            path = self.write(f"bad{i}.tsv", good + "\n" + bad + "\n")
            with self.assertRaises(pstrain.PstrainError) as cm:
                pstrain.read_criteo(path)
            self.assertIn(words, str(cm.exception))
            self.assertIn(path, str(cm.exception))
        with self.assertRaises(pstrain.PstrainError) as cm:
            pstrain.read_criteo(self.write("empty.tsv", "\n"))
        self.assertIn("holds no rows", str(cm.exception))

    def test_libsvm(self):
        path = self.write("a.svm", "# a comment line\n+1 3:0.5 10:2 # trailing comment\n-1\n0 7:-1.25e-1\n\n1 3:1\n")
        d = pstrain.read_libsvm(path)
        self.assertEqual(d.labels.tolist(), [1.0, 0.0, 0.0, 1.0])
        self.assertEqual(d.dense.shape, (4, 0))
        self.assertEqual(len(d.ids), 1)
        self.assertEqual(d.ids[0].tolist(), [3, 10, 7, 3])
        self.assertEqual(d.offsets[0].tolist(), [0, 2, 2, 3, 4])
        self.assertEqual(d.weights[0].tolist(), [0.5, 2.0, -0.125, 1.0])
        for bad, words in [("2 1:1", "label '2'"), ("1 a:1", "'a:1' is not idx:value"), ("1 -3:1", "'-3:1'"),
                           ("1 3:nan", "not a finite number"), ("1 3", "'3' is not idx:value")]:
            with self.assertRaises(pstrain.PstrainError) as cm:
                pstrain.read_libsvm(self.write("bad.svm", "1 1:1\n" + bad + "\n"))
            self.assertIn("line 2", str(cm.exception))
            self.assertIn(words, str(cm.exception))

    def test_libsvm_takes_pstrains_grammar_only(self):
        """What pstrain's reader refuses (LibSVM.swift), the bridge refuses,
        with the file and line: a value finite as a double but not as FP32,
        Python's extra number syntax (underscores, non-ASCII digits, which
        int() and float() take), and separators other than space, tab and
        "\\n" (str.splitlines() cuts lines at \\x1c, \\x85, \\u2028; split()
        tokens at \\v and \\f). The corpus test compares both readers."""
        for bad, words in [("1 3:1e39", "'3:1e39' has a value that is not a finite number as FP32"),
                           ("1 3:-3.40282357e38", "not a finite number as FP32"),
                           ("1 3:0x1p128", "not a finite number as FP32"),
                           ("1 3:1\x1c0 4:1", "pair 1: '3:1\\x1c0' has a value that is not a number"),
                           ("1 3:1\u2028 4:1", "has a value that is not a number"),
                           ("1 3:1\x0b4:2", "has a value that is not a number"),
                           ("1\x0c 3:1", "label '1\\x0c'"),
                           ("\u0661 3:1", "label '\u0661'"),
                           ("1 \u0663:1", "'\u0663:1' is not idx:value with idx a non-negative integer"),
                           ("1 3:\u0661", "has a value that is not a number"),
                           ("1_0 3:1", "label '1_0'"),
                           ("1 3:1_0", "'3:1_0' has a value that is not a number"),
                           ("1 1_0:1", "'1_0:1' is not idx:value"),
                           ("1 \u00b2:1", "'\u00b2:1' is not idx:value"),
                           ("1 3: 1", "'3:' has a value that is not a number"),
                           ("1 3:1\r\r", "has a value that is not a number"),  # a "\r" before the "\n" belongs to the line end
                           ("1 18446744073709551616:1", "below 2^64")]:
            with self.subTest(bad):
                path = self.write("bad.svm", "1 1:1\n" + bad + "\n0 2:1\n")
                with self.assertRaises(pstrain.PstrainError) as cm:
                    pstrain.read_libsvm(path)
                self.assertIn(f"{path}: line 2", str(cm.exception))
                self.assertIn(words, str(cm.exception))
        # What pstrain takes that float() does not: strtod's hexadecimal, "nan(...)" refused as not finite.
        path = self.write("ok.svm", "0x1 3:0x1.8p1 4:.5 5:5. 6:-0 7:1E-2 00000000000000000000000008:3.4028235e38\r\n"
                                    "1e0 18446744073709551615:1e-50 # a comment \x1c\n-1.0\t\t9:+2\n")
        d = pstrain.read_libsvm(path)
        self.assertEqual(d.labels.tolist(), [1.0, 1.0, 0.0])
        self.assertEqual(d.ids[0].tolist(), [3, 4, 5, 6, 7, 8, M64, 9])
        self.assertEqual(d.weights[0].tobytes(), np.array([3, 0.5, 5, -0.0, 0.01, 3.4028235e38, 0, 2], np.float32).tobytes())
        self.assertEqual(d.offsets[0].tolist(), [0, 6, 7, 8])
        with self.assertRaises(pstrain.PstrainError) as cm:
            pstrain.read_libsvm(self.write("nan.svm", "1 3:nan(1)\n"))
        self.assertIn("not a finite number", str(cm.exception))

    def test_libsvm_pairs_per_line_are_bounded(self):
        """At most 65,536 index:value pairs a line (LibSVM.maxPairsPerRow)."""
        pairs = " ".join(f"{i}:1" for i in range(1 << 16))
        d = pstrain.read_libsvm(self.write("max.svm", "1 " + pairs + "\n"))
        self.assertEqual(len(d.ids[0]), 1 << 16)
        with self.assertRaises(pstrain.PstrainError) as cm:
            pstrain.read_libsvm(self.write("over.svm", "0 1:1\n1 " + pairs + " 7:1\n"))
        self.assertIn("line 2, pair 65537: the line holds more than 65536 index:value pairs", str(cm.exception))

    def test_criteo_integers_as_pstrain_reads_them(self):
        """I1..I13 as pstrain reads them (Criteo.integer): a sign '+' or '-',
        ASCII digits, any leading zeros, the whole Int64 range; not Python's
        int() grammar (underscores, non-ASCII digits, spaces)."""
        def row(i1, label="1"):
            return "\t".join([label, i1] + ["1"] * 12 + ["ab"] * 26)
        ok = {"+5": 5, "9223372036854775807": (1 << 63) - 1, "-9223372036854775808": -(1 << 63), "0" * 40 + "7": 7,
              "-" + "0" * 5000 + "3": -3, "1234567890123456789": 1234567890123456789}
        d = pstrain.read_criteo(self.write("ok.tsv", "\n".join(row(v) for v in ok) + "\n"))
        want = [np.float32(math.log1p(max(v, 0))) for v in ok.values()]
        self.assertEqual(d.dense[:, 0].tolist(), [float(w) for w in want])
        for bad in ["9223372036854775808", "-9223372036854775809", "1" + "0" * 30, "1_0", "\u0661", "\u00b2", " 5", "5 ", "+", "+-1",
                    "1\x1c"]:
            with self.subTest(bad):
                path = self.write("bad.tsv", row("1") + "\n" + row(bad) + "\n")
                with self.assertRaises(pstrain.PstrainError) as cm:
                    pstrain.read_criteo(path)
                self.assertIn(f"{path}: line 2, field I1: {bad!r} is not an integer", str(cm.exception))

    def test_readers_refuse_what_is_not_a_regular_file(self):
        """As pstrain (CTRFile.open), a FIFO or a device is refused, not read
        (a FIFO would block, /dev/zero never ends): in a child process with
        a time and a memory limit."""
        fifo = self.path("fifo")
        os.mkfifo(fifo)
        os.symlink("/dev/zero", self.path("zero"))
        for reader in ("read_libsvm", "read_criteo"):
            for path in (fifo, self.path("zero"), self.dir):
                with self.subTest(reader=reader, path=path):
                    out = in_child(self, f"pstrain.{reader}({path!r})", timeout=30)
                    self.assertIn(f"PstrainError: {path} is not a regular file", out)

    def test_rows_of_tables(self):
        path = self.write("a.svm", "1 3:1 12:1\n0 5:1\n")
        d = pstrain.read_libsvm(path)
        rows = d.rows_of([{"rows": 7, "hash": True}])
        self.assertEqual(rows[0].tolist(), [ref_bucket(i, 0, 7) for i in (3, 12, 5)])
        with self.assertRaises(pstrain.PstrainError) as cm:
            d.rows_of([{"rows": 10, "hash": False}])
        self.assertIn("field 0 has id 12, not below table 0's rows = 10", str(cm.exception))


class MetricTest(TempDirTest):
    def test_auc_against_pairwise_count(self):
        rng = np.random.default_rng(3)
        for n in (2, 10, 333):
            y = rng.integers(0, 2, n)
            y[0], y[1] = 0, 1
            s = np.round(rng.normal(size=n), 1)  # many ties
            pos, neg = s[y == 1], s[y == 0]
            pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
            self.assertAlmostEqual(pstrain.auc(y, s), pairs / (len(pos) * len(neg)), places=12)
        self.assertTrue(math.isnan(pstrain.auc([1, 1], [0.1, 0.2])))

    def test_log_loss(self):
        y = np.array([0, 1, 1, 0])
        z = np.array([-2.0, 3.0, -0.5, 8.0])
        p = 1 / (1 + np.exp(-z))
        want = -np.mean(y * np.log(p) + (1 - y) * np.log1p(-p))
        self.assertAlmostEqual(pstrain.log_loss(y, z), want, places=9)


class ExportTest(TempDirTest):
    def test_export_and_checkpoint_load(self):
        torch = require_torch(self)
        m = pstrain.ctr_model_from_section(SECTION)
        tensors = {k: v.detach().numpy().copy() for k, v in m.state_dict().items()}
        tables = "[" + ", ".join('{ type = "embedding_bag", rows = %d, dim = %d, mode = "%s", hash = %s }'
                                 % (t["rows"], t["dim"], t.get("mode", "sum"), str(t.get("hash", False)).lower())
                                 for t in SECTION["tables"]) + "]"
        layers = '[{ type = "dense", units = 5 }, { type = "relu" }, { type = "dense", units = 1 }]'
        export = self.path("ctr.safetensors")
        save_file(tensors, export, metadata={"format": "pstrain-model", "input": "[3]", "layers": layers, "tables": tables})
        sd = pstrain.load_state_dict(export)
        self.assertEqual(set(sd), set(tensors))  # CTRModel's names are pstrain's
        fresh = pstrain.ctr_model_from_section(SECTION)
        fresh.load_state_dict(sd)
        loaded = pstrain.model_from_export(export)
        dense = torch.randn(4, 3)
        ids, offsets = [torch.tensor([1, 2, 3, 9]), torch.tensor([6, 0, 2])], [torch.tensor([0, 1, 2, 3])] * 2
        want = m(dense, ids, offsets)
        self.assertTrue(torch.equal(fresh(dense, ids, offsets), want))
        self.assertTrue(torch.equal(loaded(dense, ids, offsets), want))
        save_file(tensors, self.path("bare.safetensors"), metadata={"format": "pstrain-model"})
        with self.assertRaises(pstrain.PstrainError) as cm:
            pstrain.model_from_export(self.path("bare.safetensors"))
        self.assertIn("ctr_model_from_section", str(cm.exception))


class TrainTest(TempDirTest):
    def run_ctr(self, config, out, *extra):
        p = subprocess.run([sys.executable, TORCH_CTR, "--config", config, "--out", out] + list(extra),
                           capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, p.stdout[-3000:] + p.stderr[-3000:])
        recs = {}
        for name in sorted(os.listdir(out)):
            if name.endswith(".jsonl"):
                with open(os.path.join(out, name)) as f:
                    recs[name] = [json.loads(line) for line in f]
        return recs

    def synthetic(self, rows=4000):
        write_synthetic_criteo(self.path("train.tsv"), rows, seed=1)
        write_synthetic_criteo(self.path("test.tsv"), rows // 4, seed=2)
        config = self.path("ctr.toml")
        with open(config, "w") as f:
            f.write(config_text(self.path("train.tsv"), self.path("test.tsv")))
        return config

    def test_two_epochs_learn(self):
        require_torch(self)
        recs = self.run_ctr(self.synthetic(), self.path("one"), "--threads", "2")
        evals = [r for r in recs["rank-0.jsonl"] if r["event"] == "eval"]
        self.assertEqual([e["epoch"] for e in evals], [1, 2])
        self.assertEqual(evals[-1]["step"], 2 * (4000 // 64))
        # The planted model: AUC about 0.8 after 2 epochs (measured); chance is 0.5.
        self.assertGreater(evals[-1]["test_auc"], 0.7)
        self.assertLess(evals[-1]["test_logloss"], math.log(2))
        done = [r for r in recs["rank-0.jsonl"] if r["event"] == "done"][0]
        self.assertGreater(done["peak_rss_bytes"], 0)

    def test_ddp_two_ranks(self):
        require_torch(self)
        config = self.synthetic(rows=2000)
        one = self.run_ctr(config, self.path("one"), "--set", "train.epochs=1")
        ddp = self.run_ctr(config, self.path("ddp"), "--set", "train.epochs=1", "--world", "2")
        self.assertEqual(sorted(ddp), ["rank-0.jsonl", "rank-1.jsonl"])
        dones = [r for f in ddp.values() for r in f if r["event"] == "done"]
        self.assertEqual([d["steps"] for d in dones], [2000 // 64] * 2)
        e1 = [r for r in one["rank-0.jsonl"] if r["event"] == "eval"][-1]
        e2 = [r for r in ddp["rank-0.jsonl"] if r["event"] == "eval"][-1]
        # The same global batches, each rank its half: DDP's mean gradient is the
        # one process's up to summation order (measured: AUC equal to 1e-9).
        self.assertAlmostEqual(e2["test_auc"], e1["test_auc"], delta=2e-3)
        self.assertAlmostEqual(e2["test_logloss"], e1["test_logloss"], delta=2e-3)
        self.assertGreater(e2["test_auc"], 0.6)

    def test_libsvm_weighted_bags(self):
        require_torch(self)
        rng = np.random.default_rng(4)
        w = rng.normal(size=40) * 2
        for name, n in (("train.svm", 3000), ("test.svm", 800)):
            with open(self.path(name), "w") as f:
                for _ in range(n):
                    idx = rng.choice(40, size=3, replace=False)
                    val = rng.random(3) + 0.5
                    y = rng.random() < 1 / (1 + np.exp(-(w[idx] * val).sum()))
                    f.write(("+1" if y else "-1") + "".join(f" {i}:{v:.3f}" for i, v in zip(idx, val)) + "\n")
        config = self.path("svm.toml")
        with open(config, "w") as f:
            f.write(config_text(self.path("train.svm"), self.path("test.svm"), fmt="libsvm",
                                tables='  { type = "embedding_bag", rows = 40, dim = 4 }'))
        recs = self.run_ctr(config, self.path("svm"))
        evals = [r for r in recs["rank-0.jsonl"] if r["event"] == "eval"]
        self.assertGreater(evals[-1]["test_auc"], 0.7)
