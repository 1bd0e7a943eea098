"""scripts/crafted: the crafted inputs of issue 20, replayed against one set of
built executables (python3 scripts/lib/crafted.py BIN_DIR [COMMAND_LINE]).

Each input is built in a temporary folder and run as a user would; the
outcome is classified as refused, crashed, hung or accepted (see
scripts/crafted). Prints one line per input and the counts."""
import hashlib, json, os, re, shutil, signal, struct, subprocess, sys, tempfile, time, zipfile

BIN = os.path.abspath(sys.argv[1])
COMMAND = sys.argv[2] if len(sys.argv) > 2 else "python3 scripts/lib/crafted.py " + sys.argv[1]
PSTRAIN = os.path.join(BIN, "pstrain")
WORK = tempfile.mkdtemp(prefix="pstrain-crafted-")
MEM_LIMIT_KB = 6 << 20          # ulimit -v for commands that are not mpirun jobs
SHORT, JOB, FIFO_JOB = 20, 60, 40
CRAFTED_LR = "1" + "_" * 117 + "979-05-27 07:32:00"   # issue 20, defect 3: toml++ asserted (SIGABRT)

# Case-sensitive: mpirun's own "the job has been aborted" is no crash.
CRASH_MARKERS = re.compile(r"Fatal error|Illegal instruction|SIGABRT|SIGILL|SIGSEGV|SIGBUS|Segmentation fault|"
                           r"^Aborted|\(core dumped\)|exited on signal|killed by signal|Assertion .* failed|"
                           r"Trace/breakpoint trap|Stack dump|Swift runtime failure|^\*\*\* Signal \d+", re.M)
# The line that names a crash best, before any other crash marker.
CRASH_CAUSE = re.compile(r"Fatal error|Swift runtime failure|Assertion .* failed|killed by signal|exited on signal")


# --- running and classifying -------------------------------------------------

class Outcome:
    def __init__(self, rc, out, timed_out, seconds):
        self.rc, self.out, self.timed_out, self.seconds = rc, out, timed_out, seconds


def run(args, cwd, timeout=SHORT, limit_memory=True):
    """Runs `args` in its own session (so a timeout ends mpirun and its ranks
    too) and returns its status and output (stdout and stderr together)."""
    def preexec():
        os.setsid()
        if limit_memory:
            import resource
            resource.setrlimit(resource.RLIMIT_AS, (MEM_LIMIT_KB << 10, MEM_LIMIT_KB << 10))
    start = time.monotonic()
    p = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         preexec_fn=preexec)
    timed_out = False
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        out = b""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            kill_session(p.pid, sig)
            try:
                out, _ = p.communicate(timeout=5)
                break
            except subprocess.TimeoutExpired:
                continue
    kill_session(p.pid, signal.SIGKILL)   # ranks left behind by a job that ended or was ended
    return Outcome(p.returncode, out.decode("utf-8", "replace"), timed_out, time.monotonic() - start)


