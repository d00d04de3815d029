"""A BatchRunner job: N-2 workers, 100 tasks, prints one JSON line on the client rank.

    mpiexec -n N python mpi_tests/job.py [--exit CODE] [--raise] [--os-exit CODE]
"""

import json
import os
import sys

from dask.distributed import Client

from dask_batch import BatchRunner

args = sys.argv[1:]
with BatchRunner() as runner:
    with Client(runner) as client:
        client.wait_for_workers(runner.n_workers, timeout=60)
        futures = client.map(lambda x: x + 1, range(100))
        total = client.submit(sum, futures).result()
        workers = client.scheduler_info()["workers"]
        print(json.dumps({
            "total": total,
            "n_workers": runner.n_workers,
            "joined": len(workers),
            "names": sorted(str(w["name"]) for w in workers.values()),
            "address": runner.scheduler_address,
            "rank": runner.placement.rank,
            "size": runner.placement.size,
            "launcher": runner.placement.launcher,
        }), flush=True)
    if "--raise" in args:
        raise RuntimeError("client failed on purpose")
    if "--exit" in args:
        sys.exit(int(args[args.index("--exit") + 1]))
    if "--os-exit" in args:
        os._exit(int(args[args.index("--os-exit") + 1]))
