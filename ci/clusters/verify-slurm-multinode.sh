#!/usr/bin/env bash
# Checks against the cluster started by start-slurm-multinode.sh. Prints one line per
# check (PASS/FAIL/SKIP + seconds) and exits non-zero if any check failed.
#
#   MN_VENV=/tmp/mn-venv bash ci/clusters/verify-slurm-multinode.sh
#   (create the venv with: python3 -m venv /tmp/mn-venv &&
#    /tmp/mn-venv/bin/pip install mpi4py mpich dask distributed psutil dask-mpi)
#
# Env knobs:
#   MN_NODES=3                  must match the start script (needs >= 2 nodes; checks use 3 if there)
#   MN_NAME=node  MN_ETH_NET=198.18.0  MN_IB_NET=198.19.0  MN_CONF_DIR=/etc/slurm-mn
#   MN_VENV=/tmp/mn-venv        venv with mpi4py mpich dask distributed dask-mpi psutil
#                               (MPI and Dask checks are skipped if it is missing)
#   MN_VERIFY_TIMEOUT=90        per-command timeout (seconds)
set -euo pipefail

NODES=${MN_NODES:-3}
NAME=${MN_NAME:-node}
ETH_NET=${MN_ETH_NET:-198.18.0}
IB_NET=${MN_IB_NET:-198.19.0}
export SLURM_CONF=${MN_CONF_DIR:-/etc/slurm-mn}/slurm.conf
VENV=${MN_VENV:-/tmp/mn-venv}
T=${MN_VERIFY_TIMEOUT:-90}
[ "$NODES" -ge 2 ] || { echo "need MN_NODES >= 2" >&2; exit 2; }
N=$((NODES < 3 ? NODES : 3))   # nodes used by the checks
NT=$((2 * N))                  # tasks: 2 per node
W=$(mktemp -d /tmp/slurm-mn-verify.XXXXXX)   # under /tmp: shared by all nodes
cd "$W"
FAILS=0

run_check() {  # run_check <name> <function>
  local name=$1 fn=$2 t0=$SECONDS out rc=0
  out=$("$fn" 2>&1) || rc=$?
  if [ "$rc" = 0 ]; then printf 'PASS %-44s %3ss\n' "$name" $((SECONDS - t0))
  elif [ "$rc" = 77 ]; then printf 'SKIP %-44s %s\n' "$name" "$(echo "$out" | tail -n1)"
  else
    FAILS=$((FAILS + 1)); printf 'FAIL %-44s %3ss (rc=%s)\n' "$name" $((SECONDS - t0)) "$rc"
    echo "$out" | tail -n 25 | sed 's/^/    | /'
  fi
}
need_venv() { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import mpi4py, dask_mpi' 2>/dev/null || { echo "no usable venv at $VENV"; exit 77; }; }
sb() {  # sb <sbatch args...>: submit, poll every 0.25 s (sbatch --wait polls after 2, 10, 42 s),
        # return the job's exit code
  local id st ec
  id=$(sbatch --parsable "$@") || return 1
  for _ in $(seq 1 $((T * 4))); do
    st=$(scontrol show job -o "$id" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2)
    case "$st" in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE) break ;; esac
    sleep 0.25
  done
  ec=$(scontrol show job -o "$id" 2>/dev/null | grep -o ' ExitCode=[0-9]*' | cut -d= -f2)
  return "${ec:-1}"
}
expect_nodes() { seq 1 "$N" | sed "s/^/$NAME/" | tr '\n' ' '; }

