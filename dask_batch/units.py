"""Memory sizes, durations and ports as users write them: one parser each, one error
style."""

from __future__ import annotations

import math
import re
from typing import Any

from .errors import BatchError


class UnitError(BatchError, ValueError):
    """A size, a duration or a port that does not parse; the message shows a valid one."""

    every_rank = True  # every rank parses the same value: report it once per job


def parse_memory(value: Any, what: str = "memory size") -> int:
    """Bytes from ``4GiB``, ``1.5GB`` or a number of bytes; positive.

    >>> parse_memory("4GiB"), parse_memory("1.5GB"), parse_memory(1024)
    (4294967296, 1500000000, 1024)
    """
    from dask.utils import parse_bytes

    if isinstance(value, int | float) and not isinstance(value, bool):
        n = int(value)
    else:
        try:
            if not str(value).strip():
                raise ValueError("empty")
            n = int(parse_bytes(str(value)))
        except (ValueError, TypeError) as e:
            raise UnitError(f"bad {what} {value!r}: use e.g. '4GiB', '500MB' or bytes") from e
    if n <= 0:
        raise UnitError(f"bad {what} {value!r}: must be positive")
    return n


_CLOCK = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?")


def parse_duration(value: Any, what: str = "duration") -> int:
    """Whole seconds from ``HH:MM:SS``, ``MM:SS``, ``D-HH[:MM[:SS]]`` (the batch systems'
    forms), ``90m``/``2h`` (dask's) or a number of seconds; positive.

    >>> parse_duration("02:00:00"), parse_duration("1-00:00:00"), parse_duration("90m")
    (7200, 86400, 5400)
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = int(value)
    else:
        text = str(value).strip()
        m = _CLOCK.fullmatch(text)
        if m and (":" in text or m.group(1)):
            days, *parts = m.groups()
            nums = [int(p) for p in parts if p is not None]
            while len(nums) < 3:  # MM:SS counts from the right, D-HH from the left
                nums = [0, *nums] if ":" in text else [*nums, 0]
            seconds = int(days or 0) * 86400 + nums[0] * 3600 + nums[1] * 60 + nums[2]
        else:
            from dask.utils import parse_timedelta

            try:
                seconds = int(parse_timedelta(text, default="s"))
            except (ValueError, KeyError, TypeError) as e:
                raise UnitError(f"bad {what} {value!r}: use e.g. 02:00:00, 1-00:00:00 or 90m"
                                ) from e
    if seconds <= 0:
        raise UnitError(f"bad {what} {value!r}: must be positive")
    return seconds


def hms(seconds: int) -> str:
    """``H:MM:SS`` with hours past 24 (Slurm, PBS, SGE, OAR all accept it).

    >>> hms(93784)
    '26:03:04'
    """
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}"


def mib(nbytes: int) -> int:
    """Whole MiB, rounded up so a job never gets less than asked for."""
    return math.ceil(nbytes / 2**20)


def parse_ports(value: Any, what: str = "port") -> list[int]:
    """dask-worker's port forms: ``8000`` or a range ``8000:8010`` (both ends included).

    >>> parse_ports("8000"), parse_ports("8000:8002")
    ([8000], [8000, 8001, 8002])
    """
    first, _, last = str(value).strip().partition(":")
    if not first.isdigit() or not (last or first).isdigit():
        raise UnitError(f"{what} {value!r}: expected a port or a range such as 8000:8010")
    return list(range(int(first), int(last or first) + 1))
