"""Every rank prints one JSON line: what MPI says, what Slurm says, what dask_batch detects.

    srun --mpi=pmix -n N python mpi_tests/ranks.py
"""

import json
import os
import socket

from dask_batch import mpi as mpi_
from dask_batch.placement import detect

env = detect(os.environ)
comm = mpi_.world()
placed = mpi_.placement_from(comm, env)
keys = ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID", "SLURM_NODEID", "PMIX_RANK",
        "PMI_RANK", "OMPI_COMM_WORLD_RANK")
print(json.dumps({
    "mpi_rank": comm.Get_rank(),
    "mpi_size": comm.Get_size(),
    "host": socket.gethostname(),
    "env": {k: os.environ.get(k) for k in keys},
    "detected": env.as_dict(),
    "placement": placed.as_dict(),
}), flush=True)
comm.Barrier()
