#!/usr/bin/python3
"""The PyTorch side of scripts/bench-ctr: the click-through-rate model and
data of a pstrain configuration (the CTR spec of issue 13; docs/benchmarks.md,
"CTR") trained in PyTorch with nn.EmbeddingBag(sparse=True).

  /usr/bin/python3 scripts/lib/torch_ctr.py (--pstrain BIN/pstrain --config FILE | --config FILE | --resolved FILE)
        [--set K=V ...] [--world W] [--threads T] [--pin] --out DIR

The configuration: resolved by `pstrain launch --dry-run` with --pstrain
(pstrain's own defaults and --set), else read as written with tomllib, the
train.* keys it lacks taken from pstrain's documented defaults (DEFAULTS).
Model: pstrain.CTRModel of the [model] section (tables, layers,
interaction; the Python bridge's one definition). Data: data.format
"criteo" or "libsvm", data.train and data.test read with numpy
(pstrain.read_ctr: the spec's transforms; hash = true tables hash the raw
ids). Training: train.batch_size global rows per step (the last partial
batch of an epoch dropped, as pstrain does), a fresh random order each
epoch (torch.randperm seeded by train.seed and the epoch), mean BCE with
logits over the global batch; the MLP with train.optimizer (torch_peer's
mapping), the tables with train.sparse_optimizer ("adagrad":
torch.optim.Adagrad, "lazy_adam": torch.optim.SparseAdam, "sgd":
torch.optim.SGD without momentum) at train.sparse_lr (0: train.lr), no
weight decay on the tables (torch's sparse optimizers take none); both
learning rates follow train.lr_schedule (the sparse one scaled by the same
factor).

--world 1: one process with T threads. --world W > 1: W processes, DDP over
gloo (sparse gradients are allreduced), 1 thread each unless --threads, rank
r pinned to core r with --pin, each taking its contiguous slice of every
global batch (as pstrain's workers do), its loss its rows' summed BCE x W /
(global batch), so DDP's average is the global batch's mean.

Writes DIR/rank-<r>.jsonl: rank 0 an `eval` line per epoch (epoch, step,
test_auc, test_logloss, test_samples, train_s, eval_s, elapsed_s, samples,
timed_samples, timed_s; rank 0 scores the whole test set, the other ranks
wait), every rank a `done` line (steps, peak_rss_bytes, wall_s, threads,
torch) and a `data` line (rows, load_s). timed_* leave out the first step
of each epoch, as torch_peer.py and the pstrain figures do.
"""
import argparse, contextlib, json, os, sys, time, tomllib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "python", "src"))
import jobs, torch_peer  # noqa: E402

# pstrain's defaults of the train.* keys used here (docs/config.md), for a configuration read as written.
DEFAULTS = {"epochs": 10, "max_steps": 0, "batch_size": 128, "lr": 0.05, "lr_schedule": "cosine", "warmup_steps": 0,
            "optimizer": "sgd", "momentum": 0.9, "nesterov": False, "beta1": 0.9, "beta2": 0.999, "eps": 0.0,
            "weight_decay": 0.0001, "seed": 1, "accumulate": 1, "clip_norm": 0.0, "precision": "fp32",
            "sparse_optimizer": "adagrad", "sparse_lr": 0.0}
EVAL_ROWS = 65536


def check_mirrored(cfg):
    """Refuse what this script does not reproduce, rather than measure something else."""
    data, t, model = cfg.get("data", {}), cfg["train"], cfg.get("model", {})
    if data.get("format") not in ("criteo", "libsvm"):
        sys.exit(f"torch_ctr: data.format is {data.get('format')!r}: the CTR formats are \"criteo\" and \"libsvm\"")
    if "tables" not in model:
        sys.exit("torch_ctr: the configuration's [model] has no tables: not a CTR model")
    if model.get("loss", "bce") != "bce":
        sys.exit(f"torch_ctr: model.loss = {model['loss']!r}: a CTR model trains on \"bce\"")
    if data.get("validation", 0):
        sys.exit("torch_ctr: data.validation is not mirrored in PyTorch")
    if t.get("precision", "fp32") != "fp32":
        sys.exit(f"torch_ctr: train.precision = {t['precision']!r}: the PyTorch side trains in FP32 only")
    if t.get("clip_norm", 0) > 0:
        sys.exit("torch_ctr: train.clip_norm is not mirrored for sparse gradients")
    if t.get("sparse_optimizer", "adagrad") not in ("adagrad", "lazy_adam", "sgd"):
        sys.exit(f"torch_ctr: train.sparse_optimizer = {t['sparse_optimizer']!r} has no PyTorch mirror here")
    if data["format"] == "libsvm" and any(x.get("mode", "sum") != "sum" for x in model["tables"]):
        sys.exit("torch_ctr: libsvm's weighted bags need mode = \"sum\" (nn.EmbeddingBag's per_sample_weights)")


