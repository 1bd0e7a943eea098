#!/usr/bin/python3
"""The PyTorch side of scripts/bench-cnn and scripts/bench-mlp-optim.

Trains the network of a pstrain configuration in PyTorch with what pstrain
would do with it: the configuration is resolved by `pstrain launch --dry-run`
(so defaults and --set overrides are pstrain's own), the model is built from
its [model] section by the Python bridge (pstrain.from_model_section, so the
layers are provably the same; torch's own initialisation), and train.*
gives the optimizer, learning-rate schedule, global batch, accumulation,
clipping, epochs and max_steps with PyTorch's semantics (docs/config.md).
Data: Fashion-MNIST's IDX files from data.dir, normalised as pstrain does
(p / 255, mean 0.2860, std 0.3530, in FP32). Each epoch is a fresh random
order of the training set; the last partial step of an epoch is dropped.

  /usr/bin/python3 scripts/lib/torch_peer.py --pstrain BIN/pstrain --config FILE [--set K=V ...]
        [--world W] [--threads T] [--pin] --out DIR

--world 1: one process with T threads (torch.set_num_threads). --world W > 1:
W processes (this script again, with --rank), DistributedDataParallel over
gloo on 127.0.0.1, T threads each; every global batch is split over the
ranks in contiguous slices (as pstrain splits it over its workers), each
rank's loss is its rows' summed loss x W / (global batch), so DDP's average
is exactly the global batch's mean; --pin binds rank r to core r mod cores
(as pstrain pins its workers). Accumulation: train.accumulate microbatches
per optimizer step, DDP's no_sync on all but the last.

Writes DIR/rank-<r>.jsonl: rank 0 an `eval` line per evaluation (epoch,
step, test_accuracy, test_loss, train_s, eval_s, elapsed_s, samples,
timed_samples, timed_s), every rank a `done` line (steps, peak_rss_bytes,
wall_s, threads, torch). elapsed_s counts from the first step (data loaded,
model built, ranks met), evaluations included; timed_* leave out the first
step of each epoch, the way the pstrain figures leave out theirs.
"""
import argparse, contextlib, gzip, json, math, os, resource, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "python", "src"))
import jobs  # noqa: E402

MEAN, STD = 0.2860, 0.3530


def idx_file(folder, name):
    for n in (name + ".gz", name):
        if os.path.exists(os.path.join(folder, n)):
            return os.path.join(folder, n)
    sys.exit(f"torch_peer: {name}(.gz) not found in data.dir = {folder}")


def read_idx(path, header):
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        return f.read()[header:]


def fashion(np, folder, split, shape):
    """(features as pstrain feeds them, labels) of a Fashion-MNIST split."""
    x = np.frombuffer(read_idx(idx_file(folder, f"{split}-images-idx3-ubyte"), 16), np.uint8).reshape(-1, 784)
    y = np.frombuffer(read_idx(idx_file(folder, f"{split}-labels-idx1-ubyte"), 8), np.uint8).astype(np.int64)
    mean, std = np.float32(MEAN), np.float32(STD)
    x = x.astype(np.float32) * (np.float32(1) / (np.float32(255) * std)) + (-mean / std)
    return x.reshape((-1,) + tuple(shape)), y


def lr_at(t, step, total):
    """train.lr_schedule with train.warmup_steps at `step` of a run of `total` steps (docs/config.md)."""
    lr, warm = t["lr"], t.get("warmup_steps", 0)
    if step < warm:
        return lr * (step + 1) / warm
    s, n = step - warm, max(total - warm, 1)
    kind = t.get("lr_schedule", "cosine")
    if kind == "constant":
        return lr
    if kind == "cosine":
        return lr * 0.5 * (1 + math.cos(math.pi * s / n))
    if kind == "linear":
        return lr * (1 - s / n)
    if kind == "step":
        return lr * t.get("lr_gamma", 0.1) ** (s // t["lr_step_every"])
    sys.exit(f"torch_peer: train.lr_schedule = {kind!r} has no PyTorch mirror here")


def optimizer(torch, params, t):
    """train.optimizer with PyTorch's class of the same name; train.eps 0 means PyTorch's default."""
    kind, lr, wd, eps = t.get("optimizer", "sgd"), t["lr"], t.get("weight_decay", 0.0), t.get("eps", 0.0)
    betas = (t.get("beta1", 0.9), t.get("beta2", 0.999))
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=t.get("momentum", 0.0), weight_decay=wd,
                               nesterov=t.get("nesterov", False))
    if kind in ("adam", "adamw"):
        cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
        return cls(params, lr=lr, betas=betas, eps=eps or 1e-8, weight_decay=wd)
    if kind == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, eps=eps or 1e-10, weight_decay=wd)
    if kind == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=t.get("alpha", 0.99), eps=eps or 1e-8, weight_decay=wd,
                                   momentum=t.get("momentum", 0.0), centered=t.get("centered", False))
    sys.exit(f"torch_peer: train.optimizer = {kind!r} has no PyTorch mirror here")


