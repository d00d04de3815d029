"""Placement from realistic environment snapshots, one per launcher, nested cases included."""

from __future__ import annotations

import pytest

from dask_batch.placement import PlacementError, detect, parse_tasks_per_node

# (name, environment, expected (launcher, rank, size, local_rank, local_size, node, job_id))
SNAPSHOTS = [
    ("nothing", {}, ("none", 0, 1, 0, 1, None, None)),
    (
        "srun -N2 -n6, task 4",
        {"SLURM_JOB_ID": "77", "SLURM_STEP_ID": "0", "SLURM_PROCID": "4", "SLURM_NTASKS": "6",
         "SLURM_STEP_NUM_TASKS": "6", "SLURM_LOCALID": "1", "SLURM_NODEID": "1",
         "SLURM_STEP_TASKS_PER_NODE": "3(x2)"},
        ("slurm", 4, 6, 1, 3, 1, "77"),
    ),
    (
        "sbatch batch shell: one process, not rank 0 of N",
        {"SLURM_JOB_ID": "78", "SLURM_PROCID": "0", "SLURM_NTASKS": "6", "SLURM_LOCALID": "0",
         "SLURM_NODEID": "0"},
        ("none", 0, 1, 0, 1, None, "78"),
    ),
    (
        "mpirun (Open MPI) inside sbatch: inherited SLURM_* lose",
        {"SLURM_JOB_ID": "79", "SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_NODEID": "0",
         "OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2",
         "OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "2",
         "PMIX_RANK": "1", "PMIX_NAMESPACE": "prterun-vm-1@1"},
        ("openmpi", 1, 2, 1, 2, None, "79"),
    ),
    (
        "hydra inside sbatch: one proxy step per node",
        {"SLURM_JOB_ID": "80", "SLURM_STEP_ID": "0", "SLURM_PROCID": "1",
         "SLURM_STEP_NUM_TASKS": "3", "SLURM_NODEID": "1", "SLURM_LOCALID": "0",
         "PMI_RANK": "5", "PMI_SIZE": "6", "MPI_LOCALRANKID": "1", "MPI_LOCALNRANKS": "2"},
        ("pmi", 5, 6, 1, 2, None, "80"),
    ),
    (
        "srun --mpi=pmi2: PMI and SLURM agree, SLURM fills the node",
        {"SLURM_JOB_ID": "81", "SLURM_STEP_ID": "2", "SLURM_PROCID": "3",
         "SLURM_STEP_NUM_TASKS": "4", "SLURM_LOCALID": "1", "SLURM_NODEID": "1",
         "SLURM_STEP_TASKS_PER_NODE": "2(x2)", "PMI_RANK": "3", "PMI_SIZE": "4"},
        ("pmi", 3, 4, 1, 2, 1, "81"),
    ),
    (
        "srun --mpi=pmix: PMIx rank, size from SLURM",
        {"SLURM_JOB_ID": "82", "SLURM_STEP_ID": "0", "SLURM_PROCID": "2",
         "SLURM_STEP_NUM_TASKS": "6", "SLURM_LOCALID": "2", "SLURM_NODEID": "0",
         "SLURM_STEP_TASKS_PER_NODE": "6", "PMIX_RANK": "2", "PMIX_NAMESPACE": "slurm.pmix.82.0"},
        ("pmix", 2, 6, 2, 6, 0, "82"),
    ),
    (
        "MPICH hydra alone",
        {"PMI_RANK": "3", "PMI_SIZE": "8", "MPI_LOCALRANKID": "3", "MPI_LOCALNRANKS": "8",
         "PMI_FD": "9"},
        ("pmi", 3, 8, 3, 8, None, None),
    ),
    (
        "MVAPICH2 mpirun_rsh",
        {"MV2_COMM_WORLD_RANK": "2", "MV2_COMM_WORLD_SIZE": "4",
         "MV2_COMM_WORLD_LOCAL_RANK": "0", "MV2_COMM_WORLD_LOCAL_SIZE": "2"},
        ("mvapich2", 2, 4, 0, 2, None, None),
    ),
    (
        "HPE PALS under PBS",
        {"PBS_JOBID": "123.pbs01", "PALS_RANKID": "5", "PMI_RANK": "5", "PMI_SIZE": "8",
         "PALS_LOCAL_RANKID": "1", "PMI_LOCAL_SIZE": "4", "PALS_NODEID": "1", "PALS_APID": "a1"},
        ("pals", 5, 8, 1, 4, 1, "123.pbs01"),
    ),
    (
        "IBM jsrun under LSF",
        {"LSB_JOBID": "4242", "JSM_NAMESPACE_RANK": "7", "JSM_NAMESPACE_SIZE": "12",
         "JSM_NAMESPACE_LOCAL_RANK": "1", "JSM_NAMESPACE_LOCAL_SIZE": "6",
         "OMPI_COMM_WORLD_RANK": "7", "OMPI_COMM_WORLD_SIZE": "12"},
        ("openmpi", 7, 12, None, None, None, "4242"),
    ),
    (
        "flux run",
        {"FLUX_JOB_ID": "f2z3", "FLUX_TASK_RANK": "2", "FLUX_JOB_SIZE": "4",
         "FLUX_TASK_LOCAL_ID": "0", "PMI_RANK": "2", "PMI_SIZE": "4"},
        ("pmi", 2, 4, 0, 4, None, "f2z3"),
    ),
    (
        "Cray ALPS with PMI",
        {"ALPS_APP_PE": "3", "PMI_SIZE": "4", "PMI_RANK": "3"},
        ("pmi", 3, 4, 3, 4, None, None),
    ),
    (
        "Grid Engine job running hydra",
        {"JOB_ID": "55", "NSLOTS": "4", "PMI_RANK": "0", "PMI_SIZE": "4", "MPI_LOCALRANKID": "0",
         "MPI_LOCALNRANKS": "4"},
        ("pmi", 0, 4, 0, 4, None, "55"),
    ),
    (
        "explicit override beats everything",
        {"DASK_BATCH_RANK": "2", "DASK_BATCH_SIZE": "5", "SLURM_PROCID": "0",
         "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "1"},
        ("override", 2, 5, 2, 5, None, None),
    ),
]


@pytest.mark.parametrize("name,environ,expected", SNAPSHOTS, ids=[s[0] for s in SNAPSHOTS])
def test_snapshot(name, environ, expected):
    p = detect(environ, hostname="node1")
    launcher, rank, size, local_rank, local_size, node, job = expected
    assert (p.launcher, p.rank, p.size, p.node, p.job_id) == (launcher, rank, size, node, job)
    if local_rank is not None:
        assert (p.local_rank, p.local_size) == (local_rank, local_size)
    assert p.hostname == "node1"


def test_jsrun_local_rank_from_its_own_row():
    env = dict(SNAPSHOTS[10][1])
    p = detect(env, hostname="h")
    assert (p.local_rank, p.local_size) == (1, 6)


def test_rank_outside_size_is_an_error():
    with pytest.raises(PlacementError, match="not within size"):
        detect({"PMI_RANK": "4", "PMI_SIZE": "4"})


def test_override_needs_size():
    with pytest.raises(PlacementError, match="DASK_BATCH_SIZE"):
        detect({"DASK_BATCH_RANK": "1"})


def test_job_stamp_tells_launches_apart():
    a = detect({"SLURM_JOB_ID": "9", "SLURM_STEP_ID": "0", "SLURM_PROCID": "0",
                "SLURM_STEP_NUM_TASKS": "2"})
    b = detect({"SLURM_JOB_ID": "9", "SLURM_STEP_ID": "1", "SLURM_PROCID": "0",
                "SLURM_STEP_NUM_TASKS": "2"})
    assert a.job_stamp == "9.0" and b.job_stamp == "9.1"


@pytest.mark.parametrize("text,expected", [("2(x3),1", [2, 2, 2, 1]), ("4", [4]),
                                           ("1,3(x2)", [1, 3, 3])])
def test_tasks_per_node(text, expected):
    assert parse_tasks_per_node(text) == expected


def test_tasks_per_node_rejects_garbage():
    with pytest.raises(PlacementError):
        parse_tasks_per_node("2(y3)")


@pytest.mark.parametrize(("mode", "extra", "want"), [
    ("auto", {}, False),  # srun --mpi=none: no PMI, MPI_Init would make singletons
    ("auto", {"SLURM_MPI_TYPE": "none"}, False),
    ("auto", {"SLURM_MPI_TYPE": "pmi2", "PMI_FD": "11", "PMI_RANK": "1", "PMI_SIZE": "4"}, True),
    ("auto", {"SLURM_MPI_TYPE": "pmix", "PMIX_RANK": "1"}, True),
    ("auto", {"SLURM_MPI_TYPE": "cray_shasta"}, True),  # Cray PMI: MPI is wired
    ("true", {}, True),  # asked for: tried, and the mismatch is reported
    ("false", {"PMI_FD": "11", "PMI_RANK": "1", "PMI_SIZE": "4"}, False),
])
def test_mpi_is_tried_only_where_the_launcher_wires_it(mode, extra, want):
    from dask_batch.mpi import wanted

    environ = {"SLURM_JOB_ID": "7", "SLURM_STEP_ID": "0", "SLURM_PROCID": "1",
               "SLURM_STEP_NUM_TASKS": "4", "SLURM_NTASKS": "4", "SLURM_LOCALID": "1",
               "SLURM_NODEID": "0", **extra}
    assert wanted(mode, environ, detect(environ, hostname="n1"), None) is want
