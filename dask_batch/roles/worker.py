"""The worker role: one Dask worker (or a nanny and its worker) per rank, until released."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from typing import Any

from .. import report
from ..errors import EXIT_SCHEDULER_LOST
from ..gpus import resource_name
from ..lifecycle import MemberLink, hard_exit_after
from ..placement import LAUNCH_WIRING, Placement
from ..rendezvous import Contact, RendezvousError
from ..resources import Resources
from ..security import security_from
from ..settings import Settings
from .common import abrupt_end, walltime_signals, within, worker_name

logger = logging.getLogger("dask_batch")


async def serve_worker(
    s: Settings,
    placement: Placement,
    contact: Contact,
    interface: str | None,
    protocol: str,
    res: Resources,
    signals: bool = True,
    exiting: bool = True,
) -> int:
    """Run one worker (or nanny) until the scheduler releases it or is lost; return the code.

    ``signals=False``: a worker beside the scheduler or the client on their rank
    (``--inclusive-workers``), whose signals are theirs to take. ``exiting``: the process
    ends with the job (not ``exit=False``), taking a nanny's worker process with it.
    """
    from distributed import Nanny

    security = security_from(contact.creds)
    cls, kwargs = worker_class_and_options(s, placement, contact, interface, protocol, res,
                                           security)
    outcome: asyncio.Future = asyncio.get_running_loop().create_future()
    # released: leave now. UCX must not close its endpoints (see abrupt_end); a nanny's close
    # waits for its worker process to wind down (seconds) while that process dies with the
    # nanny anyway (distributed's parent-alive pipe, and the orphan guard's PDEATHSIG)
    abrupt = abrupt_end(protocol) or (exiting and issubclass(cls, Nanny))

    def lost() -> None:
        logger.error(
            "lost the scheduler %s (rank 0): stopping worker rank %d", contact.address,
            placement.rank,
        )
        if not outcome.done():
            outcome.set_result(EXIT_SCHEDULER_LOST)

    started: list[Any] = []

    def released() -> None:  # the job is over: close now (bounded), or leave (abrupt)
        if abrupt:
            _kill_worker_process(started)  # before the ack: it must not see the close
        if not outcome.done():
            outcome.set_result(0)

    link = MemberLink(contact.address, security, placement.rank, "worker",
                      s.scheduler_timeout, on_lost=lost, guest=not s.scheduler,
                      on_released=released)
    if signals:
        _take_signals(s, link, outcome)
    serving = None
    if not contact.foreign:  # a scheduler dask_batch started watches its members
        # linked before the worker registers: a rank that dies while its worker starts is
        # still named by the scheduler (it was missed when the link came after the start)
        try:
            await link.connect()
        except OSError as e:  # distributed's connect timeout: one line, not its traceback
            raise RendezvousError(f"cannot reach the scheduler: {e}") from None
        serving = asyncio.ensure_future(link.serve())
    try:
        return await _work_until_end(s, cls, kwargs, placement.rank, started, outcome, link,
                                     abrupt)
    finally:
        if serving is not None:
            serving.cancel()


async def _work_until_end(s: Settings, cls: type, kwargs: dict[str, Any], rank: int,
                          started: list[Any], outcome: asyncio.Future, link: MemberLink,
                          abrupt: bool) -> int:
    """Start the worker, then wait for its end or the job's (``outcome``); the exit code."""
    starting = asyncio.ensure_future(_start(cls, kwargs, rank, started))
    await asyncio.wait([starting, outcome], return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():  # the job ended while this worker was still starting
        report.quiet()
        _kill_worker_process(started)
        return outcome.result()
    worker = starting.result()
    if worker is None:
        return 1
    finished = asyncio.ensure_future(worker.finished())
    await asyncio.wait([finished, outcome], return_when=asyncio.FIRST_COMPLETED)
    report.quiet()
    code = outcome.result() if outcome.done() else 0
    if not finished.done() and not (link.released and abrupt):
        # not released by the scheduler (lost it, Ctrl-C, own allocation ending): a close
        # that waits on a scheduler going away or gone gains nothing; bound it tightly
        grace = s.shutdown_grace if link.released or code == 0 else 1.0
        await within(worker.close(reason="job finished"), grace)
    return code


def _kill_worker_process(started: list[Any]) -> None:
    """The job is over: the worker process of the last nanny started goes now, before it
    notices the scheduler closing and logs failed heartbeats (its logging is its own; this
    rank's quiet does not reach it). Nothing to do for a worker that is the rank itself."""
    from distributed import Nanny

    pid = started[-1].pid if started and isinstance(started[-1], Nanny) else None
    if pid:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def worker_class_and_options(s: Settings, placement: Placement, contact: Contact,
                             interface: str | None, protocol: str, res: Resources,
                             security: Any) -> tuple[type, dict[str, Any]]:
    """The class to start (Worker, Nanny or the user's) and its keyword arguments."""
    from distributed import Nanny, Worker
    from distributed.utils import import_term

    resources = dict(s.resources)
    if res.gpus:  # before the nanny forks the worker, so that its GPU libraries see only these
        os.environ.update(res.gpu_env)
        resources.setdefault(resource_name(res.gpu_vendor), len(res.gpus))
    kwargs: dict[str, Any] = {
        "scheduler_ip": contact.address,
        "nthreads": res.nthreads,
        "memory_limit": res.memory_limit,
        "local_directory": res.local_directory,
        "name": worker_name(s.name, placement.rank),
        "interface": interface,
        "security": security,
        "resources": resources or None,
    }
    if protocol not in ("tcp", "tls"):
        kwargs["protocol"] = protocol
    cls = import_term(s.worker_class)
    # a Worker class goes under a nanny; a Nanny, or a server of its own that starts its
    # workers itself (dask_cuda.CUDAWorker), runs as it is
    if s.nanny and issubclass(cls, Worker):
        kwargs["worker_class"] = cls
        # a worker orphaned by a killed nanny must not outlive it
        kwargs["preload"] = ["dask_batch._orphan_guard"]
        cls = Nanny
        _choose_start_method(s.start_method if protocol != "ucx" else "spawn")
    kwargs.update(s.worker_options)
    return cls, kwargs


def _take_signals(s: Settings, link: MemberLink, outcome: asyncio.Future) -> None:
    """Walltime signals go to the scheduler, which decides; Ctrl-C ends this rank."""
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


async def _start(cls: type, kwargs: dict[str, Any], rank: int, started: list[Any]) -> Any:
    """The started worker, or None (reported) when it cannot start; ``started`` gets each
    worker object as it is made, so that the job's end can stop one still starting."""
    from distributed import Nanny

    for attempt in (1, 2):
        worker = cls(**kwargs)
        started.append(worker)
        try:
            await worker
            return worker
        except Exception as e:
            # a nanny whose worker process was killed while it started (the OOM killer does
            # not wait) fails its start: one more try, as it would have restarted it later
            if attempt == 2 or cls is not Nanny:
                logger.error("worker rank %d failed to start: %s", rank, e)
                return None
    return None


def _choose_start_method(method: str) -> None:
    """fork: the worker process starts from this interpreter, with distributed imported and
    no second import (a spawn costs each worker rank one more ``import distributed``, 0.5 s of
    CPU, on the job's start-up path). UCX keeps spawn: its state does not survive a fork."""
    import dask.config

    dask.config.set({"distributed.worker.multiprocessing-method": method})
    if method == "spawn":
        _spawn_safely()
    else:
        os.register_at_fork(after_in_child=_forget_rank_signals)
        # what the rank has made so far leaves the collector's care: the forked worker's
        # collections then do not write to (and so copy) the pages it shares with the rank;
        # 12 ranks on 2 cores: the nanny's cost over no nanny +11 % -> +4 % (benchmarks.md)
        gc.freeze()


def _forget_rank_signals() -> None:
    """In the forked worker process: the rank's signal handlers and the wakeup fd of its loop
    are the nanny's. Left in place, a SIGTERM from the nanny to its worker would reach the
    nanny's loop through the shared pipe and pass for a walltime signal of the job."""
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


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
        if name.startswith(LAUNCH_WIRING):
            del os.environ[name]
