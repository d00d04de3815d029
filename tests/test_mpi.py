"""Real jobs under MPICH's mpiexec (hydra), from the PyPI wheel."""

from __future__ import annotations

import json

import pytest
from conftest import MPIEXEC, ROOT, mpiexec, require, run_job

JOB = str(ROOT / "mpi_tests" / "job.py")
PY = "python"

pytestmark = pytest.mark.mpi


def result_of(job) -> dict:
    lines = [ln for ln in job.stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, job
    return json.loads(lines[0])


@pytest.fixture(autouse=True)
def _need_mpiexec():
    require(MPIEXEC.exists(), f"mpiexec not found at {MPIEXEC} (pip install 'dask-batch[mpich]')")


@pytest.mark.parametrize("n", [3, 4, 8, 12])
def test_batchrunner_under_mpiexec(n: int) -> None:
    job = run_job(mpiexec(n, PY, JOB), timeout=120)
    assert job.returncode == 0, job
    out = result_of(job)
    assert out["total"] == sum(range(1, 101))
    assert out["n_workers"] == n - 2
    assert out["joined"] == n - 2
    assert out["names"] == sorted(str(r) for r in range(2, n))
    assert out["address"].startswith("tls://")
    assert out["rank"] == 1 and out["size"] == n
    assert out["launcher"].startswith("mpi")


def test_short_default_output() -> None:
    job = run_job(mpiexec(8, PY, JOB))
    assert job.returncode == 0, job
    lines = [ln for ln in job.stderr.splitlines() if ln.strip()]
    assert len(lines) <= 10, job.stderr
    assert "Traceback" not in job.stderr and "CommClosedError" not in job.stderr
    assert any("workers joined" in ln for ln in lines), job.stderr


@pytest.mark.parametrize("code", [0, 3])
def test_client_exit_code_is_the_jobs(code: int) -> None:
    job = run_job(mpiexec(4, PY, JOB, "--exit", str(code)))
    assert job.returncode == code, job


def test_client_exception_fails_the_job_once() -> None:
    job = run_job(mpiexec(4, PY, JOB, "--raise"))
    assert job.returncode == 1, job
    assert job.stderr.count("RuntimeError: client failed on purpose") == 1, job.stderr
    assert job.stderr.count("Traceback") == 1, job.stderr


def test_world_too_small_is_one_line() -> None:
    job = run_job(mpiexec(2, PY, JOB))
    assert job.returncode != 0
    assert "at least 3" in job.stderr, job
