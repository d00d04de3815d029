"""``dask-batch info``: what this process detected, from its environment alone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import config  # noqa: F401  (loads the batch defaults)
from .mpi import available as mpi_available
from .placement import detect
from .resources import gpu_list, resolve
from .settings import resolve as settings
from .transport import choose_interface, interfaces


def collect(environ: Mapping[str, str], interface: str | None = None) -> dict[str, Any]:
    s = settings(interface=interface)
    p = detect(environ)
    nics = interfaces()
    chosen = choose_interface(s.interface, nics, p.local_size == p.size)
    res = resolve(p, environ, non_worker_ranks=s.non_worker_ranks(), nthreads=s.nthreads,
                  memory_limit=s.memory_limit, local_dir=s.local_directory, gpus=s.gpus)
    return {
        "launcher": p.launcher,
        "rank": p.rank,
        "size": p.size,
        "local_rank": p.local_rank,
        "local_size": p.local_size,
        "node": p.node,
        "hostname": p.hostname,
        "job_id": p.job_id,
        "batch_system": p.batch_system,
        "job_stamp": p.job_stamp,
        "mpi4py": mpi_available(),
        "interface": chosen,
        "address": nics.get(chosen) if chosen else None,
        "interfaces": nics,
        "nthreads": res.nthreads,
        "memory_limit": res.memory_limit,
        "node_memory": res.node_memory,
        "local_workers": res.local_workers,
        "local_directory": res.local_directory,
        "gpus": gpu_list(environ),
        "sources": res.sources,
    }


def render(d: dict[str, Any]) -> str:
    from dask.utils import format_bytes

    node = "?" if d["node"] is None else d["node"]
    lines = [
        f"launcher   {d['launcher']}  rank {d['rank']}/{d['size']}  local "
        f"{d['local_rank']}/{d['local_size']}  node {node} ({d['hostname']})",
        f"job        {d['job_id'] or '-'} ({d['batch_system'] or 'no batch system'})",
        f"network    {d['interface']} {d['address'] or ''}",
        f"worker     {d['nthreads']} threads ({d['sources'].get('nthreads')}), "
        f"{format_bytes(d['memory_limit'])} ({d['sources'].get('memory_limit')})",
        f"scratch    {d['local_directory']}",
        f"gpus       {','.join(d['gpus']) or 'none'}",
        f"mpi4py     {'installed' if d['mpi4py'] else 'not installed'}",
    ]
    return "\n".join(lines)
