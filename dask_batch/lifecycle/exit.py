"""The one place a process ends: exit codes of exceptions, hard exits, MPI_Finalize."""

from __future__ import annotations

import os
import sys
import threading

from .. import report
from ..errors import EXIT_BAD_INPUT
from ..mpi import finalize
from .signals import AllocationEnding

# the real one: the client rank may wrap os._exit (ClientEnd.guard_os_exit)
_os_exit = os._exit

# set when this rank's member link broke without a release: rank 0 is gone, and MPI_Finalize,
# which waits for every rank, would wait for it in vain
scheduler_lost = False


def exit_code_of(exc: BaseException | None) -> int:
    """The process exit code Python would give for ``exc`` (SystemExit rules)."""
    if exc is None:
        return 0
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None:
            return 0
        return code if isinstance(code, int) else 1
    if isinstance(exc, AllocationEnding):
        return 128 + exc.signum
    if isinstance(exc, KeyboardInterrupt):
        return 130
    return 1


def hard_exit_after(seconds: float, code: int, why: str) -> threading.Timer:
    """Arm a timer that ends the process even if something hangs (distributed #8644)."""

    def fire() -> None:
        report.say(f"{why}: forcing exit after {seconds:g} s")
        _os_exit(code)

    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()
    return t


def flush_and_exit(code: int) -> None:
    """End the process now, skipping Python's teardown (it can hang: distributed #8644)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    # MPI_Finalize waits for every connected rank: a dead one must not cost the exit code
    timeout = 1.0 if scheduler_lost else 10.0
    if finalize(lambda: hard_exit_after(timeout, code, "MPI_Finalize did not return")):
        import ctypes

        # PyDLL keeps the GIL through exit(): the process's other Python threads (comms, the
        # member link) stay frozen while the C exit handlers free what they use (a CDLL call
        # released it, and once in CI the result was "double free or corruption")
        ctypes.PyDLL(None).exit(code)
    _os_exit(code)


def report_and_exit(error: BaseException, rank: int | None) -> None:
    """Print ``error`` as one line (once per job if every rank has it) and exit with 2."""
    if not getattr(error, "every_rank", False) or not rank:
        report.error(error)
    flush_and_exit(EXIT_BAD_INPUT)
