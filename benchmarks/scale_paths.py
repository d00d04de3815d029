"""The paths that grow with the number of workers, at hundreds to a thousand simulated members.

    .venv/bin/python benchmarks/scale_paths.py --members 256 512 1024 --reps 3 \
        --out benchmarks/results/scale-paths.csv

A real job of 1024 ranks needs 1024 interpreters (≈ 0.45 CPU-s of imports each); these paths
are measured instead with many light members in a few processes (``--drivers``, default 4),
against one scheduler process, all over mutual TLS with one job's credentials:

* ``links``: K member links (dask-batch's ``batch_member`` connection of every worker rank,
  served by the scheduler's ``JobWatch`` as in a job): launch → all K linked; then the release
  fan-out at the job's end (``JobWatch.release_members``) → every member acknowledged.
* ``register``: K lightweight workers (``distributed.Worker``, one thread, no nanny):
  launch → all K registered, ``plain`` (distributed alone) and ``batch`` (each opening its
  member link first, as a worker rank does). The difference is what dask-batch adds.
* ``file``: K waiters (threads) in ``wait_for_scheduler_file`` before the file exists: how long
  after the write the last one has it, and the stat calls per second the waiting costs (what a
  shared filesystem's metadata server sees).
* ``status``: parsing one ``squeue`` answer about an array of K elements (what a BatchCluster
  does every poll) and rendering the array's job script (one submission for all K).

Times per member are the phase's time divided by K: flat means the path scales linearly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

HERE = Path(__file__).resolve()


def _nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ---------------------------------------------------------------- the scheduler process


async def serve(creds_file: str, ready: str) -> None:
    from distributed import Scheduler

    from dask_batch import report
    from dask_batch.lifecycle import JobWatch
    from dask_batch.security import security_from

    creds = json.loads(Path(creds_file).read_text())
    report.configure("warning")
    logging.getLogger("dask_batch").setLevel(logging.ERROR)  # members leaving is the point
    scheduler = Scheduler(host="127.0.0.1", port=0, protocol="tls", dashboard=False,
                          security=security_from(creds))
    await scheduler
    watch = JobWatch(client_expected=False, client_timeout=0, link_timeout=60,
                     signal_grace=60)
    watch.start()
    scheduler.handlers["batch_member"] = watch.member

    async def release(comm=None, n: int = 0) -> float:
        t = time.perf_counter()
        await watch.release_members(n, 30)
        return time.perf_counter() - t

    scheduler.handlers["bench_counts"] = lambda comm=None: (len(watch.members),
                                                             len(scheduler.workers))
    scheduler.handlers["bench_release"] = release
    Path(ready).write_text(scheduler.address)
    await scheduler.finished()


# ---------------------------------------------------------------- a driver process


async def drive(address: str, creds_file: str, what: str, first: int, k: int) -> None:
    """``k`` members (``links``, or workers with or without links); prints READY, waits for
    GO on stdin, starts them, serves until released (links) or closed (workers)."""
    from distributed import Worker

    from dask_batch import report
    from dask_batch.lifecycle import MemberLink
    from dask_batch.security import security_from

    security = security_from(json.loads(Path(creds_file).read_text()))
    report.configure("critical")  # thousands of members closing at once: not news here
    print("READY", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    gate = asyncio.Semaphore(64)  # as many handshakes at once as a node's ranks would start

    async def member(rank: int) -> object:
        async with gate:
            link = None
            if what in ("links", "batch"):
                link = MemberLink(address, security, rank, "worker", 60, on_lost=lambda: None)
                await link.connect()
            if what == "links":
                asyncio.ensure_future(link.serve())
                return link
            return await Worker(address, nthreads=1, security=security, name=f"w-{rank}",
                                dashboard=False, host="127.0.0.1", validate=False)

    started = await asyncio.gather(*(member(first + i) for i in range(k)))
    if what == "links":  # served until the release has reached every link
        while not all(link.released for link in started):
            await asyncio.sleep(0.005)
        await asyncio.gather(*(link.comm.close() for link in started), return_exceptions=True)
    else:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await asyncio.gather(*(w.close(reason="bench done") for w in started),
                             return_exceptions=True)


def wait_file(path: str, k: int, stats: list[int]) -> None:
    """``k`` threads in wait_for_scheduler_file; prints READY, then each thread's delay."""
    from dask_batch import rendezvous

    real_stat = os.stat

    def counting_stat(p, *a, **kw):
        stats[0] += 1
        return real_stat(p, *a, **kw)

    rendezvous.os.stat = counting_stat  # rendezvous's own calls only (it imports os)
    seen: list[float] = []

    def one() -> None:
        rendezvous.wait_for_scheduler_file(path, 60, None, not_before=time.time() - 3600)
        seen.append(time.time())

    threads = [threading.Thread(target=one) for _ in range(k)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    print("WAITING", stats[0], flush=True)
    for t in threads:
        t.join()
    print("SEEN", max(seen), stats[0], flush=True)


# ---------------------------------------------------------------- the orchestration


def _procs(argv_of, n: int) -> list[subprocess.Popen]:
    ps = [subprocess.Popen(argv_of(i), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           text=True, env=h.clean_env()) for i in range(n)]
    for p in ps:
        line = p.stdout.readline()
        assert line.startswith("READY"), line
    return ps


def _counts(address: str, creds: dict) -> tuple[int, int]:
    from distributed.core import rpc

    from dask_batch.security import security_from

    async def ask() -> tuple[int, int]:
        async with rpc(address, connection_args=security_from(creds).get_connection_args(
                "client")) as r:
            return tuple(await r.bench_counts())

    return asyncio.run(ask())


def _release(address: str, creds: dict, n: int) -> float:
    from distributed.core import rpc

    from dask_batch.security import security_from

    async def ask() -> float:
        async with rpc(address, connection_args=security_from(creds).get_connection_args(
                "client")) as r:
            return await r.bench_release(n=n)

    return asyncio.run(ask())


def one_run(what: str, k: int, drivers: int, tmp: Path, creds: dict) -> dict:
    creds_file = tmp / "creds.json"
    ready = tmp / f"ready-{what}-{k}"
    ready.unlink(missing_ok=True)  # an earlier repetition's scheduler address
    sched = subprocess.Popen([h.PY, str(HERE), "--serve", str(creds_file), str(ready)],
                             env=h.clean_env())
    ps: list[subprocess.Popen] = []
    try:
        while not ready.exists():
            time.sleep(0.01)
        address = ready.read_text()
        per = [k // drivers + (i < k % drivers) for i in range(drivers)]
        firsts = [sum(per[:i]) for i in range(drivers)]
        ps = _procs(lambda i: [h.PY, str(HERE), "--drive", address, str(creds_file), what,
                               str(firsts[i]), str(per[i])], drivers)
        t0 = time.perf_counter()
        for p in ps:
            p.stdin.write("GO\n")
            p.stdin.flush()
        index = 0 if what == "links" else 1
        deadline = time.monotonic() + 300
        while _counts(address, creds)[index] < k:
            dead = [p.returncode for p in ps if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"{what} K={k}: drivers ended {dead} before all joined")
            time.sleep(0.02)
        joined = time.perf_counter() - t0
        row = {"path": what if what == "links" else f"register-{what}", "members": k,
               "seconds": round(joined, 3), "per_member_ms": round(joined / k * 1e3, 3)}
        if what == "links":
            row["release_s"] = round(_release(address, creds, k), 3)
            row["release_per_member_ms"] = round(row["release_s"] / k * 1e3, 4)
        else:
            for p in ps:
                p.stdin.write("END\n")
                p.stdin.flush()
        for p in ps:
            p.wait(300)
        return row
    finally:
        for p in [*ps, sched]:
            if p.poll() is None:
                p.kill()
            p.wait(30)


def file_run(k: int, drivers: int, tmp: Path) -> dict:
    from dask_batch.rendezvous import Contact, write_scheduler_file

    path = tmp / f"sched-{k}.json"
    path.unlink(missing_ok=True)
    per = [k // drivers + (i < k % drivers) for i in range(drivers)]
    ps = [subprocess.Popen([h.PY, str(HERE), "--wait-file", str(path), str(n)],
                           stdout=subprocess.PIPE, text=True, env=h.clean_env()) for n in per]
    waiting = [p.stdout.readline().split() for p in ps]  # each: WAITING <stats in 1 s>
    stats_per_s = sum(int(w[1]) for w in waiting)
    written = time.time()
    write_scheduler_file(str(path), Contact(address="tls://127.0.0.1:1", job=None))
    seen = [p.stdout.readline().split() for p in ps]
    for p in ps:
        p.wait(60)
    last = max(float(s[1]) for s in seen) - written
    return {"path": "file", "members": k, "seconds": round(last, 3),
            "per_member_ms": round(last / k * 1e3, 4), "stats_per_s": stats_per_s}


def status_run(k: int) -> dict:
    from dask_batch.submit import slurm
    from dask_batch.submit.base import Request
    from dask_batch.submit.spec import resolve_spec

    out = "\n".join(f"1234_{i} RUNNING" if i % 2 else f"1234_{i} PENDING" for i in range(k))
    t = time.perf_counter()
    for _ in range(20):
        states = slurm.parse_status(out)
    parse = (time.perf_counter() - t) / 20
    assert len(states) == k, len(states)
    spec = resolve_spec(walltime="01:00:00", cores=1)
    t = time.perf_counter()
    text = slurm.render(Request(spec, k, True, "/shared/sched.json", "/shared/state"))
    render = time.perf_counter() - t
    assert f"--array=0-{k - 1}" in text, text
    return {"path": "status", "members": k, "seconds": round(parse, 5),
            "per_member_ms": round(parse / k * 1e3, 5), "render_s": round(render, 5)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--drivers", type=int, default=4)
    ap.add_argument("--paths", nargs="+", default=["links", "plain", "batch", "file", "status"])
    ap.add_argument("--out", default=str(h.BENCH / "results" / "scale-paths.csv"))
    a = ap.parse_args()
    _nofile()
    import distributed.core  # noqa: F401  (imported before any clock starts)

    from dask_batch.security import make_credentials

    m = h.machine()
    print(h.machine_line(m), flush=True)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as d:
        tmp = Path(d)
        creds = make_credentials()
        (tmp / "creds.json").write_text(json.dumps(creds))
        for rep in range(a.reps):
            for k in a.members:
                for what in h.rotate(a.paths, rep):
                    if what == "file":
                        row = file_run(k, a.drivers, tmp)
                    elif what == "status":
                        row = status_run(k)
                    else:
                        row = one_run(what, k, a.drivers, tmp, creds)
                    row["rep"] = rep
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    h.write_csv(a.out, rows)  # as it goes: a later failure keeps these
    h.write_csv(a.out, rows)
    h.write_machine(Path(a.out).with_name("scale-paths-machine.json"), m)
    keys = sorted({(r["path"], r["members"]) for r in rows})
    summary = []
    for path, k in keys:
        got = [r for r in rows if (r["path"], r["members"]) == (path, k)]
        med = sorted(r["seconds"] for r in got)[len(got) // 2]
        rel = sorted(r.get("release_s", 0) for r in got)[len(got) // 2]
        summary.append({"path": path, "members": k, "median_s": med,
                        "per_member_ms": round(med / k * 1e3, 4),
                        "release_s": rel if path == "links" else "",
                        "stats_per_s": got[0].get("stats_per_s", "")})
    h.write_csv(Path(a.out).with_name("scale-paths-summary.csv"), summary)
    print(h.table(summary, ["path", "members", "median_s", "per_member_ms", "release_s",
                            "stats_per_s"]))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        _nofile()
        asyncio.run(serve(*sys.argv[2:4]))
    elif sys.argv[1:2] == ["--drive"]:
        _nofile()
        address, creds_file, what, first, k = sys.argv[2:7]
        asyncio.run(drive(address, creds_file, what, int(first), int(k)))
    elif sys.argv[1:2] == ["--wait-file"]:
        wait_file(sys.argv[2], int(sys.argv[3]), [0])
    else:
        main()
