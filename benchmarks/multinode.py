"""Bootstrap time across three nodes against one node and against dask-mpi, side by side
(real Slurm of ci/clusters).

    python benchmarks/multinode.py [--reps 3] [--ranks 9] [--csv out.csv]

Every run is one `srun` of a 9-rank job (scheduler, client, 7 workers, 100 tasks, exit);
wall time is srun's, submit to exit. Contenders, interleaved:

- dask_batch, 1 node: `srun -n 9` on the single-node Slurm, environment mode;
- dask_batch, 3 nodes: `srun -N3 --ntasks-per-node=3` (SLURM_CONF=/etc/slurm-mn/slurm.conf),
  environment mode;
- dask_batch MPI, 3 nodes: the same with `--mpi=pmi2` and the MPICH wheel;
- dask-mpi, 3 nodes: `dask_mpi.initialize()` + Client, same layout and MPI.

The MPICH wheel runs its OFI netmod over tcp here (MPIR_CVAR_CH4_NETMOD=ofi): Slurm 22.05's
pmi2 corrupts the UCX netmod's long addresses. Prints medians and ratios, and a CSV.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SCRIPT = str(ROOT / "mpi_tests" / "cluster.py")
DASK_MPI_JOB = """
import sys, time
from dask_mpi import initialize
initialize(dashboard=False)
from distributed import Client
with Client() as c:
    c.wait_for_workers(int(sys.argv[1]) - 2, timeout=120)
    assert c.submit(sum, c.map(lambda x: x, range(100))).result() == 4950
    print('"total": 5050')
"""
MPI_ENV = {"MPIR_CVAR_CH4_NETMOD": "ofi", "FI_PROVIDER": "tcp"}
# name: (three nodes, srun --mpi plugin or None, dask-mpi)
CONTENDERS = {
    "dask_batch 1 node": (False, None, False),
    "dask_batch 3 nodes": (True, None, False),
    "dask_batch MPI 3 nodes": (True, "pmi2", False),
    "dask-mpi 3 nodes": (True, "pmi2", True),
}


def env_for(multinode: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "PMI_", "PMIX_", "OMPI_", "DASK_BATCH"))}
    env.update(DASK_BATCH__MPI="false", DASK_BATCH__DASHBOARD_ADDRESS=":0",
               PYTHONPATH=str(ROOT), PATH=f"{Path(PY).parent}{os.pathsep}{env['PATH']}")
    if multinode:
        env["SLURM_CONF"] = "/etc/slurm-mn/slurm.conf"
    return env


def one(name: str, ranks: int) -> float:
    multinode, plugin, dask_mpi = CONTENDERS[name]
    layout = ["-N3", f"--ntasks-per-node={ranks // 3}"] if multinode else ["-n", str(ranks)]
    if plugin:
        layout.append(f"--mpi={plugin}")
    env = env_for(multinode)
    if plugin:
        env.update(MPI_ENV)
        env.pop("DASK_BATCH__MPI")
    with tempfile.TemporaryDirectory(dir="/tmp") as cwd:
        if dask_mpi:
            job = Path(cwd) / "dask_mpi_job.py"
            job.write_text(DASK_MPI_JOB)
            cmd = [PY, str(job), str(ranks)]
        else:
            cmd = [PY, SCRIPT]
        argv = ["timeout", "-k", "5", "180", "srun", "-K", *layout, *cmd]
        t0 = time.monotonic()
        p = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
        took = time.monotonic() - t0
    if p.returncode != 0 or '"total": 5050' not in p.stdout:
        raise SystemExit(f"run failed (rc {p.returncode}):\n{p.stdout}\n{p.stderr}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--ranks", type=int, default=9, help="a multiple of 3")
    ap.add_argument("--csv", default=None, help="also write the runs here")
    a = ap.parse_args()
    rows = []
    for rep in range(a.reps):  # interleaved, so drift hits every contender alike
        for name in CONTENDERS:
            rows.append({"contender": name, "rep": rep, "ranks": a.ranks,
                         "seconds": round(one(name, a.ranks), 3)})
    med = {n: statistics.median(r["seconds"] for r in rows if r["contender"] == n)
           for n in CONTENDERS}
    base = med["dask_batch 1 node"]
    print("| contender | median s | min s | max s | / 1 node | / dask-mpi 3 nodes |")
    print("|---|---|---|---|---|---|")
    for n, m in med.items():
        runs = [r["seconds"] for r in rows if r["contender"] == n]
        print(f"| {n} | {m:.2f} | {min(runs):.2f} | {max(runs):.2f} | {m / base:.2f} | "
              f"{m / med['dask-mpi 3 nodes']:.2f} |")
    out = open(a.csv, "w", newline="") if a.csv else sys.stdout
    w = csv.DictWriter(out, fieldnames=["contender", "rep", "ranks", "seconds"])
    w.writeheader()
    w.writerows(rows)
    if a.csv:
        out.close()


if __name__ == "__main__":
    main()
