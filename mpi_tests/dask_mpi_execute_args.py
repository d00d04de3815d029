"""dask-mpi's ``execute`` with client_args/client_kwargs, and a client function that raises.

    mpiexec -n 4 python mpi_tests/dask_mpi_execute_args.py ok|raise

``ok``: the function gets its arguments and prints one JSON line; every rank prints
``RETURNED <rank>``. ``raise``: the function raises; the cluster ends and the error propagates
on the client rank (a traceback and a non-zero exit there, as a Python error would).
"""

import json
import os
import sys

from dask_batch import execute


def client_code(scale: int, offset: int = 0, *, label: str = "") -> None:
    from dask.distributed import Client

    with Client() as client:
        total = client.submit(sum, [scale * i + offset for i in range(10)]).result()
    if label == "raise":
        raise RuntimeError("the client function failed on purpose")
    sys.stdout.write(json.dumps({"total": total, "label": label}) + "\n")
    sys.stdout.flush()


execute(client_code, client_args=(3,), client_kwargs={"offset": 1, "label": sys.argv[1]},
        dashboard=False)
sys.stdout.write(f"RETURNED {os.environ.get('PMI_RANK')}\n")
sys.stdout.flush()
