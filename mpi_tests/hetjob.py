"""Client script of a heterogeneous-job test: where each role ran, as one JSON line.

    srun --het-group=0,1 dask-batch run mpi_tests/hetjob.py --workers K

The line: total (must be 5050), n_workers, and for the client, the scheduler and each
worker: its rank (as dask-batch detected it), het_group, the Slurm node it runs on and the
size of its MPI_COMM_WORLD (None without MPI).
"""

import json
import os
import sys

from dask.distributed import Client

from dask_batch.placement import detect


def mpi_size() -> int | None:
    """Size of MPI_COMM_WORLD when this rank's process started MPI, else None."""
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None or not mpi.Is_initialized():
        return None
    return mpi.COMM_WORLD.Get_size()


def where() -> dict:
    p = detect(os.environ)
    return {"rank": p.rank, "size": p.size, "het_group": p.het_group,
            "node": os.environ.get("SLURMD_NODENAME"), "job": p.job_id, "mpi_size": mpi_size()}


expected = int(sys.argv[sys.argv.index("--workers") + 1])
with Client() as client:
    client.wait_for_workers(expected, timeout=90)
    workers = client.run(where)
    futures = client.map(lambda x: x + 1, range(100), pure=False)
    out = {
        "total": client.submit(sum, futures).result(),
        "n_workers": len(client.scheduler_info(n_workers=-1)["workers"]),
        "client": where(),
        "scheduler": client.run_on_scheduler(where),
        "workers": sorted(workers.values(), key=lambda w: w["rank"]),
    }
print(json.dumps(out), flush=True)
