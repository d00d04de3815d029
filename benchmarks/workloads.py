"""Real workloads, side by side: dask-batch (TLS, its default), dask-batch --insecure, dask-mpi.

    .venv/bin/python benchmarks/workloads.py --reps 3 --max-foreign 0.25 \
        --out benchmarks/results/workloads.csv

One run = ``mpiexec -n 4`` (scheduler, client, 2 one-thread workers) of one workload of
``jobs/work.py`` (``array``: a 512 MiB dask.array transposed and rechunked; ``shuffle``:
``set_index`` of a 10 M-row dask.dataframe; ``futures``: scatter, 800 submits, gather). The job
reports the workload's own time (``work_s``: its phases, after every worker joined) and the
harness the whole run's (``wall_s``: launch → every process gone). Interleaved as in
``bootstrap.py``: every repetition runs every contender on every workload, order rotated.
Ratios are paired: ``work_s`` over dask-mpi's (and over dask-batch --insecure's) in the same
repetition. ``--env NAME=K=V,K=V`` adds a dask-batch contender with extra environment (e.g. a
distributed TLS setting); ``--candidate NAME=DIR`` one importing a patched dask_batch from DIR.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402
from contenders import CONTENDERS, Contender, add_candidate  # noqa: E402

JOBS = {"batch": str(h.JOBS / "workload_batch.py"),
        "dask-mpi": str(h.JOBS / "workload_dask_mpi.py")}
WORKLOADS = ["array", "shuffle", "futures"]
DEFAULT = ["dask-mpi", "batch-mpi", "batch-mpi-tcp"]
PHASES = ["make_s", "transpose_s", "rechunk_s", "set_index_s", "scatter_s", "compute_gather_s"]


def contender(name: str) -> Contender:
    c = CONTENDERS[name]
    return replace(c, script=JOBS["dask-mpi" if name.startswith("dask-mpi") else "batch"])


def add_env(spec: str) -> str:
    """``NAME=K=V,K=V``: batch-mpi with that environment added, named ``batch-mpi+NAME``."""
    label, _, pairs = spec.partition("=")
    env = dict(p.split("=", 1) for p in pairs.split(",") if p)
    if not label or not env:
        raise SystemExit(f"--env {spec}: expected NAME=KEY=VALUE[,KEY=VALUE]")
    base = CONTENDERS["batch-mpi"]
    name = f"batch-mpi+{label}"
    CONTENDERS[name] = replace(base, name=name, env={**base.env, **env},
                               about=f"{base.about}; {pairs}")
    return name


def one(name: str, workload: str, rep: int, a: argparse.Namespace) -> dict:
    c = contender(name)
    with tempfile.TemporaryDirectory(prefix="bench-") as d:
        argv, env = c.command(a.ranks, Path(d))
        run = h.run_job([*argv, workload, str(a.scale)], env, a.timeout, cwd=d)
    row = {"workload": workload, "contender": name, "rep": rep, "rc": run.rc,
           "ok": run.ok and bool(run.report), "wall_s": round(run.wall, 3),
           "foreign_share": round(run.foreign_share, 4), "cpu_own_s": round(run.cpu_own, 2)}
    row.update({k: v for k, v in run.report.items() if k not in ("workload", "scale")})
    if not row["ok"]:
        print(f"FAILED {name} {workload}: rc={run.rc}\n{run.stderr[-1500:]}", file=sys.stderr)
    return row


def run_all(names: list[str], a: argparse.Namespace) -> list[dict]:
    rows: list[dict] = []
    if a.warmup:  # page cache and .pyc files, not recorded
        for name in names:
            one(name, "futures", -1, a)
    for rep in range(a.reps):
        for i, workload in enumerate(a.workloads):
            for name in h.rotate(names, rep + i):
                for attempt in range(a.retries + 1):
                    if a.max_foreign is not None:
                        h.wait_until_idle(a.max_foreign)
                    row = one(name, workload, rep, a)
                    disturbed = a.max_foreign is not None and row["foreign_share"] > a.max_foreign
                    row.update(attempt=attempt, disturbed=disturbed,
                               kept=not disturbed or attempt == a.retries)
                    rows.append(row)
                    if row["kept"]:
                        break
                print(f"rep {rep} {workload:8s} {name:22s} work {row.get('work_s', '-')} s, "
                      f"wall {row['wall_s']} s, others {row['foreign_share']:.0%}", flush=True)
    return rows


def paired(rows: list[dict], name: str, base: str, workload: str) -> list[float]:
    """``work_s`` of ``name`` over ``base``'s, per repetition."""
    by = {(r["contender"], r["rep"]): r["work_s"] for r in rows
          if r["workload"] == workload and r["kept"] and r["ok"]}
    return [by[(name, rep)] / by[(base, rep)] for (n, rep) in by
            if n == name and (base, rep) in by]


