"""plan(): settings + placement -> what this rank does and how the ranks meet, as a table."""

from __future__ import annotations

import pytest

from dask_batch.placement import Placement
from dask_batch.plan import PlanError, WorldTooSmallException, plan
from dask_batch.settings import resolve

# (options, rank, size, mpi) -> (role, rendezvous, works_too, client_beside_scheduler, n_workers)
TABLE = [
    ({}, 0, 4, True, ("scheduler", "mpi", False, False, 2)),
    ({}, 1, 4, True, ("client", "mpi", False, False, 2)),
    ({}, 3, 4, True, ("worker", "mpi", False, False, 2)),
    ({}, 3, 4, False, ("worker", "file", False, False, 2)),
    ({"client_on_scheduler": True}, 0, 4, True, ("scheduler", "mpi", False, True, 3)),
    ({"client_on_scheduler": True}, 1, 4, True, ("worker", "mpi", False, False, 3)),
    ({"scheduler_rank": 2}, 2, 4, True, ("scheduler", "mpi", False, False, 2)),
    ({"scheduler_rank": 2}, 1, 4, True, ("client", "mpi", False, False, 2)),
    ({"scheduler_rank": 2}, 0, 4, True, ("worker", "mpi", False, False, 2)),
    ({"scheduler_rank": 1}, 0, 3, True, ("client", "mpi", False, False, 1)),
    ({"exclusive_workers": False}, 0, 2, True, ("scheduler", "mpi", True, False, 2)),
    ({"exclusive_workers": False}, 1, 2, True, ("client", "mpi", True, False, 2)),
    ({"client": False}, 0, 2, True, ("scheduler", "mpi", False, False, 1)),
    ({"client": False}, 1, 2, True, ("worker", "mpi", False, False, 1)),
    ({"client": False, "scheduler": False, "scheduler_file": "s.json"}, 0, 1, True,
     ("worker", "file", False, False, 1)),
    ({"client": False, "scheduler_address": "tls://10.0.0.1:8786", "scheduler": False}, 0, 2,
     True, ("worker", "address", False, False, 2)),
    ({"rendezvous": "file"}, 1, 4, True, ("client", "file", False, False, 2)),
]


@pytest.mark.parametrize(("options", "rank", "size", "mpi", "expected"), TABLE)
def test_plan_table(options, rank, size, mpi, expected):
    s = resolve(**options)
    p = plan(s, Placement(rank=rank, size=size, local_rank=rank, local_size=size,
                          launcher="hydra", job_id="7"), mpi=mpi)
    assert (p.role, p.rendezvous, p.works_too, p.client_beside_scheduler, p.n_workers) == expected
    if p.rendezvous == "file":
        assert p.scheduler_file.endswith(options.get("scheduler_file", "scheduler-7.json"))
    elif "scheduler_file" not in options:
        assert p.scheduler_file is None


@pytest.mark.parametrize(("options", "size", "mpi", "message"), [
    ({}, 2, True, "2 rank(s) found (hydra) but these roles need at least 3"),
    ({"scheduler_rank": 3}, 3, True, "need at least 4"),
    ({"client": False, "scheduler": False}, 2, True, "--no-scheduler needs the cluster to join"),
    ({"rendezvous": "mpi"}, 4, False, "rendezvous 'mpi' asked for, but MPI is not in use"),
])
def test_plan_refuses(options, size, mpi, message):
    with pytest.raises(PlanError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        plan(resolve(**options), Placement(rank=0, size=size, launcher="hydra"), mpi=mpi)
    assert e.value.every_rank  # each rank has the same options: one line per job
    if "need at least" in message:
        assert isinstance(e.value, WorldTooSmallException)
