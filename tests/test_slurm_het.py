"""Real Slurm heterogeneous jobs (Slurm 22.05 of ci/clusters).

The jobs run on the three-node cluster: the single-node one can never start a heterogeneous
job, since Slurm's backfill scheduler (the only one that starts them) needs a node per
component (seen here: a 1 + 3 job stayed pending for "Resources" on the idle 16-CPU node
until cancelled, and components asked onto one node by name are refused as "Invalid node
name specified").
`sbatch --test-only` of the template does pass on the single node.
"""

from __future__ import annotations

import ctypes.util
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from clusters import (
    DASK_BATCH,
    LAUNCHERS,
    PYTHON,
    Slurm,
    no_leftovers,
    one_result,
    slurm_env,
    slurm_up,
    srun,
)
from conftest import ROOT, require, run_job

pytestmark = pytest.mark.slurm

HET = ROOT / "mpi_tests" / "hetjob.py"


def three_nodes_up(wait: float = 60) -> bool:
    """The three-node cluster is up. Nodes show "plnd" (planned by the backfill scheduler)
    for a while after a heterogeneous job: wait that out."""
    deadline = time.monotonic() + wait
    while not slurm_up(multinode=True):
        if time.monotonic() > deadline:
            return False
        time.sleep(1)
    return True
TEMPLATE = LAUNCHERS / "slurm-het.sbatch"


def no_gpu_template(tmp_path: Path, cpus: int) -> Path:
    """The template without its GPU lines (no node here has a gres) and with `cpus` CPUs per
    worker instead of 8 (the nodes have 4 and 16 CPUs)."""
    text = TEMPLATE.read_text()
    assert "--gpus-per-task=1          # GPU" in text
    kept = [ln for ln in text.splitlines() if "# GPU" not in ln]
    text = "\n".join(kept).replace("--cpus-per-task=8", f"--cpus-per-task={cpus}")
    script = tmp_path / "slurm-het.sbatch"
    script.write_text(text + "\n")
    return script


def check_roles(out: dict, workers: int, job_id: str | None = None, client: int = 1) -> None:
    """Scheduler (rank 0) and client (rank `client`) in component 0, every worker in 1."""
    assert out["total"] == 5050 and out["n_workers"] == workers
    assert (out["scheduler"]["rank"], out["scheduler"]["het_group"]) == (0, 0), out
    assert (out["client"]["rank"], out["client"]["het_group"]) == (client, 0), out
    first = client + 1
    assert [w["rank"] for w in out["workers"]] == list(range(first, first + workers)), out
    assert {w["het_group"] for w in out["workers"]} == {1}, out
    # components never share a node here: the roles' nodes tell the components apart
    assert out["scheduler"]["node"] == out["client"]["node"]
    assert out["client"]["node"] not in {w["node"] for w in out["workers"]}
    jobs = {r["job"] for r in [out["scheduler"], out["client"], *out["workers"]]}
    assert len(jobs) == 1 and (job_id is None or jobs == {job_id}), out


@pytest.mark.multinode
@pytest.mark.timeout(260)
@pytest.mark.parametrize("mpi", ["none", "pmix"])
def test_template_on_three_nodes(tmp_path, tag: str, mpi: str) -> None:
    """sbatch launchers/slurm-het.sbatch: 2 tasks (scheduler + client) + 4 workers over
    node1..3; with MPI=pmix one MPI_COMM_WORLD spans both components (Debian Open MPI)."""
    require(three_nodes_up(), "three-node Slurm is not running")
    extra = {"PYTHON": PYTHON, "MPI": mpi}
    if mpi == "pmix":
        require(ctypes.util.find_library("mpi") is not None, "Debian Open MPI not installed")
        extra["MPI4PY_LIBMPI"] = "libmpi.so.40"
    jobs = Slurm(slurm_env(tag, multinode=True, **extra))
    try:
        job_id = jobs.sbatch(str(no_gpu_template(tmp_path, cpus=2)), str(HET), "--workers", "4",
                             cwd=tmp_path)
        state, code, took = jobs.wait(job_id, timeout=170)
    finally:
        jobs.cancel_all()
    text = (tmp_path / f"dask-batch-{job_id}.out").read_text()
    assert (state, code) == ("COMPLETED", 0), text
    out = one_result(text)
    check_roles(out, workers=4, job_id=job_id)
    assert len({w["node"] for w in out["workers"]}) == 2, out  # 4 workers x 2 CPUs: 2 nodes
    roles = [out["scheduler"], out["client"], *out["workers"]]
    assert {r["mpi_size"] for r in roles} == ({6} if mpi == "pmix" else {None}), out
    assert "Traceback" not in text, text
    if mpi == "none":
        assert not list(tmp_path.glob("scheduler*.json")), "scheduler file not removed"
    print(f"het template, MPI={mpi}: {took:.1f} s submit to end")
    no_leftovers(tag)


@pytest.mark.multinode
@pytest.mark.timeout(240)
@pytest.mark.parametrize("first", ["-n2", "-n1"])
def test_srun_colon_on_three_nodes(tmp_path, tag: str, first: str) -> None:
    """srun -n2 : -n2 dask-batch run (its own allocation; only the legacy *_PACK_GROUP_*
    variables describe the components there), and srun -n1 : -n2 dask-batch run
    --client-on-scheduler: a one-task component 0 holds both."""
    require(three_nodes_up(), "three-node Slurm is not running")
    env = slurm_env(tag, multinode=True, DASK_BATCH__MPI="false")
    flags = ["--client-on-scheduler"] if first == "-n1" else []
    argv = srun(None, first, ":", "-n2", DASK_BATCH, "run", *flags, str(HET), "--workers", "2")
    job = run_job(argv, env=env, cwd=tmp_path, timeout=170)
    assert job.returncode == 0, job
    check_roles(one_result(job.stdout, job), workers=2, client=0 if flags else 1)
    no_leftovers(tag)


@pytest.mark.timeout(60)
def test_template_test_only_on_one_node(tmp_path, tag: str) -> None:
    """sbatch --test-only of the template on the single-node Slurm (GPU lines removed: the
    node has no gres; 2 CPUs per worker: 2x2 + 4x2 fit its 16 CPUs). As a check that the
    test-only answer means something: the template with 8 CPUs per worker does not fit."""
    require(slurm_up(), "single-node Slurm is not running")
    env = slurm_env(tag)
    for cpus, ok in ((2, True), (8, False)):
        p = subprocess.run(["sbatch", "--test-only", str(no_gpu_template(tmp_path, cpus)),
                            str(HET)], env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=30)
        assert (p.returncode == 0) == ok, (cpus, p.stderr)
        if ok:
            assert re.search(r"to start at .* using 12 processors", p.stderr), p.stderr
    assert os.listdir(tmp_path) == ["slurm-het.sbatch"]  # --test-only ran nothing
