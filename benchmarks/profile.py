"""Where start-up time goes: per-rank phase timestamps, measured from outside the library.

    python benchmarks/profile.py --ranks 4 8 12 --reps 3 --out benchmarks/results/profile.csv

Each rank runs under a small wrapper (``profile.py rank EVENTS_DIR SCRIPT``) that hooks the
import system and wraps a few functions of distributed, mpi4py and dask_batch *after* they are
imported; nothing in dask_batch changes. Each event is appended at once to a per-rank file
(``name wall-time cpu-time``), so ranks that leave with ``os._exit`` lose nothing.

Phases (per rank): interpreter start, ``import distributed``, ``import dask_batch``, MPI_Init,
rendezvous (waiting for the scheduler's address), TLS credentials, scheduler start (with the
dashboard), worker start and registration, client connect, the work, teardown (client done →
every process gone). The wall-clock milestones of the critical path and the CPU seconds of each
phase summed over ranks are written as CSV and printed; ``plots.py`` draws them.
"""

from __future__ import annotations

import os
import sys
import time

# ---------------------------------------------------------------- the rank wrapper
# (only os, sys and time before the job's own imports, so the wrapper costs next to nothing)


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


class _Recorder:
    def __init__(self, path: str):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def __call__(self, name: str, t: float | None = None, cpu: float | None = None) -> None:
        t = time.time() if t is None else t
        cpu = _cpu() if cpu is None else cpu
        os.write(self.fd, f"{name} {t:.6f} {cpu:.4f}\n".encode())


def _process_start() -> float:
    """This process's start (exec) time from /proc, 10 ms resolution."""
    with open("/proc/self/stat") as f:
        stat = f.read()
    ticks = int(stat[stat.rindex(")") + 2:].split()[19])
    with open("/proc/stat") as f:
        btime = next(int(x.split()[1]) for x in f if x.startswith("btime"))
    return btime + ticks / os.sysconf("SC_CLK_TCK")


def _wrap(owner, attr: str, mark, before: str | None, after: str | None) -> None:
    """Record ``before``/``after`` around ``owner.attr`` (sync or async); skip if it is absent."""
    import functools
    import inspect

    fn = getattr(owner, attr, None)
    if fn is None or getattr(fn, "_bench_wrapped", False):
        return
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def wrapper(*a, **k):
            if before:
                mark(before)
            try:
                return await fn(*a, **k)
            finally:
                if after:
                    mark(after)
    else:

        @functools.wraps(fn)
        def wrapper(*a, **k):
            if before:
                mark(before)
            try:
                return fn(*a, **k)
            finally:
                if after:
                    mark(after)

    wrapper._bench_wrapped = True  # type: ignore[attr-defined]
    setattr(owner, attr, wrapper)


class _CommProxy:
    """dask-mpi's bcast/Barrier on COMM_WORLD, timed (dask-mpi offers no other seam)."""

    def __init__(self, comm, mark):
        self._comm, self._mark = comm, mark

    def __getattr__(self, name):
        return getattr(self._comm, name)

    def bcast(self, *a, **k):
        out = self._comm.bcast(*a, **k)
        self._mark("published" if self._comm.Get_rank() == 0 else "contact")
        return out

    def Barrier(self):  # noqa: N802 (mpi4py's name)
        self._comm.Barrier()
        self._mark("barrier")


def _patches(mark):
    """module name -> (called before its code runs, called after)."""

    def distributed_after(mod):
        mark("import_distributed")
        from distributed import client, scheduler, worker

        _wrap(scheduler.Scheduler, "__init__", mark, "sched_init0", "sched_init1")
        _wrap(scheduler.Scheduler, "start_unsafe", mark, None, "sched_up")
        _wrap(scheduler.Scheduler, "close", mark, "sched_close0", "sched_close1")
        _wrap(worker.Worker, "__init__", mark, "worker_init0", "worker_init1")
        _wrap(worker.Worker, "_register_with_scheduler", mark, None, "worker_registered")
        _wrap(worker.Worker, "close", mark, "worker_close0", "worker_close1")
        _wrap(client.Client, "__init__", mark, "client_init0", None)
        _wrap(client.Client, "_start", mark, None, "client_up")
        _wrap(client.Client, "wait_for_workers", mark, None, "workers_ready")
        _wrap(client.Client, "__exit__", mark, "client_exit0", "client_exit1")

    def mpi_after(mod):
        mark("mpi_init1")
        _wrap(mod, "Finalize", mark, "mpi_fin0", "mpi_fin1")
        if "dask_mpi.initialize" in sys.modules:
            mod.COMM_WORLD = _CommProxy(mod.COMM_WORLD, mark)

    def runner_after(mod):
        mark("import_dask_batch")
        _wrap(mod.BatchRunner, "start", mark, "runner_start", None)
        _wrap(mod.BatchRunner, "finish", mark, "finish0", "finish1")
        for name in ("mpi_publish", "write_scheduler_file"):
            _wrap(mod, name, mark, None, "published")
        for name in ("mpi_wait", "wait_for_scheduler_file"):
            _wrap(mod, name, mark, None, "contact")

    def security_after(mod):
        _wrap(mod, "make_credentials", mark, "creds0", "creds1")

    def lifecycle_after(mod):
        _wrap(mod.MemberLink, "connect", mark, None, "link_up")

    return {
        "distributed": (None, distributed_after),
        "mpi4py.MPI": (lambda m: mark("mpi_init0"), mpi_after),
        "dask_batch.runner": (None, runner_after),
        "dask_batch.security": (None, security_after),
        "dask_batch.lifecycle": (None, lifecycle_after),
    }


