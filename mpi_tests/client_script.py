"""A client script for `dask-batch run`: a plain Client() must connect to the job's cluster.

    mpiexec -n N dask-batch run mpi_tests/client_script.py [--exit CODE] [extra args]
"""

import json
import os
import sys

from dask.distributed import Client

client = Client()
client.wait_for_workers(int(os.environ["DASK_BATCH_N_WORKERS"]), timeout=60)
n = int(client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.workers)))
total = client.submit(sum, client.map(lambda x: x * 2, range(10))).result()
print(json.dumps({"argv": sys.argv[1:], "workers": n, "total": total,
                  "address": client.scheduler.address, "name": __name__}), flush=True)
client.close()
if "--exit" in sys.argv:
    sys.exit(int(sys.argv[sys.argv.index("--exit") + 1]))
