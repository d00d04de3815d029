"""Bootstrap time: one node vs three nodes, side by side (real Slurm of ci/clusters).

    python benchmarks/multinode.py [--reps 3] [--ranks 9] [--csv out.csv]

Each run is `srun` of mpi_tests/cluster.py in environment-only mode (9 ranks: scheduler, client,
7 workers, 100 tasks): on the single-node Slurm (`srun -n 9`) and on the three-node Slurm
(`srun -N3 --ntasks-per-node=3`, SLURM_CONF=/etc/slurm-mn/slurm.conf). Wall time is srun's,
submit to exit. Prints a table with medians and the three-node / one-node ratio, and a CSV.
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


def env_for(multinode: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "PMI_", "PMIX_", "OMPI_", "DASK_BATCH"))}
    env.update(DASK_BATCH__MPI="false", DASK_BATCH__DASHBOARD_ADDRESS=":0",
               PYTHONPATH=str(ROOT), PATH=f"{Path(PY).parent}{os.pathsep}{env['PATH']}")
    if multinode:
        env["SLURM_CONF"] = "/etc/slurm-mn/slurm.conf"
    return env


def one(multinode: bool, ranks: int) -> float:
    layout = ["-N3", f"--ntasks-per-node={ranks // 3}"] if multinode else ["-n", str(ranks)]
    argv = ["timeout", "-k", "5", "180", "srun", "-K", *layout, PY, SCRIPT]
    with tempfile.TemporaryDirectory(dir="/tmp") as cwd:
        t0 = time.monotonic()
        p = subprocess.run(argv, env=env_for(multinode), cwd=cwd, capture_output=True, text=True)
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
    for rep in range(a.reps):  # interleaved, so drift hits both alike
        for multinode in (False, True):
            rows.append({"layout": "3 nodes" if multinode else "1 node", "rep": rep,
                         "ranks": a.ranks, "seconds": round(one(multinode, a.ranks), 3)})
    med = {lay: statistics.median(r["seconds"] for r in rows if r["layout"] == lay)
           for lay in ("1 node", "3 nodes")}
    print(f"{'layout':<8} {'median s':>9} {'runs':>30}")
    for lay, m in med.items():
        runs = " ".join(f"{r['seconds']:.2f}" for r in rows if r["layout"] == lay)
        print(f"{lay:<8} {m:>9.2f} {runs:>30}")
    print(f"ratio 3 nodes / 1 node: {med['3 nodes'] / med['1 node']:.2f}")
    out = open(a.csv, "w", newline="") if a.csv else sys.stdout
    w = csv.DictWriter(out, fieldnames=["layout", "rep", "ranks", "seconds"])
    w.writeheader()
    w.writerows(rows)
    if a.csv:
        out.close()


if __name__ == "__main__":
    main()
