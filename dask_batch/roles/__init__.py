"""The three roles a rank can take: scheduler, worker and client.

The scheduler and worker roles are coroutines that return the exit code their rank ends with;
the client role is the user's code on the main thread, with ``ClientEnd`` holding its link.
Signal handlers are installed on the running loop of a scheduler or worker rank, or by the
client on its main thread, never at import (dask-jobqueue #667).
"""

from .client import ClientEnd
from .common import (
    abrupt_end,
    ignore_peer_failure_notice,
    walltime_signals,
    within,
    worker_name,
)
from .scheduler import SchedulerStartError, dashboard_url, serve_scheduler
from .worker import serve_worker

__all__ = ["ClientEnd", "SchedulerStartError", "abrupt_end", "dashboard_url",
           "ignore_peer_failure_notice",
           "serve_scheduler", "serve_worker", "walltime_signals", "within",
           "worker_name"]
