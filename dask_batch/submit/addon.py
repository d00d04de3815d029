"""AddOnWorkers: grow (and shrink) a running cluster with batch jobs, by hand or adaptively.

A ``distributed.deploy.Cluster`` attached to an existing scheduler (it starts none), so
``adapt()`` is distributed's own ``Adaptive``. As in ``SpecCluster``, ``plan`` and
``requested`` hold every worker whose job is accepted and not over (pending jobs included: no
runaway submission, dask-jobqueue #11) and ``observed`` those connected. A job that ends (e.g.
a worker retired at its lifetime) leaves the plan, so ``adapt`` replaces it (dask-jobqueue
#691).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from typing import Any

from distributed.core import Status, rpc
from distributed.deploy.adaptive import Adaptive
from distributed.deploy.cluster import Cluster
from distributed.objects import SchedulerInfo

from ..rendezvous import Contact, read_scheduler_file, write_scheduler_file
from ..security import security_from
from . import jobs
from .base import Element, detect_system, get_system
from .spec import resolve_spec
from .states import JobState

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


class AddOnWorkers(Cluster):
    """Worker jobs sent to a batch system for the cluster of ``scheduler_file``.

    Parameters
    ----------
    scheduler_file : the running cluster's scheduler file (address and TLS credentials)
    system : slurm, pbs, sge, lsf, htcondor, moab, oar; None = detect from the commands
    pool : a named pool of ``batch.pools`` (or of ``pools_file``)
    poll_interval : seconds between job-state queries (default ``batch.submit.poll-interval``)
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
                 asynchronous: bool = False, loop: Any = None, **spec: Any):
        import dask.config

        self.scheduler_file = os.path.abspath(scheduler_file)
        self.spec = resolve_spec(pool=pool, pools_file=pools_file, **spec)
        self.system = get_system(system or dask.config.get("batch.submit.system")
                                 or detect_system())
        self.contact: Contact = read_scheduler_file(self.scheduler_file)
        self.security = security or security_from(self.contact.creds)
        self.poll_interval = float(poll_interval or dask.config.get(
            "batch.submit.poll-interval", default=10))
        self.timeout = float(timeout or dask.config.get("batch.submit.timeout", default=60))
        self.records: list[jobs.Record] = []
        self.states: dict[str, JobState] = {}
        self._poll_task: asyncio.Task | None = None
        super().__init__(asynchronous=asynchronous, loop=loop,
                         name=f"addon-{self.system.name}-{self.spec.name_prefix}")
        self.scheduler_comm = rpc(self.contact.address,
                                  connection_args=self.security.get_connection_args("client"))
        self._loop_runner.start()  # as SpecCluster: our own loop thread unless asynchronous
        if not self.asynchronous:
            self.sync(self._start)

    def __await__(self):  # asynchronous=True: ``await AddOnWorkers(...)``
        async def _() -> AddOnWorkers:
            if self.status == Status.created:
                await self._start()
            return self

        return _().__await__()

    @classmethod
    def from_runner(cls, runner: Any, **kwargs: Any) -> AddOnWorkers:
        """From the client rank of a BatchRunner job (writes a scheduler file if it has none)."""
        path = runner.settings.scheduler_file
        if not path:
            from ..rendezvous import default_scheduler_file

            # plain mpiexec has no job id: the client's pid names the file then
            stamp = runner.placement.job_stamp or f"pid{os.getpid()}"
            path = default_scheduler_file(f"{stamp}-addon")
            write_scheduler_file(path, runner.contact)
        return cls(path, security=runner.security, **kwargs)

    async def _start(self) -> None:
        # Cluster._start without its worker-status stream: distributed serves that stream to
        # one Cluster per scheduler (a plugin of fixed name, with a warning on the scheduler
        # when a second one replaces it and freezes the first one's view), and several
        # AddOnWorkers (pools) may share a scheduler: the workers are polled instead
        await self._sync_workers()
        self._cluster_info.update(await self.scheduler_comm.get_metadata(
            keys=["cluster-manager-info"], default={}))
        self._sync_cluster_info_task = asyncio.ensure_future(self._sync_cluster_info())
        for pc in self.periodic_callbacks.values():
            pc.start()
        self.status = Status.running
        self._poll_task = asyncio.ensure_future(self._poll())

    async def _close(self) -> None:
        if self._poll_task:
            self._poll_task.cancel()
        active = [e.query_id for r, e in self._active()]
        if active:
            try:
                await asyncio.to_thread(jobs.cancel, self.scheduler_file, None, self.timeout,
                                        set(active))
            except Exception as e:  # closing must finish; say what is left
                logger.warning("could not cancel %d add-on job(s): %s", len(active), e)
        await super()._close()

    # ------------------------------------------------------------ what Adaptive reads

    def _active(self) -> list[tuple[jobs.Record, Element]]:
        return [(r, e) for r in self.records for e in r.elements
                if e.query_id not in r.cancelled
                and not self.states.get(e.query_id, JobState.PENDING).terminal]

    @property
    def plan(self) -> set[str]:
        return {n for r, e in self._active() for n in r.worker_names(e)}

    @property
    def requested(self) -> set[str]:
        return self.plan  # accepted by the batch system = requested, pending or not

    @property
    def observed(self) -> set[str]:
        ours = {n for r in self.records for e in r.elements for n in r.worker_names(e)}
        return {str(w["name"]) for w in self.scheduler_info["workers"].values()} & ours

    def other_workers(self) -> list[str]:
        ours = {n for r in self.records for e in r.elements for n in r.worker_names(e)}
        return [str(w["name"]) for w in self.scheduler_info["workers"].values()
                if str(w["name"]) not in ours]

    def adapt(self, Adaptive: type[Adaptive] = AddOnAdaptive, **kwargs: Any) -> Adaptive:
        kwargs.setdefault("interval", "2s")
        return super().adapt(Adaptive=Adaptive, **kwargs)

    # ------------------------------------------------------------ scaling

    def scale(self, n: int) -> Any:
        """Ask for ``n`` add-on workers in all (pending jobs count)."""
        return self.sync(self._scale, n)

    async def _scale(self, n: int) -> None:
        have = len(self.plan)
        if n > have:
            count = math.ceil((n - have) / self.spec.processes)
            new = await asyncio.to_thread(jobs.submit, self.spec, self.system, count,
                                          self.scheduler_file, self.timeout)
            self.records.extend(new)
            self.states.update({e.query_id: JobState.PENDING for r in new for e in r.elements})
        elif n < have:
            # pending jobs first (cheapest to drop), newest first
            observed = self.observed
            active = sorted(self._active(), key=lambda re_: (
                bool(set(re_[0].worker_names(re_[1])) & observed), -re_[0].submitted))
            drop = active[: (have - n) // self.spec.processes]
            await self._scale_down([w for r, e in drop for w in r.worker_names(e)])

    def scale_down(self, workers: list[str]) -> Any:
        return self.sync(self._scale_down, list(workers))

    async def _scale_down(self, workers: list[str]) -> None:
        names = set(workers)
        chosen = [(r, e) for r, e in self._active() if set(r.worker_names(e)) & names]
        connected = [w for r, e in chosen for w in r.worker_names(e) if w in self.observed]
        if connected:  # retire through the scheduler (moves data), then end the job
            await self.scheduler_comm.retire_workers(names=connected, remove=True,
                                                     close_workers=True)
        ids = {e.query_id for _, e in chosen}
        if ids:
            await asyncio.to_thread(jobs.cancel, self.scheduler_file, None, self.timeout, ids)
            for r, e in chosen:
                r.cancelled = sorted(set(r.cancelled) | {e.query_id})

    # ------------------------------------------------------------ state

    async def _poll(self) -> None:
        """Read the scheduler's workers every second, and ask the batch system about our jobs
        every ``poll_interval``; a failing query keeps the last known state."""
        next_query = time.monotonic() + self.poll_interval
        while self.status in (Status.created, Status.running):
            await asyncio.sleep(min(1.0, self.poll_interval))
            try:
                await self._sync_workers()
            except Exception:  # the scheduler is going away; its users hear of it
                pass
            if self.records and time.monotonic() >= next_query:
                next_query = time.monotonic() + self.poll_interval
                try:
                    await self._refresh()
                except Exception as e:
                    logger.warning("job status query failed (keeping last known states): %s", e)

    async def _sync_workers(self) -> None:
        self.scheduler_info = SchedulerInfo(await self.scheduler_comm.identity(n_workers=-1))

    async def _refresh(self) -> None:
        _, state_dir = jobs.state_paths(self.scheduler_file)
        self.states.update(await asyncio.to_thread(jobs.query, self.records, state_dir,
                                                   self.timeout))

    def job_status(self) -> dict[str, Any]:
        """Counts per state and one row per job, freshly queried (also ``status()``)."""
        self.sync(self._refresh)
        return summary(self.records, self.states, self.observed)

    # Cluster keeps its lifecycle in ``self.status`` (a Status enum) while the API is
    # ``workers.status()``: the attribute is a Status that can also be called.
    @property
    def status(self) -> Any:
        return _CallableStatus(self._status, self.job_status)

    @status.setter
    def status(self, value: Any) -> None:
        self._status = value.value if isinstance(value, _CallableStatus) else value

    def __repr__(self) -> str:
        return (f"<AddOnWorkers {self.system.name} {self.spec.name_prefix}: "
                f"{len(self.observed)} connected / {len(self.plan)} requested>")


class _CallableStatus:
    """``Status.running`` for distributed's comparisons; called, the jobs' states."""

    def __init__(self, value: Status, query: Any):
        self.value, self._query = value, query

    def __call__(self) -> dict[str, Any]:
        return self._query()

    def __eq__(self, other: object) -> bool:
        return self.value == (other.value if isinstance(other, _CallableStatus) else other)

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return repr(self.value)


def summary(records: list[jobs.Record], states: dict[str, JobState],
            connected: set[str] | None = None) -> dict[str, Any]:
    rows = []
    counts = {s.value: 0 for s in JobState}
    for r in records:
        for e in r.elements:
            state = states.get(e.query_id, JobState.UNKNOWN)
            counts[state.value] += 1
            row = {"job": e.query_id, "system": r.system, "pool": r.pool, "state": state.value,
                   "workers": r.worker_names(e)}
            if connected is not None:
                row["connected"] = sum(w in connected for w in r.worker_names(e))
            rows.append(row)
    return {"counts": {k: v for k, v in counts.items() if v}, "jobs": rows}
