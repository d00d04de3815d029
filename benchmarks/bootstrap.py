"""Bootstrap time, side by side: dask_batch (each mode), dask-mpi and the import floor.

    .venv/bin/python benchmarks/bootstrap.py --ranks 4 8 12 --reps 5 \
        --out benchmarks/results/bootstrap.csv

One run = ``mpiexec -n N`` of the anchor job (start the cluster, wait for every worker, 100 tiny
tasks, exit), timed from launch until the launcher and every process of the job are gone. The
contenders are interleaved: each repetition runs every contender at every N, in an order
rotated per repetition, so drift in the machine's load hits all alike. Ratios are paired: each
run is divided by the floor (or dask-mpi) run of the same repetition and N, and the median,
min and max of those ratios are reported.

Also recorded per run: teardown (the client's ``DONE`` → every process gone) and the RSS of each
rank at ``DONE``. Writes the runs (``--out``), a summary (``*-summary.csv``) and the machine
(``*-machine.json``); prints a Markdown table. ``--variants`` adds the TCP and no-dashboard
variants. On a shared machine, ``--max-foreign 0.1`` waits before each run until other
processes use less than 10 % of the CPUs, measures what they used during the run (from
/proc/stat and the job's own rusage) and re-runs a disturbed run (``--retries``); every
attempt stays in the CSV. ``--candidate NAME=DIR`` adds each ``batch-*`` contender run
against a patched copy of the package in DIR, to measure a proposed change side by side.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402
from contenders import CONTENDERS, MAIN, VARIANTS, add_candidate  # noqa: E402

MIB = 2**20


def run_matrix(names: list[str], ranks: list[int], reps: int, timeout: float,
               max_foreign: float | None = None, retries: int = 3,
               warmup: bool = True) -> list[dict]:
    """Every contender at every N, ``reps`` times, interleaved; one row per attempt.

    With ``max_foreign``, each run waits until the machine is idle (others below that share
    of the CPUs), and a run during which other processes used more than that share is
    *disturbed*: kept in the rows (``kept`` False) and run again, up to ``retries`` times.
    """
    rows: list[dict] = []
    if warmup:  # page cache and .pyc files, not recorded
        for name in names:
            _one(name, min(ranks), -1, timeout)
    for rep in range(reps):
        for i, n in enumerate(ranks):
            for name in h.rotate(names, rep + i):
                for attempt in range(retries + 1):
                    if max_foreign is not None:
                        h.wait_until_idle(max_foreign)
                    row = _one(name, n, rep, timeout)
                    row["attempt"] = attempt
                    disturbed = max_foreign is not None and row["foreign_share"] > max_foreign
                    row["disturbed"] = disturbed
                    row["kept"] = not disturbed or attempt == retries
                    rows.append(row)
                    print(f"rep {rep} n={n:3d} {name:22s} {row['wall_s']:6.2f} s  "
                          f"teardown {row['teardown_s']}  others {row['foreign_share']:.0%}"
                          f"{'  FAILED' if not row['ok'] else ''}"
                          f"{'  disturbed' if disturbed else ''}", flush=True)
                    if row["kept"]:
                        break
    return rows


def _one(name: str, n: int, rep: int, timeout: float) -> dict:
    c = CONTENDERS[name]
    load = h.load()
    with tempfile.TemporaryDirectory(prefix="bench-") as d:
        argv, env = c.command(n, Path(d))
        run = h.run_job(argv, env, timeout, cwd=d, sample_rss=True)
    if not run.ok:
        sys.stderr.write(f"{name} n={n} rep {rep}: rc={run.rc} leftovers={run.leftovers}\n"
                         f"{run.stderr[-3000:]}\n")
    roles: dict[str, list[int]] = {}
    for rank, rss in run.rss.items():
        roles.setdefault(c.role(rank, n), []).append(rss)
    row = {
        "contender": name, "ranks": n, "rep": rep, "wall_s": round(run.wall, 4),
        "teardown_s": None if run.teardown is None else round(run.teardown, 4),
        "to_done_s": None if run.done_at is None else round(run.done_at - run.started, 4),
        "rc": run.rc, "ok": run.ok and (c.script is None or run.done_at is not None),
        "leftovers": len(run.leftovers), "load_before": round(load, 2),
        "cpu_own_s": round(run.cpu_own, 3), "cpu_others_s": round(run.cpu_foreign, 3),
        "steal_s": round(run.steal, 3), "foreign_share": round(run.foreign_share, 4),
        "started": round(run.started, 3),
    }
    for role in ("scheduler", "client", "worker", "scheduler+client"):
        if role in roles:
            row[f"rss_{role}_mib"] = round(statistics.median(roles[role]) / MIB, 1)
    return row


def paired(rows: list[dict], name: str, n: int, base: str, key: str = "wall_s") -> list[float]:
    """Per repetition: this contender's value / the base contender's at the same N and rep."""
    by = {(r["contender"], r["ranks"], r["rep"]): r for r in rows
          if r["ok"] and r.get("kept", True)}
    out = []
    for (c, k, rep), r in by.items():
        b = by.get((base, k, rep))
        if c == name and k == n and b and b[key]:
            out.append(r[key] / b[key])
    return out


def summarise(rows: list[dict]) -> list[dict]:
    out = []
    names = list(dict.fromkeys(r["contender"] for r in rows))
    for n in sorted({r["ranks"] for r in rows}):
        for name in names:
            mine = [r for r in rows if r["contender"] == name and r["ranks"] == n]
            kept = [r for r in mine if r.get("kept", True)]
            ok = [r for r in kept if r["ok"]]
            failed = len(kept) - len(ok)
            if not ok:
                continue
            s = h.summary([r["wall_s"] for r in ok])
            row = {"contender": name, "ranks": n, "runs": s["n"], "failed": failed,
                   "rerun_disturbed": len(mine) - len(kept),
                   "kept_disturbed": sum(1 for r in ok if r.get("disturbed")),
                   "cpu_own_median_s": round(statistics.median(r["cpu_own_s"] for r in ok), 2),
                   "median_s": round(s["median"], 3), "min_s": round(s["min"], 3),
                   "max_s": round(s["max"], 3)}
            for base, label in (("floor", "floor"), ("dask-mpi", "dask_mpi")):
                ratios = paired(rows, name, n, base)
                if ratios and name != base:
                    row[f"x_{label}"] = round(statistics.median(ratios), 3)
                    row[f"x_{label}_min"] = round(min(ratios), 3)
                    row[f"x_{label}_max"] = round(max(ratios), 3)
            td = [r["teardown_s"] for r in ok if r.get("teardown_s") is not None]
            if td:
                t = h.summary(td)
                row.update(teardown_median_s=round(t["median"], 3),
                           teardown_min_s=round(t["min"], 3), teardown_max_s=round(t["max"], 3))
            for role in ("worker", "scheduler", "client", "scheduler+client"):
                vals = [r[f"rss_{role}_mib"] for r in ok if r.get(f"rss_{role}_mib")]
                if vals:
                    row[f"rss_{role}_mib"] = round(statistics.median(vals), 1)
            out.append(row)
    return out


def fmt_range(row: dict, key: str) -> str:
    if key not in row:
        return "-"
    return f"{row[key]:.2f} ({row[key + '_min']:.2f}–{row[key + '_max']:.2f})"


def markdown(summary: list[dict]) -> str:
    lines = [{
        "contender": r["contender"], "N": r["ranks"],
        "median s (min–max)": f"{r['median_s']:.2f} ({r['min_s']:.2f}–{r['max_s']:.2f})",
        "× floor": fmt_range(r, "x_floor"), "× dask-mpi": fmt_range(r, "x_dask_mpi"),
        "teardown s": f"{r['teardown_median_s']:.2f}" if "teardown_median_s" in r else "-",
        "worker RSS MiB": r.get("rss_worker_mib", "-"),
        "runs": f"{r['runs']}" + (f" ({r['failed']} failed)" if r["failed"] else ""),
    } for r in summary]
    cols = ["contender", "N", "median s (min–max)", "× floor", "× dask-mpi", "teardown s",
            "worker RSS MiB", "runs"]
    return h.table(lines, cols)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, nargs="+", default=[4, 8, 12])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--contenders", nargs="+", default=MAIN, choices=sorted(CONTENDERS))
    ap.add_argument("--variants", action="store_true", help=f"also {', '.join(VARIANTS)}")
    ap.add_argument("--timeout", type=float, default=180, help="seconds per run")
    ap.add_argument("--max-foreign", type=float, default=None, metavar="SHARE",
                    help="wait before each run until other processes use less than SHARE of "
                    "the CPUs (e.g. 0.1), and re-run a run during which they used more")
    ap.add_argument("--retries", type=int, default=3,
                    help="re-runs of a disturbed run (with --max-foreign)")
    ap.add_argument("--candidate", action="append", default=[], metavar="NAME=DIR[:C1,C2]",
                    help="also run each batch-* contender (or only C1, C2) with dask_batch "
                    "from DIR (a patched copy), named <contender>+NAME")
    ap.add_argument("--out", default="benchmarks/results/bootstrap.csv")
    a = ap.parse_args()
    names = list(a.contenders) + (VARIANTS if a.variants else [])
    for spec in a.candidate:
        names += add_candidate(list(names), spec)
    for must in ("floor", "dask-mpi"):  # the ratios need them
        if must not in names:
            names.insert(0, must)
    h.precompile()
    machine = h.machine()
    print(h.machine_line(machine), f"load {machine['load_at_start']}", flush=True)
    t0 = time.time()
    h.stop_on_sigterm()
    rows = run_matrix(names, a.ranks, a.reps, a.timeout, a.max_foreign, a.retries)
    machine["load_at_end"] = round(h.load(), 2)
    machine["minutes"] = round((time.time() - t0) / 60, 1)
    summary = summarise(rows)
    out = Path(a.out)
    h.write_csv(out, rows)
    h.write_csv(out.with_name(out.stem + "-summary.csv"), summary)
    h.write_machine(out.with_name(out.stem + "-machine.json"), machine)
    print()
    print(markdown(summary))
    print(f"\n{h.machine_line(machine)}; load {machine['load_at_start']} → "
          f"{machine['load_at_end']}; {machine['minutes']} min")


if __name__ == "__main__":
    main()
