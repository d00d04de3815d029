"""What every role shares: which role a rank takes, its worker name, its walltime signals."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable

from ..settings import Settings


def worker_name(prefix: str | None, rank: int) -> str | int:
    """The Dask name of a worker rank: its rank, or ``prefix-rank`` (``--name``)."""
    return f"{prefix}-{rank}" if prefix else rank


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


def abrupt_end(protocol: str) -> bool:
    """Released ranks leave without closing their comms: UCX only.

    Closing a UCX endpoint flushes it, and a flush towards a peer that has just exited can
    crash in UCX's shared-memory transport (openucx/ucx #5568; seen as a segfault at the end
    of a job with UCX_TLS=tcp,self,sm). Once the job is over nothing is left to hand over, so
    no rank closes: each exits, and the kernel tears the connections down.
    """
    return protocol == "ucx"


async def within(step: Awaitable, seconds: float) -> None:
    """Await ``step`` for at most ``seconds``, then go on, whatever it does.

    Not ``asyncio.wait_for``: on its timeout that waits for the cancelled step to finish, and
    a worker's close waits for its threads, one of which may run a user's ``time.sleep(30)``."""
    task = asyncio.ensure_future(step)
    await asyncio.wait([task], timeout=seconds)
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()  # retrieved: a failed close at the end is not news
