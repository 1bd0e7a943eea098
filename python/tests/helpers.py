"""Shared by the bridge's tests: torch (a test fails, never skips, without
it), temporary folders, and pstrain's executables."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

BOOTSTRAP = "run scripts/bootstrap --python (it installs Debian's python3-torch, python3-pandas and safetensors), then scripts/test-python"


def require_torch(test):
    """torch, or a failure of `test` saying how to install it."""
    try:
        import torch
    except ImportError:
        test.fail(f"torch is not installed for {sys.executable}: {BOOTSTRAP}")
    return torch


def require_pandas(test):
    try:
        import pandas
    except ImportError:
        test.fail(f"pandas is not installed for {sys.executable}: {BOOTSTRAP}")
    return pandas


class TempDirTest(unittest.TestCase):
    """A test with its own temporary folder, self.dir."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="pstrain-py-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)


def in_child(test, call, timeout=60):
    """The output of `call` (Python, after `import pstrain`) in a child
    process with 4 GiB of address space and a time limit, printing the
    exception it raises: a reader that would read a device whole or block
    on a FIFO fails the test instead of exhausting memory or hanging."""
    code = ("import resource, pstrain, pstrain.checkpoint\n"
            "resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))\n"
            f"try:\n    {call}\n    print('no error')\n"
            "except Exception as e:\n    print(type(e).__name__ + ': ' + str(e))\n")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    try:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        test.fail(f"{call} ran past {timeout} s (blocked on a FIFO, or reading a device that never ends?)")
    return p.stdout + p.stderr


def pstrain_bin():
    """The folder of the built pstrain executables ($PSTRAIN_BIN_DIR)."""
    d = os.environ.get("PSTRAIN_BIN_DIR", "")
    exe = os.path.join(d, "pstrain")
    if not d or not os.access(exe, os.X_OK):
        raise AssertionError(f"PSTRAIN_BIN_DIR ({d!r}) holds no pstrain executable: run the tests through scripts/test-python "
                             f"(it sets it to the release build: swift build -c release)")
    return d


def run_pstrain(args, cwd, timeout=300):
    """`pstrain ARGS` in `cwd`; fails with its output when it exits non-zero."""
    exe = os.path.join(pstrain_bin(), "pstrain")
    p = subprocess.Popen([exe] + args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    try:
        out = p.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        # Two signals: the launcher stops mpirun (in its own process group) at once.
        for _ in range(2):
            p.send_signal(signal.SIGTERM)
        try:
            out = p.communicate(timeout=20)[0]
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            out = p.communicate()[0]
        raise AssertionError(f"pstrain {' '.join(args)} ran past {timeout} s and was stopped:\n{out[-4000:]}")
    if p.returncode != 0:
        raise AssertionError(f"pstrain {' '.join(args)} exited with {p.returncode}:\n{out[-4000:]}")
    return out


def write_synthetic_criteo(path, rows, seed, vocab=50, fields=26, dense=13):
    """A small click log in the Criteo format from a planted model: per field
    Zipf-like ids out of `vocab` (hex, some empty), integer features (some
    empty, some negative), label ~ Bernoulli(sigmoid(planted score)). Returns
    the labels. The planted score is strong enough that a model learns an
    AUC well above 0.5 in two epochs of a few thousand rows."""
    import numpy as np
    rng = np.random.default_rng(seed)
    weight = np.random.default_rng(1234).normal(0, 1.0, size=(fields, vocab))
    ranks = np.minimum(rng.zipf(1.3, size=(rows, fields)) - 1, vocab - 1)
    score = weight[np.arange(fields), ranks].sum(1) / np.sqrt(fields) * 2.5
    ints = rng.integers(-3, 200, size=(rows, dense))
    score += 0.3 * (np.log1p(np.maximum(ints[:, 0], 0)) - 3)
    labels = (rng.random(rows) < 1 / (1 + np.exp(-score))).astype(int)
    empty_int = rng.random((rows, dense)) < 0.1
    empty_cat = rng.random((rows, fields)) < 0.05
    with open(path, "w") as f:
        for r in range(rows):
            cells = [str(labels[r])]
            cells += ["" if empty_int[r, j] else str(ints[r, j]) for j in range(dense)]
            cells += ["" if empty_cat[r, j] else format((ranks[r, j] * 2654435761 + j) % (1 << 32), "08x") for j in range(fields)]
            f.write("\t".join(cells) + "\n")
    return labels
