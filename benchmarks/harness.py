"""Shared by the benchmarks: run one job under a time limit, find and kill what it leaves by PID,
summary statistics, and a description of the machine.

Every job gets a tag in its environment (``DASK_BATCH_BENCH_TAG``); the processes of a job are
found by that tag in ``/proc/<pid>/environ``, so ranks that hydra starts in their own sessions,
nanny children and watchdogs are all seen, and all are killed by PID if anything is left.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
JOBS = BENCH / "jobs"
PY = sys.executable
MPIEXEC = shutil.which("mpiexec", path=str(Path(PY).parent)) or "mpiexec"
TAG = "DASK_BATCH_BENCH_TAG"


# ---------------------------------------------------------------- processes of one job


def tagged(tag: str) -> list[int]:
    """PIDs of live (not zombie) processes whose environment carries ``TAG=tag``."""
    needle = f"{TAG}={tag}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if needle in env and alive(int(name)):
            found.append(int(name))
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (a zombie has exited already)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2:][:1] not in (b"Z", b"X")


def kill_pids(pids: Iterable[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def rss_of(pid: int) -> int | None:
    """Resident set size of ``pid`` in bytes (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def rank_of(pid: int) -> int | None:
    """The MPI/PMI rank of ``pid`` from its environment."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"PMI_RANK="):
            return int(item[9:])
    return None


@dataclass
class Run:
    """One job: times are ``time.time()`` seconds; durations in seconds."""

    argv: list[str]
    rc: int | None  # None: killed at the time limit
    started: float
    ended: float  # launcher gone and every tagged process gone
    wall: float  # ended - started
    done_at: float | None = None  # the client's "DONE <time>" line
    teardown: float | None = None  # ended - done_at
    rss: dict[int, int] = field(default_factory=dict)  # rank -> bytes, sampled at DONE
    report: dict = field(default_factory=dict)  # the client's "REPORT {json}" line
    leftovers: list[int] = field(default_factory=list)  # killed by us after the launcher ended
    stdout: str = ""
    stderr: str = ""
    cpu_own: float = 0.0  # CPU seconds used by the job's processes
    cpu_foreign: float = 0.0  # CPU seconds used by everything else on the machine meanwhile
    steal: float = 0.0  # CPU seconds the hypervisor gave to others

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.leftovers

    @property
    def foreign_share(self) -> float:
        """Other processes' CPU during the run, as a share of the machine's capacity."""
        return (self.cpu_foreign + self.steal) / (self.wall * (os.cpu_count() or 1))


def cpu_times() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq) / tick, steal / tick


def children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without launcher and dask_batch settings, plus ``extra``.

    Bytecode writing stays allowed: users' installs have their ``.pyc`` files (the harness
    compiles ``dask_batch`` once, see ``precompile``).
    """
    drop = ("SLURM_", "PMI_", "PMIX_", "OMPI_", "HYDI_", "DASK_BATCH", "DASK_DISTRIBUTED__")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PATH"] = f"{Path(PY).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra or {})
    return env


def precompile() -> None:
    """Write ``.pyc`` for dask_batch and the job scripts, as a pip install would have."""
    import compileall

    for d in (ROOT / "dask_batch", JOBS, BENCH):
        compileall.compile_dir(str(d), quiet=1)


def run_job(
    argv: Sequence[str],
    env: dict[str, str],
    timeout: float = 120.0,
    cwd: str | None = None,
    sample_rss: bool = False,
) -> Run:
    """Run ``argv`` (an ``mpiexec`` line), bounded by ``timeout``; kill what outlives it.

    When the client prints ``DONE <time.time()>``, the job's processes are listed (and their RSS
    sampled if asked); ``ended`` is when the launcher has exited and every one of them is gone.
    """
    tag = uuid.uuid4().hex
    env = {**env, TAG: tag}
    out: list[str] = []
    err: list[str] = []
    done = threading.Event()
    at_done: dict[str, object] = {}

    def read_out(stream) -> None:
        for line in stream:
            out.append(line)
            if line.startswith("DONE ") and not done.is_set():
                at_done["t"] = float(line.split()[1])
                pids = tagged(tag)
                at_done["pids"] = pids
                if sample_rss:
                    at_done["rss"] = {rank_of(p): rss_of(p) for p in pids}
                done.set()

    def read_err(stream) -> None:
        for line in stream:
            err.append(line)

    busy0, steal0 = cpu_times()
    own0 = children_cpu()
    started = time.time()
    p = subprocess.Popen(list(argv), env=env, cwd=cwd, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    readers = [threading.Thread(target=read_out, args=(p.stdout,), daemon=True),
               threading.Thread(target=read_err, args=(p.stderr,), daemon=True)]
    for t in readers:
        t.start()
    rc: int | None
    try:
        rc = p.wait(timeout)
    except subprocess.TimeoutExpired:
        rc = None
        kill_pids(tagged(tag))
        kill_pids([p.pid])
        p.wait(10)
    except BaseException:  # interrupted: leave nothing behind
        kill_pids(tagged(tag))
        kill_pids([p.pid])
        raise
    # every process seen at DONE must be gone too (a rank may outlive hydra's exit)
    pids = [q for q in at_done.get("pids", []) if q != p.pid]  # type: ignore[union-attr]
    deadline = time.time() + 10
    while any(alive(q) for q in pids) and time.time() < deadline:
        time.sleep(0.002)
    ended = time.time()
    busy1, steal1 = cpu_times()
    own = children_cpu() - own0
    leftovers = tagged(tag)
    kill_pids(leftovers)
    for t in readers:
        t.join(5)
    run = Run(argv=list(argv), rc=rc, started=started, ended=ended, wall=ended - started,
              leftovers=leftovers, stdout="".join(out), stderr="".join(err), cpu_own=own,
              cpu_foreign=max(0.0, busy1 - busy0 - own), steal=steal1 - steal0)
    if "t" in at_done:
        run.done_at = float(at_done["t"])  # type: ignore[arg-type]
        run.teardown = ended - run.done_at
        run.rss = {r: b for r, b in at_done.get("rss", {}).items()  # type: ignore[union-attr]
                   if r is not None and b is not None}
    for line in out:
        if line.startswith("REPORT "):
            run.report = json.loads(line[7:])
    return run


def stop_on_sigterm() -> None:
    """SIGTERM ends a benchmark like Ctrl-C: the running job's processes are killed first."""

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def mpiexec(n: int, *args: str) -> list[str]:
    return [MPIEXEC, "-n", str(n), *args]


# ---------------------------------------------------------------- statistics and output


def summary(values: Sequence[float]) -> dict[str, float]:
    return {"n": len(values), "median": statistics.median(values), "min": min(values),
            "max": max(values)}


def rotate(items: Sequence, k: int) -> list:
    """``items`` rotated by ``k``: each repetition starts with another contender."""
    k %= max(1, len(items))
    return list(items[k:]) + list(items[:k])


def write_csv(path: str | Path, rows: list[dict]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def table(rows: list[dict], columns: Sequence[str]) -> str:
    """A plain-text (also Markdown) table."""
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]

    def line(xs: list[str]) -> str:
        return "| " + " | ".join(x.ljust(w) for x, w in zip(xs, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(list(columns)), sep, *(line(r) for r in cells)])


def load() -> float:
    return os.getloadavg()[0]


def busy_share(seconds: float = 1.0) -> float:
    """Share of the machine's CPU capacity in use (by anyone) over the next ``seconds``."""
    b0, s0 = cpu_times()
    time.sleep(seconds)
    b1, s1 = cpu_times()
    return (b1 - b0 + s1 - s0) / (seconds * (os.cpu_count() or 1))


def wait_until_idle(max_share: float, max_wait: float = 900.0) -> float:
    """Wait (up to ``max_wait`` s) until others use less than ``max_share`` of the CPUs."""
    deadline = time.time() + max_wait
    share = busy_share()
    while share > max_share and time.time() < deadline:
        share = busy_share(2.0)
    return share


def wait_for_quiet(max_load: float, max_wait: float = 600.0) -> float:
    """Wait (up to ``max_wait`` s) until the 1-minute load average is below ``max_load``."""
    deadline = time.time() + max_wait
    while load() > max_load and time.time() < deadline:
        time.sleep(5)
    return load()


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "-"


def machine() -> dict[str, object]:
    """What the numbers were measured on."""
    cpu = "?"
    mem_kib = 0
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    mpich = "-"
    tool = shutil.which("mpichversion", path=str(Path(PY).parent))
    if tool:
        got = subprocess.run([tool], capture_output=True, text=True, timeout=10).stdout
        for line in got.splitlines():
            if line.startswith("MPICH Version"):
                mpich = line.split(":", 1)[1].strip()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "host": platform.node(),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "mpich": mpich,
        **{name: _version(name) for name in
           ("mpi4py", "dask", "distributed", "dask-mpi", "dask-batch", "cryptography", "bokeh",
            "tornado")},
        "load_at_start": round(load(), 2),
    }


def machine_line(m: dict[str, object]) -> str:
    return (f"{m['host']}: {m['nproc']} x {m['cpu']}, {m['ram_gib']} GiB, Python {m['python']}, "
            f"MPICH {m['mpich']}, mpi4py {m['mpi4py']}, distributed {m['distributed']}, "
            f"dask-mpi {m['dask-mpi']}")


def write_machine(path: str | Path, m: dict[str, object]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(m, indent=1) + "\n")
