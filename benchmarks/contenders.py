"""The contenders: how each one starts the anchor job with N ranks under MPICH's ``mpiexec``.

The anchor job: start the cluster, wait for every worker, 100 tiny tasks (plus one sum), exit.
``floor`` is ``mpiexec -n N python -c "import distributed"``: what N ranks cost before any Dask
work. dask_batch and dask-mpi run with the defaults their users get (dashboard on; dask_batch
with mutual TLS, dask-mpi with plain TCP); the ``-tcp`` and ``-nodash`` variants show what TLS
and the dashboard cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import harness as h

BATCH_JOB = str(h.JOBS / "batch_job.py")
DASK_MPI_JOB = str(h.JOBS / "dask_mpi_job.py")
FLOOR_JOB = str(h.JOBS / "floor.py")


@dataclass(frozen=True)
class Contender:
    name: str
    script: str | None  # None: python -c "import distributed"
    env: dict[str, str] = field(default_factory=dict)
    client_on_rank0: bool = False
    scheduler_file: bool = False
    about: str = ""

    def command(self, n: int, tmp: Path,
                wrapper: list[str] | None = None) -> tuple[list[str], dict[str, str]]:
        """``mpiexec`` argv and environment; ``wrapper`` runs the script under profile.py."""
        env = dict(self.env)
        if self.scheduler_file:
            env["DASK_BATCH__SCHEDULER_FILE"] = str(tmp / "scheduler.json")
        if self.script is None and wrapper is None:
            args = ["-c", "import distributed"]
        else:
            args = [*(wrapper or []), self.script or FLOOR_JOB]
        return h.mpiexec(n, h.PY, *args), h.clean_env(env)

    def role(self, rank: int, n: int) -> str:
        if self.script is None:
            return "import"
        if rank == 0:
            return "scheduler+client" if self.client_on_rank0 else "scheduler"
        if rank == 1 and not self.client_on_rank0:
            return "client"
        return "worker"

    def workers(self, n: int) -> int:
        return 0 if self.script is None else n - (1 if self.client_on_rank0 else 2)


_all = [
    Contender("floor", None, about='mpiexec -n N python -c "import distributed"'),
    Contender("dask-mpi", DASK_MPI_JOB, about="dask_mpi.initialize() + Client() (tcp, dashboard)"),
    Contender("batch-mpi", BATCH_JOB,
              about="BatchRunner, MPI rendezvous (defaults: mutual TLS, dashboard)"),
    Contender("batch-file", BATCH_JOB, {"DASK_BATCH__MPI": "false"}, scheduler_file=True,
              about="BatchRunner, no MPI: ranks from PMI_RANK/PMI_SIZE, scheduler file"),
    Contender("batch-rank0", BATCH_JOB, {"DASK_BATCH__CLIENT_ON_SCHEDULER": "true"},
              client_on_rank0=True,
              about="BatchRunner, client on rank 0 next to the scheduler, MPI rendezvous"),
    Contender("batch-mpi-tcp", BATCH_JOB, {"DASK_BATCH__SECURE": "false"},
              about="batch-mpi with --insecure (plain TCP, as dask-mpi)"),
    Contender("batch-mpi-nodash", BATCH_JOB, {"DASK_BATCH__DASHBOARD": "false"},
              about="batch-mpi without the dashboard"),
    Contender("dask-mpi-nodash", DASK_MPI_JOB, {"DASK_MPI_BENCH_DASHBOARD": "0"},
              about="dask-mpi with initialize(dashboard=False)"),
    Contender("batch-mpi-nonanny", BATCH_JOB, {"DASK_BATCH__WORKER__NANNY": "false"},
              about="batch-mpi with --no-nanny (the worker is the rank)"),
    Contender("batch-mpi-nanny-spawn", BATCH_JOB, {"DASK_BATCH__WORKER__START_METHOD": "spawn"},
              about="batch-mpi, its nanny spawning the worker (distributed's way) instead of "
              "forking it"),
    Contender("batch-mpi-tcp-nonanny", BATCH_JOB,
              {"DASK_BATCH__SECURE": "false", "DASK_BATCH__WORKER__NANNY": "false"},
              about="batch-mpi as dask-mpi runs: plain TCP, the worker in the rank (no nanny)"),
    Contender("batch-mpi-via-scheduler", BATCH_JOB,
              {"DASK_DISTRIBUTED__CLIENT__DIRECT_TO_WORKERS": "false"},
              about="batch-mpi, its client gathering through the scheduler (distributed's "
              "default) instead of straight from the workers"),
    Contender("batch-mpi-nolocal", BATCH_JOB, {"MPIR_CVAR_NOLOCAL": "1"},
              about="batch-mpi with MPICH's MPIR_CVAR_NOLOCAL=1 (no shared-memory init barrier)"),
]

CONTENDERS: dict[str, Contender] = {c.name: c for c in _all}


def add_candidate(names: list[str], spec: str) -> list[str]:
    """``NAME=DIR``: a copy of each ``batch-*`` contender in ``names`` (not the ``--variants``)
    that imports dask_batch from ``DIR`` (a patched copy of the package), named
    ``<contender>+NAME``, to measure a proposed change side by side with the current tree.
    ``NAME=DIR:c1,c2`` copies only the contenders c1 and c2."""
    label, _, directory = spec.partition("=")
    directory, _, only = directory.partition(":")
    if only:
        names = [n for n in names if n in only.split(",")]
    path = str(Path(directory).resolve())
    if not (Path(path) / "dask_batch" / "__init__.py").exists():
        raise SystemExit(f"--candidate {spec}: no dask_batch package in {path}")
    added = []
    for name in names:
        c = CONTENDERS[name]
        if name.startswith("batch-") and "+" not in name and name not in VARIANTS:
            new = replace(c, name=f"{name}+{label}",
                          env={**c.env, "PYTHONPATH": f"{path}:{h.ROOT}"},
                          about=f"{c.about}; dask_batch from {path}")
            CONTENDERS[new.name] = new
            added.append(new.name)
    return added
MAIN = ["floor", "dask-mpi", "batch-mpi", "batch-file", "batch-rank0"]
VARIANTS = ["batch-mpi-tcp", "batch-mpi-nodash", "dask-mpi-nodash", "batch-mpi-nonanny"]
PROFILED = ["floor", "dask-mpi", "batch-mpi", "batch-file", "batch-rank0"]

