"""What scripts/bench-cnn and scripts/bench-mlp-optim share: the resolved
configuration of a pstrain job, the job itself and its PyTorch peer
(torch_peer.py: one process, or DDP over gloo) run on the same
configuration, and the figures each leaves behind as a `Result`.

Figures, the same way for both sides:
- elapsed_s of an evaluation: seconds from the start of training (pstrain:
  the latest `start` record of any rank, when every rank has its data; torch:
  after the data is loaded, the model built and the ranks met) to the end of
  that evaluation, evaluations before it included;
- train samples/s: samples over the seconds of the steps, leaving out the
  first step of each epoch (pstrain's holds the previous evaluation or the
  start-up wait; torch's the first-step warm-up), so evaluation is excluded;
- peak RSS per rank (pstrain: the `done` records; torch: getrusage).
"""
import contextlib, os, shlex, shutil, socket, subprocess, sys, tempfile, time, tomllib
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TORCH_PEER = os.path.join(HERE, "torch_peer.py")
sys.path.insert(0, HERE)
from builds import records  # noqa: E402

# train.* keys the PyTorch peer reproduces; --set of any other train/scaler/compression key only changes pstrain.
MIRRORED = {"epochs", "max_steps", "batch_size", "lr", "lr_schedule", "warmup_steps", "lr_step_every", "lr_gamma",
            "optimizer", "momentum", "nesterov", "beta1", "beta2", "eps", "weight_decay", "clip_norm", "seed",
            "accumulate"}


def add_arguments(ap, config):
    """The options every comparison script takes."""
    ap.add_argument("--config", default=config, help=f"the pstrain configuration (default {config})")
    ap.add_argument("--epochs", type=int, help="train.epochs for every run (default: the configuration's)")
    ap.add_argument("--max-steps", type=int, help="train.max_steps for every run (a short check)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a configuration override for pstrain, mirrored in PyTorch where it is a train.* key it reproduces")
    ap.add_argument("--bin", help="folder of built executables (default: swift build -c release here)")
    ap.add_argument("--python", default="/usr/bin/python3", help="a Python with torch (default: Debian's)")
    ap.add_argument("--keep", help="keep the run directories in this folder (default: a temporary one, removed)")
    ap.add_argument("--markdown", help="append the markdown section to this file as well")


def finish_arguments(args):
    """args.sets: --set, then --epochs and --max-steps as keys; args.config: an absolute path
    (as given, else relative to the repository)."""
    args.sets = list(args.set) + ([f"train.epochs={args.epochs}"] if args.epochs else []) \
        + ([f"train.max_steps={args.max_steps}"] if args.max_steps else [])
    args.config = os.path.abspath(args.config if os.path.exists(args.config) else os.path.join(ROOT, args.config))
    return args


@contextlib.contextmanager
def work_dir(keep, prefix):
    """`keep` (created), or a temporary folder removed afterwards."""
    path = keep or tempfile.mkdtemp(prefix=prefix)
    os.makedirs(path, exist_ok=True)
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def resolved_config(pstrain, config, sets):
    """The configuration pstrain would run (`pstrain launch --dry-run`), as TOML text."""
    cmd = with_sets([pstrain, "launch", "--dry-run"] + (["--config", config] if config else []), sets)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"bench: {shlex.join(cmd)} failed:\n{p.stdout}{p.stderr}")
    lines = p.stdout.splitlines()
    body = [l for l in lines[1:] if not l.startswith("pstrain: ")]
    return "\n".join(body).strip() + "\n"


def parse_config(text):
    return tomllib.loads(text)


def input_shape(cfg):
    i = cfg["model"]["input"]
    return (i,) if isinstance(i, int) else tuple(i)


def not_mirrored(sets):
    """The --set keys the PyTorch side does not reproduce."""
    out = []
    for s in sets:
        key = s.split("=", 1)[0].strip()
        section, _, name = key.partition(".")
        if section not in ("model", "data", "run", "checkpoint") and not (section == "train" and name in MIRRORED):
            out.append(s)
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Result:
    name: str
    command: str
    evals: list = field(default_factory=list)   # dicts: epoch, step, test_accuracy, elapsed_s
    train_sps: float = None                     # samples/s without evaluation (see the module's notes)
    process_s: float = None                     # the command's wall time, start-up included
    rss: dict = field(default_factory=dict)     # rank label -> peak RSS bytes
    steps: int = None                           # optimizer steps the run made
    planned: int = None                         # pstrain: the steps of the run (its `start` record), the schedule's length
    lrs: list = field(default_factory=list)     # pstrain: (step, lr) of each server step record
    error: str = None

    @property
    def final(self):
        return self.evals[-1]["test_accuracy"] if self.evals else None

    def reach(self, target):
        """(epoch, elapsed_s) of the first evaluation at or above `target`, or None."""
        for e in self.evals:
            if e["test_accuracy"] >= target - 1e-12:
                return e["epoch"], e["elapsed_s"]
        return None


def run_logged(cmd, log_path, env=None):
    """Runs `cmd` with its output in `log_path`; (seconds, error text or None)."""
    t0 = time.monotonic()
    with open(log_path, "w") as out:
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
    took = time.monotonic() - t0
    if rc == 0:
        return took, None
    with open(log_path) as f:
        return took, f"exit code {rc}; last lines of {log_path}:\n" + "".join(f.readlines()[-15:])


