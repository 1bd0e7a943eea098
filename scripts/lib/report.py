"""How scripts/bench-cnn and scripts/bench-mlp-optim print their figures: a
text table, the commands, and the same as markdown to append to
docs/benchmarks.md; the FLOPs of a training step of a model and the
machine's FP32 peak (`pstrain-bench peak`) for the fraction of peak."""
import os, re, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python", "src"))


def flops_per_sample(cfg):
    """FLOPs of one training sample (forward and backward) in the layers that
    multiply (conv2d, dense), as `pstrain-bench layers` counts them: 2 per
    multiply-add, backward twice forward, except the first layer's input
    gradient, which neither side computes."""
    from pstrain import layers as L
    shape = L.parse_input(cfg["model"]["input"])
    total, first = 0.0, True
    for i, entry in enumerate(cfg["model"]["layers"]):
        e = L.normalize(entry, i)
        out = L.output_shape(e, shape, i)
        macs = 0
        if e["type"] == "conv2d":
            macs = out[0] * out[1] * out[2] * shape[0] * e["kernel"] ** 2
        elif e["type"] == "dense":
            macs = shape[0] * e["units"]
        if macs:
            total += 2 * macs * (2 if first else 3)
            first = False
        shape = out
    return total


def executed_flops(bindir, config):
    """(FLOPs per training sample pstrain's sgemms execute, the command):
    `pstrain-bench layers` counts Winograd convolutions by their sgemms,
    where flops_per_sample counts the direct convolution. None if the
    build does not print it."""
    cmd = [os.path.join(bindir, "pstrain-bench"), "layers", "--config", config]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    m = re.search(r"executed ([0-9.]+) MFLOP per training sample", out)
    return (float(m.group(1)) * 1e6 if m else None), " ".join(["$BIN/pstrain-bench"] + cmd[1:])


def machine_peak(bindir):
    """(GFLOP/s of the whole machine, the benchmark's line, its command): one
    thread's large sgemm per CPU second times the cores. Where OpenBLAS runs
    generic kernels on this CPU, measured again with the OPENBLAS_CORETYPE
    that pstrain launch would give its ranks, which is then set in this
    process's environment so that the PyTorch runs get it too."""
    cmd = [os.path.join(bindir, "pstrain-bench"), "peak"]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    core = re.search(r"OPENBLAS_CORETYPE=(\w+)", out)
    shown = "$BIN/pstrain-bench peak"
    if core:
        os.environ["OPENBLAS_CORETYPE"] = core.group(1)
        out = subprocess.run(cmd, capture_output=True, text=True).stdout
        shown = f"OPENBLAS_CORETYPE={core.group(1)} {shown}"
    m = re.search(r"= ([\d.]+) GFLOP/s FP32 machine peak", out)
    if not m:
        sys.exit(f"bench: {' '.join(cmd)} gave no peak:\n{out}")
    return float(m.group(1)), out.strip(), shown


def pct(x):
    return "-" if x is None else f"{x * 100:.2f}%"


def secs(x):
    return "-" if x is None else f"{x:,.1f} s"


def num(x, fmt=",.0f"):
    return "-" if x is None else format(x, fmt)


def rss_text(rss):
    return ", ".join(f"{k} {v / 1e6:,.0f} MB" for k, v in rss.items()) or "-"


def reach_cells(r, targets):
    cells = []
    for t in targets:
        hit = r.reach(t)
        cells += ["not reached", "-"] if hit is None else [str(hit[0]), secs(hit[1])]
    return cells


def summary_rows(results, targets, flops=None, peak=None):
    """Header and one row per result: reach per target, final, samples/s, GFLOP/s and % of peak, wall, RSS."""
    head = ["run"]
    for t in targets:
        head += [f"epochs to {t * 100:g}%", f"time to {t * 100:g}%"]
    head += ["final accuracy (epochs)", "train samples/s"]
    if flops:
        head += ["GFLOP/s"] + (["of FP32 peak"] if peak else [])
    head += ["process wall", "peak RSS per rank"]
    rows = []
    for r in results:
        if r.error:
            rows.append([r.name, f"FAILED: {r.error.splitlines()[0]}"] + [""] * (len(head) - 2))
            continue
        row = [r.name] + reach_cells(r, targets)
        row += [f"{pct(r.final)} ({r.evals[-1]['epoch'] if r.evals else '-'})", num(r.train_sps)]
        if flops:
            g = r.train_sps * flops / 1e9 if r.train_sps else None
            row += [num(g, ".1f")] + ([pct(g / peak) if g else "-"] if peak else [])
        row += [secs(r.process_s), rss_text(r.rss)]
        rows.append(row)
    return head, rows


def epoch_rows(results):
    """Header and one row per epoch: each result's test accuracy and elapsed seconds."""
    epochs = sorted({e["epoch"] for r in results for e in r.evals})
    head = ["epoch"] + [r.name for r in results]
    rows = []
    for ep in epochs:
        row = [str(ep)]
        for r in results:
            e = next((x for x in r.evals if x["epoch"] == ep), None)
            row.append("-" if e is None else f"{pct(e['test_accuracy'])} ({e['elapsed_s']:,.1f} s)")
        rows.append(row)
    return head, rows


def text_table(head, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in rows])


def md_table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(out + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def commands_block(results, extra=()):
    return "\n".join(["```"] + [f"$ {c}" for c in extra] + [f"$ {r.command}    # {r.name}" for r in results] + ["```"])


def publish(md, path):
    """Prints the markdown section, and appends it to `path` when given."""
    print("\n## markdown\n\n" + md)
    if path:
        with open(path, "a") as f:
            f.write("\n" + md)
