"""What each rank does and how the ranks meet: settings + placement -> Plan. Pure: no I/O,
no MPI, tested as a table (tests/test_plan.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import BatchError
from .placement import Placement
from .settings import Settings


class PlanError(BatchError, RuntimeError):
    """The options and the ranks found cannot make a job; the same on every rank."""

    every_rank = True


class WorldTooSmallException(PlanError):
    """Not enough ranks for the chosen roles (same name as dask-mpi's)."""


@dataclass(frozen=True)
class Plan:
    role: str  # scheduler | client | worker
    rendezvous: str  # mpi | file | address
    scheduler_file: str | None
    works_too: bool  # --inclusive-workers: a worker beside the scheduler or client here
    client_beside_scheduler: bool  # the scheduler serves on a thread, the client runs here
    n_workers: int  # worker ranks of the job


def role_of(rank: int, s: Settings) -> str:
    if s.scheduler and rank == s.scheduler_rank:
        return "scheduler"
    if rank == s.client_rank:
        return "client"
    return "worker"


def default_scheduler_file(job_stamp: str | None, directory: str | None = None) -> str:
    name = f"scheduler-{job_stamp}.json" if job_stamp else "scheduler.json"
    return os.path.join(directory or os.getcwd(), name)


def rendezvous_for(s: Settings, mpi: bool) -> str:
    """mpi, file or address: as asked, else MPI when in use, else the scheduler file."""
    if s.rendezvous != "auto":
        if s.rendezvous == "mpi" and not mpi:
            raise PlanError("rendezvous 'mpi' asked for, but MPI is not in use")
        return s.rendezvous
    if s.scheduler_address:
        return "address"
    if not s.scheduler:
        if not s.scheduler_file:
            raise PlanError("--no-scheduler needs the cluster to join: --scheduler-file F or "
                            "--scheduler-address ADDRESS")
        return "file"
    return "mpi" if mpi else "file"


def check_size(s: Settings, size: int, launcher: str | None) -> None:
    if size < s.min_size():
        raise WorldTooSmallException(
            f"{size} rank(s) found ({launcher}) but these roles need at least {s.min_size()}: "
            "scheduler, client and one worker" if s.client and s.scheduler
            else f"{size} rank(s) found but at least {s.min_size()} are needed")


def plan(s: Settings, placement: Placement, mpi: bool) -> Plan:
    """This rank's part of the job (``mpi``: an MPI communicator joins the ranks)."""
    check_size(s, placement.size, placement.launcher)
    role = role_of(placement.rank, s)
    method = rendezvous_for(s, mpi)
    path = s.scheduler_file or (default_scheduler_file(placement.job_stamp)
                                if method == "file" else None)
    return Plan(
        role=role,
        rendezvous=method,
        scheduler_file=path,
        works_too=role != "worker" and not s.exclusive_workers,
        client_beside_scheduler=role == "scheduler" and s.client_rank == s.scheduler_rank,
        n_workers=placement.size - len(s.non_worker_ranks()),
    )
