"""A cluster job that reports where its workers are: one JSON line on the client rank.

    srun -n N python mpi_tests/cluster.py [options]              # every rank: BatchRunner
    srun -n N dask-batch run mpi_tests/cluster.py --plain [...]  # client script: plain Client()

Options:
    --plain            the script runs as the client of `dask-batch run`: a plain Client()
    --workers K        workers to wait for (default: all worker ranks; required with --plain)
    --transfer MB      move MB of random bytes between two workers on different hosts
    --ready FILE       once the workers joined, write FILE (worker pids and hosts) ...
    --go FILE          ... and wait (at most 120 s) for FILE before computing
    --exit CODE        exit with CODE after printing the result

The JSON line: total (must be 5050), joined, workers [{name, address, host, nthreads,
memory_limit, pid}], address (scheduler), and for --transfer: the source and destination
worker addresses, the bytes moved and how long it took.
"""

import json
import os
import sys
import time

from dask.distributed import Client, wait

args = sys.argv[1:]


def opt(name, default=None):
    return args[args.index(name) + 1] if name in args else default


def workers_of(client):
    info = client.scheduler_info(n_workers=-1)["workers"]
    out = []
    for address, w in sorted(info.items()):
        out.append({
            "name": str(w["name"]),
            "address": address,
            "host": w["host"],
            "nthreads": w["nthreads"],
            "memory_limit": w["memory_limit"],
            "pid": w.get("metrics", {}).get("pid") or w.get("pid"),
        })
    return out


def transfer(client, workers, megabytes):
    """Random (incompressible) bytes made on one host, read by a worker on another host."""
    by_host = {}
    for w in workers:
        by_host.setdefault(w["host"], w["address"])
    if len(by_host) < 2:
        return {"error": f"workers on one host only: {sorted(by_host)}"}
    src, dst = list(by_host.values())[:2]
    size = megabytes * 2**20
    data = client.submit(os.urandom, size, workers=[src], pure=False)
    wait(data)
    t0 = time.monotonic()
    got = client.submit(len, data, workers=[dst], allow_other_workers=False).result()
    return {"src": src, "dst": dst, "bytes": got, "seconds": round(time.monotonic() - t0, 3)}


def work(client, expected):
    client.wait_for_workers(expected, timeout=90)
    workers = workers_of(client)
    ready, go = opt("--ready"), opt("--go")
    if ready:
        tmp = ready + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"workers": workers, "client_pid": os.getpid()}, f)
        os.replace(tmp, ready)
    if go:
        deadline = time.monotonic() + 120
        while not os.path.exists(go) and time.monotonic() < deadline:
            time.sleep(0.05)
    result = {}
    if "--transfer" in args:
        result["transfer"] = transfer(client, workers, int(opt("--transfer")))
    futures = client.map(lambda x: x + 1, range(100), pure=False)
    result["total"] = client.submit(sum, futures).result()
    after = workers_of(client)
    result.update({
        "joined": len(workers),
        "workers": workers,
        "workers_after": len(after),
        "address": client.scheduler.address,
    })
    return result


if "--plain" in args:
    with Client() as client:
        out = work(client, int(opt("--workers")))
    print(json.dumps(out), flush=True)
else:
    from dask_batch import BatchRunner

    with BatchRunner() as runner:
        with Client(runner) as client:
            out = work(client, int(opt("--workers", runner.n_workers)))
            p = runner.placement
            out.update({"rank": p.rank, "size": p.size, "launcher": p.launcher,
                        "n_workers": runner.n_workers})
        print(json.dumps(out), flush=True)
if "--exit" in args:
    sys.exit(int(opt("--exit")))
