"""Errors a user can act on, and the exit codes a job ends with. A leaf: nothing here ends a
process (``lifecycle.exit`` does)."""

from __future__ import annotations

EXIT_BAD_INPUT = 2  # bad option or environment: one line, nothing started
EXIT_CLIENT_LOST = 1  # the client died without reporting a code
EXIT_SCHEDULER_LOST = 1  # a client or worker lost the scheduler
EXIT_NO_CLIENT = 1  # the client never connected


class BatchError(Exception):
    """Base of dask_batch's user-facing errors: each prints as one line, with exit code 2.

    ``every_rank``: every rank of the job meets this error identically (bad option, world too
    small), so only rank 0 reports it instead of N copies of the same line.
    """

    every_rank = False
