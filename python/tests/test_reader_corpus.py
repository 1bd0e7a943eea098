"""The bridge's Criteo and libsvm readers against pstrain's own (issue 20):
every file of corpus/ (crafted inputs: numbers Python takes and pstrain
does not, line and token separators, values finite as doubles but not as
FP32, the Int64 range, empty files, CRLF, comments...) is read by the bridge
and by pstrain (`pstrain data cache`, whose cache file docs/formats.md
describes and is read back here). Both must refuse it, naming the same
line, or both accept it with the same rows: labels, dense features, ids
and weights, to the bit. A file named ok-* must be accepted, bad-* refused."""

import os
import re
import shutil
import struct
import subprocess
import tempfile
import unittest

import numpy as np

import pstrain
from helpers import TempDirTest, in_child, pstrain_bin

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
READERS = {"libsvm": pstrain.read_libsvm, "criteo": pstrain.read_criteo}



def corpus():
    """(format, path relative to corpus/) of every corpus file."""
    return [(fmt, f"{fmt}/{name}") for fmt in READERS for name in sorted(os.listdir(os.path.join(CORPUS, fmt)))]


def line_of(message, path):
    """The line number an error message gives for `path`, or None."""
    m = re.search(re.escape(path) + r":? line (\d+)", message)
    return int(m.group(1)) if m else None


def bridge_read(path, fmt):
    """("rows", rows) or ("refused", message) from the bridge's reader. A row
    is (label, dense features' bytes, per field (ids, weights' bytes))."""
    try:
        d = READERS[fmt](path)
    except pstrain.PstrainError as e:
        return "refused", str(e)
    rows = []
    for r in range(len(d)):
        bags = []
        for ids, offsets, weights in zip(d.ids, d.offsets, d.weights):
            a, b = offsets[r], offsets[r + 1]
            bags.append((tuple(int(i) for i in ids[a:b]), b"" if weights is None else weights[a:b].tobytes()))
        rows.append((int(d.labels[r]), d.dense[r].tobytes(), tuple(bags)))
    return "rows", rows


def pstrain_read(path, fmt):
    """The same from pstrain: `pstrain data cache` converts the file into
    its cache (docs/formats.md, "Click-log cache") or refuses it."""
    cache_dir = tempfile.mkdtemp(prefix="pstrain-py-cache-")
    try:
        p = subprocess.run([os.path.join(pstrain_bin(), "pstrain"), "data", "cache", "--format", fmt, "--cache-dir", cache_dir, path],
                           capture_output=True, text=True, errors="replace", timeout=120)
        if p.returncode != 0:
            return "refused", p.stdout + p.stderr
        [name] = [n for n in os.listdir(cache_dir) if n.endswith(".pstrain-ctr")]
        with open(os.path.join(cache_dir, name), "rb") as f:
            return "rows", read_cache(f.read(), fmt)
    finally:
        shutil.rmtree(cache_dir, True)


def read_cache(b, fmt):
    """The rows of a click-log cache, as bridge_read gives them."""
    assert b[:8] == b"PSTRCTR1", b[:8]
    rows, = struct.unpack_from("<Q", b, 32)
    code, dense, fields, record_bytes = struct.unpack_from("<4I", b, 40)
    records, table = struct.unpack_from("<2Q", b, 56)
    assert code == {"criteo": 1, "libsvm": 2}[fmt]
    out = []
    if code == 1:
        for r in range(rows):
            at = records + r * record_bytes
            ids = struct.unpack_from(f"<{fields}Q", b, at)
            present, label = struct.unpack_from("<2I", b, at + 8 * fields + 4 * dense)
            bags = tuple(((ids[f],) if present >> f & 1 else (), b"") for f in range(fields))
            out.append((label, b[at + 8 * fields:at + 8 * fields + 4 * dense], bags))
    else:
        offsets = struct.unpack_from(f"<{rows + 1}Q", b, table)
        for r in range(rows):
            at = records + offsets[r]
            label, n = struct.unpack_from("<2I", b, at)
            ids = struct.unpack_from(f"<{n}Q", b, at + 8)
            out.append((label, b"", ((ids, b[at + 8 + 8 * n:at + 8 + 12 * n]),)))
    return out


class CorpusTest(TempDirTest):
    def test_names_say_what_the_bridge_does(self):
        """ok-* read, bad-* refused with a PstrainError (no other exception)
        naming the file; needs no pstrain build."""
        for fmt, rel in corpus():
            with self.subTest(rel):
                path = os.path.join(CORPUS, rel)
                outcome, got = bridge_read(path, fmt)
                self.assertEqual(outcome, "rows" if os.path.basename(rel).startswith("ok-") else "refused", got)
                if outcome == "refused":
                    self.assertIn(path, got)
                else:
                    self.assertTrue(got)

    def test_bridge_and_pstrain_agree(self):
        pstrain_bin()  # one failure, not one per file, without a build
        for fmt, rel in corpus():
            with self.subTest(rel):
                self.agree(os.path.join(CORPUS, rel), fmt)

    def test_what_is_not_a_regular_file_is_refused_by_both(self):
        """A FIFO, a device, a folder (the bridge in a child process: reading
        first would block or exhaust memory)."""
        pstrain_bin()
        fifo = self.path("fifo")
        os.mkfifo(fifo)
        os.symlink("/dev/zero", self.path("zero"))
        os.mkdir(self.path("folder"))
        for fmt in READERS:
            for path in (fifo, self.path("zero"), self.path("folder")):
                with self.subTest(fmt=fmt, path=path):
                    out = in_child(self, f"pstrain.read_{fmt}({path!r})", timeout=30)
                    self.assertIn(f"PstrainError: {path} is not a regular file", out)
                    outcome, message = pstrain_read(path, fmt)
                    self.assertEqual(outcome, "refused")
                    self.assertIn("not a regular file", message)

    def test_pairs_per_line_agree(self):
        """65,536 pairs on a line are read, one more is refused (written here,
        too large for the corpus)."""
        pstrain_bin()
        pairs = " ".join(f"{i}:0.5" for i in range(1 << 16))
        for name, text in (("max.svm", "1 " + pairs + "\n"), ("over.svm", "0 1:1\n1 " + pairs + " 7:1\n")):
            with self.subTest(name):
                with open(self.path(name), "w") as f:
                    f.write(text)
                self.agree(self.path(name), "libsvm")

    def agree(self, path, fmt):
        ours, theirs = bridge_read(path, fmt), pstrain_read(path, fmt)
        self.assertEqual(ours[0], theirs[0], f"bridge: {str(ours[1])[:300]}\npstrain: {str(theirs[1])[:300]}")
        if ours[0] == "refused":
            self.assertEqual(line_of(ours[1], path), line_of(theirs[1], path), f"bridge: {ours[1][:300]}\npstrain: {theirs[1][:300]}")
            return
        self.assertEqual(len(ours[1]), len(theirs[1]), "row count")
        for r, (a, b) in enumerate(zip(ours[1], theirs[1])):
            self.assertEqual(a, b, f"row {r}: label, dense FP32 bytes, (ids, weight FP32 bytes) per field")
