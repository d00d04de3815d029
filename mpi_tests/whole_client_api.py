"""A client script using the whole client API, left as users leave it: as_completed,
get_client/secede/rejoin and worker_client inside tasks, client.sync, an asynchronous client,
the synchronous client never closed, a task fired and forgotten that still runs at the end,
another still pending. (An asynchronous client never closed warns at garbage collection in any
program: distributed's, not the job's.)

    mpiexec -n N dask-batch run mpi_tests/whole_client_api.py
    mpiexec -n N python mpi_tests/whole_client_api.py --initialize
    mpiexec -n N python mpi_tests/whole_client_api.py --runner
"""

import asyncio
import sys
import time

from dask.distributed import (
    Client,
    as_completed,
    fire_and_forget,
    get_client,
    rejoin,
    secede,
    worker_client,
)


def fib(n: int) -> int:
    if n < 2:
        return n
    client = get_client()
    a, b = client.submit(fib, n - 1), client.submit(fib, n - 2)
    secede()
    out = client.gather([a, b])
    rejoin()
    return sum(out)


async def asynchronous(address: str) -> int:
    async with Client(address, asynchronous=True) as ac:
        return await ac.submit(sum, [1, 2, 3])


def doubled_sum(n: int) -> int:
    with worker_client() as wc:  # a worker client, the older spelling of get_client+secede
        return sum(wc.gather(wc.map(lambda x: 2 * x, range(n))))


async def scheduler_workers(client: Client) -> int:
    return len((await client.scheduler.identity())["workers"])


def main() -> None:
    client = Client()
    done = as_completed(client.map(lambda x: x * x, range(50)), with_results=True)
    print("squares", sum(r for _, r in done), flush=True)
    print("fib", client.submit(fib, 10).result(), flush=True)
    print("doubled", client.submit(doubled_sum, 10).result(), flush=True)
    print("sync", int(client.sync(scheduler_workers, client) > 0), flush=True)
    print("async", asyncio.run(asynchronous(client.scheduler.address)), flush=True)
    fire_and_forget(client.submit(time.sleep, 30))  # still running when the script ends
    client.submit(fib, 14)  # still pending
    time.sleep(0.5)


if "--initialize" in sys.argv:
    from dask_batch import initialize

    initialize(dashboard=False)
    main()
elif "--runner" in sys.argv:
    from dask_batch import BatchRunner

    with BatchRunner(dashboard=False):
        main()
else:
    main()
