"""The walltime signal as the client sees it."""

from __future__ import annotations

import signal


class AllocationEnding(BaseException):
    """Raised in the client when the allocation is about to end (walltime signal).

    Catch it to save state; the workers stay up until the client returns or the grace time
    (``batch.lifecycle.signal-grace``) runs out. Uncaught, the job exits with 128 + signal.
    A BaseException, like KeyboardInterrupt, so that ``except Exception`` in library code
    between the signal and the user does not swallow it.
    """

    def __init__(self, signum: int, grace: float):
        self.signum, self.grace = signum, grace
        name = signal.Signals(signum).name
        super().__init__(f"{name} received: the allocation ends in {grace:g} s")
