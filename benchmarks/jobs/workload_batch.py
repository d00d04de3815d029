"""A data-heavy workload in a dask_batch job: ``mpiexec -n N python workload_batch.py NAME SCALE``.

NAME is one of ``work.WORKLOADS``. The client prints ``REPORT {json}`` (the workload's phases,
``work.run``) and ``DONE <time>``; the mode comes from the environment (``DASK_BATCH__SECURE``...).
"""

import json
import sys
import time

import work
from dask.distributed import Client

from dask_batch import BatchRunner

with BatchRunner() as runner:
    with Client(runner) as client:
        client.wait_for_workers(runner.n_workers, timeout=120)
        report = work.run(client, sys.argv[1], float(sys.argv[2]))
        report["protocol"] = runner.scheduler_address.split("://")[0]
        print("REPORT " + json.dumps(report), flush=True)
        print(f"DONE {time.time():.6f}", flush=True)
