"""A client script for `dask-batch run` over UCX: tasks, then worker-to-worker transfers.

    mpiexec -n 4 dask-batch --protocol ucx --insecure run mpi_tests/ucx_job.py [--mb 8] [--repeat 1]

Prints one JSON line: the scheduler address, the task total, the UCX transports each process
uses (``TLS`` of its UCX context), and per repeat the seconds an ``--mb`` MB array took to go
from the first worker to the second (end to end, and the receiver's own transfer log).
Works over tcp and tls too (then ``ucx`` is null), so benchmarks/ucx_transfer.py compares.
"""

from __future__ import annotations

import json
import os
import sys
import time

from dask.distributed import Client, wait


def make(nbytes: int, seed: int):
    import numpy as np

    return np.full(nbytes, seed % 251, dtype=np.uint8)


def checksum(a) -> tuple[int, int]:
    return int(a.nbytes), int(a[:: 1 << 16].sum())


def ucx_info(dask_worker=None, dask_scheduler=None) -> dict | None:
    """The UCX context this process uses, or None when it uses no UCX."""
    if "ucxx" not in sys.modules:
        return None
    import ucxx

    try:
        config = ucxx.get_config()
    except Exception as e:  # no UCX context was made in this process
        return {"error": str(e)}
    return {"TLS": config.get("TLS"), "version": ".".join(map(str, ucxx.get_ucx_version())),
            "env_TLS": os.environ.get("UCX_TLS")}


def incoming(dask_worker) -> list[dict]:
    return [{"who": e["who"], "total": e["total"], "duration": e["duration"]}
            for e in dask_worker.transfer_incoming_log]


def arg(name: str, default: str) -> str:
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def main() -> None:
    nbytes = int(float(arg("--mb", "8")) * 1_000_000)
    repeat = int(arg("--repeat", "1"))
    client = Client()
    client.wait_for_workers(int(os.environ["DASK_BATCH_N_WORKERS"]), timeout=60)
    workers = sorted(client.scheduler_info()["workers"])
    total = client.submit(sum, client.map(lambda x: x + 1, range(100))).result()
    src, dst = workers[0], workers[1]
    transfers = []
    for i in range(repeat):
        a = client.submit(make, nbytes, i, workers=[src], allow_other_workers=False, pure=False)
        wait(a)
        t0 = time.perf_counter()
        b = client.submit(checksum, a, workers=[dst], allow_other_workers=False, pure=False)
        got = b.result()
        seconds = time.perf_counter() - t0
        assert got == (nbytes, (i % 251) * len(range(0, nbytes, 1 << 16))), got
        log = client.run(incoming, workers=[dst])[dst]
        mine = [e for e in log if e["who"] == src and e["total"] >= nbytes]
        transfers.append({"seconds": seconds,
                          "logged": mine[-1]["duration"] if mine else None,
                          "bytes": mine[-1]["total"] if mine else 0})
        del a, b
    print(json.dumps({
        "address": client.scheduler.address,
        "workers": workers,
        "total": total,
        "nbytes": nbytes,
        "transfers": transfers,
        "ucx": {"scheduler": client.run_on_scheduler(ucx_info), **client.run(ucx_info)},
    }), flush=True)
    client.close()


if __name__ == "__main__":
    main()
