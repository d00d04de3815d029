"""The client role's end of the job: its member link, walltime signals, a lost scheduler, the
exit code it reports, and ``os._exit`` under MPI.

The client rank runs the user's code on its main thread, so everything here reaches that
thread from the link's thread by signals, and bounds every wait with a hard exit.
"""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import report
from ..lifecycle import (
    EXIT_SCHEDULER_LOST,
    AllocationEnding,
    MemberLink,
    flush_and_exit,
    hard_exit_after,
    lost_grace,
)
from ..rendezvous import RendezvousError
from ..settings import Settings
from .common import walltime_signals


class ClientEnd:
    """Holds the client's link to the scheduler and decides how the client rank ends."""

    def __init__(self, s: Settings, rank: int, address: str, security: Any,
                 on_ending: Callable[[int], None] | None,
                 scheduler_thread: threading.Thread | None = None):
        self.settings, self.rank, self.address, self.security = s, rank, address, security
        self.on_ending = on_ending
        # client on rank 0: the scheduler serves on this thread; the rank ends after it
        self.scheduler_thread = scheduler_thread
        self.link: MemberLink | None = None
        self.finished = False
        self.lost = False
        self._ending_raised = False

    def start(self, link: bool) -> None:
        """Open the member link (on its own thread) if asked, and take the walltime signals."""
        s = self.settings
        if link:  # a scheduler dask_batch started watches its members
            self.link = MemberLink(self.address, self.security, self.rank, "client",
                                   s.scheduler_timeout, on_lost=self._scheduler_lost,
                                   on_ending=self._told_ending, guest=not s.scheduler)
            try:
                self.link.start_thread()
            except OSError as e:
                raise RendezvousError(
                    f"the client cannot reach the scheduler {self.address}: {e}") from None
        if "mpi4py.MPI" in sys.modules:
            self.guard_os_exit()
        if threading.current_thread() is threading.main_thread():  # handlers: main thread only
            for sig in walltime_signals(s):
                signal.signal(sig, self._signal_handler)

    # ------------------------------------------------------------ the allocation ends

    def _signal_handler(self, signum: int, frame: Any) -> None:
        if self.link is not None:
            self.link.send_threadsafe({"op": "signal", "signum": signum}, timeout=0.5)
        self._told_ending(signum, from_handler=True)

    def _told_ending(self, signum: int, from_handler: bool = False) -> None:
        """Run the hook, or raise AllocationEnding in the main thread."""
        if self._ending_raised:
            return
        self._ending_raised = True
        grace = self.settings.signal_grace
        hard_exit_after(grace, 128 + signum, f"{signal.Signals(signum).name} grace over")
        if self.on_ending is not None:
            self.on_ending(signum)
        elif from_handler:
            raise AllocationEnding(signum, grace)
        else:  # from the link thread: deliver it in the main thread through the handler
            self._ending_raised = False
            signal.pthread_kill(threading.main_thread().ident, signum)  # type: ignore[arg-type]

    # ------------------------------------------------------------ the scheduler is gone

    def _scheduler_lost(self) -> None:
        if self.finished:
            return
        self.lost = True
        report.say(f"lost the scheduler {self.address} (rank 0): ending the client")
        hard_exit_after(lost_grace(self.settings.scheduler_timeout), EXIT_SCHEDULER_LOST,
                        "scheduler lost")
        # a real signal: it also wakes a main thread blocked in a wait (interrupt_main does not)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # type: ignore
        else:
            _thread.interrupt_main()

    # ------------------------------------------------------------ the client is done

    def finish(self, code: int) -> None:
        """Tell the scheduler the client is done with ``code`` and wait for the release."""
        if self.finished:
            return
        self.finished = True
        if self.lost:
            flush_and_exit(EXIT_SCHEDULER_LOST)
        report.quiet()
        grace = self.settings.shutdown_grace
        if self.link is not None:
            self.link.send_threadsafe({"op": "done", "code": code})
            deadline = time.monotonic() + grace
            while not self.link.released and time.monotonic() < deadline:
                time.sleep(0.002)
        if self.scheduler_thread is not None:
            self.scheduler_thread.join(grace)

    def ask_scheduler(self, msg: dict) -> Any:
        """One request to the scheduler, on the link's loop when there is one."""
        from distributed.comm import connect

        async def ask() -> Any:
            comm = await connect(self.address, **self.security.get_connection_args("client"))
            try:
                await comm.write({**msg, "reply": True})
                return await comm.read()
            finally:
                await comm.close()

        if self.link is not None and self.link.loop is not None:
            return asyncio.run_coroutine_threadsafe(ask(), self.link.loop).result()
        return asyncio.run(ask())

    def guard_os_exit(self) -> None:
        """Make ``os._exit(n)`` in the client end the job with ``n``.

        Under MPI, a process that leaves without MPI_Finalize and the C exit handlers is taken
        for a crash: hydra kills every rank and reports signal 9 instead of ``n``. In this
        process only (not in forked children), ``os._exit`` first reports ``n`` to the
        scheduler, then leaves through ``flush_and_exit``, which finalizes MPI within a
        bounded time.
        """
        original, pid = os._exit, os.getpid()

        def _exit(code: int) -> None:
            if os.getpid() != pid:
                original(code)
            with contextlib.suppress(BaseException):
                self.finish(code)
            flush_and_exit(code)

        os._exit = _exit  # type: ignore[assignment]