def kill_session(sid, sig):
    """Sends `sig` to each process of session `sid` (the command's own, made
    by setsid: mpirun and its ranks), one pid at a time."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":   # field 6 of stat: the session
            try:
                os.kill(int(d), sig)
            except ProcessLookupError:
                pass


def excerpt(text, limit=150):
    """The line that says the most: a crash's, else an error's, else the last one."""
    lines = [l.strip() for l in text.replace(WORK, "$T").splitlines() if l.strip()]
    lines = [l for l in lines if not l.startswith("pstrain: running: mpirun")]
    at = next((i for i, l in enumerate(lines) if CRASH_CAUSE.search(l)), None)
    if at is None:
        at = next((i for i, l in enumerate(lines) if CRASH_MARKERS.search(l)), None)
    if at is None:
        at = next((i for i, l in enumerate(lines) if re.search(r"\berror\b", l, re.I)), None)
    if at is None:
        return (lines[-1] if lines else "(no output)")[:limit]
    pick = lines[at]
    m = re.search(r"(\w+\.(?:hpp|h|c|cpp):\d+): .*?(Assertion .* failed)", pick)
    if m:   # a C++ assert: where, and what
        pick = f"{m.group(1)}: {m.group(2)}"
    if pick.endswith(":") and at + 1 < len(lines):   # "the job cannot start:" and the reason below
        pick += " " + lines[at + 1]
    return pick if len(pick) <= limit else pick[:limit - 3] + "..."


def crashed(o):
    return not o.timed_out and (o.rc < 0 or o.rc >= 128 or bool(CRASH_MARKERS.search(o.out)))


def has_message(o):
    return bool(re.search(r"error|refus|invalid|damaged|cannot|must|not a|is not|too |beyond|exceed|is missing", o.out, re.I))


def must_refuse(o, intact=lambda: True, wrong_result=None):
    """The verdict for an input that must be refused. `intact`: nothing the
    user had was lost; `wrong_result`: for a job that exited 0, what is
    wrong with what it did (or None)."""
    if o.timed_out:
        return "hung", f"no answer in {o.seconds:.0f} s"
    if crashed(o):
        return "crashed", excerpt(o.out)
    if not intact():
        return "accepted", "LOST DATA: " + excerpt(o.out)
    if o.rc == 0:
        why = wrong_result() if wrong_result else None
        return "accepted", (why + "; " if why else "exit 0: ") + excerpt(o.out)
    if not has_message(o):
        return "accepted", f"exit {o.rc} without an error message: " + excerpt(o.out)
    return "refused", excerpt(o.out)


def must_report(o, reported, show=None):
    """The verdict for a reader with nothing to refuse (ckpt list, inspect):
    it must not crash or hang, and must report the damage when `reported`
    is given (a regular expression its output must match); `show`: the line
    to quote when it handled the input."""
    if o.timed_out:
        return "hung", f"no answer in {o.seconds:.0f} s"
    if crashed(o):
        return "crashed", excerpt(o.out)
    if reported and not re.search(reported, o.out, re.I):
        return "accepted", f"exit {o.rc}, the damage not reported: " + excerpt(o.out)
    if o.rc == 0:
        line = next((l for l in o.out.splitlines() if re.search(reported or show or "^$^", l, re.I)), None)
        return "refused", "handled, exit 0: " + (excerpt(line) if line else excerpt(o.out))
    return "refused", excerpt(o.out)


# --- what the inputs are made of ------------------------------------------------

_ESC = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESC.update({chr(c): f"\\u{c:04x}" for c in range(0x20) if chr(c) not in _ESC})
_TO_ESCAPE = re.compile('[\x00-\x1f"\\\\/]')


def _canonical(v):
    """Swift's JSONEncoder with .sortedKeys, compact (Manifest.canonicalJSON;
    python/src/pstrain/checkpoint.py canonical_json does the same by schema)."""
    if isinstance(v, dict):
        return "{" + ",".join(_canonical(k) + ":" + _canonical(v[k]) for k in sorted(v)) + "}"
    if isinstance(v, list):
        return "[" + ",".join(_canonical(x) for x in v) + "]"
    if isinstance(v, str):
        return '"' + _TO_ESCAPE.sub(lambda c: _ESC[c.group()], v) + '"'
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        r = repr(v)
        if abs(v) > 2.0 ** 53 and "e" not in r:
            sign, digits = ("-", r[1:-2]) if r.startswith("-") else ("", r[:-2])
            m = digits.rstrip("0")
            r = sign + m[0] + ("." + m[1:] if len(m) > 1 else "") + f"e+{len(digits) - 1:02d}"
        return r[:-2] if r.endswith(".0") else r
    raise TypeError(f"cannot encode {v!r}")


def checksum(m):
    m = dict(m)
    m.pop("checksum", None)
    return hashlib.sha256(_canonical(m).encode("utf-8")).hexdigest()


def edit_manifest(folder, change):
    """Applies `change` to the manifest of checkpoint `folder` and reseals it."""
    path = os.path.join(folder, "manifest.json")
    with open(path) as f:
        m = json.load(f)
    if checksum(m) != m.get("checksum"):
        raise RuntimeError(f"{path}: the harness does not reproduce the manifest's checksum")
    change(m)
    m["checksum"] = checksum(m)
    with open(path, "w") as f:
        json.dump(m, f)


def rehash_file(folder, name):
    """Updates file `name`'s bytes and sha256 in the manifest of `folder` (resealed)."""
    data = open(os.path.join(folder, name), "rb").read()

    def change(m):
        for e in m["files"]:
            if e["name"] == name:
                e["bytes"], e["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    edit_manifest(folder, change)


def poke_safetensors(path, tensor, value):
    """Writes FP32 `value` into element 0 of `tensor` of a safetensors file."""
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        if tensor not in header:
            raise RuntimeError(f"{path} has no tensor {tensor}")
        f.seek(8 + n + header[tensor]["data_offsets"][0])
        f.write(struct.pack("<f", value))


def npy(dtype, shape, data=b""):
    """A .npy file (version 1.0)."""
    head = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        dtype, "".join(f"{d}, " for d in shape) if len(shape) == 1 else ", ".join(str(d) for d in shape))
    head += " " * ((64 - (10 + len(head) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head.encode() + data


def write_npz(path, arrays):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, blob in arrays.items():
            z.writestr(name + ".npy", blob)


def write_safetensors(path, tensors):
    """tensors: name -> (dtype, shape, bytes)."""
    header, blobs, at = {}, b"", 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + len(data)]}
        blobs += data
        at += len(data)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + blobs)


