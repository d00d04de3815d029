"""``dask-batch info``: what this process detected, from its environment (and, with
``--mpi``, from MPI as well, as a job would: the node index under hydra or mpirun)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import BatchError
from .gpus import visible as visible_gpus
from .mpi import available as mpi_available
from .placement import Placement, detect
from .resources import resolve
from .settings import resolve as settings
from .transport import choose_interface, interfaces


class InfoError(BatchError, ValueError):
    """``dask-batch info`` cannot do what was asked."""


def collect(environ: Mapping[str, str], interface: str | None = None,
            use_mpi: bool = False) -> dict[str, Any]:
    s = settings(interface=interface)
    p = detect(environ)
    mpi_note = None
    if use_mpi:
        p, mpi_note = _with_mpi(p, s.rendezvous_timeout)
    nics = interfaces()
    chosen = choose_interface(s.interface, nics, p.local_size == p.size)
    # GPUs as a worker would take them: --gpus auto unless set (without it a worker takes none)
    per = s.gpus if s.gpus not in (None, 0, "0", "none") else "auto"
    res = resolve(p, environ, non_worker_ranks=s.non_worker_ranks(), nthreads=s.nthreads,
                  memory_limit=s.memory_limit, local_dir=s.local_directory, gpus=per)
    seen = visible_gpus(environ)
    return {
        "launcher": p.launcher,
        "rank": p.rank,
        "size": p.size,
        "local_rank": p.local_rank,
        "local_size": p.local_size,
        "node": p.node,
        "het_group": p.het_group,
        "hostname": p.hostname,
        "job_id": p.job_id,
        "batch_system": p.batch_system,
        "job_stamp": p.job_stamp,
        "mpi4py": mpi_available(),
        "mpi": mpi_note,
        "interface": chosen,
        "address": nics.get(chosen) if chosen else None,
        "interfaces": nics,
        "nthreads": res.nthreads,
        "memory_limit": res.memory_limit,
        "node_memory": res.node_memory,
        "local_workers": res.local_workers,
        "local_directory": res.local_directory,
        "gpus": list(seen.units),
        "gpu_vendor": seen.vendor,
        "gpu_source": seen.source,
        "gpu_per_worker": per,
        "gpu_share": list(res.gpus),
        "gpu_env": res.gpu_env,
        "sources": res.sources,
    }


def _with_mpi(p: Placement, timeout: float) -> tuple[Placement, str]:
    """The placement MPI gives (MPI_Init); a mismatch with the launcher says why instead."""
    from . import mpi

    if not mpi_available():
        raise InfoError("--mpi: mpi4py is not installed (pip install 'dask-batch[mpich]')")
    _, placed, why = mpi.join(p, timeout)
    return placed, why or "used"


def render(d: dict[str, Any]) -> str:
    from dask.utils import format_bytes

    node = "?" if d["node"] is None else d["node"]
    lines = [
        f"launcher   {d['launcher']}  rank {d['rank']}/{d['size']}  local "
        f"{d['local_rank']}/{d['local_size']}  node {node} ({d['hostname']})"
        + ("" if d.get("het_group") is None else f"  het-group {d['het_group']}"),
        f"job        {d['job_id'] or '-'} ({d['batch_system'] or 'no batch system'})",
        f"network    {d['interface']} {d['address'] or ''}",
        f"worker     {d['nthreads']} threads ({d['sources'].get('nthreads')}), "
        f"{format_bytes(d['memory_limit'])} ({d['sources'].get('memory_limit')})",
        f"scratch    {d['local_directory']}",
        f"gpus       {_gpus_line(d)}",
        f"mpi4py     {'installed' if d['mpi4py'] else 'not installed'}"
        + (f" (MPI: {d['mpi']})" if d.get("mpi") else ""),
    ]
    return "\n".join(lines)


def _gpus_line(d: dict[str, Any]) -> str:
    if not d["gpus"]:
        return "none"
    env = " ".join(f"{k}={v}" for k, v in d["gpu_env"].items())
    return (f"{d['gpu_vendor']} {','.join(d['gpus'])} ({d['gpu_source']}); as a worker with "
            f"--gpus {d['gpu_per_worker']}: {','.join(d['gpu_share']) or 'none'}"
            + (f" ({env})" if env else ""))
