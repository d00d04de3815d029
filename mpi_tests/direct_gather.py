"""A client script for `dask-batch run`: the job's client gathers and scatters straight from
and to the workers, not through the scheduler (unless the user's dask config says otherwise).

    mpiexec -n 4 dask-batch run mpi_tests/direct_gather.py
"""

import json

from dask.distributed import Client


def count_scheduler_transfers(dask_scheduler) -> None:
    """Count the scheduler's gather and scatter handlers' calls from now on."""
    dask_scheduler.transfers = {"gather": 0, "scatter": 0}
    for op in ("gather", "scatter"):
        handler = dask_scheduler.handlers[op]

        async def counted(*args, _op=op, _handler=handler, **kwargs):
            dask_scheduler.transfers[_op] += 1
            return await _handler(*args, **kwargs)

        dask_scheduler.handlers[op] = counted


client = Client()
client.wait_for_workers(2, timeout=60)
client.run_on_scheduler(count_scheduler_transfers)
data = client.scatter([b"x" * 2**20, b"y" * 2**20])
blocks = client.gather(client.map(lambda b: b * 2, data))
print(json.dumps({
    "direct": client.direct_to_workers,
    "sizes": [len(b) for b in blocks],
    "through_scheduler": client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transfers),
}), flush=True)
client.close()
