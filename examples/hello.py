"""Hello world: every rank runs this file; rank 1 runs the body of the `with`.

    mpiexec -n 6 python examples/hello.py        # or: srun -n 6 python examples/hello.py
"""

from dask.distributed import Client

from dask_batch import BatchRunner

with BatchRunner() as runner:
    with Client(runner) as client:
        client.wait_for_workers(runner.n_workers)
        total = client.submit(sum, client.map(lambda x: x * x, range(100))).result()
        print(f"{runner.n_workers} workers, sum of squares 0..99 = {total}")
        assert total == 328350
