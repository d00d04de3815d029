"""Who am I: rank, size, local rank and node of this process, from the launcher's environment.

A launcher is a row in ``LAUNCHERS``; the first row whose rank and size are both present wins
(see ``docs/how-it-works.md`` for why the order is what it is). Nested launchers are the trap:
``mpirun`` inside ``sbatch`` inherits ``SLURM_*`` (the batch shell itself has ``SLURM_PROCID=0``),
and hydra inside Slurm runs ranks under one-proxy-per-node steps, so ``SLURM_*`` are wrong there.
Rows that only carry a rank (PMIx, ALPS) take their size from a row whose rank agrees.
Slurm heterogeneous jobs are a ``HetJob`` on the Slurm row (see ``SLURM_HET``).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from . import hostlist
from .errors import BatchError

# what an MPI launcher puts in its ranks' environment to wire up MPI (PMI, PMIx, Open MPI,
# MPICH's hydra: HYDI_CONTROL_FD, MPI_LOCALRANKID): a child process that is not a rank (a
# nanny's spawned worker, a Jupyter kernel) must not inherit it, or its mpi4py joins the job
LAUNCH_WIRING = ("PMI_", "PMIX_", "OMPI_", "HYDI_", "MPI_LOCAL")


class PlacementError(BatchError, ValueError):
    """The environment describes an impossible placement (e.g. rank >= size)."""


@dataclass(frozen=True)
class Launcher:
    name: str
    rank: tuple[str, ...]
    size: tuple[str, ...] = ()
    local_rank: tuple[str, ...] = ()
    local_size: tuple[str, ...] = ()
    node: tuple[str, ...] = ()
    # a variable that must be present for the row to count (e.g. a real srun step)
    requires: tuple[str, ...] = ()
    # variables naming this launch, the same on every rank of it and different for the next
    instance: tuple[str, ...] = ()
    # how this launcher describes the components of a heterogeneous job, if it has them
    het: HetJob | None = None


@dataclass(frozen=True)
class HetJob:
    """Variables of a heterogeneous job; ``{}`` is the component index, current name first."""

    size: tuple[str, ...]
    ntasks: tuple[str, ...]
    nodelist: tuple[str, ...]
    tasks_per_node: tuple[str, ...]
    local_rank: tuple[str, ...]
    node_name: tuple[str, ...]


# Slurm 22.05 (measured, docs/how-it-works.md "Slurm heterogeneous jobs"): one srun over
# several components is one launch, SLURM_PROCID counts across them (component 0 first) and
# SLURM_STEP_NUM_TASKS is the total, so the Slurm row needs nothing new for the rank. No
# variable names a task's component: it is found from the allocation's per-component node
# lists and task counts (legacy *_PACK_* names; a bare `srun A : B` sets only those).
SLURM_HET = HetJob(
    size=("SLURM_HET_SIZE", "SLURM_PACK_SIZE"),
    ntasks=("SLURM_NTASKS_HET_GROUP_{}", "SLURM_NTASKS_PACK_GROUP_{}"),
    nodelist=("SLURM_JOB_NODELIST_HET_GROUP_{}", "SLURM_JOB_NODELIST_PACK_GROUP_{}"),
    tasks_per_node=("SLURM_TASKS_PER_NODE_HET_GROUP_{}", "SLURM_TASKS_PER_NODE_PACK_GROUP_{}"),
    local_rank=("SLURM_LOCALID",),
    node_name=("SLURMD_NODENAME",),
)


# Order = precedence. Reference: docs/how-it-works.md ("Placement: who am I").
LAUNCHERS: tuple[Launcher, ...] = (
    Launcher(
        "openmpi",
        rank=("OMPI_COMM_WORLD_RANK",),
        size=("OMPI_COMM_WORLD_SIZE",),
        local_rank=("OMPI_COMM_WORLD_LOCAL_RANK",),
        local_size=("OMPI_COMM_WORLD_LOCAL_SIZE",),
        instance=("PMIX_NAMESPACE", "OMPI_MCA_orte_hnp_uri", "OMPI_MCA_ess_base_jobid"),
    ),
    Launcher(
        "jsrun",
        rank=("JSM_NAMESPACE_RANK",),
        size=("JSM_NAMESPACE_SIZE",),
        local_rank=("JSM_NAMESPACE_LOCAL_RANK",),
        local_size=("JSM_NAMESPACE_LOCAL_SIZE",),
        instance=("PMIX_NAMESPACE", "LSB_JOBID"),
    ),
    Launcher(
        "mvapich2",
        rank=("MV2_COMM_WORLD_RANK",),
        size=("MV2_COMM_WORLD_SIZE",),
        local_rank=("MV2_COMM_WORLD_LOCAL_RANK",),
        local_size=("MV2_COMM_WORLD_LOCAL_SIZE",),
    ),
    Launcher(
        "pals",
        rank=("PALS_RANKID",),
        size=("PMI_SIZE",),
        local_rank=("PALS_LOCAL_RANKID", "PMI_LOCAL_RANK"),
        local_size=("PMI_LOCAL_SIZE", "PALS_LOCAL_SIZE"),
        node=("PALS_NODEID",),
        instance=("PALS_APID",),
    ),
    # MPICH / Intel MPI hydra, srun --mpi=pmi2, Flux's pmi plugin
    Launcher(
        "pmi",
        rank=("PMI_RANK",),
        size=("PMI_SIZE",),
        local_rank=("MPI_LOCALRANKID", "PMI_LOCAL_RANK"),
        local_size=("MPI_LOCALNRANKS", "PMI_LOCAL_SIZE"),
        instance=("PMI_KVSNAME", "PMI_PORT"),
    ),
    Launcher(
        "flux",
        rank=("FLUX_TASK_RANK",),
        size=("FLUX_JOB_SIZE",),
        local_rank=("FLUX_TASK_LOCAL_ID",),
        instance=("FLUX_JOB_ID",),
    ),
    Launcher("pmix", rank=("PMIX_RANK",), instance=("PMIX_NAMESPACE",)),
    Launcher(
        "slurm",
        rank=("SLURM_PROCID",),
        size=("SLURM_STEP_NUM_TASKS",),
        local_rank=("SLURM_LOCALID",),
        node=("SLURM_NODEID",),
        # the batch shell has SLURM_PROCID=0 but no step: it is one process, not rank 0 of N
        requires=("SLURM_STEP_ID",),
        instance=("SLURM_STEP_ID",),
        het=SLURM_HET,
    ),
    Launcher("alps", rank=("ALPS_APP_PE",), instance=("ALPS_APP_ID",)),
)

# The batch job this process belongs to (not the launch: one job may run several launches).
JOB_ID_VARS: tuple[tuple[str, str], ...] = (
    ("SLURM_JOB_ID", "slurm"),
    ("PBS_JOBID", "pbs"),
    ("LSB_JOBID", "lsf"),
    ("FLUX_JOB_ID", "flux"),
    ("OAR_JOB_ID", "oar"),
    ("COBALT_JOBID", "cobalt"),
    ("JOB_ID", "sge"),  # Grid Engine's name is generic: checked last
)

OVERRIDE_RANK, OVERRIDE_SIZE = "DASK_BATCH_RANK", "DASK_BATCH_SIZE"


@dataclass(frozen=True)
class Placement:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    node: int | None = None
    hostname: str = ""
    launcher: str = "none"
    job_id: str | None = None
    batch_system: str | None = None
    # names this launch: ranks of one launch agree on it, a later launch in the same job differs
    instance: str | None = None
    # component of a heterogeneous job (Slurm hetjob) this rank runs in; None: not one, unknown
    het_group: int | None = None

    def __repr__(self) -> str:  # submitit's compact style
        node = "?" if self.node is None else self.node
        het = "" if self.het_group is None else f", het_group={self.het_group}"
        return (
            f"Placement(rank={self.rank}({self.size}), local_rank={self.local_rank}"
            f"({self.local_size}), node={node}, host={self.hostname}, launcher={self.launcher},"
            f" job={self.job_id}{het})"
        )

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def job_stamp(self) -> str | None:
        """What a scheduler file must carry to be this launch's, or None if unknowable."""
        if self.job_id is None and self.instance is None:
            return None
        return ".".join(str(p) for p in (self.job_id, self.instance) if p is not None)


