"""dask-mpi's ``initialize`` and ``send_close_signal``, same arguments, same behaviour.

Differences a dask-mpi user gains: the world size check names the launcher, the client's exit
code reaches the job, ranks exit in bounded time, and ``memory_limit="auto"`` is the node's
share per worker instead of the whole node for each.
"""

from __future__ import annotations

import atexit
import sys
from typing import Any

from .errors import BatchError
from .lifecycle import report_and_exit
from .runner import BatchRunner

_active: BatchRunner | None = None


def initialize(
    interface: str | None = None,
    nthreads: int = 1,
    local_directory: str | None = None,
    memory_limit: Any = "auto",
    nanny: bool = False,
    dashboard: bool = True,
    dashboard_address: str = ":8787",
    protocol: str | None = None,
    worker_class: str = "distributed.Worker",
    worker_options: dict | None = None,
    comm: Any = None,
    exit: bool = True,
    **batch_options: Any,
) -> bool:
    """Start a Dask cluster across the ranks of this job (drop-in for ``dask_mpi.initialize``).

    Rank 0 runs the scheduler, rank 1 returns to run the client code, the others run workers.
    With ``exit=True`` the scheduler and worker ranks end the process when the client is done
    (the client's exit tells them, through ``atexit``); with ``exit=False`` they return
    ``False`` and the client must call ``send_close_signal()``. Returns True on the client.
    Extra keyword arguments are ``BatchRunner`` options (e.g. ``secure=False``).
    """
    global _active
    if protocol in ("tcp", "tcp://", "ucx", "ucx://") and "secure" not in batch_options:
        # dask-mpi had no TLS: asking for a plain protocol there is asking for no TLS here
        batch_options["secure"] = False
    runner = BatchRunner(
        comm=comm,
        exit=exit,
        interface=interface,
        nthreads=nthreads,
        local_directory=local_directory,
        memory_limit=memory_limit,
        nanny=nanny,
        dashboard=dashboard,
        dashboard_address=dashboard_address,
        protocol=protocol,
        worker_class=worker_class,
        worker_options=worker_options or {},
        **batch_options,
    )
    try:
        is_client = runner.start()
    except BatchError as e:  # one line, once per job, exit 2: as the CLI does
        report_and_exit(e, runner.placement.rank if runner.placement else None)
    if is_client:
        _active = runner
        if exit:
            # an uncaught exception must reach the job as a failure (dask-mpi #87/#88)
            previous = sys.excepthook

            def record_failure(exc_type: Any, exc: Any, tb: Any) -> None:
                global _failed
                _failed = True
                previous(exc_type, exc, tb)

            sys.excepthook = record_failure
            atexit.register(_finish_at_exit)
    return is_client


_failed = False


def _finish_at_exit() -> None:
    if _active is not None:
        _active.finish(1 if _failed else 0)


def send_close_signal() -> None:
    """Stop the cluster: workers and scheduler exit (as in dask-mpi)."""
    if _active is not None:
        _active.finish(0)
        return
    from distributed import Client

    with Client() as c:
        c.shutdown()
