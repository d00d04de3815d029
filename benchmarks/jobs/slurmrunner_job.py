"""The anchor job with dask-jobqueue's SLURMRunner: ``srun -n N python slurmrunner_job.py``.

As dask-jobqueue documents it: rank 0 scheduler, rank 1 client, the rest workers, meeting
through a scheduler file in the working directory; its defaults otherwise (TCP, dashboard on
when bokeh is installed). The client prints ``DONE <time>`` when its work is done.
"""

import time

from dask.distributed import Client
from dask_jobqueue.slurm import SLURMRunner

with SLURMRunner(scheduler_file="scheduler-{job_id}.json") as runner:
    with Client(runner) as client:
        client.wait_for_workers(runner.n_workers, timeout=120)
        assert client.submit(sum, client.map(lambda x: x + 1, range(100))).result() == 5050
        print(f"DONE {time.time():.6f}", flush=True)
