"""Every line a user sees, in one format: ``dask-batch[<rank> <role>]: <message>`` on stderr
(``dask-batch: <message>`` before a process knows its rank); Dask's loggers at the configured
level (warning by default), and silence once the job is ending."""

from __future__ import annotations

import logging
import os
import sys

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR, "critical": logging.CRITICAL}


class _RankFilter(logging.Filter):
    prefix = "dask-batch"

    def filter(self, record: logging.LogRecord) -> bool:
        record.rankprefix = self.prefix
        return True


_FILTER = _RankFilter()


def set_rank_prefix(rank: int | str, role: str) -> None:
    """``rank``: the MPI rank, or the name of an add-on worker (which has no rank)."""
    _FILTER.prefix = f"dask-batch[{rank} {role}]"


def line(message: str) -> str:
    return f"{_FILTER.prefix}: {message}\n"


def say(message: str) -> None:
    """Write one line now, bypassing logging: safe from a timer or signal path that is about to
    end the process (a logging lock held by a frozen thread cannot block it)."""
    sys.stderr.write(line(message))
    sys.stderr.flush()


def error(message: object) -> None:
    say(f"error: {message}")


def configure(level: str) -> None:
    """Dask's loggers at ``level``; our own short report at info."""
    import dask.config

    dask.config.set({"logging.distributed": level})
    # processes a nanny spawns set up distributed's logging from the environment
    os.environ["DASK_LOGGING__DISTRIBUTED"] = level
    logging.getLogger("distributed").setLevel(LEVELS[level])
    ours = logging.getLogger("dask_batch")
    ours.setLevel(min(logging.INFO, LEVELS[level]) if level != "critical" else logging.CRITICAL)
    if not ours.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.addFilter(_FILTER)
        handler.setFormatter(logging.Formatter("%(rankprefix)s: %(message)s"))
        ours.addHandler(handler)
        ours.propagate = False


def quiet() -> None:
    """The job is ending: teardown noise (CommClosedError and heartbeat tracebacks) is not news.

    distributed's logging config gives some loggers levels of their own (``distributed.client``:
    warning), which a level on ``distributed`` does not reach: set every one."""
    names = [n for n in logging.root.manager.loggerDict
             if n.split(".")[0] in ("distributed", "tornado", "asyncio")]
    for name in ("distributed", "tornado", "asyncio", *names):
        logging.getLogger(name).setLevel(logging.CRITICAL)