def _install_hooks(mark) -> None:
    import importlib.abc

    patches = _patches(mark)

    class Loader(importlib.abc.Loader):
        def __init__(self, inner, name):
            self.inner, self.name = inner, name

        def create_module(self, spec):
            return self.inner.create_module(spec)

        def exec_module(self, module):
            before, after = patches[self.name]
            if before:
                before(module)
            self.inner.exec_module(module)
            if after:
                try:
                    after(module)
                except Exception as e:  # a renamed function must not break the job
                    mark(f"hook_error:{self.name}:{type(e).__name__}")

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name not in patches:
                return None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    if spec.loader is not None:
                        spec.loader = Loader(spec.loader, name)
                    return spec
            return None

    sys.meta_path.insert(0, Finder())


def rank_main(events_dir: str, script: str, args: list[str]) -> None:
    import atexit
    import runpy

    rank = os.environ.get("PMI_RANK", "x")
    mark = _Recorder(os.path.join(events_dir, f"rank-{rank}.txt"))
    mark("proc_start", _process_start(), 0.0)
    mark("wrapper")
    real_exit = os._exit

    def _exit(code):
        mark("exit")
        real_exit(code)

    os._exit = _exit
    atexit.register(mark, "exit")  # registered first: runs last
    _install_hooks(mark)
    sys.argv = [script, *args]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__" and len(sys.argv) > 3 and sys.argv[1] == "rank":
    rank_main(sys.argv[2], sys.argv[3], sys.argv[4:])
    sys.exit(0)

# ---------------------------------------------------------------- the driver

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402
from contenders import CONTENDERS, PROFILED, add_candidate  # noqa: E402

# milestones of the critical path, each the latest (max) over the ranks that have it
MILESTONES = [
    ("imported", "import_distributed", "max"),
    ("mpi_init", "mpi_init1", "max"),
    ("scheduler_up", "published", "rank0"),
    ("workers_registered", "worker_registered", "max"),
    ("client_connected", "client_up", "max"),
    ("workers_ready", "workers_ready", "max"),
    ("work_done", "client_exit0", "max"),
]

# CPU phases: (name, from-event, to-event); a phase is counted on the ranks that have both
PHASES = [
    ("interpreter", "proc_start", "wrapper"),
    ("import distributed", "wrapper", "import_distributed"),
    ("import dask_batch", "import_distributed", "import_dask_batch"),
    ("MPI_Init", "mpi_init0", "mpi_init1"),
    ("TLS credentials", "creds0", "creds1"),
    ("scheduler init (dashboard)", "sched_init0", "sched_init1"),
    ("scheduler start", "sched_init1", "sched_up"),
    ("rendezvous wait", "mpi_init1", "contact"),
    ("worker init", "worker_init0", "worker_init1"),
    ("worker register", "worker_init1", "worker_registered"),
    ("client connect", "client_init0", "client_up"),
    ("teardown", "client_exit0", "exit"),
]


def read_events(path: Path) -> dict[str, tuple[float, float]]:
    """First occurrence of each event (last for 'exit'): name -> (wall, cpu)."""
    ev: dict[str, tuple[float, float]] = {}
    for line in path.read_text().splitlines():
        name, t, cpu = line.split()
        if name not in ev or name in ("exit", "mpi_fin1"):
            ev[name] = (float(t), float(cpu))
    return ev


