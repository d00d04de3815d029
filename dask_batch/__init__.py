"""Dask on HPC, the batch way: every rank of one allocation takes a role.

Importing this package is cheap: distributed and mpi4py load only when a role starts, so that
MPI can be initialised before distributed (dask-mpi PR #100).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "AllocationEnding",
    "BatchCluster",
    "BatchRunner",
    "WorldTooSmallException",
    "connect",
    "execute",
    "initialize",
    "security_for",
    "send_close_signal",
    "__version__",
]

_LAZY = {
    "BatchRunner": ".runner",
    "WorldTooSmallException": ".plan",
    "AllocationEnding": ".lifecycle",
    "execute": ".dask_mpi_compat",
    "initialize": ".dask_mpi_compat",
    "connect": ".access",
    "security_for": ".access",
    "send_close_signal": ".dask_mpi_compat",
    "AddOnWorkers": ".submit",
    "BatchCluster": ".cluster",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name], __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'dask_batch' has no attribute {name!r}")