def check_mirrored(cfg):
    """Refuse what this script does not reproduce, rather than measure something else."""
    data, t = cfg.get("data", {}), cfg["train"]
    if data.get("kind", "fashion-mnist") != "fashion-mnist" or data.get("format", "idx") != "idx":
        sys.exit("torch_peer: only Fashion-MNIST's IDX files (data.kind = \"fashion-mnist\") are mirrored in PyTorch")
    if data.get("validation", 0):
        sys.exit("torch_peer: data.validation is not mirrored in PyTorch")
    if t.get("precision", "fp32") != "fp32":
        sys.exit(f"torch_peer: train.precision = {t['precision']!r}: the PyTorch side trains in FP32 only")


class Trainer:
    """One process's share of the run: its model (DDP-wrapped when world > 1), data and optimizer."""

    def __init__(self, torch, np, cfg, rank, world):
        import pstrain
        self.torch, self.rank, self.world = torch, rank, world
        self.t = t = cfg["train"]
        torch.manual_seed(t.get("seed", 1))
        shape = jobs.input_shape(cfg)
        folder = cfg["data"]["dir"]
        x, y = fashion(np, folder, "train", shape)
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)
        xt, yt = fashion(np, folder, "t10k", shape)
        self.xt, self.yt = torch.from_numpy(xt), torch.from_numpy(yt)
        self.net = pstrain.from_model_section(cfg)
        self.model = torch.nn.parallel.DistributedDataParallel(self.net) if world > 1 else self.net
        self.opt = optimizer(torch, self.net.parameters(), t)
        self.rows = t["batch_size"] * t.get("accumulate", 1)
        self.per_epoch = len(self.y) // self.rows
        self.total = self.per_epoch * t["epochs"]
        if t.get("max_steps", 0) > 0:
            self.total = min(self.total, t["max_steps"])

    def order(self, epoch):
        g = self.torch.Generator().manual_seed(self.t.get("seed", 1) * 1_000_003 + epoch)
        return self.torch.randperm(len(self.y), generator=g)

    def step(self, rows, step):
        """One optimizer step on this rank's slice of the step's rows."""
        torch, W = self.torch, self.world
        mine = rows[self.rank * len(rows) // W:(self.rank + 1) * len(rows) // W]
        parts = self.t.get("accumulate", 1)
        micro = [p for p in torch.tensor_split(mine, parts) if len(p)]
        for k, mb in enumerate(micro):
            sync = k == len(micro) - 1 or W == 1
            with (contextlib.nullcontext() if sync else self.model.no_sync()):
                out = self.model(self.x[mb])
                loss = torch.nn.functional.cross_entropy(out, self.y[mb], reduction="sum") * (W / len(rows))
                loss.backward()
        if self.t.get("clip_norm", 0) > 0:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.t["clip_norm"])
        for group in self.opt.param_groups:
            group["lr"] = lr_at(self.t, step, self.total)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def evaluate(self):
        """(accuracy, mean loss) over the test set; each rank scores its contiguous slice."""
        torch, n = self.torch, len(self.yt)
        lo, hi = self.rank * n // self.world, (self.rank + 1) * n // self.world
        self.net.eval()
        sums = torch.zeros(3, dtype=torch.float64)
        with torch.no_grad():
            for a in range(lo, hi, 1000):
                b = min(a + 1000, hi)
                out = self.net(self.xt[a:b])
                sums[0] += (out.argmax(1) == self.yt[a:b]).sum().item()
                sums[1] += b - a
                sums[2] += torch.nn.functional.cross_entropy(out, self.yt[a:b], reduction="sum").item()
        self.net.train()
        if self.world > 1:
            torch.distributed.all_reduce(sums)
        return float(sums[0] / sums[1]), float(sums[2] / sums[1])


def start_process(torch, args):
    """This process's threads (--threads, one inter-op thread), its core (--pin) and its gloo group (--world > 1)."""
    torch.set_num_threads(args.threads)
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    if args.world > 1:
        if args.pin:
            os.sched_setaffinity(0, {args.rank % os.cpu_count()})
        torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{args.port}",
                                             rank=args.rank, world_size=args.world)