c_nodes() {
  sinfo -h -N -o '%N %t %c %m' | tee /dev/stderr | awk '$2!="idle"&&$2!="mix"&&$2!="alloc"{bad=1} END{exit bad}'
}
c_hostname() {
  local out; out=$(timeout "$T" srun -K -N "$N" -n "$NT" hostname)
  echo "$out"
  [ "$(echo "$out" | sort -u | tr '\n' ' ')" = "$(expect_nodes)" ]
}
c_rank_env() {  # with 2 tasks per node the mapping is fixed
  local out exp i
  out=$(timeout "$T" srun -K -N "$N" --ntasks-per-node=2 bash -c \
    'echo "$(hostname) PROCID=$SLURM_PROCID NODEID=$SLURM_NODEID LOCALID=$SLURM_LOCALID"' | sort -t= -k2n)
  exp=$(for i in $(seq 0 $((NT - 1))); do
    echo "$NAME$((i / 2 + 1)) PROCID=$i NODEID=$((i / 2)) LOCALID=$((i % 2))"; done)
  echo "$out"; [ "$out" = "$exp" ]
}
c_interfaces() {
  local out i
  out=$(timeout "$T" srun -K -N "$N" --ntasks-per-node=1 bash -c \
    'echo "$(hostname) $(ip -br -4 addr show eth0 | awk "{print \$3}") $(ip -br -4 addr show ib0 | awk "{print \$3}") sys=$(ls /sys/class/net | tr "\n" ,)"' | sort)
  echo "$out"
  for i in $(seq 1 "$N"); do
    echo "$out" | grep -qx "$NAME$i $ETH_NET.$i/24 $IB_NET.$i/24 sys=eth0,ib0,lo," || return 1
  done
}
c_head_name() {  # nodes resolve the head's hostname to its eth0-network address (not 127.x)
  local h out; h=$(hostname -s)
  out=$(timeout "$T" srun -K -N "$N" --ntasks-per-node=1 getent hosts "$h" "${NAME}head" | sort -u)
  echo "$out"
  [ "$(echo "$out" | awk '{print $1}' | sort -u)" = "$ETH_NET.254" ]
}
c_munge_in_node() { timeout "$T" srun -K -N 1 -w "${NAME}2" bash -c 'munge -n | unmunge | grep -q "STATUS: *Success"'; }
c_mem_limit() {  # RealMemory is per node: asking for more than one node has must be refused
  local mem; mem=$(sinfo -h -N -o %m | sort -n | head -n1)
  if timeout "$T" srun -N 1 --mem=$((mem + 1)) --immediate=5 true 2>err.txt; then
    echo "--mem=$((mem + 1)) was accepted"; return 1; fi
  cat err.txt
  sb -N "$N" --mem="$mem" -o mem.out --wrap 'echo SLURM_MEM_PER_NODE=$SLURM_MEM_PER_NODE' >/dev/null
  cat mem.out; grep -qx "SLURM_MEM_PER_NODE=$mem" mem.out
}
c_sbatch_rc() {
  cat > rc.sh <<EOF
#!/bin/bash
timeout $T srun -K hostname | sort | tr '\n' ' '
exit \$WANT
EOF
  local rc
  for want in 0 3; do
    rc=0; WANT=$want timeout "$T" sbatch -N "$N" -n "$NT" --wait -o "rc-$want.out" rc.sh >/dev/null || rc=$?
    echo "sbatch --wait exit $rc (script exits $want): $(cat "rc-$want.out")"
    [ "$rc" = "$want" ] || return 1
  done
  cat > step.sh <<EOF
#!/bin/bash
timeout $T srun -K bash -c 'exit \$((SLURM_NODEID == 1 ? 7 : 0))'
EOF
  rc=0; sb -N "$N" -n "$NT" -o step.out step.sh || rc=$?
  echo "job exit code $rc (a task on node 2 exits 7)"; [ "$rc" = 7 ]
}
c_loopback_isolated() {  # a server on node1 bound to 127.0.0.1 must be unreachable from node2
  cat > lo.sh <<EOF
#!/bin/bash
srun -N1 -n1 -w ${NAME}1 --overlap python3 -c 'import socket,time
for h, p in (("127.0.0.1", 47001), ("0.0.0.0", 47002)):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((h, p)); s.listen(); globals()["k"+str(p)] = s
time.sleep(20)' &
LISTENER=\$!
sleep 2
probe='import socket, sys
for h, p in (("127.0.0.1", 47001), ("$ETH_NET.1", 47002), ("$IB_NET.1", 47002)):
    try: socket.create_connection((h, p), timeout=3).close(); print(socket.gethostname(), h, p, "open")
    except OSError as e: print(socket.gethostname(), h, p, "closed", type(e).__name__)'
timeout $T srun -N1 -n1 -w ${NAME}1 --overlap python3 -c "\$probe"
timeout $T srun -N1 -n1 -w ${NAME}2 --overlap python3 -c "\$probe"
kill \$LISTENER; wait
EOF
  sb -N 2 -w "${NAME}[1-2]" -o lo.out lo.sh || true
  cat lo.out
  grep -q "^${NAME}1 127.0.0.1 47001 open" lo.out && grep -q "^${NAME}2 127.0.0.1 47001 closed" lo.out &&
    grep -q "^${NAME}2 $ETH_NET.1 47002 open" lo.out && grep -q "^${NAME}2 $IB_NET.1 47002 open" lo.out
}
# rank 0 prints every rank's line (launchers interleave the raw output of several ranks)
MPI_PY='from mpi4py import MPI; c = MPI.COMM_WORLD; c.Barrier(); v = c.bcast("hi" if c.rank == 0 else None)
line = " ".join(map(str, (c.rank, c.size, MPI.Get_processor_name(), v, MPI.Get_library_version().split(",")[0].split("\n")[0])))
lines = c.gather(line)
if c.rank == 0: print("\n".join(lines), flush=True)'
mpi_ok() {  # mpi_ok <output>: NT ranks, size NT, all nodes, bcast arrived
  echo "$1"
  [ "$(echo "$1" | awk -v n="$NT" '$2==n && $4=="hi"' | wc -l)" = "$NT" ] &&
    [ "$(echo "$1" | awk '{print $3}' | sort -u | tr '\n' ' ')" = "$(expect_nodes)" ]
}
c_mpi_pmi2_mpich() {
  need_venv
  mpi_ok "$(timeout "$T" srun -K --mpi=pmi2 -N "$N" --ntasks-per-node=2 "$VENV/bin/python" -c "$MPI_PY")"
}
c_mpi_pmix_openmpi() {
  need_venv
  [ -e /usr/lib/x86_64-linux-gnu/libmpi.so.40 ] || { echo "Debian openmpi not installed"; exit 77; }
  mpi_ok "$(MPI4PY_LIBMPI=libmpi.so.40 timeout "$T" srun -K --mpi=pmix -N "$N" --ntasks-per-node=2 "$VENV/bin/python" -c "$MPI_PY")"
}
c_mpi_hydra_in_sbatch() {
  need_venv
  printf '#!/bin/bash\ntimeout %s %s/bin/mpiexec -n %s -ppn 2 %s/bin/python -c "$MPI_PY"\n' "$T" "$VENV" "$NT" "$VENV" > hydra.sh
  MPI_PY=$MPI_PY sb -N "$N" -n "$NT" -o hydra.out hydra.sh
  mpi_ok "$(cat hydra.out)"
}
c_dask() {  # c_dask <iface>
  need_venv
  local iface=$1 net
  [ "$iface" = eth0 ] && net=$ETH_NET || net=$IB_NET
  cat > hello.py <<'EOF'
import socket, sys
from dask_mpi import initialize
initialize(interface=sys.argv[1], dashboard=False, nthreads=1, memory_limit="1GB")
from distributed import Client
with Client() as client:
    client.wait_for_workers(int(sys.argv[2]), timeout=60)
    res = client.gather(client.map(lambda x: (x * x, socket.gethostname()), range(100)))
    info = client.scheduler_info()
    print("SCHED", info["address"], socket.gethostname(), flush=True)
    for addr in sorted(info["workers"]):
        print("WORKER", addr, flush=True)
    print("SUM", sum(r[0] for r in res), " ".join(sorted({r[1] for r in res})), flush=True)
EOF
  printf '#!/bin/bash\ntimeout %s srun -K --mpi=pmi2 %s/bin/python hello.py %s %s\n' "$T" "$VENV" "$iface" $((NT - 2)) > dask.sh
  sb -N "$N" --ntasks-per-node=2 -o "dask-$iface.out" dask.sh || true
  grep -E '^(SCHED|WORKER|SUM)' "dask-$iface.out" || { tail -n 20 "dask-$iface.out"; return 1; }
  grep -q "^SCHED tcp://$net.1:[0-9]* ${NAME}1\$" "dask-$iface.out" &&
    grep -q "^WORKER tcp://$net.2:" "dask-$iface.out" &&
    { [ "$N" -lt 3 ] || grep -q "^WORKER tcp://$net.3:" "dask-$iface.out"; } &&
    grep -q "^SUM 328350 " "dask-$iface.out"
}
c_dask_eth0() { c_dask eth0; }
c_dask_ib0() { c_dask ib0; }