def _first(environ: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = environ.get(name)
        if value not in (None, ""):
            return value
    return None


def _int(environ: Mapping[str, str], names: tuple[str, ...]) -> int | None:
    value = _first(environ, names)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def parse_tasks_per_node(text: str) -> list[int]:
    """Expand Slurm's compressed task counts.

    >>> parse_tasks_per_node("2(x3),1")
    [2, 2, 2, 1]
    >>> parse_tasks_per_node("4")
    [4]
    """
    counts: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)(?:\(x(\d+)\))?\s*", part)
        if not m:
            raise PlacementError(f"cannot parse tasks per node {text!r}")
        counts += [int(m.group(1))] * int(m.group(2) or 1)
    return counts


def _slurm_local_size(environ: Mapping[str, str], node: int | None) -> int | None:
    text = environ.get("SLURM_STEP_TASKS_PER_NODE") or environ.get("SLURM_TASKS_PER_NODE")
    if not text or node is None:
        return None
    counts = parse_tasks_per_node(text)
    return counts[node] if node < len(counts) else None


def _het_components(environ: Mapping[str, str], het: HetJob) -> list[tuple[list[str], str]]:
    """(nodes, tasks per node) of each component; [] when this is not a heterogeneous job."""
    n = _int(environ, het.size)
    if n is None or n < 2:
        return []
    try:  # a list this parser cannot read leaves the component unknown, never fails the rank
        return [(hostlist.expand(_first(environ, tuple(v.format(i) for v in het.nodelist)) or ""),
                 _first(environ, tuple(v.format(i) for v in het.tasks_per_node)) or "")
                for i in range(n)]
    except ValueError:
        return []