def finish_process(torch, args, log, steps, start):
    """The `done` line (steps, peak RSS, wall, threads), then, with several
    ranks, leaving together and without tearing gloo down."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    log.write(json.dumps(dict(event="done", rank=args.rank, steps=steps, peak_rss_bytes=rss, wall_s=time.perf_counter() - start,
                              threads=torch.get_num_threads(), torch=torch.__version__)) + "\n")
    log.close()
    if args.world > 1:
        # Leave together, and without tearing gloo down: a rank left alone in
        # destroy_process_group or the interpreter's exit once spun for minutes.
        torch.distributed.barrier()
        sys.stdout.flush()
        os._exit(0)


def train_epoch(tr, epoch, step):
    """One epoch of trainer `tr` (order(epoch), per_epoch, rows, total, step(rows, step))
    from global step `step`: (step after it, samples, the first step's seconds
    and rows, the epoch's training seconds). Shared with torch_ctr.py."""
    order, e0 = tr.order(epoch), time.perf_counter()
    first_s, first_rows, samples = 0.0, 0, 0
    for s in range(tr.per_epoch):
        if step >= tr.total:
            break
        rows = order[s * tr.rows:(s + 1) * tr.rows]
        s0 = time.perf_counter()
        tr.step(rows, step)
        if s == 0:
            first_s, first_rows = time.perf_counter() - s0, len(rows)
        step += 1
        samples += len(rows)
    return step, samples, first_s, first_rows, time.perf_counter() - e0


def train(args, cfg):
    import numpy as np
    import torch
    start_process(torch, args)
    tr = Trainer(torch, np, cfg, args.rank, args.world)
    log = open(os.path.join(args.out, f"rank-{args.rank}.jsonl"), "w")
    if args.world > 1:
        torch.distributed.barrier()
    start = time.perf_counter()
    step = 0
    for epoch in range(cfg["train"]["epochs"]):
        step, samples, first_s, first_rows, train_s = train_epoch(tr, epoch, step)
        v0 = time.perf_counter()
        acc, loss = tr.evaluate()
        done = time.perf_counter()
        if args.rank == 0:
            log.write(json.dumps(dict(event="eval", epoch=epoch + 1, step=step, test_accuracy=acc, test_loss=loss,
                                      train_s=train_s, eval_s=done - v0, elapsed_s=done - start, samples=samples,
                                      timed_samples=samples - first_rows, timed_s=train_s - first_s)) + "\n")
            log.flush()
            print(f"torch_peer: epoch {epoch + 1} step {step} test accuracy {acc * 100:.2f}% "
                  f"({samples / train_s:,.0f} samples/s, {done - start:.1f} s)", flush=True)
        if step >= tr.total:
            break
    finish_process(torch, args, log, step, start)


def spawn_ranks(args, script=None):
    """--world W: `script` (default this one; torch_ctr.py passes itself) once
    per rank, one thread each unless --threads says otherwise."""
    port = jobs.free_port()
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads),
               MKL_NUM_THREADS=str(args.threads))
    resolved = os.path.join(args.out, "resolved.toml")
    procs = []
    for r in range(args.world):
        cmd = [sys.executable, script or os.path.abspath(__file__), "--resolved", resolved, "--world", str(args.world),
               "--threads", str(args.threads), "--rank", str(r), "--port", str(port), "--out", args.out]
        procs.append(subprocess.Popen(cmd + (["--pin"] if args.pin else []), env=env))
    codes = wait_ranks(procs, grace=60)
    if any(codes):
        sys.exit(f"torch_peer: rank exit codes {codes}")


def wait_ranks(procs, grace):
    """Exit codes of the ranks; once one has ended, the others get `grace`
    seconds to end too, then they are killed (code -9)."""
    while all(p.poll() is None for p in procs):
        time.sleep(0.5)
    deadline = time.monotonic() + grace
    for r, p in enumerate(procs):
        try:
            p.wait(timeout=max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            print(f"torch_peer: rank {r} did not end within {grace} s of another rank; killed", flush=True)
            p.kill()
            p.wait()
    return [p.returncode for p in procs]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pstrain", help="the pstrain executable that resolves the configuration (its --dry-run)")
    ap.add_argument("--config")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--resolved", help="a resolved configuration (a run's run.toml) instead of --pstrain/--config/--set")
    ap.add_argument("--world", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--pin", action="store_true")
    ap.add_argument("--out", required=True)
    ap.add_argument("--rank", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.resolved:
        text = open(args.resolved).read()
    elif args.pstrain:
        text = jobs.resolved_config(args.pstrain, args.config, args.set)
    else:
        ap.error("give --pstrain (with --config/--set) or --resolved")
    cfg = jobs.parse_config(text)
    check_mirrored(cfg)
    if args.world > 1 and args.rank is None:
        with open(os.path.join(args.out, "resolved.toml"), "w") as f:
            f.write(text)
        spawn_ranks(args)
    else:
        args.rank = args.rank or 0
        train(args, cfg)


if __name__ == "__main__":
    main()
