"""Heterogeneous add-on pools: route tasks to high-memory or GPU workers with resources.

Run as the client of a BatchRunner job, e.g.  srun -n 4 python examples/addon_pools.py
(every rank runs this file; rank 1 runs the body of the `with`). Besides the allocation's own
workers, it sends two kinds of worker jobs to the batch system (detected from the commands on
PATH, or DASK_BATCH__SUBMIT__SYSTEM=slurm|pbs|...). The pools come from config (batch.pools)
or, as here, from a YAML file (POOLS_FILE, default pools.yaml):

    # pools.yaml
    highmem:
      memory: 256GiB
      cores: 16
      queue: bigmem
      resources: {MEM: 256e9}
    gpu:
      gpus: 1
      cores: 8
      memory: 64GiB
      prologue: ["module load cuda"]      # a GPU job advertises {"GPU": 1} per worker
"""

from __future__ import annotations

import os

import dask
from dask.distributed import Client

from dask_batch import BatchRunner
from dask_batch.submit import AddOnWorkers

POOLS = os.environ.get("POOLS_FILE", "pools.yaml")
WALLTIME = os.environ.get("WALLTIME", "02:00:00")


def big_join(part: int) -> int:
    return part * 2  # stands in for something that needs 256 GB


def train(data: list[int]) -> int:
    return sum(data)  # stands in for something that needs a GPU


with BatchRunner() as runner, Client(runner) as client:
    own = runner.n_workers  # the allocation's own workers (some may still be joining)
    highmem = AddOnWorkers.from_runner(runner, pool="highmem", pools_file=POOLS,
                                       walltime=WALLTIME)
    gpu = AddOnWorkers.from_runner(runner, pool="gpu", pools_file=POOLS, walltime=WALLTIME)
    # fixed sizes here; highmem.adapt(minimum=0, maximum=4) would also work: a pool's adaptive
    # target counts the tasks waiting for its resources (MEM), even while other workers idle.
    highmem.scale(2)
    gpu.scale(1)

    parts = client.map(lambda i: list(range(i)), range(10))  # any worker
    with dask.annotate(resources={"MEM": 200e9}):  # graph tasks: only on highmem workers
        joined = [dask.delayed(big_join)(i) for i in range(8)]
    # optimize_graph=False keeps the annotations (fusion may drop them)
    joined = client.compute(joined, optimize_graph=False)
    model = client.submit(train, parts[-1], resources={"GPU": 1})  # single tasks: resources=
    print("joined:", client.gather(joined), "model:", model.result())
    # the MEM tasks may all have run on the first highmem worker: wait for every pool job's
    # worker so that the listing below is complete (on a busy queue this waits for the queue)
    client.wait_for_workers(own + 3)
    ran_on = client.run(lambda dask_worker: sorted(dask_worker.state.total_resources))
    print("workers by resources:", sorted(",".join(r) or "-" for r in ran_on.values()))
    print("jobs:", highmem.status()["counts"], gpu.status()["counts"])
    del parts, joined, model  # release the results before their workers go
    highmem.close()  # cancels its jobs
    gpu.close()