def analyse(run: h.Run, events_dir: Path) -> tuple[dict, list[dict]]:
    ranks = {int(p.stem.split("-")[1]): read_events(p)
             for p in events_dir.glob("rank-*.txt") if p.stem.split("-")[1].isdigit()}
    t0 = run.started
    miles: dict[str, float] = {}
    for label, event, how in MILESTONES:
        if how == "rank0":
            got = [ranks.get(0, {}).get(event)]
        else:
            got = [ev.get(event) for ev in ranks.values()]
        got = [g[0] for g in got if g]
        if got:
            miles[label] = max(got) - t0
    miles["all_gone"] = run.ended - t0
    if run.done_at:
        miles["teardown"] = run.ended - run.done_at
    per_rank = []
    for rank, ev in sorted(ranks.items()):
        row: dict = {"rank": rank, "cpu_total": max(c for _, c in ev.values())}
        for name, a, b in PHASES:
            if a in ev and b in ev:
                row[f"wall:{name}"] = ev[b][0] - ev[a][0]
                row[f"cpu:{name}"] = ev[b][1] - ev[a][1]
        per_rank.append(row)
    return miles, per_rank


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, nargs="+", default=[4, 8, 12])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--contenders", nargs="+", default=PROFILED, choices=sorted(CONTENDERS))
    ap.add_argument("--candidate", action="append", default=[], metavar="NAME=DIR",
                    help="also profile each batch-* contender with dask_batch from DIR")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--max-foreign", type=float, default=None, metavar="SHARE",
                    help="wait until others use less than SHARE of the CPUs; re-run a run "
                    "they disturbed (see bootstrap.py)")
    ap.add_argument("--retries", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/profile.csv")
    a = ap.parse_args()
    for spec in a.candidate:
        a.contenders += add_candidate(list(a.contenders), spec)
    h.precompile()
    machine = h.machine()
    print(h.machine_line(machine), f"load {machine['load_at_start']}", flush=True)
    rows, cpu_rows = [], []
    me = str(Path(__file__).resolve())
    h.stop_on_sigterm()
    for rep in range(a.reps):
        for n in a.ranks:
            for name in h.rotate(a.contenders, rep):
                c = CONTENDERS[name]
                for attempt in range(a.retries + 1):
                    if a.max_foreign is not None:
                        h.wait_until_idle(a.max_foreign)
                    with tempfile.TemporaryDirectory(prefix="bench-") as d:
                        events = Path(d) / "events"
                        events.mkdir()
                        argv, env = c.command(n, Path(d), wrapper=[me, "rank", str(events)])
                        run = h.run_job(argv, env, a.timeout, cwd=d)
                        miles, per_rank = analyse(run, events) if run.ok else ({}, [])
                    disturbed = a.max_foreign is not None and run.foreign_share > a.max_foreign
                    if not disturbed or attempt == a.retries:
                        break
                if not run.ok:
                    print(f"FAILED {name} n={n}: rc={run.rc} leftovers={run.leftovers}\n"
                          f"{run.stderr[-2000:]}", file=sys.stderr)
                    continue
                rows.append({"contender": name, "ranks": n, "rep": rep,
                             "foreign_share": round(run.foreign_share, 4),
                             "disturbed": disturbed,
                             **{k: round(v, 4) for k, v in miles.items()}})
                for r in per_rank:
                    role = c.role(r["rank"], n)
                    cpu_rows.append({"contender": name, "ranks": n, "rep": rep, "role": role,
                                     **{k: round(v, 4) for k, v in r.items()}})
                print(f"rep {rep} n={n:3d} {name:14s} " + " ".join(
                    f"{k}={v:.2f}" for k, v in miles.items()), flush=True)
    out = Path(a.out)
    h.write_csv(out, rows)
    h.write_csv(out.with_name(out.stem + "-ranks.csv"), cpu_rows)
    h.write_machine(out.with_name(out.stem + "-machine.json"), machine)
    print()
    print(report(rows, cpu_rows))


def report(rows: list[dict], cpu_rows: list[dict]) -> str:
    """Median milestones, and median CPU seconds per phase summed over the ranks of a run."""
    keys = [m[0] for m in MILESTONES] + ["all_gone", "teardown"]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["contender"], r["ranks"]), []).append(r)
    lines = []
    for (name, n), rs in groups.items():
        cells = {"contender": name, "ranks": n}
        for k in keys:
            vals = [r[k] for r in rs if r.get(k) not in (None, "")]
            cells[k] = f"{statistics.median(vals):.2f}" if vals else "-"
        lines.append(cells)
    out = ["Milestones (s after launch, median; the latest rank):",
           h.table(lines, ["contender", "ranks", *keys])]
    sums: dict[tuple, dict[int, dict[str, float]]] = {}
    for r in cpu_rows:
        per_rep = sums.setdefault((r["contender"], r["ranks"]), {}).setdefault(r["rep"], {})
        for k, v in r.items():
            if (k.startswith("cpu:") or k == "cpu_total") and v not in (None, ""):
                per_rep[k] = per_rep.get(k, 0.0) + float(v)
    cols = ["cpu_total"] + [f"cpu:{p[0]}" for p in PHASES]
    lines = []
    for (name, n), reps in sums.items():
        cells = {"contender": name, "ranks": n}
        for k in cols:
            med = statistics.median(r.get(k, 0.0) for r in reps.values())
            cells[k.removeprefix("cpu:")] = f"{med:.2f}"
        lines.append(cells)
    out += ["", "CPU seconds summed over ranks (median over repetitions):",
            h.table(lines, ["contender", "ranks", *(c.removeprefix("cpu:") for c in cols)])]
    return "\n".join(out)


if __name__ == "__main__":
    main()
