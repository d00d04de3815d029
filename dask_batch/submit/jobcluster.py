"""The job part that AddOnWorkers and BatchCluster share: scaling by batch jobs, job states.

A ``distributed.deploy.Cluster`` whose workers are batch jobs of one spec on one system. As in
``SpecCluster``, ``plan`` and ``requested`` hold every worker whose job is accepted and not
over (pending jobs included: no runaway submission, dask-jobqueue #11) and ``observed`` those
connected. A job that ends leaves the plan, so ``adapt`` replaces it (dask-jobqueue #691);
with ``replace_ended`` a fixed ``scale(n)`` is held too. Jobs that end before their worker
joins are counted (``failures.Failures``): back-off, then a stop with one warning.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from typing import Any

from distributed.core import Status
from distributed.deploy.cluster import Cluster
from distributed.objects import SchedulerInfo

from ..units import parse_memory
from . import jobs
from .base import Element, SubmitError, System
from .failures import Failures, error_file
from .spec import JobSpec
from .states import JobState

logger = logging.getLogger(__name__)


class JobCluster(Cluster):
    """Batch jobs of ``spec`` on ``system`` for the scheduler of ``scheduler_file``."""

    replace_ended = False  # keep a fixed scale(n) by replacing jobs that end

    def _setup_jobs(self, scheduler_file: str, spec: JobSpec, system: System,
                    poll_interval: float | None, timeout: float | None,
                    max_failures: int | None = None, backoff: float | None = None) -> None:
        import dask.config

        self.scheduler_file = os.path.abspath(scheduler_file)
        self.spec, self.system = spec, system
        self.poll_interval = float(poll_interval or dask.config.get(
            "batch.submit.poll-interval", default=10))
        self.timeout = float(timeout or dask.config.get("batch.submit.timeout", default=60))
        self.failures = Failures(
            max_failures or dask.config.get("batch.cluster.max-failures", default=3),
            backoff if backoff is not None else dask.config.get("batch.cluster.backoff",
                                                                default=10))
        self.records: list[jobs.Record] = []
        self.states: dict[str, JobState] = {}
        self._target: int | None = None  # workers asked for by the last scale()
        self._deferred = False  # a scale-up waits for the back-off to end
        self._joined: set[str] = set()  # every worker of ours that ever connected
        self._poll_task: asyncio.Task | None = None
        # one change of the plan at a time: scale() and the poll loop's replacement would
        # both see the plan short while a submission is under way, and both submit
        self._lock = asyncio.Lock()

    def __await__(self):  # asynchronous=True: ``await Cluster(...)``
        async def _() -> JobCluster:
            if self.status == Status.created:
                await self._start()
            return self

        return _().__await__()

    async def _start_jobs(self) -> None:
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
        async with self._lock:  # a submission under way is recorded before the cancel
            active = [e.query_id for r, e in self._active()]
        if active:
            try:
                await asyncio.to_thread(jobs.cancel, self.scheduler_file, None, self.timeout,
                                        set(active))
            except Exception as e:  # closing must finish; say what is left
                logger.warning("could not cancel %d worker job(s): %s", len(active), e)
        await super()._close()

    # ------------------------------------------------------------ what Adaptive reads

    def _active(self) -> list[tuple[jobs.Record, Element]]:
        return [(r, e) for r in self.records for e in r.elements
                if e.query_id not in r.cancelled
                and not self.states.get(e.query_id, JobState.PENDING).terminal]

    def _ours(self) -> set[str]:
        return {n for r in self.records for e in r.elements for n in r.worker_names(e)}

    @property
    def plan(self) -> set[str]:
        return {n for r, e in self._active() for n in r.worker_names(e)}

    @property
    def requested(self) -> set[str]:
        return self.plan  # accepted by the batch system = requested, pending or not

    @property
    def observed(self) -> set[str]:
        return {str(w["name"]) for w in self.scheduler_info["workers"].values()} & self._ours()

    def other_workers(self) -> list[str]:
        ours = self._ours()
        return [str(w["name"]) for w in self.scheduler_info["workers"].values()
                if str(w["name"]) not in ours]

    # ------------------------------------------------------------ scaling

    def scale(self, n: int | None = None, jobs: int | None = None, memory: Any = None,
              cores: int | None = None) -> Any:
        """Ask for ``n`` workers in all (pending jobs count), or enough for ``jobs`` jobs,
        ``cores`` threads or ``memory`` bytes."""
        return self._run(self._scale(self._workers_for(n, jobs, memory, cores)))

    def _run(self, coro: Any) -> Any:
        """In our loop's thread (Adaptive, ``asynchronous=True``) a task, which runs whether
        or not the caller awaits it (dask-labextension calls ``scale`` without ``await``);
        elsewhere the result, waited for."""
        if self.asynchronous:
            return asyncio.ensure_future(coro)
        return self.sync(lambda: coro)

    def _workers_for(self, n: int | None, jobs: int | None, memory: Any,
                     cores: int | None) -> int:
        s = self.spec
        if jobs is not None:
            return int(jobs) * s.processes
        if cores is not None:
            return math.ceil(int(cores) / s.threads)
        if memory is not None:
            if not s.worker_memory:
                raise ValueError("scale(memory=...) needs a memory= per job")
            return math.ceil(parse_memory(memory) / s.worker_memory)
        if n is None or int(n) < 0:
            raise ValueError(f"scale(): expected a number of workers >= 0, got {n!r}")
        return int(n)

    async def _scale(self, n: int) -> None:
        self._target = n
        await self._converge(down=True)

    async def _converge(self, down: bool = False) -> None:
        """Submit (or, with ``down``, cancel) jobs so the plan meets the target."""
        async with self._lock:
            await self._converge_locked(down)

    async def _converge_locked(self, down: bool) -> None:
        n, have = self._target, len(self.plan)
        if n is None:
            return
        if n > have:
            self._deferred = not self.failures.may_submit()
            if self._deferred:
                return  # the poll loop submits once the back-off is over
            count = math.ceil((n - have) / self.spec.processes)
            try:
                new = await asyncio.to_thread(jobs.submit, self.spec, self.system, count,
                                              self.scheduler_file, self.timeout)
            except SubmitError as e:  # counted: a refused job is retried with back-off
                self._track(e.accepted)  # those taken before the refusal are ours to cancel
                self.failures.rejected(str(e))
                self._deferred = True
                raise
            self._track(new)
        elif n < have and down:
            # pending jobs first (cheapest to drop), newest first
            observed = self.observed
            active = sorted(self._active(), key=lambda re_: (
                bool(set(re_[0].worker_names(re_[1])) & observed), -re_[0].submitted))
            drop = active[: (have - n) // self.spec.processes]
            await self._cancel([w for r, e in drop for w in r.worker_names(e)])

    def _track(self, new: list) -> None:
        self.records.extend(new)
        self.states.update({e.query_id: JobState.PENDING for r in new for e in r.elements})

    def scale_down(self, workers: list[str]) -> Any:
        return self._run(self._scale_down(list(workers)))

    async def _scale_down(self, workers: list[str]) -> None:
        async with self._lock:
            await self._cancel(workers)
            self._target = len(self.plan)  # Adaptive's choice: not to be replaced

    async def _cancel(self, workers: list[str]) -> None:
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

    def resume(self) -> None:
        """Submit again after failing jobs stopped submission (once the job is fixed)."""
        self.failures.joined()

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
            if self.replace_ended or self._deferred:
                try:
                    await self._converge()
                except SubmitError:
                    pass  # counted (back-off, then one warning) by self.failures
                except Exception as e:
                    logger.warning("scaling failed: %s", e)

    async def _sync_workers(self) -> None:
        self.scheduler_info = SchedulerInfo(await self.scheduler_comm.identity(n_workers=-1))
        new = self.observed - self._joined
        if new:
            self._joined |= new
            self.failures.joined()

    async def _refresh(self) -> None:
        _, state_dir = jobs.state_paths(self.scheduler_file)
        before = dict(self.states)
        self.states.update(await asyncio.to_thread(jobs.query, self.records, state_dir,
                                                   self.timeout))
        self._cancelled_elsewhere()
        for r in self.records:
            for e in r.elements:
                state = self.states.get(e.query_id, JobState.PENDING)
                if (state.terminal and not before.get(e.query_id, JobState.PENDING).terminal
                        and e.query_id not in r.cancelled
                        and not set(r.worker_names(e)) & self._joined):
                    self.failures.failed(e.query_id, state.value,
                                         error_file(self.log_directory, e, r.array))

    def _cancelled_elsewhere(self) -> None:
        """Jobs cancelled with ``dask-batch cancel``: out of the plan, and not replaced."""
        try:
            stored = {r.job_id: r for r in jobs.load(self.scheduler_file)}
        except Exception:
            return
        for r in self.records:
            other = stored.get(r.job_id)
            new = set(other.cancelled) - set(r.cancelled) if other else set()
            if new:
                r.cancelled = sorted(set(r.cancelled) | new)
                if self._target is not None:
                    self._target = max(0, self._target - len(new) * r.processes)

    @property
    def log_directory(self) -> str:
        _, state_dir = jobs.state_paths(self.scheduler_file)
        return self.spec.log_directory or os.path.join(state_dir, "logs")

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
