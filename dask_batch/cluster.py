"""BatchCluster: a Dask cluster whose scheduler runs here and whose workers are batch jobs.

What dask-jobqueue's ``SLURMCluster`` is for a notebook on a login node, for every system of
``dask_batch.submit``: the scheduler starts in the calling process, ``scale``/``adapt`` send
worker jobs (one array per submission), ``close()`` cancels them. Traffic is mutual TLS with
credentials made for this cluster; the jobs get them, and the address, from a 0600 scheduler
file on the shared filesystem (never on a command line). Jobs that end are replaced while
the cluster holds a size; jobs that fail before their worker joins back off, then stop.
"""

from __future__ import annotations

import atexit
import contextlib
import html
import logging
import os
import uuid
import weakref
from typing import Any

import dask.config

from .settings import as_bool  # (importing settings loads the batch defaults)
from .submit.jobcluster import JobCluster

logger = logging.getLogger(__name__)

# dask-jobqueue's names for job spec keys
ALIASES = {
    "job_extra_directives": "extra_directives",
    "job_extra": "extra_directives",
    "job_script_prologue": "prologue",
    "job_directives_skip": "skip_directives",
    "name": "job_name",
    "project": "account",
}

_live: weakref.WeakSet = weakref.WeakSet()
_registered: list[bool] = []


class BatchCluster(JobCluster):
    """A scheduler in this process and worker jobs on a batch system.

    Parameters
    ----------
    system : slurm, pbs, sge, lsf, htcondor, moab, oar; None = ``batch.submit.system`` or
        detected from the commands on PATH
    scheduler_options : passed to ``distributed.Scheduler`` (port, host, dashboard_address,
        interface, ...) over ``batch.cluster.scheduler-options``
    security : True (default ``batch.cluster.secure``): mutual TLS with fresh credentials;
        False (or ``insecure=True``): plain TCP
    scheduler_file : where the jobs find the scheduler (default: a new folder in
        ``batch.cluster.directory``, which must be on a filesystem the nodes see)
    pool, pools_file, pools : the job spec's base: the pool named ``pool`` of ``batch.pools``,
        of a YAML file ``pools_file``, or of ``pools`` ({name: job spec keys}) given here
    max_failures, backoff : see ``batch.cluster.*``
    silence_logs : level of distributed's log lines shown while the cluster runs (False: all)
    **spec : job spec keys of ``dask_batch.submit`` (walltime, cores, memory, processes,
        queue, account, python, prologue, extra_directives, ...) and dask-jobqueue's names
        for them (job_extra_directives, job_script_prologue, job_directives_skip, name)

    Examples
    --------
    >>> cluster = BatchCluster(system="slurm", cores=8, memory="32GiB",
    ...                        walltime="02:00:00")  # doctest: +SKIP
    >>> cluster.scale(20)                            # doctest: +SKIP
    """

    replace_ended = True

    def __init__(self, system: str | None = None, *, scheduler_options: dict | None = None,
                 security: bool | None = None, insecure: bool = False,
                 scheduler_file: str | None = None, pool: str | None = None,
                 pools_file: str | None = None, pools: dict | None = None,
                 poll_interval: float | None = None,
                 timeout: float | None = None, max_failures: int | None = None,
                 backoff: float | None = None, silence_logs: str | bool = "warning",
                 asynchronous: bool = False, loop: Any = None, **spec: Any):
        from .security import make_credentials, security_from
        from .submit.base import detect_system, get_system
        from .submit.spec import resolve_spec

        if pools and pool is None:
            raise ValueError(f"pools= given without pool=: name the pool of these jobs "
                             f"({', '.join(sorted(pools))})")
        job_spec = resolve_spec(pool=pool, pools_file=pools_file, pools=pools,
                                **_spec_keys(spec))
        batch = get_system(system or dask.config.get("batch.submit.system") or detect_system())
        secure = _secure(security, insecure)
        self.creds = make_credentials() if secure else None
        self.security = security_from(self.creds)
        self._own_folder = scheduler_file is None  # removed at close unless a job failed
        self._setup_jobs(scheduler_file or _new_scheduler_file(), job_spec, batch,
                         poll_interval, timeout, max_failures, backoff)
        options = dict(dask.config.get("batch.cluster.scheduler-options", default={}) or {})
        self._scheduler_options = {**options, **(scheduler_options or {})}
        if job_spec.interface and "host" not in self._scheduler_options:
            # as in dask-jobqueue: the workers' interface is the scheduler's unless told
            self._scheduler_options.setdefault("interface", job_spec.interface)
        self.scheduler: Any = None
        self._quiet = contextlib.ExitStack()
        if silence_logs:  # as SpecCluster: the scheduler's INFO lines would fill a notebook
            from distributed.utils import silence_logging_cmgr

            self._quiet.enter_context(silence_logging_cmgr(level=silence_logs))
        super().__init__(asynchronous=asynchronous, loop=loop,
                         name=f"batch-{batch.name}-{job_spec.name_prefix}")
        _watch(self)
        self._loop_runner.start()
        if not self.asynchronous:
            try:
                self.sync(self._start)
            except BaseException:  # e.g. the port is taken: leave no scheduler running
                with contextlib.suppress(Exception):
                    self.close(timeout=10)
                raise

    @classmethod
    def from_scheduler_file(cls, scheduler_file: str, **kwargs: Any) -> Any:
        """Worker jobs for a scheduler that runs elsewhere: an ``AddOnWorkers``."""
        from .submit.addon import AddOnWorkers

        return AddOnWorkers(scheduler_file, **_spec_keys(kwargs))

    async def _start(self) -> None:
        from distributed import Scheduler
        from distributed.comm import get_address_host
        from distributed.core import rpc

        from .rendezvous import Contact, write_scheduler_file
        from .roles import dashboard_url

        options = {"dashboard_address": ":8787", **self._scheduler_options}
        options.setdefault("protocol", "tls://" if self.creds else "tcp://")
        self.scheduler = await Scheduler(security=self.security, **options)
        self.scheduler_comm = rpc(self.scheduler.address,
                                  connection_args=self.security.get_connection_args("client"))
        dashboard = dashboard_url(self.scheduler, get_address_host(self.scheduler.address))
        os.makedirs(os.path.dirname(self.scheduler_file), mode=0o700, exist_ok=True)
        write_scheduler_file(self.scheduler_file, Contact(
            address=self.scheduler.address, creds=self.creds,
            dashboard=dashboard))
        await self._start_jobs()

    async def _close(self) -> None:
        await super()._close()  # cancels the jobs
        if self.scheduler is not None:
            await self.scheduler.close()
        with contextlib.suppress(OSError):  # it holds the credentials
            os.unlink(self.scheduler_file)
        if self._own_folder and not self._failed():
            import shutil

            shutil.rmtree(os.path.dirname(self.scheduler_file), ignore_errors=True)
        self._quiet.close()

    def _failed(self) -> bool:
        """Any job whose logs are worth keeping."""
        return bool(self.failures.in_row) or any(
            s.value in ("failed", "missing", "timeout") for q, s in self.states.items()
            if not any(q in r.cancelled for r in self.records))

    def job_script(self) -> str:
        """The script of one worker job (a submission of many is an array of it)."""
        from .submit import jobs

        return self.system.render(jobs.requests(self.spec, self.system, 1,
                                                self.scheduler_file)[0])

    async def _get_logs(self, cluster: bool = True, scheduler: bool = True,
                        workers: Any = True) -> Any:
        """Distributed's logs, and the error-file tail of every job that failed."""
        from distributed.utils import Log

        from .submit.failures import error_file, tail

        logs = await super()._get_logs(cluster, scheduler, workers)
        for r in self.records:
            for e in r.elements:
                state = self.states.get(e.query_id)
                if state is not None and state.value in ("failed", "missing", "timeout"):
                    text = tail(error_file(self.log_directory, e, r.array), lines=50)
                    logs[f"job {e.query_id} ({state.value})"] = Log(text or "(no error file)")
        return logs

    def job_counts(self) -> dict[str, int]:
        """Jobs by last known state (no query: see ``status()`` for a fresh one)."""
        counts: dict[str, int] = {}
        for r in self.records:
            for e in r.elements:
                state = self.states.get(e.query_id)
                key = "cancelled" if e.query_id in r.cancelled else \
                    state.value if state is not None else "pending"
                counts[key] = counts.get(key, 0) + 1
        return counts

    def _jobs_html(self) -> str:
        counts = self.job_counts()
        rows = "".join(
            f'<tr><td style="text-align: left;">{html.escape(k)}</td>'
            f'<td style="text-align: left;">{counts.get(k, 0)}</td></tr>'
            for k in ("pending", "running", "failed", *sorted(
                set(counts) - {"pending", "running", "failed"})))
        stopped = ('<tr><td colspan="2" style="text-align: left;">submission stopped: '
                   'jobs failed before their workers joined</td></tr>'
                   if self.failures.stopped else "")
        return (f'<table><tr><th style="text-align: left;">{html.escape(self.system.name)} '
                f'jobs</th><th></th></tr>{rows}'
                f'<tr><td style="text-align: left;">workers</td><td style="text-align: left;">'
                f'{len(self.observed)} / {len(self.plan)}</td></tr>{stopped}</table>')

    def _repr_html_(self, cluster_status: Any = None) -> str:
        return super()._repr_html_(cluster_status=(cluster_status or "") + self._jobs_html())

    def __repr__(self) -> str:
        counts = ", ".join(f"{v} {k}" for k, v in sorted(self.job_counts().items())) or "no jobs"
        address = self.scheduler.address if self.scheduler is not None else "not started"
        return (f"<BatchCluster {self.system.name} {address}: {len(self.observed)} workers "
                f"connected / {len(self.plan)} requested; jobs: {counts}>")


