#!/bin/bash
# The CTR workload on a machine with more cores (a 16-core device lent to
# some sessions), from the release bundle of ../shared/tools/device-bundle:
# scaling of pstrain's samples/s over world sizes on make-ctr's bench data,
# and checks that 2 cores cannot make: two W=8 S=4 runs end with the same
# bits on every rank, a W=8 S=3 run exports the same tables and weights as
# W=8 S=4 (a row's arithmetic does not depend on its server), and the dense
# MLP at W=8 S=4 is reproducible too. docs/scaling.md has the figures.
#   bash scripts/device/ctr-scale.sh OUTDIR      (with .device-bundle/pkg/psb.tar.xz beside)
set -u
OUT=${1:?outdir}; mkdir -p "$OUT"
mkdir -p /tmp/b && tar xJf .device-bundle/pkg/psb.tar.xz -C /tmp/b
cd /tmp/b/psb && . ./env.sh
P=$B/bin/pstrain; M=$B/ompi/bin/mpirun; R=/tmp/r; rm -rf $R; mkdir -p $R
echo "== $(nproc) cpus; $(lscpu | grep -E '^Model name' | sed 's/  */ /g')" | tee "$OUT/summary.txt"
t0=$(date +%s.%N)
$P data make-ctr --preset bench --out /tmp/d > "$OUT/make.txt" 2>&1 || { cat "$OUT/make.txt"; exit 1; }
echo "make-ctr bench: $(awk "BEGIN{print $(date +%s.%N) - $t0}") s" | tee -a "$OUT/summary.txt"
run() {   # name workers servers [extra...]
  local name=$1 w=$2 s=$3; shift 3
  timeout -k 5 150 $P launch --mpirun $M --config /tmp/d/ctr.toml --workers $w --servers $s --run-dir $R/$name "$@" > $R/$name.out 2>&1
  echo "$name rc=$? $(grep -E 'test AUC' $R/$name.out | tail -1 | sed 's/  */ /g')" | tee -a "$OUT/summary.txt"
}
run w1s1 1 1
run w2s2 2 2
run w4s4 4 4
run w8s4 8 4
run w8s4b 8 4
run w8s3 8 3
run w12s4 12 4
for n in m1 m2; do
  timeout -k 5 150 $P launch --mpirun $M --config $B/fashion-mlp.toml --set data.dir=$B/data --workers 8 --servers 4 --epochs 2 --run-dir $R/$n > $R/$n.out 2>&1
  echo "$n rc=$? $(grep -E 'final' $R/$n.out | tail -1)" | tee -a "$OUT/summary.txt"
done
for n in w8s4 w8s3; do $P ckpt export $R/$n --out $R/$n.st > /dev/null 2>&1; done
env -u LD_LIBRARY_PATH python3 - "$R" >> "$OUT/summary.txt" <<'PY'
import json, os, sys, hashlib
R = sys.argv[1]
def recs(run, name, ev):
    p = os.path.join(R, run, "logs", name + ".jsonl")
    if not os.path.exists(p): return []
    return [r for r in map(json.loads, open(p)) if r.get("event") == ev]
def done(run):
    logs = sorted(os.listdir(os.path.join(R, run, "logs")))
    out = []
    for f in logs:
        for d in recs(run, f[:-6], "done"):
            out.append((f[:-6], {k: v for k, v in d.items() if k.endswith("_digest")}))
    return out
for run in ["w1s1", "w2s2", "w4s4", "w8s4", "w8s4b", "w8s3", "w12s4"]:
    st = recs(run, "server-0", "step"); start = recs(run, "server-0", "start")
    if not st or not start: print(run, "no steps"); continue
    per = start[-1]["steps_per_epoch"]
    t = [s for s in st if s["step"] % per]
    sps = sum(s["samples"] for s in t) / sum(s["step_s"] for s in t)
    ev = recs(run, "server-0", "eval")
    rss = {f[:-6]: d["peak_rss_bytes"] // 10**6 for f in os.listdir(os.path.join(R, run, "logs")) if f.endswith(".jsonl") for d in recs(run, f[:-6], "done")}
    print(f"{run}: {sps:,.0f} train samples/s, AUC {ev[-1]['auc'] if ev else None}, peak RSS MB {rss}")
print("w8s4 == w8s4b (every rank's digests):", done("w8s4") == done("w8s4b"))
print("m1 == m2 (dense MLP W=8 S=4, every rank's digests):", done("m1") == done("m2"))
h = {n: hashlib.sha256(open(os.path.join(R, n + ".st"), "rb").read()).hexdigest() if os.path.exists(os.path.join(R, n + ".st")) else None for n in ["w8s4", "w8s3"]}
print("export w8s4 == w8s3 (sha256):", h["w8s4"] is not None and h["w8s4"] == h["w8s3"], h)
PY
cat "$OUT/summary.txt"
tail -n 5 $R/w8s4.out > "$OUT/w8s4.tail"; tail -n 5 $R/m1.out > "$OUT/m1.tail"
