"""Private files written whole: the scheduler file, outside clients' credentials, job state."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Any


def write_private_json(path: str, data: Any, *, fsync: bool = False,
                       indent: int | None = None) -> None:
    """Write ``data`` as JSON with mode 0600, atomically (temp file + rename): a reader sees
    the old file or the whole new one, and nobody else can read either. ``fsync``: on disk
    before the rename, for readers on other nodes of a shared filesystem."""
    directory = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o600)  # before any byte is written
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=indent)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