echo "multi-node Slurm checks ($N of $NODES nodes, SLURM_CONF=$SLURM_CONF, work dir $W)"
run_check "nodes idle" c_nodes
run_check "srun -N$N -n$NT hostname" c_hostname
run_check "SLURM_PROCID/NODEID/LOCALID" c_rank_env
run_check "eth0/ib0 addresses, /sys/class/net" c_interfaces
run_check "head hostname resolves to $ETH_NET.254" c_head_name
run_check "munge inside a node" c_munge_in_node
run_check "--mem is per node" c_mem_limit
run_check "sbatch --wait exit codes" c_sbatch_rc
run_check "127.0.0.1 on node1 unreachable from node2" c_loopback_isolated
run_check "MPI: srun --mpi=pmi2 + PyPI mpich" c_mpi_pmi2_mpich
run_check "MPI: srun --mpi=pmix + Debian Open MPI" c_mpi_pmix_openmpi
run_check "MPI: mpiexec (hydra) inside sbatch" c_mpi_hydra_in_sbatch
run_check "Dask: dask_mpi over eth0" c_dask_eth0
run_check "Dask: dask_mpi over ib0" c_dask_ib0
cd /; rm -rf "$W"
if [ "$FAILS" = 0 ]; then echo "all multi-node checks passed (${SECONDS}s)"; else echo "$FAILS check(s) failed (${SECONDS}s)"; exit 1; fi
