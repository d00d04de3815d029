"""Real jobs on the single-node Slurm of ci/clusters (partition debug, 16 CPUs).

srun always runs with -K under `timeout`: asking for more tasks than CPUs waits forever.
"""

from __future__ import annotations

import ctypes.util
import json
import signal
import subprocess
import time
import uuid

import pytest
from clusters import (
    CLUSTER,
    DASK_BATCH,
    JOB,
    LAUNCHERS,
    PYTHON,
    RANKS,
    Slurm,
    json_lines,
    no_leftovers,
    one_result,
    slurm_env,
    slurm_up,
    srun,
)
from conftest import MPIEXEC, kill_tagged, require, run_job

pytestmark = pytest.mark.slurm

MISMATCH = "MPI sees 1 process but slurm started"


@pytest.fixture(autouse=True, scope="module")
def _need_slurm():
    require(slurm_up(), "single-node Slurm is not running (bash ci/clusters/start-slurm.sh)")


@pytest.fixture
def jobs(tag: str):
    s = Slurm(slurm_env(tag))
    yield s
    s.cancel_all()


@pytest.mark.timeout(180)
def test_srun_python_environment_only(tmp_path) -> None:
    """srun -n 12 python script.py, no MPI: the ranks meet through the job's scheduler file."""
    tag = uuid.uuid4().hex
    env = slurm_env(tag, DASK_BATCH__MPI="false")
    job = run_job(srun(12, PYTHON, CLUSTER), env=env, cwd=tmp_path, timeout=170)
    assert job.returncode == 0, job
    out = one_result(job.stdout, job)
    assert out["total"] == 5050
    assert out["joined"] == out["n_workers"] == 10
    assert sorted(int(w["name"]) for w in out["workers"]) == list(range(2, 12))
    assert (out["rank"], out["size"], out["launcher"]) == (1, 12, "slurm")
    assert MISMATCH not in job.stderr
    assert not list(tmp_path.glob("scheduler*.json")), "scheduler file not removed"


@pytest.mark.timeout(180)
def test_srun_pmix_openmpi_agrees_with_slurm(tmp_path) -> None:
    """srun --mpi=pmix, Debian Open MPI through the mpi4py wheel: MPI and SLURM_* agree."""
    require(ctypes.util.find_library("mpi") is not None, "Open MPI (libmpi.so.40) not installed")
    tag = uuid.uuid4().hex
    env = slurm_env(tag, MPI4PY_LIBMPI="libmpi.so.40")
    job = run_job(srun(6, PYTHON, RANKS, extra=("--mpi=pmix",)), env=env, cwd=tmp_path,
                  timeout=60)
    assert job.returncode == 0, job
    ranks = sorted(json_lines(job.stdout), key=lambda d: d["mpi_rank"])
    assert [r["mpi_rank"] for r in ranks] == list(range(6)), job
    for r in ranks:
        e, p = r["env"], r["placement"]
        assert r["mpi_size"] == 6 == int(e["SLURM_STEP_NUM_TASKS"])
        assert r["mpi_rank"] == int(e["SLURM_PROCID"]) == int(e["PMIX_RANK"])
        assert (p["rank"], p["size"]) == (r["mpi_rank"], 6)
        assert p["local_rank"] == int(e["SLURM_LOCALID"]) and p["node"] == 0
        assert p["launcher"] == "mpi (pmix)", p  # MPI agreed with the environment

    # and a whole job meeting through MPI messages
    job = run_job(srun(6, PYTHON, JOB, extra=("--mpi=pmix",)), env=env, cwd=tmp_path,
                  timeout=120)
    assert job.returncode == 0, job
    out = one_result(job.stdout, job)
    assert out["total"] == 5050 and out["joined"] == 4
    assert out["launcher"] == "mpi (pmix)" and (out["rank"], out["size"]) == (1, 6)
    assert not list(tmp_path.glob("scheduler*.json")), "MPI rendezvous must not need a file"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("code", [0, 3])
def test_srun_dask_batch_run(tmp_path, code: int) -> None:
    """srun -n 6 dask-batch run script.py: plain Client() in the script; its code is srun's.

    mpi4py (MPICH wheel) is installed but srun gives it no PMI (--mpi=none): MPI is not
    tried, no line about it, and the environment mode runs the job (batch.mpi: true would try
    and say why it falls back: test_multinode's none-mismatch case).
    """
    tag = uuid.uuid4().hex
    env = slurm_env(tag)
    argv = srun(6, DASK_BATCH, "run", CLUSTER, "--plain", "--workers", "4", "--exit", str(code))
    job = run_job(argv, env=env, cwd=tmp_path, timeout=170)
    assert job.returncode == code, job
    out = one_result(job.stdout, job)
    assert out["total"] == 5050 and out["joined"] == 4
    assert sorted(w["name"] for w in out["workers"]) == ["2", "3", "4", "5"]
    assert MISMATCH not in job.stderr, job.stderr
    assert "Traceback" not in job.stderr, job.stderr


def _start_serving(tmp_path, tag: str, n: int = 4):
    sched = tmp_path / "sched.json"
    env = slurm_env(tag)
    argv = srun(n, "-J", f"dbt-{tag[:8]}", DASK_BATCH, "--scheduler-file", str(sched))
    proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not sched.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no scheduler file after 60 s"
        time.sleep(0.05)
    return proc, sched, env


def _use_cluster(sched, workers: int):
    from distributed import Client

    from dask_batch.rendezvous import read_scheduler_file
    from dask_batch.security import security_from

    contact = read_scheduler_file(str(sched))
    assert contact.address.startswith("tls://")
    client = Client(contact.address, security=security_from(contact.creds), timeout=30)
    client.wait_for_workers(workers, timeout=60)
    assert client.submit(sum, client.map(lambda x: x + 1, range(100))).result() == 5050
    return client


