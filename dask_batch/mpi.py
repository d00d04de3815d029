"""MPI, only when it fits: imported lazily, initialised before distributed (dask-mpi PR #100)."""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from . import report
from .placement import Placement, with_mpi

logger = logging.getLogger("dask_batch")

# variables only an MPI-capable launcher sets (a plain `srun` sets none of them)
MPI_LAUNCH_VARS = (
    "PMI_RANK", "PMI_FD", "PMI_PORT", "PMI_ID", "PMIX_RANK", "OMPI_COMM_WORLD_RANK",
    "MV2_COMM_WORLD_RANK", "PALS_RANKID", "JSM_NAMESPACE_RANK",
)


def available() -> bool:
    return "mpi4py" in sys.modules or importlib.util.find_spec("mpi4py") is not None


def wanted(mode: str, environ: Mapping[str, str], placement: Placement, comm: Any) -> bool:
    """Use MPI? ``auto``: when mpi4py is installed and a launcher started several processes."""
    if comm is not None or mode == "true":
        return True
    if mode == "false" or not available():
        return False
    wired = any(v in environ for v in MPI_LAUNCH_VARS)
    if placement.launcher == "slurm" and not wired and \
            environ.get("SLURM_MPI_TYPE", "none") == "none":
        # srun --mpi=none (Slurm's usual default): no PMI, so MPI_Init would give each rank a
        # world of its own; the ranks meet through the environment and the scheduler file
        # instead, and skip MPI_Init's 0.1-0.4 s (batch.mpi: true still tries, and says why
        # it falls back)
        return False
    return placement.size > 1 or wired


def world(comm: Any = None, timeout: float = 120.0) -> Any:
    if comm is not None:
        return comm
    # MPI_Init waits for every rank of the launch: one that died before it would hang us in
    # C code that holds the GIL (and spins), so no Python thread can end it: a watchdog
    # process does.
    why = f"error: MPI_Init did not return within {timeout:g} s (did a rank die before it?)"
    watchdog = _watchdog(timeout, report.line(why).encode())
    from mpi4py import MPI

    if watchdog:
        os.kill(watchdog, signal.SIGKILL)
        os.waitpid(watchdog, 0)
    return MPI.COMM_WORLD


def _watchdog(timeout: float, message: bytes) -> int:
    """Fork a process that kills this one after ``timeout`` unless killed first."""
    if "mpi4py.MPI" in sys.modules or not hasattr(os, "fork"):
        return 0
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    try:  # the child: no Python teardown, no inherited atexit handlers
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if os.getppid() != parent:
                os._exit(0)
        os.write(2, message)
        os.kill(parent, signal.SIGKILL)
    finally:
        os._exit(0)


def finalize(before: Callable[[], Any] | None = None) -> bool:
    """Finalize MPI if this process started it; True if it did.

    Hydra takes an exit without MPI_Finalize *and* the C library's exit handlers (which end
    the PMI session) for a crash and kills every rank, so the caller must then leave through
    C ``exit()``, not ``os._exit``. MPI_Finalize waits for the other ranks (seen with MPICH):
    ``before`` (called just before) lets the caller bound it in case a dead peer makes it wait.
    """
    mod = sys.modules.get("mpi4py.MPI")
    if mod is None:
        return False
    MPI: Any = mod
    if not MPI.Is_initialized() or MPI.Is_finalized():
        return False
    if before is not None:  # the caller's bound on MPI_Finalize (lifecycle.exit arms a timer)
        before()
    MPI.Finalize()
    return True


def join(env: Placement, timeout: float, comm: Any = None) -> tuple[Any, Placement, str | None]:
    """MPI_Init (unless ``comm`` is given) and the placement MPI gives, as ``(comm, placement,
    None)``; when MPI and the launcher disagree: ``(None, env, why)``."""
    comm = world(comm, timeout)
    why = mismatch(env, comm.Get_size())
    if why is not None:
        return None, env, why
    return comm, placement_from(comm, env), None


def mismatch(placement: Placement, size: int) -> str | None:
    """A one-line explanation when MPI and the launcher disagree about the world."""
    if size == 1 and placement.size > 1:
        hint = (
            "for srun use --mpi=pmi2 (MPICH) or --mpi=pmix (Open MPI)"
            if placement.launcher == "slurm"
            else "launch with the mpiexec of the MPI that mpi4py uses"
        )
        return (
            f"MPI sees 1 process but {placement.launcher} started {placement.size}: the MPI "
            f"library does not match the launcher ({hint}); using the launcher's environment"
        )
    return None


def placement_from(comm: Any, env: Placement) -> Placement:
    rank, size = comm.Get_rank(), comm.Get_size()
    placed = with_mpi(env, rank, size)
    disagree = placed.launcher == "mpi"
    if size > 1 and (disagree or placed.node is None):
        # ask MPI which ranks share this node (when the environment disagrees with MPI) and
        # which node this is (hydra and mpirun set no variable for it): nodes are numbered in
        # the order of their lowest rank, as Slurm numbers SLURM_NODEID
        from mpi4py import MPI

        local = comm.Split_type(MPI.COMM_TYPE_SHARED, key=rank)
        leaders = comm.Split(0 if local.Get_rank() == 0 else MPI.UNDEFINED, key=rank)
        node = local.bcast(leaders.Get_rank() if leaders != MPI.COMM_NULL else None, root=0)
        update: dict[str, Any] = {"node": node}
        if disagree:
            update.update(local_rank=local.Get_rank(), local_size=local.Get_size())
        placed = Placement(**{**placed.as_dict(), **update})
        if leaders != MPI.COMM_NULL:
            leaders.Free()
        local.Free()
    return placed
