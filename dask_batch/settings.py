"""Every option of a job, once: its default, dask config key, flag and help (the metadata of
each ``Settings`` field). The click options, batch.yaml's ``batch.*`` defaults and
docs/configuration.md are made from it (``scripts/config-reference.py``, checked by a test).

A value comes from: argument > ``DASK_BATCH__…`` env > user yaml > batch.yaml.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass, field, fields, replace
from typing import Any

import dask.config
import yaml
from dask.utils import parse_timedelta

from .errors import BatchError
from .units import parse_memory

DEFAULTS_FILE = os.path.join(os.path.dirname(__file__), "batch.yaml")

# libyaml's loader where PyYAML has it: 1.7 ms instead of 13 ms on every rank's start-up path
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
with open(DEFAULTS_FILE) as _f:
    PACKAGED: dict[str, Any] = yaml.load(_f, Loader=_LOADER)  # noqa: S506  (a safe loader)
dask.config.update_defaults(PACKAGED)  # as distributed loads its own


class SettingsError(BatchError, ValueError):
    """An option value that cannot work; the message says which and why."""

    every_rank = True


def _opt(default: Any, key: str | None = None, help: str = "", flag: str | None = None,
         **cli: Any) -> Any:
    """A field: ``key`` under ``batch.`` in dask config, ``flag`` on the command line
    (``--x/--no-x`` for a switch), ``help`` for both; ``cli`` says more about the flag
    (``choices``, ``command``: only that command has it, ``is_flag``)."""
    meta = {"key": key, "help": help, "flag": flag, **cli}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    mpi: str = _opt(
        "auto", "mpi", flag="--mpi/--no-mpi", help="Use MPI (mpi4py) for placement and "
        "rendezvous: auto (when mpi4py is installed and an MPI launcher started this process), "
        "true, false.")
    rendezvous: str = _opt(
        "auto", "rendezvous", flag="--rendezvous", choices=("auto", "mpi", "file", "address"),
        help="How ranks meet: auto (MPI when in use, else a scheduler file), mpi, file, address.")
    scheduler: bool = _opt(
        True, flag="--scheduler/--no-scheduler", help="Start a scheduler on rank 0 [default], "
        "or add every rank as a worker to an existing cluster (--no-scheduler --scheduler-file F).")
    client: bool = True  # a client rank runs user code (False: `dask-batch` serves only)
    client_on_scheduler: bool = _opt(
        False, "client-on-scheduler", flag="--client-on-scheduler", command="run", is_flag=True,
        help="Run the client next to the scheduler on rank 0, so every other rank is a worker.")
    scheduler_rank: int = _opt(
        0, "scheduler-rank", flag="--scheduler-rank",
        help="The rank that runs the scheduler (dask-mpi's --scheduler-rank).")
    client_at: int | None = None  # the client's rank (dask-mpi's client_rank); None: default
    exclusive_workers: bool = _opt(
        True, "exclusive-workers", flag="--exclusive-workers/--inclusive-workers",
        help="Workers only on ranks of their own [default], or also on the scheduler's (and the "
        "client's) rank, as dask-mpi's --inclusive-workers.")
    scheduler_file: str | None = _opt(
        None, "scheduler-file", flag="--scheduler-file", help="Scheduler file to write "
        "(scheduler) or read (--no-scheduler); null = scheduler-<job>.json in the working "
        "directory (a shared filesystem) when needed.")
    scheduler_address: str | None = _opt(
        None, "scheduler-address", flag="--scheduler-address",
        help="Join this scheduler instead of starting one, e.g. tls://10.0.0.1:8786.")
    scheduler_port: int = _opt(
        0, "scheduler-port", flag="--scheduler-port", help="Scheduler port; 0 = a random free "
        "port.")
    rendezvous_timeout: float = _opt(
        120.0, "rendezvous-timeout",
        help="Seconds a rank waits for the scheduler's address before giving up.")
    dashboard: bool = _opt(
        True, "dashboard", flag="--dashboard/--no-dashboard",
        help="Serve the dashboard on the scheduler (when bokeh is installed).")
    dashboard_address: str = _opt(
        ":8787", "dashboard-address", flag="--dashboard-address",
        help="Dashboard address (another port if this one is taken).")
    protocol: str | None = _opt(
        None, "protocol", flag="--protocol", help="tcp, tls or ucx; null = tls when secure, "
        "else tcp.")
    interface: str | None = _opt(
        None, "interface", flag="--interface", help="Network interface, e.g. ib0 or eth0; null "
        "= InfiniBand/Slingshot when present, else the first one that is up.")
    secure: bool = _opt(
        True, "secure", help="Mutual TLS with credentials made for this job only (--insecure: "
        "plain TCP, anyone who can reach the scheduler can run code).")
    nanny: bool = _opt(
        True, "worker.nanny", flag="--nanny/--no-nanny", help="Run each worker under a nanny "
        "that restarts it when its process dies (e.g. the OOM killer), so one dead worker "
        "process does not end the job [default]; --no-nanny: the worker is the rank itself.")
    start_method: str = _opt(
        "fork", "worker.start-method", help="How a nanny starts its worker process: fork (from "
        "this rank's interpreter, distributed already imported) or spawn (a fresh interpreter, "
        "distributed's default); UCX workers always spawn.")
    nthreads: int | None = _opt(
        None, "worker.nthreads", flag="--nthreads",
        help="Threads per worker; null = the rank's CPU share.")
    memory_limit: Any = _opt(
        "auto", "worker.memory-limit", flag="--memory-limit", help="Memory per worker, e.g. "
        "4GiB; auto = the node's granted memory divided among its worker ranks.")
    local_directory: str | None = _opt(
        None, "worker.local-directory", flag="--local-directory",
        help="Worker scratch directory; null = $TMPDIR, else /tmp.")
    worker_class: str = _opt(
        "distributed.Worker", "worker.class", flag="--worker-class",
        help="Worker class, e.g. dask_cuda.CUDAWorker.")
    worker_options: dict = _opt(
        {}, "worker.options", flag="--worker-options",
        help='Extra worker arguments (a JSON object on the command line), e.g. {"lifetime": "1h"}.')
    name: str | None = _opt(
        None, "worker.name-prefix", flag="--name",
        help="Worker name prefix: workers are named <name>-<rank>; null = <rank>.")
    gpus: Any = _opt(
        None, "worker.gpus", flag="--gpus", help="GPUs per worker (NVIDIA, AMD, Intel): null "
        "(none), auto (one each, by local rank) or a number.")
    resources: dict = _opt({}, "worker.resources",
                           help="Dask resource tags of every worker rank, e.g. {GPU: 1}.")
    client_timeout: float = _opt(
        600.0, "lifecycle.client-timeout",
        help="Scheduler and workers stop if the client has not connected after this many seconds.")
    scheduler_timeout: float = _opt(
        10.0, "lifecycle.scheduler-timeout",
        help="Client and workers end this many seconds after losing the scheduler.")
    shutdown_grace: float = _opt(
        5.0, "lifecycle.shutdown-grace",
        help="After the client ends, hard exit of every rank after this many seconds.")
    signal_grace: float = _opt(
        60.0, "lifecycle.signal-grace",
        help="After a walltime signal, every rank is gone within this many seconds.")
    signals: tuple[str, ...] = _opt(
        ("SIGTERM", "SIGUSR2"), "lifecycle.signals", help="Signals that mean the allocation is "
        "ending: tell the client, retire workers, exit. Not SIGUSR1: MPICH's hydra sends it to "
        "every rank when one of them dies.")
    log_level: str = _opt(
        "warning", "log-level", flag="--log-level",
        help="Level of dask-batch's own loggers and Dask's on every rank.")

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


KEYS = {f.name: f.metadata["key"] for f in fields(Settings) if f.metadata.get("key")}
"""Settings field -> its dask config key under ``batch.``."""


def as_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"batch.{key}: expected true or false, got {value!r}")


def choice(value: Any, key: str, allowed: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text not in allowed:
        raise ValueError(f"batch.{key}: expected one of {', '.join(allowed)}, got {value!r}")
    return text


def resolve(**overrides: Any) -> Settings:
    """Settings from explicit values (None = not given) over dask config; checked."""
    values: dict[str, Any] = {}
    known = {f.name for f in fields(Settings)}
    for name, value in overrides.items():
        if name not in known:
            raise SettingsError(f"unknown option {name!r}")
        if value is not None:
            values[name] = value
    for name, key in KEYS.items():
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


def _mpi(s: Settings) -> str:
    mpi = str(s.mpi).lower()
    mpi = {"1": "true", "yes": "true", "on": "true", "0": "false", "no": "false"}.get(mpi, mpi)
    choice(mpi, "mpi", ("auto", "true", "false"))
    if mpi == "true" and importlib.util.find_spec("mpi4py") is None:
        raise SettingsError("--mpi needs mpi4py: pip install 'dask-batch[mpich]' (or [mpi])")
    return mpi


def _rendezvous(s: Settings, mpi: str) -> str:
    rdv = choice(s.rendezvous, "rendezvous", ("auto", "mpi", "file", "address"))
    if rdv == "address" and not s.scheduler_address:
        raise SettingsError("rendezvous 'address' needs --scheduler-address")
    if rdv == "mpi" and mpi == "false":
        raise SettingsError("rendezvous 'mpi' needs MPI, but mpi is false")
    return rdv


def json_object(value: Any, name: str) -> dict:
    """A mapping given as itself or as JSON text ("" for none); SettingsError otherwise."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError as e:
            raise SettingsError(f"{name} is not JSON: {e}") from e
    if not isinstance(value, dict):
        raise SettingsError(f"{name} must be a JSON object (a mapping), got {value!r}")
    return value


def _check_worker(s: Settings) -> None:
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
    gpus = s.gpus
    if gpus not in (None, "auto", "none") and not str(gpus).isdigit():
        raise SettingsError(f"--gpus must be auto, none or a number, got {gpus!r}")


def check(s: Settings) -> Settings:
    """``s`` with every value in its one form; SettingsError for one that cannot work."""
    mpi = _mpi(s)
    _check_worker(s)
    level = choice(s.log_level, "log-level", ("debug", "info", "warning", "error", "critical"))
    return replace(
        s,
        mpi=mpi,
        rendezvous=_rendezvous(s, mpi),
        worker_options=json_object(s.worker_options, "--worker-options"),
        log_level=level,
        secure=as_bool(s.secure, "secure"),
        nanny=as_bool(s.nanny, "worker.nanny"),
        start_method=choice(s.start_method, "worker.start-method", ("fork", "spawn")),
        dashboard=as_bool(s.dashboard, "dashboard"),
        client_on_scheduler=as_bool(s.client_on_scheduler, "client-on-scheduler"),
        exclusive_workers=as_bool(s.exclusive_workers, "exclusive-workers"),
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
