"""read_run_log on a crafted run directory: every rank's records and the
launcher's, in order, a truncated last line skipped, null as missing."""

import math
import os

import pstrain
from helpers import TempDirTest, require_pandas

LOGS = {
    "logs/server-0.jsonl": [
        '{"v":1,"event":"start","t":10.5,"run":"r","rank":0,"role":"server","index":0,"servers":1,"workers":2,"shard_lo":0}',
        '{"v":1,"event":"step","t":11.0,"run":"r","rank":0,"role":"server","index":0,"step":0,"epoch":0,"loss":null,"lr":0.05}',
        '{"v":1,"event":"eval","t":12.0,"run":"r","rank":0,"role":"server","index":0,"step":1,"epoch":1,"test_accuracy":0.8125}',
    ],
    "logs/worker-10.jsonl": ['{"v":1,"event":"step","t":11.1,"run":"r","rank":11,"role":"worker","index":10,"step":0,"loss":2.5}'],
    "logs/worker-2.jsonl": [
        '{"v":1,"event":"step","t":11.2,"run":"r","rank":3,"role":"worker","index":2,"step":0,"loss":2.25}',
        '{"v":1,"event":"done","t":13.0,"run":"r","rank":3,"role":"worker","index":2,"steps":1,"peak_rss_bytes":1000}',
        '{"v":1,"event":"step","t":13.5,"run":"r","rank":3,"role":"wor',  # cut by a crash
    ],
    "events.jsonl": ['{"v":1,"event":"launch","t":10.0,"run":"r","attempt":1}', '{"v":1,"event":"exit","t":14.0,"run":"r","code":0}'],
    "logs/mpirun-1.log": ["not a record"],
    "logs/notes.jsonl": ['{"event":"not a rank log"}'],
}


class RunLogTests(TempDirTest):
    def setUp(self):
        super().setUp()
        for name, lines in LOGS.items():
            os.makedirs(os.path.dirname(self.path(name)), exist_ok=True)
            with open(self.path(name), "w") as f:
                f.write("\n".join(lines) + "\n")

    def test_records_of_every_rank_then_the_launcher(self):
        rows = pstrain.read_run_log(self.dir, as_frame=False)
        self.assertEqual([(r["file"], r["event"]) for r in rows], [
            ("server-0.jsonl", "start"), ("server-0.jsonl", "step"), ("server-0.jsonl", "eval"),
            ("worker-2.jsonl", "step"), ("worker-2.jsonl", "done"), ("worker-10.jsonl", "step"),
            ("events.jsonl", "launch"), ("events.jsonl", "exit")])
        self.assertIsNone(rows[1]["loss"])
        self.assertEqual([r["role"] for r in rows[-2:]], ["launcher", "launcher"])
        self.assertNotIn("rank", rows[-1])
        self.assertEqual(len(pstrain.read_run_log(self.dir, as_frame=False, launcher=False)), 6)

    def test_data_frame(self):
        require_pandas(self)
        df = pstrain.read_run_log(self.dir)
        self.assertEqual(list(df.columns[:8]), ["v", "event", "t", "run", "rank", "role", "index", "file"])
        self.assertEqual(len(df), 8)
        steps = df[df.event == "step"]
        self.assertEqual(steps["rank"].tolist(), [0, 3, 11])
        self.assertTrue(math.isnan(steps["loss"].iloc[0]))
        self.assertEqual(steps["loss"].iloc[1:].tolist(), [2.25, 2.5])
        self.assertEqual(df[df.event == "eval"]["test_accuracy"].item(), 0.8125)
        self.assertEqual(df[df.role == "launcher"]["event"].tolist(), ["launch", "exit"])

    def test_not_a_run_directory(self):
        with self.assertRaises(pstrain.PstrainError) as c:
            pstrain.read_run_log(self.path("logs", "nothing"))
        self.assertIn("is not a run directory", str(c.exception))

    def test_the_return_type_never_depends_on_what_is_installed(self):
        """Without pandas the default was a list, and the documented next line
        (df[df.event == ...]) failed with AttributeError (issue 21): now a
        DataFrame or an error that says how to get one."""
        import importlib.util
        from unittest import mock
        real = importlib.util.find_spec
        with mock.patch("importlib.util.find_spec", lambda name, *a: None if name == "pandas" else real(name, *a)):
            with self.assertRaises(pstrain.PstrainError) as c:
                pstrain.read_run_log(self.dir)
            self.assertIn("python3-pandas", str(c.exception))
            self.assertIn("as_frame=False", str(c.exception))
            self.assertIsInstance(pstrain.read_run_log(self.dir, as_frame=False), list)