def sparse_optimizer(torch, params, t):
    """train.sparse_optimizer on the tables, at train.sparse_lr (0: train.lr)."""
    kind, lr, eps = t.get("sparse_optimizer", "adagrad"), t.get("sparse_lr", 0) or t["lr"], t.get("eps", 0.0)
    if kind == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, eps=eps or 1e-10)
    if kind == "lazy_adam":
        return torch.optim.SparseAdam(params, lr=lr, betas=(t.get("beta1", 0.9), t.get("beta2", 0.999)), eps=eps or 1e-8)
    return torch.optim.SGD(params, lr=lr)


class CTRTrainer:
    """One process's share of the run: the data, its model (DDP-wrapped when world > 1), two optimizers."""

    def __init__(self, torch, cfg, rank, world):
        import pstrain
        self.torch, self.rank, self.world = torch, rank, world
        self.t = t = cfg["train"]
        torch.manual_seed(t.get("seed", 1))
        self.net = pstrain.ctr_model_from_section(cfg)
        d0 = time.perf_counter()
        self.train_set = self.load(pstrain, cfg, "train")
        self.test_set = self.load(pstrain, cfg, "test") if rank == 0 else None
        self.load_s = time.perf_counter() - d0
        self.model = torch.nn.parallel.DistributedDataParallel(self.net) if world > 1 else self.net
        self.dense_opt = torch_peer.optimizer(torch, self.net.dense_parameters(), t)
        self.sparse_opt = sparse_optimizer(torch, self.net.sparse_parameters(), t)
        self.sparse_lr = t.get("sparse_lr", 0) or t["lr"]
        self.rows = t["batch_size"] * t.get("accumulate", 1)
        self.per_epoch = len(self.train_set[0]) // self.rows
        if self.per_epoch == 0:
            sys.exit(f"torch_ctr: the training set has {len(self.train_set[0])} rows, fewer than one global batch ({self.rows})")
        self.total = self.per_epoch * t["epochs"]
        if t.get("max_steps", 0) > 0:
            self.total = min(self.total, t["max_steps"])

    def load(self, pstrain, cfg, split):
        """(data set, table rows per field) of data.<split>."""
        path = cfg["data"].get(split, "")
        if not path:
            sys.exit(f"torch_ctr: data.{split} is empty: the CTR formats need both data.train and data.test")
        data = pstrain.read_ctr(path, cfg["data"]["format"])
        if data.dense.shape[1] != self.net.dense:
            sys.exit(f"torch_ctr: {path} has {data.dense.shape[1]} dense features per row, model.input says {self.net.dense}")
        return data, data.rows_of(self.net.tables)

    def batch(self, which, index):
        """(dense, ids, offsets, weights, labels) tensors of rows `index` (numpy int64) of a set."""
        from pstrain.ctr import gather
        torch, (data, rows) = self.torch, which
        ids, offsets, weights = [], [], []
        used = {f for f, _ in self.net.features}
        for f in range(len(rows)):
            if f not in used:   # a field no table embeds (model.tables[i].fields): never read
                ids.append(torch.zeros(0, dtype=torch.int64)); offsets.append(torch.zeros(0, dtype=torch.int64)); weights.append(None)
                continue
            i, o, w = gather(rows[f], data.offsets[f], data.weights[f], index)
            ids.append(torch.from_numpy(i))
            offsets.append(torch.from_numpy(o))
            weights.append(None if w is None else torch.from_numpy(w))
        return (torch.from_numpy(data.dense[index]), ids, offsets, weights if any(w is not None for w in weights) else None,
                torch.from_numpy(data.labels[index]))

    def order(self, epoch):
        g = self.torch.Generator().manual_seed(self.t.get("seed", 1) * 1_000_003 + epoch)
        return self.torch.randperm(len(self.train_set[0]), generator=g).numpy()

    def step(self, rows, step):
        """One optimizer step on this rank's contiguous slice of the step's rows."""
        torch, W = self.torch, self.world
        mine = rows[self.rank * len(rows) // W:(self.rank + 1) * len(rows) // W]
        parts = [p for p in np.array_split(mine, self.t.get("accumulate", 1)) if len(p)]
        for k, mb in enumerate(parts):
            with (contextlib.nullcontext() if k == len(parts) - 1 or W == 1 else self.model.no_sync()):
                dense, ids, offsets, weights, y = self.batch(self.train_set, mb)
                logit = self.model(dense, ids, offsets, weights)
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, y, reduction="sum") * (W / len(rows))
                loss.backward()
        factor = torch_peer.lr_at(self.t, step, self.total) / self.t["lr"]
        for opt, base in ((self.dense_opt, self.t["lr"]), (self.sparse_opt, self.sparse_lr)):
            for group in opt.param_groups:
                group["lr"] = base * factor
            opt.step()
            opt.zero_grad(set_to_none=True)

    def evaluate(self):
        """(AUC, log loss) of the whole test set (rank 0 only)."""
        from pstrain.ctr import auc, log_loss
        torch, data = self.torch, self.test_set[0]
        self.net.eval()
        logits = []
        with torch.no_grad():
            for a in range(0, len(data), EVAL_ROWS):
                dense, ids, offsets, weights, _ = self.batch(self.test_set, np.arange(a, min(a + EVAL_ROWS, len(data))))
                logits.append(self.net(dense, ids, offsets, weights).numpy())
        self.net.train()
        z = np.concatenate(logits)
        return auc(data.labels, z), log_loss(data.labels, z), len(data)


