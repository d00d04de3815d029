"""A client script using the whole client API, left as users leave it: as_completed,
get_client/secede/rejoin inside tasks, asynchronous clients (one never closed), a task fired
and forgotten that still runs at the end, another still pending.

    mpiexec -n N dask-batch run mpi_tests/whole_client_api.py
    mpiexec -n N python mpi_tests/whole_client_api.py --initialize
"""

import asyncio
import sys
import time

from dask.distributed import Client, as_completed, fire_and_forget, get_client, rejoin, secede

if "--initialize" in sys.argv:
    from dask_batch import initialize

    initialize(dashboard=False)


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
        result = await ac.submit(sum, [1, 2, 3])
    await Client(address, asynchronous=True)  # never closed
    return result


client = Client()
done = as_completed(client.map(lambda x: x * x, range(50)), with_results=True)
print("squares", sum(r for _, r in done), flush=True)
print("fib", client.submit(fib, 10).result(), flush=True)
print("async", asyncio.run(asynchronous(client.scheduler.address)), flush=True)
fire_and_forget(client.submit(time.sleep, 30))  # still running when the script ends
pending = client.submit(fib, 14)  # still pending
time.sleep(0.5)
