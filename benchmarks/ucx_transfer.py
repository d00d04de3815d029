"""Worker-to-worker transfer over UCX vs TCP vs TLS, one node, CPU only.

    bash scripts/setup-ucx-venv.sh
    .venv-ucx/bin/python benchmarks/ucx_transfer.py [--mb 100] [--repeat 5] [--jobs 2] [--csv F]

Each job is `mpiexec -n 4 dask-batch --no-mpi ... run mpi_tests/ucx_job.py` in the UCX venv
(the same distributed for every protocol): scheduler, client, two workers; the client makes an
``--mb`` MB numpy array on one worker and has the other worker read it, ``--repeat`` times.
Per protocol it reports the median end to end time (submit → result, so task scheduling is in
it), the receiver's own transfer time (distributed's transfer log), the bandwidth from that,
and the workers' join time from the scheduler's log line. Protocols:

    tcp      --insecure
    tls      default (mutual TLS)
    ucx      --protocol ucx --insecure, UCX picks transports (shared memory on one node)
    ucx-tcp  the same with distributed-ucxx.tcp: true (UCX_TLS=tcp) from a dask config file
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-ucx" / "bin"
JOB = str(ROOT / "mpi_tests" / "ucx_job.py")
FLAGS = {
    "tcp": ["--insecure"],
    "tls": [],
    "ucx": ["--protocol", "ucx", "--insecure"],
    "ucx-tcp": ["--protocol", "ucx", "--insecure"],
}


def env_for(name: str, conf_dir: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "PMI_", "PMIX_", "OMPI_", "DASK_BATCH", "UCX_"))}
    env.update(DASK_BATCH__DASHBOARD_ADDRESS=":0", PYTHONPATH=str(ROOT),
               PATH=f"{VENV}{os.pathsep}{env['PATH']}")
    if name == "ucx-tcp":
        env["DASK_CONFIG"] = conf_dir
    return env


def one(name: str, mb: float, repeat: int, conf_dir: str) -> dict:
    argv = ["timeout", "-k", "5", "300", str(VENV / "mpiexec"), "-n", "4",
            str(VENV / "dask-batch"), "--no-mpi", *FLAGS[name], "run", JOB,
            "--mb", str(mb), "--repeat", str(repeat)]
    with tempfile.TemporaryDirectory() as cwd:
        t0 = time.monotonic()
        p = subprocess.run(argv, env=env_for(name, conf_dir), cwd=cwd, capture_output=True,
                           text=True)
        wall = time.monotonic() - t0
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        raise SystemExit(f"{name}: rc={p.returncode}\n{p.stdout}\n{p.stderr}")
    out = json.loads(lines[0])
    joined = re.search(r"workers joined in ([0-9.]+) s", p.stderr)
    tls = sorted({str((i or {}).get("TLS")) for i in out["ucx"].values()})
    return {"protocol": name, "address": out["address"], "nbytes": out["nbytes"],
            "seconds": [t["seconds"] for t in out["transfers"]],
            "logged": [t["logged"] for t in out["transfers"] if t["logged"]],
            "join": float(joined.group(1)) if joined else None, "wall": wall,
            "ucx_tls": ",".join(tls)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2, help="jobs per protocol")
    ap.add_argument("--protocols", default=",".join(FLAGS))
    ap.add_argument("--csv", default=None)
    a = ap.parse_args()
    if not (VENV / "dask-batch").exists():
        sys.exit("no .venv-ucx: bash scripts/setup-ucx-venv.sh")
    names = a.protocols.split(",")
    runs: dict[str, list[dict]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as conf:
        Path(conf, "ucx.yaml").write_text("distributed-ucxx:\n  tcp: true\n")
        for _ in range(a.jobs):  # interleaved, so load from others spreads over all protocols
            for n in names:
                runs[n].append(one(n, a.mb, a.repeat, conf))
    rows = []
    print(f"{a.mb:g} MB worker-to-worker, {a.jobs} jobs x {a.repeat} transfers per protocol "
          "(medians)")
    print(f"{'protocol':9} {'end-to-end s':>12} {'transfer s':>11} {'MB/s':>8} {'join s':>7} "
          f"{'job s':>6}  UCX TLS")
    for n in names:
        secs = [s for r in runs[n] for s in r["seconds"]]
        logged = [s for r in runs[n] for s in r["logged"]]
        nbytes = runs[n][0]["nbytes"]
        row = {
            "protocol": n,
            "end_to_end_s": statistics.median(secs),
            "transfer_s": statistics.median(logged) if logged else float("nan"),
            "mb_per_s": nbytes / 1e6 / statistics.median(logged) if logged else float("nan"),
            "join_s": statistics.median([r["join"] for r in runs[n] if r["join"] is not None]),
            "job_s": statistics.median([r["wall"] for r in runs[n]]),
            "ucx_tls": runs[n][0]["ucx_tls"],
            "samples": len(secs),
        }
        rows.append(row)
        print(f"{n:9} {row['end_to_end_s']:12.3f} {row['transfer_s']:11.3f} "
              f"{row['mb_per_s']:8.0f} {row['join_s']:7.2f} {row['job_s']:6.1f}  {row['ucx_tls']}")
    if a.csv:
        with open(a.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
