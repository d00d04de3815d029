"""dask-mpi's ``initialize``, ``execute`` and ``send_close_signal``: same arguments, same behaviour.

Differences a dask-mpi user gains: the world size check names the launcher, the client's exit
code reaches the job, ranks exit in bounded time, and ``memory_limit="auto"`` is the node's
share per worker instead of the whole node for each.
"""

from __future__ import annotations

import atexit
import sys
from collections.abc import Callable
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
    _plain_protocol_is_insecure(protocol, batch_options)
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
    is_client = _start(runner)
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


def _plain_protocol_is_insecure(protocol: str | None, batch_options: dict[str, Any]) -> None:
    if protocol in ("tcp", "tcp://", "ucx", "ucx://") and "secure" not in batch_options:
        # dask-mpi had no TLS: asking for a plain protocol there is asking for no TLS here
        batch_options["secure"] = False


def _start(runner: BatchRunner) -> bool:
    try:
        return runner.start()
    except BatchError as e:  # one line, once per job, exit 2: as the CLI does
        report_and_exit(e, runner.placement.rank if runner.placement else None)


def execute(
    client_function: Callable[..., Any] | None = None,
    client_args: tuple = (),
    client_kwargs: dict | None = None,
    client_rank: int = 1,
    scheduler: bool = True,
    scheduler_rank: int = 0,
    scheduler_address: str | None = None,
    scheduler_port: int | None = None,
    scheduler_file: str | None = None,
    interface: str | None = None,
    nthreads: int = 1,
    local_directory: str = "",
    memory_limit: Any = "auto",
    nanny: bool = False,
    dashboard: bool = True,
    dashboard_address: str = ":8787",
    protocol: str | None = None,
    exclusive_workers: bool = True,
    worker_class: str = "distributed.Worker",
    worker_options: dict | None = None,
    worker_name: str | None = None,
    comm: Any = None,
    **batch_options: Any,
) -> None:
    """Run ``client_function`` on ``client_rank`` with a cluster on the other ranks (drop-in for
    ``dask_mpi.execute``); every rank returns once the function has returned.

    The scheduler runs on ``scheduler_rank`` (with a worker beside it, and beside the client,
    when ``exclusive_workers=False``); without a callable there is no client and the ranks
    serve until the cluster is shut down (``Client.shutdown()``, a walltime signal). An
    exception in the function ends the cluster, then propagates on the client rank.
    Extra keyword arguments are ``BatchRunner`` options (e.g. ``secure=False``).

    >>> def main():                      # doctest: +SKIP
    ...     from dask.distributed import Client
    ...     with Client() as client:
    ...         print(client.submit(sum, [1, 2]).result())
    >>> execute(main, exclusive_workers=False)  # doctest: +SKIP
    """
    if not scheduler and not scheduler_address:
        raise ValueError("Must provide scheduler_address if executing with scheduler=False")
    _plain_protocol_is_insecure(protocol, batch_options)
    runner = BatchRunner(
        comm=comm, exit=False, client=callable(client_function), client_at=client_rank,
        scheduler=scheduler, scheduler_rank=scheduler_rank, scheduler_address=scheduler_address,
        scheduler_port=scheduler_port, scheduler_file=scheduler_file, interface=interface,
        nthreads=nthreads, local_directory=local_directory or None, memory_limit=memory_limit,
        nanny=nanny, dashboard=dashboard, dashboard_address=dashboard_address,
        protocol=protocol, exclusive_workers=exclusive_workers, worker_class=worker_class,
        worker_options=worker_options or {}, name=worker_name, **batch_options,
    )
    if not _start(runner):
        return
    assert client_function is not None
    code = 1
    try:
        client_function(*client_args, **(client_kwargs or {}))
        code = 0
    finally:
        runner.finish(code)


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