def _spec_keys(options: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    given: dict[str, str] = {}
    for key, value in options.items():
        target = ALIASES.get(key, key)
        if target in out:
            from .submit.spec import SpecError

            first, second = sorted((given[target], key))
            raise SpecError(f"{first} and {second} are the same setting: give one")
        out[target], given[target] = value, key
    return out


def _secure(security: Any, insecure: bool) -> bool:
    if insecure:
        return False
    if security is None:
        return as_bool(dask.config.get("batch.cluster.secure", default=True),
                              "cluster.secure")
    if isinstance(security, bool):
        return security
    raise TypeError("BatchCluster(security=) takes True or False: the credentials are made "
                    "for each cluster")


def _new_scheduler_file() -> str:
    base = dask.config.get("batch.cluster.directory", default=None) or os.getcwd()
    return os.path.join(os.path.abspath(base), f"dask-batch-{uuid.uuid4().hex[:8]}",
                        "scheduler.json")


def _watch(cluster: BatchCluster) -> None:
    if not _registered:
        _registered.append(True)
        atexit.register(_close_all)
    _live.add(cluster)


def _close_all() -> None:
    """At interpreter exit: cancel every job of every cluster not closed (no loop needed)."""
    from .submit import jobs

    for cluster in list(_live):
        with contextlib.suppress(Exception):
            active = {e.query_id for _, e in cluster._active()}
            if active:
                jobs.cancel(cluster.scheduler_file, None, cluster.timeout, active)
                for r in cluster.records:
                    r.cancelled = sorted(set(r.cancelled) | {e.query_id for e in r.elements})
        with contextlib.suppress(Exception):
            cluster.close(timeout=10)