def train(args, cfg):
    import torch
    torch_peer.start_process(torch, args)
    tr = CTRTrainer(torch, cfg, args.rank, args.world)
    log = open(os.path.join(args.out, f"rank-{args.rank}.jsonl"), "w")
    log.write(json.dumps(dict(event="data", rank=args.rank, rows=len(tr.train_set[0]), load_s=tr.load_s)) + "\n")
    if args.world > 1:
        torch.distributed.barrier()
    start = time.perf_counter()
    step = 0
    for epoch in range(cfg["train"]["epochs"]):
        step, samples, first_s, first_rows, train_s = torch_peer.train_epoch(tr, epoch, step)
        if args.rank == 0:
            v0 = time.perf_counter()
            a, ll, n = tr.evaluate()
            done = time.perf_counter()
            log.write(json.dumps(dict(event="eval", epoch=epoch + 1, step=step, test_auc=a, test_logloss=ll, test_samples=n,
                                      train_s=train_s, eval_s=done - v0, elapsed_s=done - start, samples=samples,
                                      timed_samples=samples - first_rows, timed_s=train_s - first_s)) + "\n")
            log.flush()
            print(f"torch_ctr: epoch {epoch + 1} step {step} test AUC {a:.5f} log loss {ll:.5f} "
                  f"({samples / train_s:,.0f} samples/s, {done - start:.1f} s)", flush=True)
        if args.world > 1:
            torch.distributed.barrier()
        if step >= tr.total:
            break
    torch_peer.finish_process(torch, args, log, step, start)


def toml_text(doc):
    """A parsed configuration back as TOML (scalars, arrays, arrays of inline tables), for the ranks."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        raise TypeError(type(v))
    out = []
    for section, body in doc.items():
        out.append(f"[{section}]")
        out += [f"{k} = {value(v)}" for k, v in body.items()]
    return "\n".join(out) + "\n"


def as_written(path, sets):
    """A configuration read with tomllib, --set applied, DEFAULTS for the train.* keys it lacks."""
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    for s in sets:
        key, _, text = s.partition("=")
        section, _, name = key.strip().partition(".")
        try:
            doc.setdefault(section, {})[name] = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            doc.setdefault(section, {})[name] = text.strip()  # a bare string
    doc["train"] = {**DEFAULTS, **doc.get("train", {})}
    return toml_text(doc)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pstrain", help="the pstrain executable that resolves the configuration (its --dry-run)")
    ap.add_argument("--config")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--resolved", help="a resolved configuration (a run's run.toml)")
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
    elif args.config:
        text = as_written(args.config, args.set)
    else:
        ap.error("give --config (with --pstrain to resolve it), or --resolved")
    cfg = jobs.parse_config(text)
    check_mirrored(cfg)
    if args.world > 1 and args.rank is None:
        with open(os.path.join(args.out, "resolved.toml"), "w") as f:
            f.write(text)
        torch_peer.spawn_ranks(args, script=os.path.abspath(__file__))
    else:
        args.rank = args.rank or 0
        train(args, cfg)


if __name__ == "__main__":
    main()
