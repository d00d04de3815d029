"""The three roles a rank can take, as coroutines: scheduler, worker and (in runner.py) client.

Each returns the exit code its rank should end with. Signal handlers are installed here, on
the running loop of a scheduler or worker rank, never at import (dask-jobqueue #667).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from . import output
from .errors import BatchError
from .gpus import resource_name
from .lifecycle import JobWatch, MemberLink, hard_exit_after
from .placement import Placement
from .rendezvous import Contact
from .resources import Resources
from .security import security_from
from .settings import Settings

logger = logging.getLogger("dask_batch")


class SchedulerStartError(BatchError, RuntimeError):
    """The scheduler could not start (port in use, address not available, ...)."""


def role_of(rank: int, s: Settings) -> str:
    if s.scheduler and rank == s.scheduler_rank:
        return "scheduler"
    if rank == s.client_rank:
        return "client"
    return "worker"


def walltime_signals(s: Settings) -> list[signal.Signals]:
    out = []
    for name in s.signals:
        try:
            out.append(signal.Signals[name if name.startswith("SIG") else f"SIG{name}"])
        except KeyError as e:
            raise ValueError(f"batch.lifecycle.signals: unknown signal {name!r}") from e
    return out


def ignore_peer_failure_notice(s: Settings) -> None:
    """MPICH's hydra sends SIGUSR1 to every rank when one dies (its fault-tolerance notice).

    Its default action would kill this rank too, turning one dead worker into a dead job;
    the member links report deaths already. Unless SIGUSR1 is configured as a walltime
    signal, ignore it under hydra.
    """
    if "HYDI_CONTROL_FD" in os.environ and signal.SIGUSR1 not in walltime_signals(s):
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)


def dashboard_url(scheduler: Any, host: str) -> str | None:
    port = scheduler.services.get("dashboard")
    port = getattr(port, "port", None)
    if not port:
        return None
    return f"http://{host}:{port}/status"


async def serve_scheduler(
    s: Settings,
    placement: Placement,
    interface: str | None,
    protocol: str,
    creds: dict[str, str] | None,
    publish: Callable[[Contact], None],
    expected_workers: int,
    on_started: Callable[[Any], None] | None = None,
    signals: bool = True,
) -> int:
    """Start the scheduler, publish its contact, serve until the job ends; return the exit code."""
    from distributed import Scheduler
    from distributed.comm import get_address_host

    t0 = time.monotonic()
    scheduler = Scheduler(
        interface=interface,
        protocol=protocol,
        port=s.scheduler_port,
        security=security_from(creds),
        dashboard=s.dashboard,
        dashboard_address=s.dashboard_address if s.dashboard else None,
    )
    try:
        await scheduler
    except Exception as e:
        where = f"port {s.scheduler_port}" if s.scheduler_port else interface or "default"
        while e.__cause__ is not None:  # distributed wraps the OSError that says why
            e = e.__cause__  # type: ignore[assignment]
        raise SchedulerStartError(f"cannot start the scheduler ({where}): {e}") from None
    watch = JobWatch(
        expected_workers=expected_workers,
        client_expected=s.client,
        client_timeout=s.client_timeout,
        link_timeout=s.scheduler_timeout,
        signal_grace=s.signal_grace,
        on_worker_lost=_worker_remover(scheduler, s.name),
    )
    watch.start()
    scheduler.handlers["batch_member"] = watch.member
    scheduler.handlers["batch_wait_workers"] = _wait_workers_handler(scheduler)
    host = get_address_host(scheduler.address)
    dashboard = dashboard_url(scheduler, host) if s.dashboard else None
    contact = Contact(address=scheduler.address, job=placement.job_stamp, creds=creds,
                      dashboard=dashboard)
    publish(contact)
    logger.info(
        "scheduler %s on %s%s; %d worker%s expected",
        scheduler.address,
        placement.hostname,
        f", dashboard {dashboard}" if dashboard else "",
        expected_workers,
        "" if expected_workers == 1 else "s",
    )
    if dashboard:
        from .lab import dashboard_ready, tunnel_command

        if dashboard_ready():  # one line: how to see the dashboard from a laptop
            logger.info("dashboard from a laptop: %s", tunnel_command([dashboard],
                                                                      placement.hostname))
    _report_joins(scheduler, expected_workers, t0)
    if on_started is not None:
        on_started(scheduler)

    loop = asyncio.get_running_loop()
    installed = walltime_signals(s) + [signal.SIGINT] if signals else []
    for sig in installed:
        if sig == signal.SIGINT:
            loop.add_signal_handler(sig, watch._finish, 130, "interrupted (SIGINT)")
        else:
            loop.add_signal_handler(sig, watch.on_signal, int(sig))

    from distributed.diagnostics.plugin import SchedulerPlugin

    class ReleaseOnRemoteClose(SchedulerPlugin):
        """Client.shutdown() closes the scheduler, and its links with it: release the members
        first, or every worker takes the close for a lost scheduler and exits 1."""

        name = "dask-batch-release"

        async def before_close(self) -> None:
            if watch.outcome is not None and not watch.outcome.done():
                watch._finish(0)  # first: a member that links up during the wait is released
                await watch.release_members(expected_workers + int(s.client), s.shutdown_grace)

    scheduler.add_plugin(ReleaseOnRemoteClose())
    assert watch.outcome is not None
    # A remote shutdown (Client.shutdown(), send_close_signal() without a runner) closes the
    # scheduler without a client "done": without this wait the rank served a closed scheduler
    # until Slurm killed it (seen: `srun dask-batch --scheduler-file F` + Client.shutdown()).
    closed = asyncio.ensure_future(scheduler.finished())
    await asyncio.wait([watch.outcome, closed], return_when=asyncio.FIRST_COMPLETED)
    closed.cancel()
    watch._finish(0)  # no-op when the job already has its outcome
    code = watch.outcome.result()
    output.quiet()
    for sig in installed:
        loop.remove_signal_handler(sig)
    await watch.release_members(expected_workers + int(s.client), s.shutdown_grace)
    if not abrupt_end(protocol):
        try:
            await asyncio.wait_for(scheduler.close(reason="job finished"), s.shutdown_grace)
        except (asyncio.TimeoutError, Exception):
            pass
    # the client's own rank carries the job's exit code; the scheduler only adds its failures
    return 0 if watch.client_code is not None or watch.client_lost else code


def abrupt_end(protocol: str) -> bool:
    """Released ranks leave without closing their comms: UCX only.

    Closing a UCX endpoint flushes it, and a flush towards a peer that has just exited can
    crash in UCX's shared-memory transport (openucx/ucx #5568; seen as a segfault at the end
    of a job with UCX_TLS=tcp,self,sm). Once the job is over nothing is left to hand over, so
    no rank closes: each exits, and the kernel tears the connections down.
    """
    return protocol == "ucx"


def worker_name(prefix: str | None, rank: int) -> str | int:
    """The Dask name of a worker rank: its rank, or ``prefix-rank`` (``--name``)."""
    return f"{prefix}-{rank}" if prefix else rank


def _worker_remover(scheduler: Any, prefix: str | None) -> Callable:
    """Drop the worker of a dead rank at once, so that its tasks run elsewhere now."""

    async def remove(rank: int) -> None:
        name = str(worker_name(prefix, rank))
        for ws in list(scheduler.workers.values()):
            if str(ws.name) == name:
                try:
                    await scheduler.remove_worker(ws.address, stimulus_id=f"rank-{rank}-lost",
                                                  close=False)
                except Exception:  # already gone
                    pass

    return remove


def _wait_workers_handler(scheduler: Any) -> Callable:
    async def wait_workers(n: int, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while len(scheduler.workers) < n:
            if deadline is not None and time.monotonic() > deadline:
                break
            await asyncio.sleep(0.01)
        return len(scheduler.workers)

    return wait_workers


def _report_joins(scheduler: Any, expected: int, t0: float) -> None:
    """One line when every expected worker has joined (and how long it took)."""
    from distributed.diagnostics.plugin import SchedulerPlugin

    class Joins(SchedulerPlugin):
        name = "dask-batch-joins"
        reported = False

        def add_worker(self, scheduler: Any = None, worker: Any = None, **kwargs: Any) -> None:
            if not self.reported and len(scheduler.workers) >= expected > 0:
                self.reported = True
                logger.info(
                    "%d/%d workers joined in %.2f s", len(scheduler.workers), expected,
                    time.monotonic() - t0,
                )

    scheduler.add_plugin(Joins())


async def serve_worker(
    s: Settings,
    placement: Placement,
    contact: Contact,
    interface: str | None,
    protocol: str,
    res: Resources,
) -> int:
    """Run one worker (or nanny) until the scheduler releases it or is lost; return the code."""
    from distributed import Nanny
    from distributed.utils import import_term

    security = security_from(contact.creds)
    name = worker_name(s.name, placement.rank)
    resources = dict(s.resources)
    if res.gpus:  # before the nanny forks the worker, so that its GPU libraries see only these
        os.environ.update(res.gpu_env)
        resources.setdefault(resource_name(res.gpu_vendor), len(res.gpus))
    kwargs: dict[str, Any] = {
        "scheduler_ip": contact.address,
        "nthreads": res.nthreads,
        "memory_limit": res.memory_limit,
        "local_directory": res.local_directory,
        "name": name,
        "interface": interface,
        "security": security,
        "resources": resources or None,
    }
    if protocol not in ("tcp", "tls"):
        kwargs["protocol"] = protocol
    cls = import_term(s.worker_class)
    if s.nanny and not issubclass(cls, Nanny):
        kwargs["worker_class"] = cls
        # a worker orphaned by a killed nanny must not outlive it
        kwargs["preload"] = ["dask_batch._orphan_guard"]
        cls = Nanny
        _spawn_safely()
    kwargs.update(s.worker_options)

    outcome: asyncio.Future = asyncio.get_running_loop().create_future()

    def lost() -> None:
        logger.error(
            "lost the scheduler %s (rank 0): stopping worker rank %d", contact.address,
            placement.rank,
        )
        if not outcome.done():
            outcome.set_result(1)

    abrupt = abrupt_end(protocol)

    def released() -> None:  # UCX: leave now, without closing endpoints (see abrupt_end)
        if abrupt and not outcome.done():
            outcome.set_result(0)

    link = MemberLink(contact.address, security, placement.rank, "worker",
                      s.scheduler_timeout, on_lost=lost, guest=not s.scheduler,
                      on_released=released)
    loop = asyncio.get_running_loop()

    def forward(signum: int) -> None:  # the scheduler decides; bound our own end anyway
        if not s.scheduler:  # joined from another allocation: that one is ending, not the job
            if not outcome.done():
                outcome.set_result(128 + signum)
            return
        asyncio.ensure_future(link.send({"op": "signal", "signum": signum}))
        hard_exit_after(s.signal_grace, 128 + signum, f"{signal.Signals(signum).name} grace over")

    for sig in walltime_signals(s):
        loop.add_signal_handler(sig, forward, int(sig))
    loop.add_signal_handler(signal.SIGINT, lambda: outcome.done() or outcome.set_result(130))

    serving = None
    if not contact.foreign:  # a scheduler dask_batch started watches its members
        # linked before the worker registers: a rank that dies while its worker starts is
        # still named by the scheduler (it was missed when the link came after the start)
        await link.connect()
        serving = asyncio.ensure_future(link.serve())
    for attempt in (1, 2):
        worker = cls(**kwargs)
        try:
            await worker
            break
        except Exception as e:
            # a nanny whose worker process was killed while it started (the OOM killer does
            # not wait) fails its start: one more try, as it would have restarted it later
            if attempt == 2 or cls is not Nanny:
                logger.error("worker rank %d failed to start: %s", placement.rank, e)
                if serving is not None:
                    serving.cancel()
                return 1
    finished = asyncio.ensure_future(worker.finished())
    await asyncio.wait([finished, outcome], return_when=asyncio.FIRST_COMPLETED)
    output.quiet()
    code = outcome.result() if outcome.done() else 0
    if not finished.done() and not (link.released and abrupt):
        # not released by the scheduler (lost it, Ctrl-C, own allocation ending): a close
        # that waits on a scheduler going away or gone gains nothing; bound it tightly
        grace = s.shutdown_grace if link.released or code == 0 else 1.0
        try:
            await asyncio.wait_for(worker.close(reason="job finished"), grace)
        except (asyncio.TimeoutError, Exception):
            pass
    if serving is not None:
        serving.cancel()
    return code


def _spawn_safely() -> None:
    """Let the nanny spawn its worker without re-running the user's script in it.

    multiprocessing's spawn re-imports ``__main__`` in the child: for ``python script.py``
    that is the whole job again, starting with ``BatchRunner()``, and MPI_Init there fails on
    the launcher's inherited PMI variables. This rank never returns to its script (it ends
    with the job), so its ``__main__`` can be an empty module, and the launcher's variables
    are of no use to the child.
    """
    import sys
    import types

    sys.modules["__main__"] = types.ModuleType("__main__")
    # the rank ends with a hard exit (MPI): the semaphores the nanny's queues hold are the
    # OS's to free, and multiprocessing's resource tracker need not warn about them
    quiet = "ignore::UserWarning:multiprocessing.resource_tracker"
    prior = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = f"{prior},{quiet}" if prior else quiet
    for name in list(os.environ):
        if name.startswith(("PMI_", "PMIX_", "OMPI_", "HYDI_", "MPI_LOCAL")):
            del os.environ[name]


def local_host(interface: str | None) -> str:
    return socket.gethostname() if interface is None else interface