@pytest.mark.timeout(150)
def test_srun_scheduler_file_then_client_shutdown(tmp_path, tag: str) -> None:
    """srun -n 4 dask-batch --scheduler-file F; a client from the file; shutdown ends all."""
    proc, sched, _ = _start_serving(tmp_path, tag)
    try:
        client = _use_cluster(sched, 3)
        t0 = time.monotonic()
        client.shutdown()
        client.close()
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            kill_tagged(tag)
    assert proc.returncode == 0, err
    assert took < 15, f"cluster took {took:.1f} s to end after Client.shutdown()"
    no_leftovers(tag)
    assert not sched.exists(), "scheduler file not removed"


@pytest.mark.timeout(150)
def test_srun_scheduler_file_then_scancel(tmp_path, tag: str) -> None:
    """The same cluster, ended by `scancel --signal=TERM`: SIGTERM alone, no SIGKILL after
    KillWait, so the job ends by itself: within 5 s, with 128 + SIGTERM, every rank gone."""
    proc, sched, env = _start_serving(tmp_path, tag)
    try:
        client = _use_cluster(sched, 3)
        client.close()
        t0 = time.monotonic()
        subprocess.run(["scancel", "--signal=TERM", "-n", f"dbt-{tag[:8]}"], env=env,
                       check=True, timeout=15)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            kill_tagged(tag)
    # srun reports the ranks' own exit: 128 + SIGTERM (a SIGKILL from Slurm would be 137)
    assert proc.returncode == 128 + signal.SIGTERM, (proc.returncode, err)
    # no client to warn: the workers are retired at once, not after the 60 s signal grace
    assert "SIGTERM: no client to tell; retiring the workers" in err, err
    assert "Traceback" not in err, err
    assert took <= 5, f"cluster took {took:.1f} s to end after scancel --signal=TERM"
    no_leftovers(tag)


def _template_env(tag: str, **extra: str) -> dict[str, str]:
    env = slurm_env(tag, PYTHON=PYTHON, **extra)
    # what a job submitted from inside another launch carries: the template drops these
    env.update(PMI_RANK="5", PMI_SIZE="7", OMPI_COMM_WORLD_RANK="2", OMPI_COMM_WORLD_SIZE="9",
               PMIX_RANK="4", MPI_LOCALRANKID="3")
    return env


@pytest.mark.timeout(180)
@pytest.mark.parametrize("code", [0, 3])
def test_sbatch_template(tmp_path, tag: str, code: int) -> None:
    """sbatch launchers/slurm.sbatch script.py: the job's exit code is the script's."""
    jobs = Slurm(_template_env(tag))
    try:
        job_id = jobs.sbatch("-n", "6", "-o", "out.txt", str(LAUNCHERS / "slurm.sbatch"), CLUSTER,
                             "--plain", "--workers", "4", "--exit", str(code), cwd=tmp_path)
        state, exit_code, took = jobs.wait(job_id, timeout=150)
    finally:
        jobs.cancel_all()
    text = (tmp_path / "out.txt").read_text()
    assert exit_code == code, f"{state} {exit_code}:\n{text}"
    assert state == ("COMPLETED" if code == 0 else "FAILED"), text
    out = one_result(text)
    assert out["total"] == 5050 and out["joined"] == 4
    # every srun task found its own rank: stale PMI_*/OMPI_* would have made them all rank 5
    assert sorted(w["name"] for w in out["workers"]) == ["2", "3", "4", "5"]
    print(f"sbatch template, code {code}: {took:.1f} s submit to end")
    no_leftovers(tag)


@pytest.mark.timeout(180)
def test_mpiexec_inside_sbatch(tmp_path, tag: str) -> None:
    """MPICH's mpiexec inside sbatch: its PMI_* win over the inherited SLURM_* (hydra starts
    one proxy per node with srun, so there SLURM_PROCID is the proxy's, not the rank)."""
    require(MPIEXEC.exists(), f"mpiexec not found at {MPIEXEC}")
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/bash\n"
        f"{MPIEXEC} -n 6 sh -c '{DASK_BATCH} info --json > info-$PMI_RANK.json"
        "; echo SLURM_PROCID=$SLURM_PROCID > slurm-$PMI_RANK.txt'\n"
        f"{MPIEXEC} -n 6 {PYTHON} {CLUSTER}\n"
    )
    jobs = Slurm(slurm_env(tag))
    try:
        job_id = jobs.sbatch("-n", "6", "-o", "out.txt", str(script), cwd=tmp_path)
        state, code, took = jobs.wait(job_id, timeout=150)
    finally:
        jobs.cancel_all()
    text = (tmp_path / "out.txt").read_text()
    assert (state, code) == ("COMPLETED", 0), text
    for rank in range(6):
        info = json.loads((tmp_path / f"info-{rank}.json").read_text())
        assert info["launcher"] == "pmi", info
        assert (info["rank"], info["size"]) == (rank, 6), info
        assert (info["local_rank"], info["local_size"]) == (rank, 6), info
        assert info["job_id"] == job_id and info["batch_system"] == "slurm"
    out = one_result(text)
    assert out["total"] == 5050 and out["joined"] == 4
    assert out["launcher"] == "mpi (pmi)" and (out["rank"], out["size"]) == (1, 6)
    print(f"mpiexec inside sbatch: {took:.1f} s submit to end")
    no_leftovers(tag)
