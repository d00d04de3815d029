"""The scheduler role: start it, publish its contact, watch the job's members, end the job."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

from .. import report
from ..errors import BatchError
from ..lifecycle import JobWatch
from ..placement import Placement
from ..rendezvous import Contact
from ..security import security_from
from ..settings import Settings
from .common import abrupt_end, walltime_signals, within, worker_name

logger = logging.getLogger("dask_batch")


class SchedulerStartError(BatchError, RuntimeError):
    """The scheduler could not start (port in use, address not available, ...)."""


async def serve_scheduler(
    s: Settings,
    placement: Placement,
    interface: str | None,
    protocol: str,
    creds: dict[str, str] | None,
    publish: Callable[[Contact], None],
    expected_workers: int,
    signals: bool = True,
) -> int:
    """Start the scheduler, publish its contact, serve until the job ends; return the exit code."""
    t0 = time.monotonic()
    dashboard_later = _dashboard_later(s)
    scheduler = await _start(s, interface, protocol, creds, dashboard_later)
    watch = JobWatch(
        client_expected=s.client,
        client_timeout=s.client_timeout,
        link_timeout=s.scheduler_timeout,
        signal_grace=s.signal_grace,
        on_worker_lost=_worker_remover(scheduler, s.name),
    )
    watch.start()
    members = expected_workers + int(s.client)
    scheduler.handlers["batch_member"] = watch.member
    scheduler.handlers["batch_wait_workers"] = _wait_workers_handler(scheduler)
    scheduler.add_plugin(_release_on_remote_close(watch, members, s.shutdown_grace))
    contact = _contact(s, scheduler, placement, creds)
    publish(contact)
    if dashboard_later:
        _dashboard_on_first_visit(scheduler)
    _announce(scheduler, contact, placement, expected_workers)
    _report_joins(scheduler, expected_workers, t0)
    installed = _take_signals(s, watch) if signals else []

    assert watch.outcome is not None
    # A remote shutdown (Client.shutdown(), send_close_signal() without a runner) closes the
    # scheduler without a client "done": without this wait the rank served a closed scheduler
    # until Slurm killed it (seen: `srun dask-batch --scheduler-file F` + Client.shutdown()).
    closed = asyncio.ensure_future(scheduler.finished())
    await asyncio.wait([watch.outcome, closed], return_when=asyncio.FIRST_COMPLETED)
    closed.cancel()
    watch._finish(0)  # no-op when the job already has its outcome
    code = watch.outcome.result()
    report.quiet()
    loop = asyncio.get_running_loop()
    for sig in installed:
        loop.remove_signal_handler(sig)
    await watch.release_members(members, s.shutdown_grace)
    if not abrupt_end(protocol):
        await within(scheduler.close(reason="job finished"), s.shutdown_grace)
    # the client's own rank carries the job's exit code; the scheduler only adds its failures
    return 0 if watch.client_code is not None or watch.client_lost else code


async def _start(s: Settings, interface: str | None, protocol: str,
                 creds: dict[str, str] | None, dashboard_later: bool) -> Any:
    from distributed import Scheduler

    scheduler = Scheduler(
        interface=interface,
        protocol=protocol,
        port=s.scheduler_port,
        security=security_from(creds),
        # the HTTP server listens now; bokeh's dashboard joins it at its first visit
        dashboard=s.dashboard and not dashboard_later,
        dashboard_address=s.dashboard_address if s.dashboard else None,
    )
    try:
        await scheduler
    except Exception as e:
        where = f"port {s.scheduler_port}" if s.scheduler_port else interface or "default"
        while e.__cause__ is not None:  # distributed wraps the OSError that says why
            e = e.__cause__  # type: ignore[assignment]
        raise SchedulerStartError(f"cannot start the scheduler ({where}): {e}") from None
    return scheduler


def _dashboard_later(s: Settings) -> bool:
    """Bokeh's dashboard costs 0.5-0.75 s of CPU in imports: with bokeh installed, its code
    loads at the first visit of the dashboard's address, which listens from the start (else
    distributed's "install bokeh" page is there from the start, as before)."""
    import importlib.util

    return s.dashboard and importlib.util.find_spec("bokeh") is not None


