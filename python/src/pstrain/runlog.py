"""A run's logs (docs/run-log.md) as one table: a row per record of every
rank's logs/<role>-<i>.jsonl and of the launcher's events.jsonl."""

import importlib.util
import json
import os
import re

from .errors import PstrainError

# Columns every rank record has, first in the table; then "file" (where the
# record is), then each other field in the order first seen.
COMMON = ["v", "event", "t", "run", "rank", "role", "index"]
RANK_LOG = re.compile(r"^(server|worker)-(\d+)\.jsonl$")


def read_run_log(run_dir, *, as_frame=True, launcher=True):
    """Every record of the run in `run_dir`: the servers' logs (by index),
    the workers', then the launcher's (`launcher=False` leaves those out;
    their role is "launcher" and they have no rank). Lines that are not a
    JSON object (a crash can cut the last line of a log) are skipped, as
    pstrain's readers do; a value that was not finite (written as null) is
    None, NaN in a DataFrame. Returns a pandas DataFrame, or with
    `as_frame=False` a list of dicts: the type never depends on what is
    installed (without pandas, the default is an error that says so)."""
    files = log_files(run_dir, launcher)
    rows = []
    for name, path in files:
        for r in _records(path):
            if name == "events.jsonl":
                r.setdefault("role", "launcher")
            r["file"] = name
            rows.append(r)
    if not as_frame:
        return rows
    if importlib.util.find_spec("pandas") is None:
        raise PstrainError("read_run_log returns a pandas DataFrame and pandas is not installed: on Debian "
                           "`apt-get install python3-pandas` (with a venv made with --system-site-packages; "
                           "pip's pandas pulls numpy 2, which Debian's torch cannot use), or pass as_frame=False for a list of dicts")
    import pandas as pd
    return pd.DataFrame(rows, columns=_columns(rows))


def log_files(run_dir, launcher=True):
    """(name, path) of the run's logs: servers, workers, then events.jsonl."""
    logs = os.path.join(run_dir, "logs")
    events = os.path.join(run_dir, "events.jsonl")
    if not os.path.isdir(logs) and not os.path.isfile(events):
        raise PstrainError(f"{run_dir} is not a run directory: it has neither logs/ nor events.jsonl")
    ranks = [(m.group(1) != "server", int(m.group(2)), n) for n in (os.listdir(logs) if os.path.isdir(logs) else [])
             if (m := RANK_LOG.match(n))]
    out = [(n, os.path.join(logs, n)) for _, _, n in sorted(ranks)]
    if launcher and os.path.isfile(events):
        out.append(("events.jsonl", events))
    return out


def _records(path):
    with open(path, "rb") as f:
        for line in f:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if isinstance(r, dict):
                yield r


def _columns(rows):
    seen = dict.fromkeys(COMMON + ["file"])
    for r in rows:
        seen.update(dict.fromkeys(r))
    return list(seen)
