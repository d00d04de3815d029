"""AddOnWorkers: grow (and shrink) a running cluster with batch jobs, by hand or adaptively.

A ``JobCluster`` (the job machinery it shares with ``BatchCluster``) attached to an existing
scheduler: it starts none, so ``adapt()`` is distributed's own ``Adaptive``, restricted to
the add-on workers.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from distributed.core import rpc
from distributed.deploy.adaptive import Adaptive

from ..rendezvous import Contact, read_scheduler_file, write_scheduler_file
from ..security import security_from
from .base import detect_system, get_system
from .jobcluster import JobCluster, _CallableStatus, summary  # noqa: F401  (public before)
from .spec import resolve_spec

logger = logging.getLogger(__name__)


def waiting_for(resources: dict[str, float], dask_scheduler: Any = None) -> int:
    """On the scheduler: tasks no worker can run that a worker with ``resources`` could."""
    n = 0
    for ts in dask_scheduler.unrunnable:
        need = ts.resource_restrictions
        if need and all(resources.get(k, 0) >= v for k, v in need.items()):
            n += 1
    return n


class AddOnAdaptive(Adaptive):
    """Adaptive over the add-on workers only: the allocation's own workers are left alone.

    For a pool with resource tags (e.g. MEM, GPU) it also counts the tasks that wait for those
    resources: distributed's target counts tasks, not what they need, so idle workers without
    the tag would keep it at zero while such tasks never run.
    """

    async def target(self) -> int:
        total = max(0, await super().target() - len(self.cluster.other_workers()))
        resources = dict(self.cluster.spec.resources)
        if resources:
            from distributed.protocol.pickle import dumps

            reply = await self.scheduler.run_function(
                function=dumps(waiting_for), args=dumps((resources,)))
            if reply.get("status") == "OK":
                total = max(total, int(reply["result"]))  # one worker per waiting task
        return total

    async def workers_to_close(self, target: int) -> list[str]:
        others = len(self.cluster.other_workers())
        names = await self.scheduler.workers_to_close(
            target=target + others, attribute="name", **self._workers_to_close_kwargs
        )
        ours = self.cluster.plan
        close = [n for n in names if n in ours]
        # the scheduler may pick the allocation's own workers: close ours to reach the target
        extra = len(self.cluster.observed) - len(close) - target
        if extra > 0:
            close += sorted(n for n in self.cluster.observed if n not in close)[:extra]
        return close


class AddOnWorkers(JobCluster):
    """Worker jobs sent to a batch system for the cluster of ``scheduler_file``.

    Parameters
    ----------
    scheduler_file : the running cluster's scheduler file (address and TLS credentials)
    system : slurm, pbs, sge, lsf, htcondor, moab, oar; None = detect from the commands
    pool : a named pool of ``batch.pools`` (or of ``pools_file``)
    poll_interval : seconds between job-state queries (default ``batch.submit.poll-interval``)
    max_failures, backoff : jobs in a row that end before their worker joins after which
        submission stops, and the first delay after one (``batch.cluster.*``)
    **spec : job spec keys (walltime, cores, memory, queue, account, gpus, resources, ...)

    Examples
    --------
    >>> workers = AddOnWorkers("sched.json", walltime="02:00:00", cores=8, memory="32GiB")
    >>> workers.scale(100)               # doctest: +SKIP
    >>> workers.adapt(minimum=0, maximum=100)  # doctest: +SKIP
    """

    def __init__(self, scheduler_file: str, system: str | None = None, pool: str | None = None,
                 pools_file: str | None = None, *, security: Any = None,
                 poll_interval: float | None = None, timeout: float | None = None,
                 max_failures: int | None = None, backoff: float | None = None,
                 asynchronous: bool = False, loop: Any = None, **spec: Any):
        import dask.config

        job_spec = resolve_spec(pool=pool, pools_file=pools_file, **spec)
        batch = get_system(system or dask.config.get("batch.submit.system") or detect_system())
        self._setup_jobs(scheduler_file, job_spec, batch, poll_interval, timeout,
                         max_failures, backoff)
        self.contact: Contact = read_scheduler_file(self.scheduler_file)
        self.security = security or security_from(self.contact.creds)
        super().__init__(asynchronous=asynchronous, loop=loop,
                         name=f"addon-{self.system.name}-{self.spec.name_prefix}")
        self.scheduler_comm = rpc(self.contact.address,
                                  connection_args=self.security.get_connection_args("client"))
        self._loop_runner.start()  # as SpecCluster: our own loop thread unless asynchronous
        if not self.asynchronous:
            self.sync(self._start)

    @classmethod
    def from_runner(cls, runner: Any, **kwargs: Any) -> AddOnWorkers:
        """From the client rank of a BatchRunner job (writes a scheduler file if it has none)."""
        path = runner.settings.scheduler_file
        if not path:
            from ..plan import default_scheduler_file

            # plain mpiexec has no job id: the client's pid names the file then
            stamp = runner.placement.job_stamp or f"pid{os.getpid()}"
            path = default_scheduler_file(f"{stamp}-addon")
            write_scheduler_file(path, runner.contact)
        return cls(path, security=runner.security, **kwargs)

    async def _start(self) -> None:
        await self._start_jobs()

    def adapt(self, Adaptive: type[Adaptive] = AddOnAdaptive, **kwargs: Any) -> Adaptive:
        kwargs.setdefault("interval", "2s")
        return super().adapt(Adaptive=Adaptive, **kwargs)

    def __repr__(self) -> str:
        return (f"<AddOnWorkers {self.system.name} {self.spec.name_prefix}: "
                f"{len(self.observed)} connected / {len(self.plan)} requested>")
