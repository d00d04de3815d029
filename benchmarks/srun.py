"""Start-up under the real ``srun``: dask-batch beside dask-jobqueue's SLURMRunner and the floor.

    .venv/bin/python benchmarks/srun.py --ranks 4 8 --reps 5 --out benchmarks/results/srun.csv

Needs the single-node Slurm of ci/clusters (``bash ci/clusters/start-slurm.sh``; 16 CPUs). One
run = ``srun -K -n N`` of the anchor job (start the cluster, wait for every worker, 100 tiny
tasks, exit), timed from launch until srun and every process of the step are gone:

* ``floor``: ``srun -n N python -c "import distributed"``;
* ``slurmrunner``: dask-jobqueue's ``SLURMRunner`` (``jobs/slurmrunner_job.py``), its defaults
  (TCP, scheduler file);
* ``batch``: ``BatchRunner`` with dask-batch's defaults (mutual TLS, dashboard) in the same
  ``srun`` (``jobs/batch_job.py``); ``batch-tcp``: the same with ``--insecure``.

Interleaved and paired as ``bootstrap.py``: every repetition runs every contender at every N in
a rotated order; ratios are per repetition, over the floor and over SLURMRunner.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

JOBS = {"floor": None, "slurmrunner": "slurmrunner_job.py", "batch": "batch_job.py",
        "batch-tcp": "batch_job.py"}
ENV = {"batch-tcp": {"DASK_BATCH__SECURE": "false"}}


def command(name: str, n: int) -> list[str]:
    script = JOBS[name]
    args = ["-c", "import distributed"] if script is None else [str(h.JOBS / script)]
    return ["timeout", "-k", "5", "150", "srun", "-K", "-n", str(n), h.PY, *args]


def one(name: str, n: int, rep: int, timeout: float) -> dict:
    env = h.clean_env(ENV.get(name, {}))
    env.pop("SLURM_CONF", None)  # the single-node cluster's default configuration
    with tempfile.TemporaryDirectory(prefix="bench-srun-", dir=os.getcwd()) as d:
        run = h.run_job(command(name, n), env, timeout, cwd=d)
    ok = run.ok if JOBS[name] is None else run.ok and run.done_at is not None
    if not ok:
        print(f"FAILED {name} N={n}: rc={run.rc}\n{run.stderr[-1500:]}", file=sys.stderr)
    return {"contender": name, "ranks": n, "rep": rep, "ok": ok, "wall_s": round(run.wall, 3),
            "foreign_share": round(run.foreign_share, 4)}


def paired(rows: list[dict], name: str, base: str, n: int) -> list[float]:
    by = {(r["contender"], r["rep"]): r["wall_s"] for r in rows if r["ranks"] == n and r["ok"]}
    return [by[(name, rep)] / by[(base, rep)] for (c, rep) in by
            if c == name and (base, rep) in by]


def summarize(rows: list[dict], names: list[str], ranks: list[int]) -> list[dict]:
    out = []
    for n in ranks:
        for name in names:
            walls = [r["wall_s"] for r in rows if r["contender"] == name and r["ranks"] == n
                     and r["ok"]]
            if not walls:
                continue
            row = {"ranks": n, "contender": name, "runs": len(walls),
                   "wall_s": round(h.summary(walls)["median"], 3)}
            for base, label in (("floor", "x_floor"), ("slurmrunner", "x_slurmrunner")):
                ratios = paired(rows, name, base, n)
                if base != name and ratios:
                    row[label] = round(h.summary(ratios)["median"], 3)
            out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--contenders", nargs="+", default=list(JOBS), choices=list(JOBS))
    ap.add_argument("--timeout", type=float, default=160)
    ap.add_argument("--out", default="benchmarks/results/srun.csv")
    a = ap.parse_args()
    if shutil.which("srun") is None:
        raise SystemExit("srun is not on PATH: start ci/clusters/start-slurm.sh first")
    h.precompile()
    machine = h.machine()
    print(h.machine_line(machine), flush=True)
    h.stop_on_sigterm()
    rows = []
    for rep in range(a.reps):
        for i, n in enumerate(a.ranks):
            for name in h.rotate(a.contenders, rep + i):
                rows.append(one(name, n, rep, a.timeout))
                print(f"rep {rep} N={n} {name:12s} {rows[-1]['wall_s']} s", flush=True)
    summary = summarize(rows, a.contenders, a.ranks)
    out = Path(a.out)
    h.write_csv(out, rows)
    h.write_csv(out.with_name(out.stem + "-summary.csv"), summary)
    h.write_machine(out.with_name(out.stem + "-machine.json"), machine)
    print()
    print(h.table(summary, ["ranks", "contender", "runs", "wall_s", "x_floor", "x_slurmrunner"]))


if __name__ == "__main__":
    main()