def copy_run(src, name):
    dst = os.path.join(WORK, name)
    shutil.copytree(src, dst, symlinks=True)
    return dst


def server_records(run_dir, event):
    out = []
    path = os.path.join(run_dir, "logs", "server-0.jsonl")
    if os.path.exists(path):
        for line in open(path, errors="replace"):
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if isinstance(r, dict) and (event is None or r.get("event") == event):
                out.append(r)
    return out


def wrong_training(run_dir):
    """What a job that exited 0 got wrong: NaN or infinite losses, skipped steps."""
    def why():
        records = server_records(run_dir, None)
        starts = [i for i, r in enumerate(records) if r.get("event") == "start"]
        steps = [r for r in records[starts[-1] if starts else 0:] if r.get("event") == "step"]   # this attempt's
        bad = [r for r in steps if not isinstance(r.get("loss"), (int, float)) or r["loss"] != r["loss"]
               or abs(r["loss"]) == float("inf")]
        skipped = [r for r in steps if r.get("skipped") or r.get("overflow")]
        if not steps:
            return "exit 0 with no step logged"
        parts = []
        if bad:
            parts.append(f"{len(bad)} of {len(steps)} steps with a NaN/inf loss")
        if skipped:
            parts.append(f"{len(skipped)} of {len(steps)} steps skipped")
        return "exit 0, trained: " + (", ".join(parts) if parts else f"{len(steps)} steps, losses finite")
    return why


# --- the inputs ---------------------------------------------------------------

results = []          # (id, what, verdict, excerpt)
not_replayable = []   # (id, what, why)
setup_failures = []


def record(iid, what, verdict_and_excerpt):
    verdict, text = verdict_and_excerpt
    results.append((iid, what, verdict, text))
    print(f"{iid:<4} {what:<66} {verdict:<9} {text}", flush=True)


def setup(name, args, cwd, check):
    """A real run the inputs are made from; None (and noted) when it fails."""
    o = run(args, cwd, timeout=180, limit_memory=False)
    if o.rc != 0 or not check():
        setup_failures.append(f"{name}: exit {o.rc}{' (timed out)' if o.timed_out else ''}: {excerpt(o.out)}")
        print(f"setup {name} FAILED: {excerpt(o.out)}", flush=True)
        return False
    return True


