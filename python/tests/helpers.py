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