def _het_group(environ: Mapping[str, str], het: HetJob, rank: int, size: int,
               node_name: str) -> int | None:
    """Which component this rank runs in: the one whose nodes hold this node, else (nodes
    shared by components) from the rank, when the launch has every task of every component."""
    parts = _het_components(environ, het)
    owners = [i for i, (nodes, _) in enumerate(parts) if node_name in nodes]
    if len(owners) == 1:
        return owners[0]
    counts = [_int(environ, tuple(v.format(i) for v in het.ntasks)) for i in range(len(parts))]
    if not parts or None in counts or sum(c or 0 for c in counts) != size:
        return None
    start = 0
    for i, count in enumerate(counts):
        start += count or 0
        if rank < start:
            return i
    return None


def _het_local(environ: Mapping[str, str], het: HetJob, group: int,
               node_name: str) -> tuple[int, int] | None:
    """(local rank, local size) over the components on a node that several of them share:
    SLURM_LOCALID counts within one component, earlier components come first (derived, not
    seen: the Slurm of ci/clusters never puts two components on one node)."""
    on_node = []
    for nodes, per_node in _het_components(environ, het):
        if node_name not in nodes:
            on_node.append(0)
            continue
        try:
            counts = parse_tasks_per_node(per_node) if per_node else []
        except PlacementError:
            return None
        index = nodes.index(node_name)
        if index >= len(counts):
            return None
        on_node.append(counts[index])
    local = _int(environ, het.local_rank)
    if local is None or sum(1 for c in on_node if c) < 2:
        return None
    return sum(on_node[:group]) + local, sum(on_node)


def _row_values(row: Launcher, environ: Mapping[str, str]) -> tuple[int | None, int | None]:
    if row.requires and _first(environ, row.requires) is None:
        return None, None
    return _int(environ, row.rank), _int(environ, row.size)


