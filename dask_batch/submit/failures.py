"""Worker jobs that end before their worker joins: back off, then stop, with one warning.

A bad prologue line or a crash at start makes every job fail within seconds; resubmitting on
every adaptive cycle would flood the queue (dask-jobqueue #498). After a failed job the next
submission waits ``backoff`` seconds, doubled for each failure in a row; after ``limit`` in a
row submission stops with one warning that quotes the job's error file. A worker that joins
resets the count.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable

from .base import Element

logger = logging.getLogger(__name__)


def error_file(log_dir: str, element: Element, array: bool) -> str | None:
    """The error file of one job element in ``log_dir`` (each system names them its own way:
    ``name-123_4.err``, ``name.e123.4``, ``name-123.4.err``), or None."""
    try:
        names = os.listdir(log_dir)
    except OSError:
        return None
    job = re.escape(element.name_id)
    index = rf"[_.\[]{element.index}(?!\d)" if array else r"(?![_.\[]?\d)"
    pattern = re.compile(rf"(?<!\d){job}{index}")
    found = [n for n in names if pattern.search(n)
             and (n.endswith((".err", ".ER")) or re.search(r"\.e\d", n))]
    if not found:
        return None
    return max((os.path.join(log_dir, n) for n in found), key=os.path.getmtime)


def tail(path: str | None, lines: int = 15, limit: int = 4000) -> str:
    if not path:
        return ""
    try:
        with open(path, errors="replace") as f:
            text = f.read()[-limit:]
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


class Failures:
    """Counts early job failures in a row and says when the next submission may go out."""

    def __init__(self, limit: int, backoff: float):
        self.limit, self.backoff = max(1, int(limit)), float(backoff)
        self.in_row = 0
        self.stopped = False
        self.not_before = 0.0

    def failed(self, job: str, state: str, err_file: str | None) -> None:
        """A job ended before its worker joined."""
        self._count(f"worker job {job} ended ({state}) before its worker joined",
                    lambda: self.message(job, state, err_file))

    def rejected(self, error: str) -> None:
        """The batch system refused a submission (or its command failed)."""
        self._count(f"submission failed ({error})", lambda: (
            f"{self.in_row} submissions or worker jobs in a row failed; no more jobs will be "
            f"submitted (fix it, then call cluster.resume()). The last submission: {error}"))

    def _count(self, what: str, final: Callable[[], str]) -> None:
        self.in_row += 1
        if self.in_row >= self.limit:
            if not self.stopped:  # one warning, however many fail at once
                self.stopped = True
                logger.warning("%s", final())
            return
        delay = self.backoff * 2 ** (self.in_row - 1)
        self.not_before = time.monotonic() + delay
        logger.info("%s (%d in a row): next submission in %g s", what, self.in_row, delay)

    def message(self, job: str, state: str, err_file: str | None) -> str:
        text = tail(err_file)
        quoted = "\n".join(f"    {line}" for line in text.splitlines()) or "    (empty)"
        where = f"its error file {err_file} ends with:\n{quoted}" if err_file else \
            "no error file was found for it"
        return (f"{self.in_row} worker jobs in a row ended before their worker joined; "
                f"no more jobs will be submitted (fix the job, then call cluster.resume()). "
                f"The last one, job {job} ({state}): {where}")

    def joined(self) -> None:
        self.in_row, self.stopped, self.not_before = 0, False, 0.0

    def may_submit(self) -> bool:
        return not self.stopped and time.monotonic() >= self.not_before
