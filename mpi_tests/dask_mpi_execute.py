"""dask-mpi's ``execute`` pattern, with only the import changed.

    mpiexec -n N python mpi_tests/dask_mpi_execute.py [key=value ...]

key=value pairs are execute()'s keyword arguments (ints and booleans parsed). The client
function prints one JSON line: the workers' names and the scheduler's rank; every rank prints
``RETURNED <rank>`` once execute() has returned.
"""

import json
import os
import sys

from dask_batch import execute


def main() -> None:
    from dask.distributed import Client

    with Client() as client:
        n = int(os.environ["DASK_BATCH_N_WORKERS"])
        client.wait_for_workers(n, timeout=60)
        names = sorted(str(w["name"]) for w in client.scheduler_info()["workers"].values())
        pids = client.run_on_scheduler(lambda: os.getpid())
        total = client.submit(sum, range(10)).result()
        sys.stdout.write(json.dumps({"workers": names, "total": total,
                                     "scheduler_pid": pids}) + "\n")
        sys.stdout.flush()


def parse(value: str):
    if value in ("True", "False"):
        return value == "True"
    return int(value) if value.lstrip("-").isdigit() else value


kwargs = dict(arg.split("=", 1) for arg in sys.argv[1:])
execute(main, **{k: parse(v) for k, v in kwargs.items()})
sys.stdout.write(f"RETURNED {os.environ.get('PMI_RANK')} {os.getpid()}\n")
sys.stdout.flush()