def job_id(environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(job id, batch system) of the batch job around this process."""
    for var, system in JOB_ID_VARS:
        value = environ.get(var)
        if value:
            return value, system
    return None, None


def _rank_and_size(environ: Mapping[str, str], rows: list[tuple[Launcher, int | None, int | None]]
                   ) -> tuple[Launcher | None, int | None, int | None]:
    """(the launcher that says, rank, size): the override first, else the first row with both
    (a rank-only row borrows the size of a row whose rank agrees)."""
    override_rank = _int(environ, (OVERRIDE_RANK,))
    if override_rank is not None:
        size = _int(environ, (OVERRIDE_SIZE,))
        if size is None:
            raise PlacementError(f"{OVERRIDE_RANK} is set but {OVERRIDE_SIZE} is not")
        return None, override_rank, size
    for row, r, s in rows:
        if r is None:
            continue
        if s is None:
            s = next((s2 for row2, r2, s2 in rows if r2 == r and s2 is not None), None)
        if s is not None:
            return row, r, s
    return None, None, None


def _local(environ: Mapping[str, str], agreeing: list[Launcher]) -> dict[str, Any]:
    """Local rank, local size, node index and instance: the first agreeing row that has each."""
    out: dict[str, Any] = dict.fromkeys(("local_rank", "local_size", "node", "instance"))
    for row in agreeing:
        if out["local_rank"] is None:
            out["local_rank"] = _int(environ, row.local_rank)
        if out["local_size"] is None:
            out["local_size"] = _int(environ, row.local_size)
            if out["local_size"] is None and row.name == "slurm":
                out["local_size"] = _slurm_local_size(environ, _int(environ, row.node))
        if out["node"] is None:
            out["node"] = _int(environ, row.node)
        if out["instance"] is None:
            out["instance"] = _first(environ, row.instance)
    return out


def detect(environ: Mapping[str, str], hostname: str | None = None) -> Placement:
    """Placement of this process from its environment alone (no MPI)."""
    host = hostname if hostname is not None else socket.gethostname()
    jid, system = job_id(environ)
    rows = [(row, *_row_values(row, environ)) for row in LAUNCHERS]
    winner, rank, size = _rank_and_size(environ, rows)
    if rank is None or size is None:
        return Placement(hostname=host, job_id=jid, batch_system=system)
    launcher = winner.name if winner else "override"
    if not 0 <= rank < size:
        raise PlacementError(f"{launcher}: rank {rank} is not within size {size}")
    # local rank, local size and node only from rows that agree with the winner (first)
    agreeing = [row for row, r, s in rows if r == rank and (s is None or s == size)]
    if winner is not None and winner in agreeing:
        agreeing.remove(winner)
        agreeing.insert(0, winner)
    local = _local(environ, agreeing)
    het_group, het_local = _het(environ, agreeing, rank, size, host)
    if het_local is not None:
        local["local_rank"], local["local_size"] = het_local
    if local["local_rank"] is None:
        # nothing says how the ranks are spread: assume they all share this node
        local["local_rank"], local["local_size"] = rank, size
    elif local["local_size"] is None:
        local["local_size"] = size
    return Placement(rank=rank, size=size, hostname=host, launcher=launcher, job_id=jid,
                     batch_system=system, het_group=het_group, **local)


def _het(environ: Mapping[str, str], agreeing: list[Launcher], rank: int, size: int,
         host: str) -> tuple[int | None, tuple[int, int] | None]:
    """(component, local rank and size over the components) of a heterogeneous job's rank."""
    het = next((row.het for row in agreeing if row.het is not None), None)
    if het is None:
        return None, None
    node_name = _first(environ, het.node_name) or host.split(".")[0]  # node lists: short names
    group = _het_group(environ, het, rank, size, node_name)
    if group is None:
        return None, None
    return group, _het_local(environ, het, group, node_name)


def with_mpi(placement: Placement, rank: int, size: int) -> Placement:
    """The placement as MPI sees it; launcher details kept where they agree with MPI."""
    if (placement.rank, placement.size) == (rank, size):
        return Placement(**{**placement.as_dict(), "launcher": f"mpi ({placement.launcher})"})
    return Placement(
        rank=rank,
        size=size,
        local_rank=rank,
        local_size=size,
        hostname=placement.hostname,
        launcher="mpi",
        job_id=placement.job_id,
        batch_system=placement.batch_system,
        instance=placement.instance,
    )
