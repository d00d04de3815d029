"""What does this rank get: threads, memory, GPUs and a local directory.

The node's share comes from what the batch system grants (cgroup limits, ``SLURM_MEM_*``,
``SLURM_CPUS_PER_TASK``), not from what the machine has: inside a Slurm node ``psutil`` reports
the whole machine. Memory is divided among the worker ranks of the node, not handed whole to
each of them as dask-mpi does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import gpus as gpu_vendors
from .errors import BatchError
from .gpus import assign_gpus  # noqa: F401  (public here before gpus.py existed)
from .placement import Placement
from .units import parse_memory


class ResourceError(BatchError, ValueError):
    """A resource setting that cannot be honoured."""


@dataclass(frozen=True)
class Resources:
    nthreads: int
    memory_limit: int  # bytes for this worker
    node_memory: int  # bytes granted to this node's share of the job
    local_workers: int  # worker ranks sharing this node
    local_directory: str
    gpus: tuple[str, ...] = field(default_factory=tuple)
    gpu_vendor: str | None = None
    gpu_env: dict[str, str] = field(default_factory=dict)  # set in the worker before it starts
    sources: dict[str, str] = field(default_factory=dict)  # where each figure came from

    def as_dict(self) -> dict:
        return asdict(self)


def cgroup_memory_limit(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The memory limit of this process's cgroup (v2 or v1), or None when unlimited."""
    try:
        rel = ""
        for line in (Path("/proc/self/cgroup")).read_text().splitlines():
            parts = line.split(":", 2)
            if len(parts) == 3 and (parts[1] == "" or "memory" in parts[1].split(",")):
                rel = parts[2].lstrip("/")
                break
        v1 = root / "memory" / rel / "memory.limit_in_bytes"
        for candidate in (root / rel / "memory.max", v1):
            if candidate.exists():
                text = candidate.read_text().strip()
                if text != "max" and int(text) < 2**60:
                    return int(text)
    except (OSError, ValueError):
        pass
    return None


def cpu_affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def local_worker_count(placement: Placement, non_worker_ranks: tuple[int, ...]) -> int:
    """Worker ranks on this node, assuming launchers place consecutive ranks per node."""
    first = placement.rank - placement.local_rank
    here = range(first, first + placement.local_size)
    return max(1, placement.local_size - sum(1 for r in non_worker_ranks if r in here))


def node_memory(environ: Mapping[str, str], physical: int, cgroup: int | None) -> tuple[int, str]:
    """Bytes this job may use on this node, and where that figure came from."""
    mib = 2**20
    if environ.get("SLURM_MEM_PER_NODE"):
        return int(environ["SLURM_MEM_PER_NODE"]) * mib, "SLURM_MEM_PER_NODE"
    if environ.get("SLURM_MEM_PER_CPU"):
        cpus = int(environ.get("SLURM_CPUS_ON_NODE") or 1)
        return int(environ["SLURM_MEM_PER_CPU"]) * mib * cpus, "SLURM_MEM_PER_CPU"
    if cgroup is not None and cgroup < physical:
        return cgroup, "cgroup"
    return physical, "physical memory"


def gpu_list(environ: Mapping[str, str]) -> list[str]:
    """GPUs visible to this process (any vendor): the launcher's list, else the node's devices."""
    return list(gpu_vendors.visible(environ).units)


def local_directory(environ: Mapping[str, str]) -> str:
    """Node-local scratch: $TMPDIR (per-job on most batch systems), else /tmp."""
    for candidate in (environ.get("TMPDIR"), "/tmp"):
        if candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK):
            return candidate
    return os.getcwd()


def resolve(
    placement: Placement,
    environ: Mapping[str, str],
    *,
    non_worker_ranks: tuple[int, ...] = (0, 1),
    nthreads: int | None = None,
    memory_limit: str | int | float | None = "auto",
    local_dir: str | None = None,
    gpus: str | int | None = None,
    physical_memory: int | None = None,
    cgroup: int | None = None,
    affinity: int | None = None,
) -> Resources:
    """Resources of a worker rank. Explicit arguments win over what the node grants."""
    import psutil

    sources: dict[str, str] = {}
    workers_here = local_worker_count(placement, non_worker_ranks)

    if nthreads is None:
        cpus_per_task = environ.get("SLURM_CPUS_PER_TASK")
        seen = affinity if affinity is not None else cpu_affinity()
        total = os.cpu_count() or seen
        if cpus_per_task:
            nthreads, sources["nthreads"] = int(cpus_per_task), "SLURM_CPUS_PER_TASK"
        elif seen < total:  # the launcher bound this rank: its mask is its share
            nthreads, sources["nthreads"] = seen, "CPU affinity"
        else:  # unbound ranks share the node's cores
            nthreads, sources["nthreads"] = max(1, seen // workers_here), "cores / workers on node"
    else:
        sources["nthreads"] = "set"
    if nthreads < 1:
        raise ResourceError(f"nthreads must be at least 1, got {nthreads}")

    physical = physical_memory if physical_memory is not None else psutil.virtual_memory().total
    node_mem, node_src = node_memory(
        environ, physical, cgroup if cgroup is not None else cgroup_memory_limit()
    )
    if memory_limit in (None, "auto"):
        limit = node_mem // workers_here
        sources["memory_limit"] = f"{node_src} / {workers_here} workers on node"
    elif isinstance(memory_limit, float) and 0 < memory_limit <= 1:
        limit = int(node_mem * memory_limit / workers_here)
        sources["memory_limit"] = f"{memory_limit} x {node_src} / {workers_here}"
    elif memory_limit in (0, "0"):
        limit = 0
        sources["memory_limit"] = "unlimited"
    else:
        limit = parse_memory(memory_limit)  # type: ignore[arg-type]
        sources["memory_limit"] = "set"

    vendor, gpu_ids, gpu_env = worker_gpus(placement, environ, non_worker_ranks, gpus, sources)
    return Resources(
        nthreads=nthreads,
        memory_limit=limit,
        node_memory=node_mem,
        local_workers=workers_here,
        local_directory=local_dir or local_directory(environ),
        gpus=gpu_ids,
        gpu_vendor=vendor,
        gpu_env=gpu_env,
        sources=sources,
    )


def worker_gpus(
    placement: Placement,
    environ: Mapping[str, str],
    non_worker_ranks: tuple[int, ...],
    gpus: str | int | None,
    sources: dict[str, str],
) -> tuple[str | None, tuple[str, ...], dict[str, str]]:
    """This worker's vendor, GPUs and the variables that show it only those, by local rank."""
    if gpus in (None, 0, "0", "none"):
        return None, (), {}
    seen = gpu_vendors.visible(environ)
    per = None if gpus == "auto" else int(gpus)  # type: ignore[arg-type]
    # kept whole only if srun's own list is there: the node's devices are not the task's share
    bound = seen.source != "devices" and gpu_vendors.bound_per_task(environ, placement.size)
    first = placement.rank - placement.local_rank
    index = placement.local_rank - sum(1 for r in non_worker_ranks if first <= r < placement.rank)
    got = gpu_vendors.share(seen.units, max(index, 0), per, bound)
    if per is not None and len(got) < per:
        where = "this task was given" if bound else "this node shows"
        raise ResourceError(f"asked for {per} GPUs per worker, {where} {len(seen.units)}")
    if got:
        sources["gpus"] = seen.source + (" (bound per task)" if bound else "")
    return seen.vendor, got, gpu_vendors.worker_env(seen.vendor, got, environ)