def _ratio(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    s = h.summary(values)
    return {"median": round(s["median"], 3), "min": round(s["min"], 3), "max": round(s["max"], 3)}


def summarize(rows: list[dict], names: list[str], workloads: list[str]) -> list[dict]:
    out = []
    for workload in workloads:
        for name in names:
            rs = [r for r in rows if r["workload"] == workload and r["contender"] == name
                  and r["kept"] and r["ok"]]
            if not rs:
                continue
            work = h.summary([r["work_s"] for r in rs])
            row = {"workload": workload, "contender": name, "runs": len(rs),
                   "reruns": sum(1 for r in rows if r["workload"] == workload
                                 and r["contender"] == name and not r["kept"]),
                   "work_s": round(work["median"], 3), "work_s_min": round(work["min"], 3),
                   "work_s_max": round(work["max"], 3),
                   "wall_s": round(statistics.median(r["wall_s"] for r in rs), 3)}
            for k in PHASES:
                if k in rs[0]:
                    row[k] = round(statistics.median(r[k] for r in rs), 3)
            for base, label in (("dask-mpi", "x_dask_mpi"), ("batch-mpi-tcp", "x_tcp")):
                if base != name and base in names:
                    row.update({f"{label}_{k}": v for k, v in
                                _ratio(paired(rows, name, base, workload)).items()})
            out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--ranks", type=int, default=4)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--workloads", nargs="+", default=WORKLOADS, choices=WORKLOADS)
    ap.add_argument("--contenders", nargs="+", default=DEFAULT,
                    choices=[n for n in CONTENDERS if n != "floor"])
    ap.add_argument("--env", action="append", default=[], metavar="NAME=K=V,...")
    ap.add_argument("--candidate", action="append", default=[], metavar="NAME=DIR")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--max-foreign", type=float, default=None, metavar="SHARE")
    ap.add_argument("--retries", type=int, default=2)
    ap.add_argument("--no-warmup", dest="warmup", action="store_false")
    ap.add_argument("--out", default="benchmarks/results/workloads.csv")
    a = ap.parse_args()
    names = list(a.contenders)
    names += [add_env(spec) for spec in a.env]
    for spec in a.candidate:
        names += add_candidate(list(a.contenders), spec)
    h.precompile()
    machine = h.machine()
    print(h.machine_line(machine), f"load {machine['load_at_start']}", flush=True)
    h.stop_on_sigterm()
    rows = run_all(names, a)
    summary = summarize(rows, names, a.workloads)
    out = Path(a.out)
    h.write_csv(out, rows)
    h.write_csv(out.with_name(out.stem + "-summary.csv"), summary)
    machine["load_at_end"] = round(h.load(), 2)
    h.write_machine(out.with_name(out.stem + "-machine.json"), machine)
    print()
    print(h.table(summary, ["workload", "contender", "runs", "work_s", "work_s_min",
                            "work_s_max", "wall_s", "x_dask_mpi_median", "x_tcp_median"]))


if __name__ == "__main__":
    main()
