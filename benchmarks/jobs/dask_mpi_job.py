"""The anchor job with dask-mpi, as its documentation writes it: initialize(), then Client().

    mpiexec -n N python benchmarks/jobs/dask_mpi_job.py

``DASK_MPI_BENCH_DASHBOARD=0`` passes ``dashboard=False`` (to measure the dashboard's share).
The client prints ``DONE <time>`` when its work is done; dask-mpi then stops the cluster from
an atexit hook (send_close_signal).
"""

import os
import time

from dask_mpi import initialize

initialize(dashboard=os.environ.get("DASK_MPI_BENCH_DASHBOARD", "1") != "0")

from dask.distributed import Client  # noqa: E402
from mpi4py import MPI  # noqa: E402

with Client() as client:
    client.wait_for_workers(MPI.COMM_WORLD.Get_size() - 2, timeout=120)
    assert client.submit(sum, client.map(lambda x: x + 1, range(100))).result() == 5050
    print(f"DONE {time.time():.6f}", flush=True)