def display(cmd, bindir):
    return shlex.join(cmd).replace(bindir, "$BIN").replace(ROOT + "/", "")


def with_sets(cmd, sets):
    return cmd + [a for s in sets for a in ("--set", s)]


def run_job(name, cmd, bindir, flag, path, reader, env=None):
    """Runs `cmd` with `flag path` (its output folder) and reads its figures with `reader`."""
    r = Result(name, display(cmd, bindir) + f" {flag} DIR")
    r.process_s, r.error = run_logged(cmd + [flag, path], path + ".out", env)
    if r.error is None:
        reader(r, path)
    return r


def run_pstrain(name, bindir, config, sets, workers, servers, run_dir):
    cmd = [os.path.join(bindir, "pstrain"), "launch", "--config", config, "--workers", str(workers), "--servers", str(servers)]
    return run_job(name, with_sets(cmd, sets), bindir, "--run-dir", run_dir, read_pstrain)


def read_pstrain(r, run_dir):
    logs = os.path.join(run_dir, "logs")
    files = sorted(f for f in os.listdir(logs) if f.endswith(".jsonl"))
    t0 = max(rec["t"] for f in files for rec in records(os.path.join(logs, f), "start"))
    server = os.path.join(logs, "server-0.jsonl")
    r.evals = [dict(epoch=e["epoch"], step=e["step"], test_accuracy=e["test_accuracy"], elapsed_s=e["t"] - t0)
               for e in records(server, "eval")]
    start = records(server, "start")[-1]
    per, r.planned = start["steps_per_epoch"], start["steps"]
    steps = records(server, "step")
    r.steps, r.lrs = len(steps), [(s["step"], s["lr"]) for s in steps]
    timed = [s for s in steps if s["step"] % per != 0]
    if timed:
        r.train_sps = sum(s["samples"] for s in timed) / sum(s["step_s"] for s in timed)
    for f in files:
        for d in records(os.path.join(logs, f), "done"):
            r.rss[f[:-len(".jsonl")]] = d["peak_rss_bytes"]


def run_torch(name, python, bindir, config, sets, world, threads, pin, out_dir):
    cmd = with_sets([python, TORCH_PEER, "--pstrain", os.path.join(bindir, "pstrain"), "--config", config], sets)
    cmd += ["--world", str(world), "--threads", str(threads)] + (["--pin"] if pin else [])
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env.pop("LD_LIBRARY_PATH", None)
    return run_job(name, cmd, bindir, "--out", out_dir, read_torch, env)


def read_torch(r, out_dir):
    log = os.path.join(out_dir, "rank-0.jsonl")
    evals = records(log, "eval")
    r.evals = [dict(epoch=e["epoch"], step=e["step"], test_accuracy=e["test_accuracy"], elapsed_s=e["elapsed_s"])
               for e in evals]
    timed_s = sum(e["timed_s"] for e in evals)
    if timed_s > 0:
        r.train_sps = sum(e["timed_samples"] for e in evals) / timed_s
    for f in sorted(os.listdir(out_dir)):
        if f.startswith("rank-") and f.endswith(".jsonl"):
            for d in records(os.path.join(out_dir, f), "done"):
                r.rss[f"rank-{d['rank']}"] = d["peak_rss_bytes"]
                r.steps = d["steps"]


def same_training(ps, others, cfg):
    """Lines that check the PyTorch runs trained as pstrain did: the same
    number of optimizer steps, and pstrain's logged learning rate of every
    step equal (to 1e-6 relative; pstrain logs it as FP32) to the schedule
    the PyTorch side computes (torch_peer.lr_at)."""
    from torch_peer import lr_at
    if ps.error or not ps.lrs:
        return []
    lines = []
    bad = [(k, lr, lr_at(cfg["train"], k, ps.planned)) for k, lr in ps.lrs]
    bad = [b for b in bad if abs(b[1] - b[2]) > 1e-6 * max(abs(b[2]), 1e-12)]
    lines.append(f"learning rates: pstrain's {len(ps.lrs)} per-step values equal the PyTorch side's schedule" if not bad else
                 f"learning rates DIFFER at {len(bad)} of {len(ps.lrs)} steps, first at step {bad[0][0]}: "
                 f"pstrain {bad[0][1]:.8g}, PyTorch side {bad[0][2]:.8g}")
    for o in others:
        if not o.error and o.steps != ps.steps:
            lines.append(f"optimizer steps DIFFER: pstrain {ps.steps}, {o.name} {o.steps}")
    return lines


def machine():
    with open("/proc/cpuinfo") as f:
        model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "unknown CPU")
    return f"{os.cpu_count()} cores, {model}, {time.strftime('%Y-%m-%d', time.gmtime())}"


def torch_version(python):
    p = subprocess.run([python, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"bench: {python} cannot import torch (Debian: scripts/bootstrap --python installs python3-torch); "
                 f"give another interpreter with --python\n{p.stderr[-500:]}")
    return p.stdout.strip()
