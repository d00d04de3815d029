"""Add-on worker submission on the real Slurm: one array vs one job per call, and join time.

    python benchmarks/submit.py [--jobs 1000] [--join 16]

1. Submit ``--jobs`` held worker jobs (``--hold``: nothing runs; all cancelled afterwards) as
   one array (dask-batch) and as one ``sbatch`` per job (what dask-jobqueue does, #196):
   wall time of the tool and number of calls to the Slurm controller.
2. Time from ``scale(N)`` until N add-on workers have joined a running scheduler (1 CPU,
   160 MiB, no nanny per job), sent as one array and as N single jobs (``--no-array``). The
   single-node Slurm of ci/clusters advertises 16 CPUs, so N defaults to 16; for N = 100 start
   it with more (the node is oversubscribed either way):

       SLURM_CI_CPUS=128 bash ci/clusters/start-slurm.sh
       python benchmarks/submit.py --jobs 0 --join 100 --out benchmarks/results/submit-join.json

3. ``--clusters N``: a cluster from this process, as a notebook user makes one, side by side:
   ``BatchCluster(system="slurm")`` (mutual TLS, one array per ``scale()``) and dask-jobqueue's
   ``SLURMCluster`` (TCP, one ``sbatch`` per job), the same 1-CPU 160 MiB no-nanny jobs: time
   from ``scale(N)`` until N workers have joined, the ``sbatch`` calls it took, and the time
   from ``scale(0)`` until the queue holds none of its jobs; then ``adapt(0..N)`` under 4N
   queued 5-second tasks: the time until N workers have joined.

       python benchmarks/submit.py --jobs 0 --join 0 --clusters 16 \
           --out benchmarks/results/submit-clusters.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "fakes"))


def submit_bench(n: int, directory: str) -> dict:
    from dask_batch.submit import jobs
    from dask_batch.submit.base import get_system
    from dask_batch.submit.spec import resolve_spec

    slurm = get_system("slurm")
    sched = os.path.join(directory, "sched.json")
    Path(sched).write_text('{"address": "tls://127.0.0.1:1"}')
    os.chmod(sched, 0o600)
    out = {}
    for label, array in (("array", True), ("per_job", False)):
        spec = resolve_spec(walltime="00:05:00", cores=1, memory="256MiB", nanny=False,
                            queue="debug", array=array, extra_directives=["--hold"],
                            job_name=f"bench-{label}")
        calls = [0]
        real_run = jobs.run

        def counting(argv, *a, _calls=calls, _run=real_run, **k):
            _calls[0] += 1
            return _run(argv, *a, **k)

        jobs.run = counting
        t0 = time.perf_counter()
        try:
            records = jobs.submit(spec, slurm, n, sched, timeout=120)
            t_submit = time.perf_counter() - t0
            calls_submit = calls[0]
            t1 = time.perf_counter()
            states = jobs.query(records, directory + "/x", timeout=120)
            t_status = time.perf_counter() - t1
        finally:
            jobs.run = real_run
            ids = sorted({r.job_id for r in jobs.load(sched)})
            for i in range(0, len(ids), 500):
                subprocess.run(["scancel", *ids[i:i + 500]], capture_output=True, timeout=120)
            os.unlink(sched.replace(".json", ".addon.json"))
        held = sum(s.value in ("held", "pending") for s in states.values())
        out[label] = {"jobs": n, "submit_s": round(t_submit, 3), "sbatch_calls": calls_submit,
                      "status_query_s": round(t_status, 3), "seen_pending_or_held": held}
    return out


def join_bench(n: int, directory: str, array: bool = True) -> dict:
    from distributed import Client
    from helpers import running_scheduler

    from dask_batch.submit import AddOnWorkers

    with running_scheduler(Path(directory)) as (sched, sec):
        address = json.load(open(sched))["address"]
        with Client(address, security=sec) as client, AddOnWorkers(
                sched, system="slurm", walltime="00:05:00", cores=1, memory="160MiB",
                nanny=False, queue="debug", poll_interval=2, array=array) as workers:
            t0 = time.perf_counter()
            workers.scale(n)
            t_submit = time.perf_counter() - t0
            marks = {}
            while len(client.scheduler_info(n_workers=-1)["workers"]) < n:
                have = len(client.scheduler_info(n_workers=-1)["workers"])
                for k in (1, n // 2):
                    if have >= k and k not in marks:
                        marks[k] = time.perf_counter() - t0
                if time.perf_counter() - t0 > 300:
                    break
                time.sleep(0.1)
            t_all = time.perf_counter() - t0
            joined = len(client.scheduler_info(n_workers=-1)["workers"])
    return {"array": array, "workers": n, "joined": joined, "scale_call_s": round(t_submit, 3),
            "first_s": round(marks.get(1, t_all), 2),
            "half_s": round(marks.get(n // 2, t_all), 2), "all_s": round(t_all, 2)}


def _ours(n_jobs_dir: str):
    from dask_batch import BatchCluster

    return BatchCluster(system="slurm", cores=1, memory="160MiB", walltime="00:10:00",
                        queue="debug", nanny=False, poll_interval=1,
                        scheduler_file=os.path.join(n_jobs_dir, "ours", "sched.json"),
                        scheduler_options={"host": "127.0.0.1", "dashboard_address": ":0"})


def _theirs(directory: str):
    import dask_jobqueue

    return dask_jobqueue.SLURMCluster(
        cores=1, memory="160MiB", processes=1, walltime="00:10:00", queue="debug", nanny=False,
        log_directory=os.path.join(directory, "jq-logs"),
        scheduler_options={"host": "127.0.0.1", "dashboard_address": ":0"})


_PROBING = [False]  # the benchmark's own squeue, not counted as the tool's


def _queued(name: str) -> int:
    _PROBING[0] = True
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-n", name, "-o", "%i %T"],
                             capture_output=True, text=True, timeout=30).stdout
    finally:
        _PROBING[0] = False
    return sum(1 for ln in out.splitlines() if ln.split()[1:] != ["COMPLETING"])


def _adapt_to(cluster, client, n: int) -> float:
    """adapt(0..n) under 4n queued 5-second tasks: seconds until n workers have joined."""
    import time as _time

    cluster.adapt(minimum=0, maximum=n, interval="500ms", wait_count=60)
    t0 = time.perf_counter()
    futures = client.map(_time.sleep, [5] * (4 * n), pure=False)
    while len(client.scheduler_info(n_workers=-1)["workers"]) < n:
        if time.perf_counter() - t0 > 300:
            break
        time.sleep(0.1)
    took = time.perf_counter() - t0
    client.cancel(futures)
    cluster.adapt(minimum=0, maximum=0)
    return took


def cluster_bench(n: int, directory: str) -> list[dict]:
    """scale(n) -> n joined, then scale(0) -> none queued, for both clusters."""
    from distributed import Client


    rows = []
    for label, make, name in (("dask_batch.BatchCluster", _ours, "dask-worker"),
                              ("dask_jobqueue.SLURMCluster", _theirs, "dask-worker")):
        calls = {"sbatch": 0, "squeue": 0, "scancel": 0}
        real = subprocess.Popen.__init__

        def counting(self, args, *a, _real=real, _calls=calls, **k):
            word = args.split()[0] if isinstance(args, str) and args.strip() else (
                str(args[0]) if isinstance(args, (list, tuple)) and args else "")
            command = os.path.basename(word)
            if command in _calls and not _PROBING[0]:
                _calls[command] += 1
            _real(self, args, *a, **k)

        subprocess.Popen.__init__ = counting  # both tools run sbatch as a subprocess
        try:
            with make(directory) as cluster, Client(cluster) as client:
                t0 = time.perf_counter()
                cluster.scale(n)
                client.wait_for_workers(n, timeout=600)
                joined = time.perf_counter() - t0
                t1 = time.perf_counter()
                cluster.scale(0)
                while _queued(name) and time.perf_counter() - t1 < 120:
                    time.sleep(0.2)
                gone = time.perf_counter() - t1
                adapted = _adapt_to(cluster, client, n)
                cluster.scale(0)
        finally:
            subprocess.Popen.__init__ = real
        rows.append({"cluster": label, "workers": n, "all_joined_s": round(joined, 2),
                     "sbatch_calls": calls["sbatch"], "squeue_calls": calls["squeue"],
                     "scancel_calls": calls["scancel"],
                     "scale_to_0_queue_empty_s": round(gone, 2),
                     "per_worker_ms": round(joined / n * 1e3, 1),
                     "adapt_to_n_joined_s": round(adapted, 2)})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--jobs", type=int, default=1000)
    p.add_argument("--join", type=int, default=16)
    p.add_argument("--clusters", type=int, default=0,
                   help="workers for the BatchCluster vs dask-jobqueue comparison (0: skip)")
    p.add_argument("--out", help="also write the JSON result here")
    args = p.parse_args()
    os.environ.pop("SLURM_CONF", None)
    with tempfile.TemporaryDirectory(dir=os.getcwd()) as d:
        result = {"submit": submit_bench(args.jobs, d) if args.jobs else None,
                  "join": [join_bench(args.join, d, array) for array in (True, False)]
                  if args.join else None,
                  "clusters": cluster_bench(args.clusters, d) if args.clusters else None,
                  "cpus_here": os.cpu_count(), "slurm_cpus": _node_cpus(),
                  "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


def _node_cpus() -> str:
    out = subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True, text=True,
                         timeout=30).stdout
    return out.strip()


if __name__ == "__main__":
    main()
