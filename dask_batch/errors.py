"""Errors a user can act on: each prints as one line, with exit code 2, never a traceback."""

from __future__ import annotations

import sys

EXIT_BAD_INPUT = 2


class BatchError(Exception):
    """Base of dask_batch's user-facing errors.

    ``every_rank``: every rank of the job meets this error identically (bad option, world too
    small), so only rank 0 reports it instead of N copies of the same line.
    """

    every_rank = False


def report_and_exit(error: BaseException, rank: int | None) -> None:
    """Print ``error`` as one line (once per job if every rank has it) and exit with 2."""
    from .lifecycle import flush_and_exit

    if not getattr(error, "every_rank", False) or not rank:
        sys.stderr.write(f"dask-batch: error: {error}\n")
    flush_and_exit(EXIT_BAD_INPUT)
