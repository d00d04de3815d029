"""Worker preload: die with the parent nanny (Linux PR_SET_PDEATHSIG), close quietly.

If the launcher SIGKILLs a nanny rank, its worker child would otherwise live on, holding
memory and a port on a node whose job is over.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1

if sys.platform.startswith("linux"):
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
        if os.getppid() == 1:  # the parent died before the guard was armed
            os._exit(1)
    except (OSError, AttributeError):
        pass


def dask_teardown(worker: object) -> None:
    """The worker is closing because the job ends: the nanny's stop-queue thread in this
    process then logs "Worker process died unexpectedly" with a traceback; not news."""
    import logging

    logging.getLogger("distributed").setLevel(logging.CRITICAL)
