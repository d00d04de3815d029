"""dask-jobqueue's ``SLURMRunner`` as a BatchRunner: every task of ``srun`` enters it.

    with SLURMRunner(scheduler_file="scheduler-{job_id}.json") as runner:
        with Client(runner) as client:
            ...

Task 0 serves the scheduler, task 1 runs the body, the others are workers (as in
dask-jobqueue). The ranks meet through the scheduler file, as dask-jobqueue's do; it holds
mutual TLS credentials (mode 0600) unless ``batch.secure`` is off.
"""

from __future__ import annotations

import os
from typing import Any

from ..runner import BatchRunner

# scheduler_options keys -> BatchRunner options
_SCHEDULER_KEYS = {"dashboard_address": "dashboard_address", "port": "scheduler_port",
                   "interface": "interface", "protocol": "protocol",
                   "scheduler_file": "scheduler_file"}
# keyword -> why a value other than the default is refused
RUNNER_REFUSED = {
    "asynchronous": "the runner takes its rank's role at once (no event loop of yours)",
    "loop": "the runner takes its rank's role at once (no event loop of yours)",
    "scheduler_options": "only dashboard_address, port, interface, protocol and "
                         "scheduler_file are scheduler options here",
}


class SLURMRunner(BatchRunner):
    """dask-jobqueue's ``SLURMRunner(scheduler_file=..., scheduler=, client=,
    scheduler_options=, worker_class=, worker_options=)`` on BatchRunner.

    ``scheduler_file`` may contain ``{job_id}`` (default ``scheduler-{job_id}.json``).
    """

    def __init__(self, *args: Any, scheduler_file: str | None = "scheduler-{job_id}.json",
                 scheduler: bool = True, scheduler_options: dict | None = None,
                 worker_class: str | None = None, worker_options: dict | None = None,
                 client: bool = True, asynchronous: bool = False, loop: Any = None,
                 **batch_options: Any):
        if args:
            raise TypeError("SLURMRunner takes keyword arguments only")
        try:
            job_id = int(os.environ["SLURM_JOB_ID"])
            int(os.environ["SLURM_PROCID"]), int(os.environ["SLURM_NTASKS"])
        except KeyError as e:
            raise RuntimeError("SLURM_PROCID, SLURM_NTASKS, and SLURM_JOB_ID must be present "
                               "in the environment.") from e
        for key, value in (("asynchronous", asynchronous), ("loop", loop)):
            if value:
                raise TypeError(f"SLURMRunner({key}={value!r}) is not supported: "
                                f"{RUNNER_REFUSED[key]}")
        options = _scheduler_options(scheduler_options or {})
        path = scheduler_file or options.pop("scheduler_file", None)
        if not path:
            raise RuntimeError("scheduler_file must be specified in either the "
                               "scheduler_options or as keyword argument to SlurmRunner.")
        options.pop("scheduler_file", None)
        self.scheduler_file = os.path.abspath(str(path).format(job_id=job_id))
        worker = {k: v for k, v in (worker_options or {}).items() if k != "scheduler_file"}
        super().__init__(mpi="false", rendezvous="file", scheduler=scheduler, client=client,
                         scheduler_file=self.scheduler_file, worker_options=worker,
                         **({"worker_class": worker_class} if worker_class else {}),
                         **options, **batch_options)


def _scheduler_options(options: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(options) - set(_SCHEDULER_KEYS))
    if unknown:
        raise TypeError(f"SLURMRunner(scheduler_options={{{', '.join(map(repr, unknown))}: "
                        f"...}}) is not supported: {RUNNER_REFUSED['scheduler_options']}")
    out = {_SCHEDULER_KEYS[k]: v for k, v in options.items()}
    if isinstance(out.get("dashboard_address"), int):
        out["dashboard_address"] = f":{out['dashboard_address']}"
    return out
