"""The anchor job with dask_batch: start the cluster, wait for every worker, 100 tiny tasks, exit.

    mpiexec -n N python benchmarks/jobs/batch_job.py

The mode comes from the environment (DASK_BATCH__MPI, DASK_BATCH__SCHEDULER_FILE,
DASK_BATCH__CLIENT_ON_SCHEDULER, ...). The client prints ``DONE <time>`` when its work is done,
which is where the teardown measurement starts.
"""

import time

from dask.distributed import Client

from dask_batch import BatchRunner

with BatchRunner() as runner:
    with Client(runner) as client:
        client.wait_for_workers(runner.n_workers, timeout=120)
        assert client.submit(sum, client.map(lambda x: x + 1, range(100))).result() == 5050
        print(f"DONE {time.time():.6f}", flush=True)
