#!/bin/bash
# scripts/bench-consistency on a machine with more cores (a 16-core device lent
# to some sessions), from the release bundle of ../shared/tools/device-bundle:
# bsp, ssp 3 and async with one worker slowed to twice the step time, W=2 S=2,
# on make-ctr's bench data. docs/benchmarks.md has the figures.
#   bash scripts/device/consistency.sh OUTDIR [MAX_STEPS [K=V ...]]   (K=V: --set for every run)
set -u
OUT=${1:?outdir}; STEPS=${2:-976}; shift 2 2>/dev/null; SETS=(); for kv in "$@"; do SETS+=(--set "$kv"); done; mkdir -p "$OUT"
REPO=$(pwd)
mkdir -p /tmp/b && tar xJf .device-bundle/pkg/psb.tar.xz -C /tmp/b
mkdir -p /tmp/wbin
cat > /tmp/wbin/pstrain <<'W'
#!/bin/bash
. /tmp/b/psb/env.sh > /dev/null
exec "$PSB/bin/pstrain" "$@"
W
chmod +x /tmp/wbin/pstrain
echo "== $(nproc) cpus; $(lscpu | grep -E '^Model name' | sed 's/  */ /g')" | tee "$OUT/consistency.txt"
cd "$REPO" && python3 scripts/bench-consistency --bin /tmp/wbin --max-steps "$STEPS" "${SETS[@]}" 2>&1 | tee -a "$OUT/consistency.txt"
