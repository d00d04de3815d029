"""BatchRunner: placement -> role -> rendezvous -> lifecycle -> exit code.

Every rank of the allocation enters ``with BatchRunner() as runner:``; rank 0 serves the
scheduler, the other non-client ranks serve workers, and both end their process with the job's
exit code when the client is done. Only the client rank runs the body of the ``with``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import mpi as mpi_
from . import report
from .errors import BatchError
from .lifecycle import AllocationEnding, exit_code_of, flush_and_exit, report_and_exit
from .placement import Placement, detect
from .plan import Plan, plan
from .rendezvous import (
    Contact,
    RendezvousError,
    check_writable,
    forget,
    meet,
    mpi_publish,
    publish_for_outside,
    write_scheduler_file,
)
from .roles import ClientEnd, within
from .settings import Settings, resolve

logger = logging.getLogger("dask_batch")


class BatchRunner:
    """Run Dask on every rank of a batch allocation.

    Parameters are those of ``dask-batch`` (``None`` = from dask config ``batch.*``); see
    ``docs/configuration.md``. Extra: ``comm`` (an mpi4py communicator), ``environ`` (the
    environment to read the placement from), ``exit`` (end scheduler and worker processes when
    the job is over; with ``exit=False`` they return from ``start()`` with ``False``) and
    ``on_ending`` (called with the signal number instead of raising ``AllocationEnding``).
    """

    def __init__(
        self,
        *,
        comm: Any = None,
        environ: Mapping[str, str] | None = None,
        exit: bool = True,
        on_ending: Callable[[int], None] | None = None,
        **options: Any,
    ):
        self._comm = comm
        self._environ = environ
        self._exit = exit
        self._on_ending = on_ending
        self._options = options
        self.settings: Settings | None = None
        self.placement: Placement | None = None
        self.plan: Plan | None = None
        self.role: str | None = None
        self.contact: Contact | None = None
        self.security: Any = None
        self._client_end: ClientEnd | None = None
        self._scheduler_thread: threading.Thread | None = None
        self.status = None

    # ------------------------------------------------------------ what Client(runner) reads

    @property
    def scheduler_address(self) -> str:
        if self.contact is None:
            raise RuntimeError("BatchRunner is not started")
        return self.contact.address

    @property
    def dashboard_link(self) -> str | None:
        return self.contact.dashboard if self.contact else None

    @property
    def n_workers(self) -> int:
        """Worker ranks of this job."""
        assert self.plan is not None, "BatchRunner is not started"
        return self.plan.n_workers

    def __await__(self):  # Client awaits its cluster; we are started already
        async def _self() -> BatchRunner:
            return self

        return _self().__await__()

    async def close(self) -> None:  # Client.shutdown() closes its cluster
        self.finish(0)

    def wait_for_workers(self, n_workers: int | None = None, timeout: float | None = None) -> None:
        """Block until ``n_workers`` (default: all worker ranks) have joined."""
        n = self.n_workers if n_workers is None else n_workers
        if self._client_end is None:
            raise RuntimeError("wait_for_workers: this rank is not the client")
        got = self._client_end.ask_scheduler({"op": "batch_wait_workers", "n": n,
                                              "timeout": timeout})
        if got < n:
            raise TimeoutError(f"only {got}/{n} workers arrived after {timeout} s")

    def __repr__(self) -> str:
        return f"<BatchRunner role={self.role} {self.placement!r}>"

    # ------------------------------------------------------------ context manager

    def __enter__(self) -> BatchRunner:
        try:
            started = self.start()
        except BatchError as e:  # bad input: one line, exit 2, on every rank alike
            report_and_exit(e, self._rank_hint())
        if not started:
            raise RuntimeError("this rank's role is over (exit=False); do not run client code")
        return self

    def _rank_hint(self) -> int | None:
        if self.placement is not None:
            return self.placement.rank
        try:
            return detect(os.environ if self._environ is None else self._environ).rank
        except BatchError:
            return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        code = exit_code_of(exc)
        self.finish(code)
        if isinstance(exc, AllocationEnding) and self._exit:
            # Python would exit 1; a job ended by its allocation exits 128 + signal
            import traceback

            traceback.print_exception(exc)
            flush_and_exit(code)
        return False

    # ------------------------------------------------------------ the flow

    def start(self) -> bool:
        """Take this rank's role. True on the client rank; other ranks serve, then exit."""
        s = self.settings = resolve(**self._options)
        report.configure(s.log_level)
        environ = os.environ if self._environ is None else self._environ
        placement = detect(environ)
        # before MPI_Init: a bad protocol fails at once, and UCX's libraries load before MPI's
        # (the MPICH wheel bundles an older UCX under the same names)
        from .transport import choose_protocol

        protocol = choose_protocol(s.protocol, s.secure)
        comm = None
        if mpi_.wanted(s.mpi, environ, placement, self._comm):
            comm, placement, why = mpi_.join(placement, s.rendezvous_timeout, self._comm)
            if why is not None and placement.rank == 0:
                logger.warning("%s", why)
        self.placement = placement
        self.plan = plan(s, placement, mpi=comm is not None)
        from .roles import ignore_peer_failure_notice

        ignore_peer_failure_notice(s)
        self.role = self.plan.role
        report.set_rank_prefix(placement.rank, self.role)
        return self._take_role(s, placement, comm, environ, protocol)

    def _take_role(self, s: Settings, placement: Placement, comm: Any, environ: Any,
                   protocol: str) -> bool:
        from .transport import choose_interface, interfaces

        single_node = placement.local_size == placement.size
        p = self.plan
        here = _Rank(s, placement, comm, environ, protocol,
                     choose_interface(s.interface, interfaces(), single_node), p.rendezvous,
                     p.scheduler_file)
        if p.role == "scheduler":
            return self._serve_scheduler(here)
        contact = meet(s, p.rendezvous, comm, here.path, placement)
        if p.role == "worker":
            return self._end(self._run(self._worker(here, contact)))
        self._become_client(s, contact)
        if p.works_too:  # the client's rank works too, on a thread of its own
            threading.Thread(target=asyncio.run, name="dask-batch-worker", daemon=True,
                             args=(self._worker(here, contact, beside="client"),)).start()
        return True

    def _serve_scheduler(self, here: _Rank) -> bool:
        from .roles import serve_scheduler
        from .security import make_credentials

        s, placement, path = here.s, here.placement, here.path
        creds = make_credentials() if s.secure else None
        published: list[Contact] = []
        ready = asyncio.Event()

        def publish(contact: Contact) -> None:
            published.append(contact)
            ready.set()
            if here.comm is not None:
                mpi_publish(here.comm, contact, root=s.scheduler_rank)
            if path:
                if contact.creds and contact.address.startswith("tls://"):
                    publish_for_outside(contact, path)
                write_scheduler_file(path, contact)

        client_here = self.plan.client_beside_scheduler
        coro = serve_scheduler(
            s, placement, here.interface, here.protocol, creds, publish, self.n_workers,
            signals=not client_here,  # a thread cannot take signals: the client forwards
        )
        if self.plan.works_too:
            coro = self._with_worker(here, coro, published, ready)
        if client_here:
            self._serve_in_thread(coro, published, path)
            return True
        try:
            if path:
                check_writable(path)
            code = self._run(coro)
        except BaseException as e:
            if not published:  # tell the waiting ranks at once, not after their timeout
                with contextlib.suppress(Exception):
                    publish(Contact(address="", job=placement.job_stamp,
                                    extra={"error": str(e) or type(e).__name__}))
            raise
        finally:
            forget(path, published[0] if published else None)
        return self._end(code)

    async def _with_worker(self, here: _Rank, serving: Any, published: list[Contact],
                           ready: asyncio.Event) -> int:
        """The scheduler, and once it is up a worker beside it (``--inclusive-workers``)."""
        scheduler = asyncio.ensure_future(serving)
        up = asyncio.ensure_future(ready.wait())
        await asyncio.wait([scheduler, up], return_when=asyncio.FIRST_COMPLETED)
        up.cancel()
        worker = None
        if published and not scheduler.done():
            worker = asyncio.ensure_future(self._worker(here, published[0], beside="scheduler"))
        try:
            return await scheduler
        finally:
            if worker is not None:
                await within(worker, here.s.shutdown_grace)

    def _worker(self, here: _Rank, contact: Contact, beside: str | None = None) -> Any:
        """The worker coroutine of this rank; ``beside`` another role on the same rank."""
        from dataclasses import replace

        from .resources import resolve as resources
        from .roles import serve_worker

        s = here.s
        if beside is not None:  # the rank is the scheduler's or the client's: no nanny there
            s = replace(s, nanny=False)
        res = resources(
            here.placement, here.environ, non_worker_ranks=s.non_worker_ranks(),
            nthreads=s.nthreads, memory_limit=s.memory_limit, local_dir=s.local_directory,
            gpus=s.gpus,
        )
        return serve_worker(s, here.placement, contact, here.interface, here.protocol, res,
                            signals=beside is None, exiting=self._exit)

    def _serve_in_thread(self, coro: Any, published: list[Contact], path: str | None) -> None:
        """Client on rank 0: the scheduler serves on a thread, the client runs here."""
        started = threading.Event()
        result: list[Any] = []

        def run() -> None:
            try:
                result.append(asyncio.run(coro))
            except BaseException as e:
                result.append(e)
            finally:
                forget(path, published[0] if published else None)
                started.set()

        # signal handlers can only be set from the main thread: the scheduler's are skipped
        self._scheduler_thread = threading.Thread(target=run, name="dask-batch-scheduler",
                                                  daemon=True)
        self._scheduler_thread.start()
        deadline = time.monotonic() + 60
        while not published and not started.is_set() and time.monotonic() < deadline:
            time.sleep(0.002)
        if not published:
            err = result[0] if result else TimeoutError("scheduler did not start")
            raise RendezvousError(f"scheduler failed to start: {err}")
        self._become_client(self.settings, published[0])  # type: ignore[arg-type]

    def _become_client(self, s: Settings, contact: Contact) -> None:
        import dask.config

        from .security import config_for, security_from

        self.contact = contact
        self.security = security_from(contact.creds)
        dask.config.set({"scheduler-address": contact.address, **config_for(contact.creds)})
        os.environ["DASK_SCHEDULER_ADDRESS"] = contact.address
        if dask.config.get("distributed.client.direct-to-workers", None) is None:
            # inside the allocation every worker is reachable: gather and scatter go to the
            # workers, not through the scheduler (half the bytes moved, none held by rank 0);
            # in the environment too, for the clients of processes started here (lab kernels)
            dask.config.set({"distributed.client.direct-to-workers": True})
            os.environ["DASK_DISTRIBUTED__CLIENT__DIRECT_TO_WORKERS"] = "True"
        os.environ["DASK_BATCH_N_WORKERS"] = str(self.n_workers)  # for plain `run` scripts
        self._client_end = ClientEnd(s, self.placement.rank, contact.address,  # type: ignore
                                     self.security, self._on_ending, self._scheduler_thread)
        self._client_end.start(link=not contact.foreign)
        from distributed.core import Status

        self.status = Status.running

    def finish(self, code: int = 0) -> None:
        """Tell the scheduler the client is done with ``code``; the cluster then stops."""
        if self._client_end is not None and self.role in ("client", "scheduler"):
            self._client_end.finish(code)

    def _run(self, coro: Any) -> int:
        """Run a role's coroutine. When the process ends next, without asyncio.run's teardown:
        it cancels every task and waits for them, and a task waiting on a thread that runs a
        user's task (``time.sleep(30)`` fired and forgotten) holds this rank back, so that
        MPI_Finalize on the other ranks waits for it in vain."""
        if not self._exit:
            return asyncio.run(coro)
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(coro)

    def _end(self, code: int) -> bool:
        if self._exit:
            flush_and_exit(code)
        return False


@dataclass(frozen=True)
class _Rank:
    """What a rank knows once placed: the inputs of its role."""

    s: Settings
    placement: Placement
    comm: Any
    environ: Any
    protocol: str
    interface: str | None
    method: str
    path: str | None
