"""A data-heavy workload under dask-mpi: ``mpiexec -n N python workload_dask_mpi.py NAME SCALE``.

dask-mpi as its documentation writes it (``initialize()``, then ``Client()``), its defaults.
The client prints ``REPORT {json}`` (``work.run``) and ``DONE <time>``.
"""

import json
import sys
import time

from dask_mpi import initialize

initialize()

import work  # noqa: E402
from dask.distributed import Client  # noqa: E402
from mpi4py import MPI  # noqa: E402

with Client() as client:
    client.wait_for_workers(MPI.COMM_WORLD.Get_size() - 2, timeout=120)
    report = work.run(client, sys.argv[1], float(sys.argv[2]))
    report["protocol"] = client.scheduler.address.split("://")[0]
    print("REPORT " + json.dumps(report), flush=True)
    print(f"DONE {time.time():.6f}", flush=True)