def _dashboard_on_first_visit(scheduler: Any) -> None:
    """Until someone opens the dashboard, any address distributed's own pages do not serve
    loads it, then sends the browser back to the same address, now bokeh's. A job nobody
    watches never pays for it; before, it was imported on a thread after the address was out,
    which held rank 0's GIL during the job's first work (0.6 s vs 0.3 s for 100 tiny tasks)."""
    from tornado import web

    app = scheduler.http_application
    loading = asyncio.Lock()

    class FirstVisit(web.RequestHandler):
        async def get(self, *_: Any) -> None:
            async with loading:  # one load, however many requests arrive during it
                if first_visit in app.applications:
                    error = await _add_dashboard(scheduler)
                    app.applications.remove(first_visit)
                    if error:
                        app.add_application(web.Application(
                            [(r"/.*", Unavailable, {"error": error})]))
            self.redirect(self.request.uri)

    class Unavailable(web.RequestHandler):
        def initialize(self, error: str) -> None:
            self.error = error

        def get(self, *_: Any) -> None:
            self.set_status(503)
            self.finish(f"dashboard unavailable: {self.error}")

    first_visit = web.Application([(r"/.*", FirstVisit)])
    app.add_application(first_visit)


async def _add_dashboard(scheduler: Any) -> str | None:
    """distributed's own dashboard set-up (``distributed.dashboard.scheduler.connect``), its
    import on a thread so that the scheduler serves meanwhile; why it failed, or None."""
    import importlib

    try:
        module = await asyncio.get_running_loop().run_in_executor(
            None, importlib.import_module, "distributed.dashboard.scheduler")
        if scheduler.status.name in ("running", "init"):
            module.connect(scheduler.http_application, scheduler.http_server, scheduler,
                           prefix="/")
        return None
    except Exception as e:  # the cluster works without it: say so once
        logger.warning("dashboard not started: %s", e)
        return str(e) or type(e).__name__


def dashboard_url(scheduler: Any, host: str) -> str | None:
    port = scheduler.services.get("dashboard")
    port = getattr(port, "port", None)
    if not port:
        return None
    return f"http://{host}:{port}/status"


def _contact(s: Settings, scheduler: Any, placement: Placement,
             creds: dict[str, str] | None) -> Contact:
    from distributed.comm import get_address_host

    host = get_address_host(scheduler.address)
    dashboard = dashboard_url(scheduler, host) if s.dashboard else None
    return Contact(address=scheduler.address, job=placement.job_stamp, creds=creds,
                   dashboard=dashboard)


def _announce(scheduler: Any, contact: Contact, placement: Placement, expected: int) -> None:
    dashboard = contact.dashboard
    logger.info(
        "scheduler %s on %s%s; %d worker%s expected",
        scheduler.address,
        placement.hostname,
        f", dashboard {dashboard}" if dashboard else "",
        expected,
        "" if expected == 1 else "s",
    )
    if dashboard:
        from ..tunnel import dashboard_ready, tunnel_command

        if dashboard_ready():  # one line: how to see the dashboard from a laptop
            logger.info("dashboard from a laptop: %s", tunnel_command([dashboard],
                                                                      placement.hostname))


def _take_signals(s: Settings, watch: JobWatch) -> list[signal.Signals]:
    """Walltime signals and Ctrl-C on the loop; the signals installed, to remove at the end."""
    loop = asyncio.get_running_loop()
    installed = [*walltime_signals(s), signal.SIGINT]
    for sig in installed:
        if sig == signal.SIGINT:
            loop.add_signal_handler(sig, watch._finish, 130, "interrupted (SIGINT)")
        else:
            loop.add_signal_handler(sig, watch.on_signal, int(sig))
    return installed


def _release_on_remote_close(watch: JobWatch, members: int, grace: float) -> Any:
    from distributed.diagnostics.plugin import SchedulerPlugin

    class ReleaseOnRemoteClose(SchedulerPlugin):
        """Client.shutdown() closes the scheduler, and its links with it: release the members
        first, or every worker takes the close for a lost scheduler and exits 1."""

        name = "dask-batch-release"

        async def before_close(self) -> None:
            if watch.outcome is not None and not watch.outcome.done():
                watch._finish(0)  # first: a member that links up during the wait is released
                await watch.release_members(members, grace)

    return ReleaseOnRemoteClose()


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
