#!/usr/bin/env bash
# The anchor job at N = 16…128 real ranks, for a machine with 16 or more cores: the part of
# docs/benchmarks.md a 2-core machine cannot give. Short on purpose (about 10 minutes on 16
# cores), so that a lent machine's time goes to measuring.
#
#   bash benchmarks/many-cores.sh [OUT]      # OUT: benchmarks/results/many-cores (default)
#
# Needs the set-up of README.md (.venv with the mpich and test extras). Writes OUT/bootstrap.csv
# (+ summary, machine), OUT/scale-paths.csv, OUT/tables.md and OUT/run.json; plots.py
# --results OUT draws them.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=${1:-benchmarks/results/many-cores}
CORES=$(nproc)
if [ "$CORES" -lt 16 ]; then
    echo "many-cores.sh: this machine has $CORES cores; it is meant for 16 or more" >&2
    exit 2
fi
mkdir -p "$OUT"
START=$(date -u +%Y-%m-%dT%H:%M:%SZ)
T0=$(date +%s)
# every N once before any twice, each run printed as it ends (and kept in bootstrap.log), so
# that a machine taken back early still leaves results
$PY benchmarks/bootstrap.py --ranks 16 32 64 128 --reps 2 \
    --contenders floor dask-mpi dask-mpi-nodash batch-mpi batch-file batch-mpi-tcp-nonanny \
    --timeout 300 --retries 0 --out "$OUT/bootstrap.csv" 2>&1 | tee "$OUT/bootstrap.log"
RC_BOOT=${PIPESTATUS[0]}
$PY benchmarks/scale_paths.py --members 1024 --reps 1 --drivers $((CORES - 4)) \
    --out "$OUT/scale-paths.csv"
RC_SCALE=$?
$PY benchmarks/plots.py --results "$OUT" --tables > "$OUT/tables.md"
cat > "$OUT/run.json" <<EOF
{"start": "$START", "seconds": $(( $(date +%s) - T0 )), "cores": $CORES,
 "commit": "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)",
 "bootstrap_rc": $RC_BOOT, "scale_paths_rc": $RC_SCALE}
EOF
echo "done: $OUT/tables.md, $OUT/run.json"