def launch(*extra, run_dir, workers=2, servers=1):
    return [PSTRAIN, "launch", "--workers", str(workers), "--servers", str(servers), *extra, "--run-dir", run_dir]


def main():
    print(f"crafted: executables {BIN}; work folder {WORK}", flush=True)
    P = PSTRAIN

    # Setup: three small real runs made by the executables under test.
    base = os.path.join(WORK, "base")
    ok_base = setup("mlp-adam run", launch("--epochs", "1", "--set", "train.max_steps=20", "--set",
                                           "checkpoint.every_steps=10", "--set", 'train.optimizer="adam"',
                                           "--set", "train.lr=0.001", run_dir=base), WORK,
                    lambda: os.path.exists(os.path.join(base, "checkpoints", "step-20", "manifest.json")))
    ctr_data = os.path.join(WORK, "ctr")
    ctr_run = os.path.join(WORK, "ctr-run")
    ok_ctr = setup("make-ctr tiny", [P, "data", "make-ctr", "--preset", "tiny", "--out", ctr_data], WORK,
                   lambda: os.path.exists(os.path.join(ctr_data, "ctr.toml")))
    ok_ctr = ok_ctr and setup("ctr run", launch("--config", os.path.join(ctr_data, "ctr.toml"), "--epochs", "2", "--set",
                                                "train.max_steps=20", "--set", "checkpoint.every_steps=10",
                                                run_dir=ctr_run, workers=1, servers=1), WORK,
                              lambda: os.path.exists(os.path.join(ctr_run, "checkpoints", "step-10", "manifest.json")))
    csv_file = os.path.join(WORK, "data.csv")
    with open(csv_file, "w") as f:
        f.write("label," + ",".join(f"f{j}" for j in range(10)) + "\n")
        for i in range(3000):
            f.write(f"{i % 10}," + ",".join(f"{((i * 7 + j * 13) % 97) / 97:.4f}" for j in range(10)) + "\n")
    csv_run = os.path.join(WORK, "csv-run")
    ok_csv = setup("csv run", launch("--epochs", "1", "--set", 'data.format="csv"', "--set", f'data.train="{csv_file}"',
                                     "--set", f'data.test="{csv_file}"', "--set", "model.input=10", "--set",
                                     "train.max_steps=20", "--set", "checkpoint.every_steps=10", run_dir=csv_run,
                                     workers=1, servers=1), WORK,
                   lambda: os.path.exists(os.path.join(csv_run, "checkpoints", "step-10", "manifest.json")))

    # 1. ckpt export --out: the run itself, and an existing file.
    if ok_base:
        r = copy_run(base, "export-self")
        record("1a", "ckpt export RUN --out RUN (the run folder)",
               must_refuse(run([P, "ckpt", "export", r, "--out", r], WORK),
                           intact=lambda: os.path.isdir(os.path.join(r, "checkpoints", "step-20"))))
        keep = os.path.join(WORK, "keep.txt")
        with open(keep, "w") as f:
            f.write("the user's file\n")
        record("1b", "ckpt export RUN --out EXISTING-FILE (no --force)",
               must_refuse(run([P, "ckpt", "export", base, "--out", keep], WORK),
                           intact=lambda: open(keep, "rb").read() == b"the user's file\n"))
    not_replayable.append(("2", "RowAnnounce of 2^28 rows / 2e9 bytes to a server",
                           "not replayable from the CLI (a worker's message; unit test "
                           "TableTrainingReleaseTests.testRowAnnouncementsAreBoundedByTheServersLimit, fuzz target rows)"))

    # 3. The TOML that made toml++ assert: a file, --set, a checkpoint's manifest.
    cfg = os.path.join(WORK, "crafted.toml")
    with open(cfg, "w") as f:
        f.write(f"[train]\nlr = {CRAFTED_LR}\n")
    record("3a", "launch --dry-run --config FILE (lr = 1___...979-05-27 07:32:00)",
           must_refuse(run([P, "launch", "--dry-run", "--config", cfg], WORK)))
    record("3b", "launch --dry-run --set train.lr=1___...979-05-27 07:32:00",
           must_refuse(run([P, "launch", "--dry-run", "--set", "train.lr=" + CRAFTED_LR], WORK)))
    if ok_base:
        r = copy_run(base, "manifest-toml")

        def crafted_config(m):
            text, n = re.subn(r"(?m)^lr = .*$", "lr = " + CRAFTED_LR, m["config"], count=1)
            m["config"] = text if n else m["config"] + f"\n[train]\nlr = {CRAFTED_LR}\n"
        edit_manifest(os.path.join(r, "checkpoints", "step-20"), crafted_config)
        record("3c", "ckpt verify RUN, manifest config holds the TOML (resealed)",
               must_refuse(run([P, "ckpt", "verify", r], WORK)))
        record("3d", "ckpt list RUN, same checkpoint",
               must_report(run([P, "ckpt", "list", r], WORK), r"step-20\s+(?!ok\b)\S+"))
        record("3e", "inspect RUN, same checkpoint",
               must_report(run([P, "inspect", r], WORK), r"step-20 (?!ok\b)\S+"))
        record("3f", "resume RUN --from step-20, same checkpoint",
               must_refuse(run([P, "resume", r, "--from", "step-20"], WORK, timeout=JOB, limit_memory=False)))
    not_replayable.append(("4", "symlink planted at <cache>.pstrain-ctr.tmp-<pid>",
                           "not replayable from the CLI: the pid is not known in advance "
                           "(unit test CTRDataTests.testCacheWritesDoNotFollowPlantedLinks)"))

    # 5. Data files whose x has the shape (0, 2^62, 2^62).
    big = 1 << 62
    zero_npz = os.path.join(WORK, "zero-axis.npz")
    write_npz(zero_npz, {"x": npy("<f4", (0, big, big)), "y": npy("<i8", (0,))})
    zero_st = os.path.join(WORK, "zero-axis.safetensors")
    write_safetensors(zero_st, {"x": ("F32", [0, big, big], b""), "y": ("I64", [0], b"")})
    for iid, fmt, path in (("5a", "npz", zero_npz), ("5b", "safetensors", zero_st)):
        rd = os.path.join(WORK, f"run-{iid}")
        record(iid, f"launch, {fmt} data with x of shape (0, 2^62, 2^62)",
               must_refuse(run(launch("--epochs", "1", "--set", f'data.format="{fmt}"', "--set", f'data.train="{path}"',
                                      "--set", f'data.test="{path}"', run_dir=rd), WORK, timeout=JOB, limit_memory=False),
                           wrong_result=wrong_training(rd)))

    # 6. ckpt export of a run whose hashed table has 2^34 rows.
    if ok_ctr:
        r = copy_run(ctr_run, "export-huge-table")
        step = os.path.join(r, "checkpoints", "step-20")

        def huge_table(m):
            lines = m["config"].split("\n")
            k = next((i for i, l in enumerate(lines) if "embedding_bag" in l and "rows = " in l), None)
            if k is None:
                raise RuntimeError("the click-log run's manifest has no table to enlarge")
            lines[k] = re.sub(r"hash = \w+", "hash = true", re.sub(r"rows = \d+", "rows = 17179869184", lines[k]))
            m["config"] = "\n".join(lines)
        edit_manifest(step, huge_table)
        out = os.path.join(WORK, "huge-table.safetensors")
        record("6", "ckpt export, table 0 rows = 2^34 hashed (dim 16; resealed)",
               must_refuse(run([P, "ckpt", "export", r, "--out", out], WORK)))

    # 7. Finite data that is not finite in FP32.
    n = 256
    far = os.path.join(WORK, "far.npz")
    write_npz(far, {"x": npy("<f8", (n, 784), struct.pack(f"<{n * 784}d", *([1e39] * (n * 784)))),
                    "y": npy("<i8", (n,), struct.pack(f"<{n}q", *[i % 10 for i in range(n)]))})
    rd = os.path.join(WORK, "run-7a")
    record("7a", "launch, npz float64 features of 1e39 (data.normalize none)",
           must_refuse(run(launch("--epochs", "1", "--set", 'data.format="npz"', "--set", f'data.train="{far}"',
                                  "--set", f'data.test="{far}"', "--set", 'data.normalize="none"', run_dir=rd),
                           WORK, timeout=JOB, limit_memory=False), wrong_result=wrong_training(rd)))
    rd = os.path.join(WORK, "run-7b")
    record("7b", "launch, data.normalize scalar with data.std=1e-50 (IDX)",
           must_refuse(run(launch("--epochs", "1", "--set", "train.max_steps=20", "--set", 'data.normalize="scalar"',
                                  "--set", "data.std=1e-50", run_dir=rd), WORK, timeout=JOB, limit_memory=False),
                       wrong_result=wrong_training(rd)))

    # 8. NaN written into the data caches, then training on them (resume from step-10).
    if ok_csv:
        r = copy_run(csv_run, "csv-nan")
        caches = [os.path.join(r, "data-cache", c) for c in os.listdir(os.path.join(r, "data-cache"))
                  if c.endswith(".pstrain-cache") and c.startswith("data.csv")]
        for c in caches:
            with open(c, "r+b") as f:
                f.seek(32)
                rows, feats, off = struct.unpack("<QQQ", f.read(24))
                for i in range(rows):
                    f.seek(off + 4 * feats * i)
                    f.write(struct.pack("<f", float("nan")))
        record("8a", f"resume, NaN in feature 0 of every row of the CSV cache",
               must_refuse(run([P, "resume", r, "--from", "step-10"], WORK, timeout=JOB, limit_memory=False),
                           wrong_result=wrong_training(r)))
    if ok_ctr:
        r = copy_run(ctr_run, "ctr-nan")
        for c in os.listdir(os.path.join(r, "data-cache")):
            if c.endswith(".pstrain-ctr"):
                path = os.path.join(r, "data-cache", c)
                with open(path, "r+b") as f:
                    f.seek(32)
                    rows = struct.unpack("<Q", f.read(8))[0]
                    f.seek(56)
                    off = struct.unpack("<Q", f.read(8))[0]
                    for i in range(rows):
                        f.seek(off + 272 * i + 208)
                        f.write(struct.pack("<f", float("nan")))
        record("8b", "resume, NaN in dense feature 0 of every Criteo cache record",
               must_refuse(run([P, "resume", r, "--from", "step-10"], WORK, timeout=JOB, limit_memory=False),
                           wrong_result=wrong_training(r)))
    not_replayable.append(("9", "Python bridge: checkpoint files as links/FIFOs, LATEST outside the run, negative shapes",
                           "covered elsewhere (python/tests)"))

    # 10. data make-ctr's options.
    for iid, what, extra, out in (
            ("10a", "make-ctr --test-rows 9223372036854775800", ["--test-rows", "9223372036854775800"], "mc-a"),
            ("10b", "make-ctr --test-rows 1000000000000", ["--test-rows", "1000000000000"], "mc-b"),
            ("10c", "make-ctr --fields 4294967295,10,...(26)", ["--fields", ",".join(["4294967295"] + ["10"] * 25)],
             "mc-c"),
            ("10d", "make-ctr --out 'DIR<newline>x'", [], "mc-d\nx")):
        out_dir = os.path.join(WORK, out)
        record(iid, what, must_refuse(run([P, "data", "make-ctr", "--out", out_dir, *extra], WORK)))
        if os.path.isdir(out_dir):
            shutil.rmtree(out_dir, ignore_errors=True)

    # 11. inspect on edited logs.
    if ok_base:
        r = copy_run(base, "log-huge-ints")
        last = server_records(r, "step")[-1]
        huge = {k: (9223372036854775807 if isinstance(v, int) and not isinstance(v, bool) and k not in ("v", "rank", "index") else v)
                for k, v in last.items()}
        with open(os.path.join(r, "logs", "server-0.jsonl"), "a") as f:
            f.write(json.dumps(huge) + "\n")
        record("11a", "inspect RUN, a step record of 9223372036854775807s",
               must_report(run([P, "inspect", r], WORK), None, show=r"^progress"))
        r = copy_run(base, "log-huge-loss")
        with open(os.path.join(r, "logs", "server-0.jsonl"), "a") as f:
            for k, loss in enumerate((1e308, -1e308)):
                f.write(json.dumps(dict(last, step=last["step"] + 1 + k, loss=loss)) + "\n")
        record("11b", "inspect RUN, step records with losses 1e308 and -1e308",
               must_report(run([P, "inspect", r], WORK), None, show=r"^loss"))
    not_replayable.append(("12", "Python libsvm reader: 1e39, \\x1c, Arabic-Indic digits, 1_0",
                           "covered elsewhere (python/tests, the differential corpus test)"))

    # 13. Lower severity: a FIFO as IDX data, checkpoint values.
    fifo_dir = os.path.join(WORK, "fifo")
    os.makedirs(fifo_dir)
    fifo = os.path.join(fifo_dir, "x-images-idx3-ubyte")
    os.mkfifo(fifo)
    os.mkfifo(os.path.join(fifo_dir, "x-labels-idx1-ubyte"))
    rd = os.path.join(WORK, "run-13a")
    record("13a", "launch, data.train = a FIFO (IDX)",
           must_refuse(run(launch("--epochs", "1", "--set", f'data.train="{fifo}"', run_dir=rd), WORK,
                           timeout=FIFO_JOB, limit_memory=False), wrong_result=wrong_training(rd)))
    if ok_base:
        r = copy_run(base, "scale-zero")
        edit_manifest(os.path.join(r, "checkpoints", "step-20"), lambda m: m["scaler"].update(scale=0))
        record("13b", "ckpt verify RUN, manifest scaler.scale = 0 (resealed)", must_refuse(run([P, "ckpt", "verify", r], WORK)))
        for iid, tensor, value, what in (("13c", "layers.0.weight.exp_avg_sq", -1.0, "exp_avg_sq[0] = -1"),
                                         ("13d", "layers.0.weight.exp_avg", float("nan"), "exp_avg[0] = NaN")):
            r = copy_run(base, f"state-{iid}")
            step = os.path.join(r, "checkpoints", "step-20")
            poke_safetensors(os.path.join(step, "server-0.safetensors"), tensor, value)
            rehash_file(step, "server-0.safetensors")
            record(iid, f"ckpt verify RUN, server file {what} (rehashed, resealed)",
                   must_refuse(run([P, "ckpt", "verify", r], WORK)))

    for iid, what, why in not_replayable:
        print(f"{iid:<4} {what:<66} {'-':<9} {why}")
    counts = {v: sum(1 for r in results if r[2] == v) for v in ("refused", "crashed", "hung", "accepted")}
    handled = sum(1 for r in results if r[2] == "refused" and r[3].startswith("handled"))
    print(f"tried {len(results)}; refused {counts['refused']}, crashed {counts['crashed']}, hung {counts['hung']}, "
          f"accepted {counts['accepted']}")
    print(f"  ({handled} of the refused are readers with nothing to refuse that handled the input: exit 0, no trap; "
          f"{len(not_replayable)} inputs not replayable from the CLI, not counted)")
    print(f"  made by: {COMMAND}  (executables {BIN})")
    if setup_failures:
        print("crafted: setup runs failed, so the inputs made from them were not tried: " + "; ".join(setup_failures))
    if os.environ.get("CRAFTED_KEEP"):
        print(f"crafted: kept {WORK}")
    else:
        shutil.rmtree(WORK, ignore_errors=True)
    return 2 if setup_failures else 0


if __name__ == "__main__":
    sys.exit(main())
