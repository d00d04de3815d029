"""One resolved set of options: argument > ``DASK_BATCH__…`` env > user yaml > batch.yaml."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field, fields, replace
from typing import Any

from dask.utils import parse_timedelta

from . import config
from .errors import BatchError
from .units import parse_memory


class SettingsError(BatchError, ValueError):
    """An option value that cannot work; the message says which and why."""

    every_rank = True


@dataclass(frozen=True)
class Settings:
    mpi: str = "auto"  # auto | true | false
    rendezvous: str = "auto"  # auto | mpi | file | address
    scheduler: bool = True
    client: bool = True  # a client rank runs user code (False: `dask-batch` serves only)
    client_on_scheduler: bool = False
    scheduler_rank: int = 0
    client_at: int | None = None  # the client's rank (dask-mpi's client_rank); None: default
    exclusive_workers: bool = True  # False: the scheduler's and client's ranks work too
    scheduler_file: str | None = None
    scheduler_address: str | None = None
    scheduler_port: int = 0
    rendezvous_timeout: float = 120.0
    dashboard: bool = True
    dashboard_address: str = ":8787"
    protocol: str | None = None
    interface: str | None = None
    secure: bool = True
    nanny: bool = True
    start_method: str = "fork"  # how a nanny starts its worker process: fork | spawn
    nthreads: int | None = None
    memory_limit: Any = "auto"
    local_directory: str | None = None
    worker_class: str = "distributed.Worker"
    worker_options: dict = field(default_factory=dict)
    name: str | None = None
    gpus: Any = None
    resources: dict = field(default_factory=dict)
    client_timeout: float = 600.0
    scheduler_timeout: float = 10.0
    shutdown_grace: float = 5.0
    signal_grace: float = 60.0
    signals: tuple[str, ...] = ("SIGTERM", "SIGUSR2")
    log_level: str = "warning"

    @property
    def client_rank(self) -> int | None:
        if not self.client:
            return None
        if self.client_on_scheduler and self.scheduler:
            return self.scheduler_rank
        if self.client_at is not None:
            return self.client_at
        if not self.scheduler:
            return 0
        return 1 if self.scheduler_rank != 1 else 0  # the first rank after the scheduler's

    def non_worker_ranks(self) -> tuple[int, ...]:
        """Ranks that run no worker: the scheduler's and the client's, unless inclusive."""
        if not self.exclusive_workers:
            return ()
        ranks = set()
        if self.scheduler:
            ranks.add(self.scheduler_rank)
        if self.client_rank is not None:
            ranks.add(self.client_rank)
        return tuple(sorted(ranks))

    def min_size(self) -> int:
        """As dask-mpi: the highest rank with a role, and one worker of its own if exclusive."""
        roles = [self.scheduler_rank] if self.scheduler else []
        if self.client_rank is not None:
            roles.append(self.client_rank)
        if not self.exclusive_workers:
            return max(roles, default=0) + 1
        return max(max(roles, default=-1) + 1, len(self.non_worker_ranks()) + 1)


_KEYS = {  # Settings field -> dask config key under "batch."
    "mpi": "mpi",
    "rendezvous": "rendezvous",
    "client_on_scheduler": "client-on-scheduler",
    "scheduler_rank": "scheduler-rank",
    "exclusive_workers": "exclusive-workers",
    "scheduler_file": "scheduler-file",
    "scheduler_address": "scheduler-address",
    "scheduler_port": "scheduler-port",
    "rendezvous_timeout": "rendezvous-timeout",
    "dashboard": "dashboard",
    "dashboard_address": "dashboard-address",
    "protocol": "protocol",
    "interface": "interface",
    "secure": "secure",
    "nanny": "worker.nanny",
    "start_method": "worker.start-method",
    "nthreads": "worker.nthreads",
    "memory_limit": "worker.memory-limit",
    "local_directory": "worker.local-directory",
    "worker_class": "worker.class",
    "worker_options": "worker.options",
    "name": "worker.name-prefix",
    "gpus": "worker.gpus",
    "resources": "worker.resources",
    "client_timeout": "lifecycle.client-timeout",
    "scheduler_timeout": "lifecycle.scheduler-timeout",
    "shutdown_grace": "lifecycle.shutdown-grace",
    "signal_grace": "lifecycle.signal-grace",
    "signals": "lifecycle.signals",
    "log_level": "log-level",
}


def resolve(**overrides: Any) -> Settings:
    """Settings from explicit values (None = not given) over dask config; checked."""
    import dask.config

    values: dict[str, Any] = {}
    known = {f.name for f in fields(Settings)}
    for name, value in overrides.items():
        if name not in known:
            raise SettingsError(f"unknown option {name!r}")
        if value is not None:
            values[name] = value
    for name, key in _KEYS.items():
        if name not in values:
            got = dask.config.get(f"batch.{key}", default=None)
            if got is not None:
                values[name] = got
    try:
        return check(replace(Settings(), **values))
    except (TypeError, ValueError) as e:
        if isinstance(e, SettingsError):
            raise
        raise SettingsError(str(e)) from e


def _rank(value: Any, key: str) -> int:
    try:
        rank = int(value)
    except (TypeError, ValueError):
        rank = -1
    if rank < 0:
        raise SettingsError(f"batch.{key}: a rank is a number from 0, got {value!r}")
    return rank


def _seconds(value: Any, key: str) -> float:
    try:
        return float(parse_timedelta(value, default="seconds"))
    except (ValueError, TypeError, KeyError) as e:
        raise SettingsError(f"batch.{key}: bad duration {value!r}") from e


def check(s: Settings) -> Settings:
    mpi = str(s.mpi).lower()
    mpi = {"1": "true", "yes": "true", "on": "true", "0": "false", "no": "false"}.get(mpi, mpi)
    config.choice(mpi, "mpi", ("auto", "true", "false"))
    if mpi == "true" and importlib.util.find_spec("mpi4py") is None:
        raise SettingsError("--mpi needs mpi4py: pip install 'dask-batch[mpich]' (or [mpi])")
    rdv = config.choice(s.rendezvous, "rendezvous", ("auto", "mpi", "file", "address"))
    if rdv == "address" and not s.scheduler_address:
        raise SettingsError("rendezvous 'address' needs --scheduler-address")
    if rdv == "mpi" and mpi == "false":
        raise SettingsError("rendezvous 'mpi' needs MPI, but mpi is false")
    worker_options = s.worker_options
    if isinstance(worker_options, str):
        try:
            worker_options = json.loads(worker_options) if worker_options.strip() else {}
        except ValueError as e:
            raise SettingsError(f"--worker-options is not JSON: {e}") from e
    if not isinstance(worker_options, dict):
        raise SettingsError("--worker-options must be a JSON object")
    memory = s.memory_limit
    if memory not in ("auto", None, 0, "0") and not (
        isinstance(memory, float) and 0 < memory <= 1
    ):
        try:
            parse_memory(memory)
        except ValueError as e:
            raise SettingsError(str(e)) from e
    if s.nthreads is not None and int(s.nthreads) < 1:
        raise SettingsError(f"--nthreads must be at least 1, got {s.nthreads}")
    level = str(s.log_level).lower()
    config.choice(level, "log-level", ("debug", "info", "warning", "error", "critical"))
    gpus = s.gpus
    if gpus not in (None, "auto", "none") and not str(gpus).isdigit():
        raise SettingsError(f"--gpus must be auto, none or a number, got {gpus!r}")
    return replace(
        s,
        mpi=mpi,
        rendezvous=rdv,
        worker_options=worker_options,
        log_level=level,
        secure=config.as_bool(s.secure, "secure"),
        nanny=config.as_bool(s.nanny, "worker.nanny"),
        start_method=config.choice(s.start_method, "worker.start-method", ("fork", "spawn")),
        dashboard=config.as_bool(s.dashboard, "dashboard"),
        client_on_scheduler=config.as_bool(s.client_on_scheduler, "client-on-scheduler"),
        exclusive_workers=config.as_bool(s.exclusive_workers, "exclusive-workers"),
        scheduler_rank=_rank(s.scheduler_rank, "scheduler-rank"),
        client_at=None if s.client_at is None else _rank(s.client_at, "client rank"),
        scheduler_port=int(s.scheduler_port or 0),
        nthreads=None if s.nthreads is None else int(s.nthreads),
        rendezvous_timeout=_seconds(s.rendezvous_timeout, "rendezvous-timeout"),
        client_timeout=_seconds(s.client_timeout, "lifecycle.client-timeout"),
        scheduler_timeout=_seconds(s.scheduler_timeout, "lifecycle.scheduler-timeout"),
        shutdown_grace=_seconds(s.shutdown_grace, "lifecycle.shutdown-grace"),
        signal_grace=_seconds(s.signal_grace, "lifecycle.signal-grace"),
        signals=tuple(s.signals),
    )
