#!/usr/bin/env bash
# Every benchmark behind docs/benchmarks.md, in one run, one after the other (never two at
# once: each would disturb the other), then the plots and the Markdown tables.
#
#   bash benchmarks/all.sh            # about an hour on a quiet 2-core machine
#
# Needs the set-up of README.md (.venv with the test extra, matplotlib for the plots) and, for
# the srun, notebook-cluster and three-node rows, the clusters of ci/clusters running
# (`bash ci/clusters/start-all.sh`); without them those steps are skipped and said so.
# Writes benchmarks/results/*.csv, docs/img/bench-*.png, benchmarks/results/tables.md, and
# benchmarks/results/run.json (when, on which commit, which steps ran, how long each took).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=benchmarks/results
QUIET="--max-foreign 0.25"
mkdir -p "$OUT"
LOG="$OUT/all.log"
: > "$LOG"
STEPS=()

step() {  # step NAME COMMAND...: run it, log it, record its duration and exit code
    local name=$1; shift
    local t0; t0=$(date +%s)
    echo "== $name: $* ($(date -u +%H:%M:%S))" | tee -a "$LOG"
    "$@" 2>&1 | tee -a "$LOG"
    local rc=${PIPESTATUS[0]}
    STEPS+=("{\"step\": \"$name\", \"rc\": $rc, \"seconds\": $(( $(date +%s) - t0 ))}")
}

skip() {
    echo "== $1: skipped ($2)" | tee -a "$LOG"
    STEPS+=("{\"step\": \"$1\", \"skipped\": \"$2\"}")
}

START=$(date -u +%Y-%m-%dT%H:%M:%SZ)
step bootstrap $PY benchmarks/bootstrap.py --ranks 4 8 12 --reps 4 \
    --contenders floor dask-mpi dask-mpi-nodash batch-mpi batch-mpi-nodash batch-mpi-tcp \
    batch-mpi-nonanny batch-mpi-tcp-nonanny batch-mpi-via-scheduler batch-file \
    $QUIET --retries 1 --out $OUT/bootstrap.csv
step profile $PY benchmarks/profile.py --ranks 4 8 12 --reps 2 \
    --contenders floor dask-mpi batch-mpi batch-file $QUIET --out $OUT/profile.csv
step transfer $PY benchmarks/transfer.py --reps 5 $QUIET --out $OUT/transfer.csv
step tls-floor $PY benchmarks/tls_floor.py --reps 5 --out $OUT/tls-floor.csv
step workloads $PY benchmarks/workloads.py --reps 3 --max-foreign 0.3 --out $OUT/workloads.csv
step scale-paths $PY benchmarks/scale_paths.py --members 256 512 1024 --reps 2 \
    --out $OUT/scale-paths.csv
step scale $PY benchmarks/bootstrap.py --ranks 16 32 --reps 2 \
    --contenders floor dask-mpi batch-mpi batch-file --timeout 240 $QUIET \
    --out $OUT/scale.csv
if command -v sinfo >/dev/null && sinfo -h >/dev/null 2>&1; then
    step srun $PY benchmarks/srun.py --ranks 4 8 --reps 3 --out $OUT/srun.csv
    step submit $PY benchmarks/submit.py --jobs 0 --join 0 --clusters 16 \
        --out $OUT/submit-clusters-16.json
else
    skip srun "no Slurm running: bash ci/clusters/start-all.sh"
    skip submit "no Slurm running: bash ci/clusters/start-all.sh"
fi
if [ -e /run/netns/node3 ]; then
    step multinode $PY benchmarks/multinode.py --reps 3 --csv $OUT/multinode.csv
else
    skip multinode "no three-node Slurm: bash ci/clusters/start-all.sh"
fi
step plots $PY benchmarks/plots.py
$PY benchmarks/plots.py --tables > $OUT/tables.md
END=$(date -u +%Y-%m-%dT%H:%M:%SZ)
{
    echo "{\"start\": \"$START\", \"end\": \"$END\", \"commit\": \"$(git rev-parse --short HEAD)\","
    echo " \"steps\": ["
    (IFS=,; echo "  ${STEPS[*]}")
    echo " ]}"
} > $OUT/run.json
echo "done: $OUT/run.json, $OUT/tables.md, docs/img/bench-*.png"
