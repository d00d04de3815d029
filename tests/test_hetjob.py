"""Slurm heterogeneous jobs: placement from environments recorded on the three-node Slurm 22.05
of ci/clusters (tests/golden/hetjob, README there), and host lists."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from dask_batch import hostlist
from dask_batch.placement import detect, with_mpi

pytestmark = pytest.mark.timeout(30)

RECORDED = Path(__file__).parent / "golden" / "hetjob"


def recorded(name: str) -> dict[str, str]:
    lines = (RECORDED / f"{name}.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


# (recording, expected (launcher, rank, size, local_rank, local_size, node, het_group, job))
CASES = [
    ("sbatch-1+3-het-group-0-1-rank0", ("slurm", 0, 4, 0, 1, 0, 0, "2")),
    ("sbatch-1+3-het-group-0-1-rank1", ("slurm", 1, 4, 0, 3, 1, 1, "2")),
    ("sbatch-1+3-het-group-0-1-rank2", ("slurm", 2, 4, 1, 3, 1, 1, "2")),
    ("sbatch-1+3-het-group-0-1-rank3", ("slurm", 3, 4, 2, 3, 1, 1, "2")),
    ("sbatch-1+3-het-group-0-1-pmix-rank0", ("pmix", 0, 4, 0, 1, 0, 0, "2")),
    ("sbatch-1+3-het-group-0-1-pmix-rank3", ("pmix", 3, 4, 2, 3, 1, 1, "2")),
    # a bare `srun A : B` sets only the legacy *_PACK_GROUP_* names
    ("srun-n1-colon-n3-rank0", ("slurm", 0, 4, 0, 1, 0, 0, "4")),
    ("srun-n1-colon-n3-rank2", ("slurm", 2, 4, 1, 3, 1, 1, "4")),
    # one component alone is a launch of its own, numbered from 0
    ("sbatch-2+3-het-group-1-rank0", ("slurm", 0, 3, 0, 3, 0, 1, "7")),
    ("sbatch-2+3-het-group-1-rank2", ("slurm", 2, 3, 2, 3, 0, 1, "7")),
    # fewer tasks than the allocation's: the task counts no longer add up, the nodes still tell
    ("sbatch-2+3-n1-colon-n2-rank0", ("slurm", 0, 3, 0, 1, 0, 0, "7")),
    ("sbatch-2+3-n1-colon-n2-rank1", ("slurm", 1, 3, 0, 2, 1, 1, "7")),
    ("sbatch-2+3-n1-colon-n2-rank2", ("slurm", 2, 3, 1, 2, 1, 1, "7")),
    ("sbatch-2+3-plain-srun-rank1", ("slurm", 1, 2, 1, 2, 0, 0, "7")),
    ("sbatch-1+3-batch-shell", ("none", 0, 1, 0, 1, None, None, "2")),
]


@pytest.mark.parametrize("name,expected", CASES, ids=[c[0] for c in CASES])
def test_recorded(name: str, expected: tuple) -> None:
    env = recorded(name)
    p = detect(env, hostname="somewhere-else")  # the component comes from SLURMD_NODENAME
    got = (p.launcher, p.rank, p.size, p.local_rank, p.local_size, p.node, p.het_group, p.job_id)
    assert got == expected


@pytest.mark.parametrize("launch", ["sbatch-1+3-het-group-0-1", "sbatch-1+3-het-group-0-1-pmix",
                                    "srun-n1-colon-n3", "sbatch-2+3-n1-colon-n2"])
def test_one_launch_across_components(launch: str) -> None:
    """Every rank of one srun: distinct ranks 0..n-1, component 0 first, one job stamp,
    and per node the local ranks are 0..local_size-1."""
    ps = [detect(recorded(f.stem), hostname="h") for f in sorted(RECORDED.glob(f"{launch}-rank*"))]
    assert sorted(p.rank for p in ps) == list(range(ps[0].size)) and len(ps) == ps[0].size
    groups = [p.het_group for p in sorted(ps, key=lambda p: p.rank)]
    assert groups == sorted(groups) and groups[0] == 0 and groups[-1] == 1
    assert len({p.job_stamp for p in ps}) == 1 and ps[0].job_stamp is not None
    by_node: dict[int | None, list[int]] = defaultdict(list)
    for p in ps:
        by_node[p.node].append(p.local_rank)
        assert p.local_size == sum(1 for q in ps if q.node == p.node)
    assert all(sorted(v) == list(range(len(v))) for v in by_node.values())


def test_scheduler_and_client_in_component_0() -> None:
    """A 2 + N job: ranks 0 and 1 (scheduler, client) in component 0, workers in 1."""
    ps = [detect(recorded(f"sbatch-2+3-plain-srun-rank{r}")) for r in (0, 1)]
    assert [p.het_group for p in ps] == [0, 0]
    env = dict(recorded("sbatch-1+3-het-group-0-1-rank2"))
    env["SLURM_NTASKS_HET_GROUP_0"] = "x"  # the nodes alone decide when they are not shared
    assert detect(env).het_group == 1


def _shared_node(rank: int, localid: int, node: str, nodeid: int) -> dict[str, str]:
    """Constructed, not recorded (the Slurm here never puts two components on one node):
    component 0 has 2 tasks on n1, component 1 has 2 on n1 and 2 on n2."""
    return {
        "SLURM_JOB_ID": "50", "SLURM_STEP_ID": "0", "SLURM_PROCID": str(rank),
        "SLURM_STEP_NUM_TASKS": "6", "SLURM_NTASKS": "6", "SLURM_LOCALID": str(localid),
        "SLURM_STEP_TASKS_PER_NODE": "4,2",
        "SLURM_NODEID": str(nodeid), "SLURMD_NODENAME": node, "SLURM_HET_SIZE": "2",
        "SLURM_NTASKS_HET_GROUP_0": "2", "SLURM_NTASKS_HET_GROUP_1": "4",
        "SLURM_JOB_NODELIST_HET_GROUP_0": "n1", "SLURM_JOB_NODELIST_HET_GROUP_1": "n[1-2]",
        "SLURM_TASKS_PER_NODE_HET_GROUP_0": "2", "SLURM_TASKS_PER_NODE_HET_GROUP_1": "2(x2)",
    }


@pytest.mark.parametrize("rank,localid,node,nodeid,expected", [
    (0, 0, "n1", 0, (0, 0, 4)),
    (1, 1, "n1", 0, (0, 1, 4)),
    (2, 0, "n1", 0, (1, 2, 4)),
    (3, 1, "n1", 0, (1, 3, 4)),
    (5, 1, "n2", 1, (1, 1, 2)),
])
def test_node_shared_by_components(rank, localid, node, nodeid, expected) -> None:
    """On a shared node the component comes from the rank and the local numbering runs over
    both components (component 0's tasks first)."""
    p = detect(_shared_node(rank, localid, node, nodeid))
    assert (p.het_group, p.local_rank, p.local_size) == expected


def test_shared_node_with_partial_launch_is_unknown() -> None:
    """Shared node and a launch that is not every task of every component: no guess."""
    env = _shared_node(3, 1, "n1", 0)
    env.update(SLURM_STEP_NUM_TASKS="5", SLURM_NTASKS="5")
    p = detect(env)
    assert p.het_group is None and (p.rank, p.size, p.local_rank) == (3, 5, 1)


def test_without_slurmd_nodename_the_short_host_name_counts() -> None:
    env = {k: v for k, v in recorded("sbatch-1+3-het-group-0-1-rank2").items()
           if k != "SLURMD_NODENAME"}
    env["SLURM_NTASKS_HET_GROUP_1"] = "2"  # counts that do not add up: only the node decides
    assert detect(env, hostname="node2.cluster.example").het_group == 1
    assert detect(env, hostname="node9").het_group is None


def test_unreadable_host_list_leaves_component_unknown() -> None:
    env = dict(recorded("sbatch-1+3-het-group-0-1-rank2"))
    env["SLURM_JOB_NODELIST_HET_GROUP_1"] = "node[2-x]"
    env["SLURM_NTASKS_HET_GROUP_1"] = "2"  # and the counts do not add up either
    p = detect(env)
    assert p.het_group is None and (p.rank, p.size) == (2, 4)


def test_not_a_het_job_has_no_component() -> None:
    env = {"SLURM_JOB_ID": "9", "SLURM_STEP_ID": "0", "SLURM_PROCID": "1",
           "SLURM_STEP_NUM_TASKS": "2", "SLURM_HET_SIZE": "1"}
    p = detect(env)
    assert p.het_group is None and "het_group" not in repr(p)
    assert "het_group=1" in repr(detect(recorded("sbatch-1+3-het-group-0-1-rank1")))


def test_mpi_keeps_component_when_it_agrees() -> None:
    p = detect(recorded("sbatch-1+3-het-group-0-1-pmix-rank3"))
    assert with_mpi(p, 3, 4).het_group == 1
    assert with_mpi(p, 0, 1).het_group is None  # MPI disagrees: nothing from the environment


@pytest.mark.parametrize("text,expected", [
    ("node1", ["node1"]),
    ("node[1-3]", ["node1", "node2", "node3"]),
    ("gpu[08-10],cpu7", ["gpu08", "gpu09", "gpu10", "cpu7"]),
    ("a[1,3-4]-ib,b", ["a1-ib", "a3-ib", "a4-ib", "b"]),
    ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
    ("", []),
])
def test_expand_host_list(text: str, expected: list[str]) -> None:
    assert hostlist.expand(text) == expected


@pytest.mark.parametrize("text", ["n[1-x]", "n[a]", "n[-2]"])
def test_expand_host_list_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="host list"):
        hostlist.expand(text)
