"""The lifecycle scenarios again under a real `srun` (single-node Slurm of ci/clusters), in
environment mode: Slurm lets the other tasks live when one dies (its default), so here a dead
worker rank must not end the job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from clusters import slurm_env, slurm_up
from conftest import kill_tagged, require
from test_lifecycle import JOB, Running, _signal_all_ranks

pytestmark = pytest.mark.slurm

RESULT = str(sum(abs(x) for x in range(-50, 50)))


@pytest.fixture(autouse=True, scope="module")
def _need_slurm():
    require(slurm_up(), "the single-node Slurm of ci/clusters is not running")


class SrunJob(Running):
    def __init__(self, n: int, tag: str, *args: str, **env: str):
        self.name = f"dbl-{tag[:8]}"
        argv = ["srun", "-n", str(n), "-J", self.name, sys.executable, JOB, *args]
        os.environ.pop("SLURM_CONF", None)
        super().__init__(argv, tag, **{**slurm_env(tag), "DASK_BATCH__MPI": "false", **env})


@pytest.fixture
def start(tag):
    jobs: list[SrunJob] = []

    def _start(n: int, *args: str, **env: str) -> SrunJob:
        job = SrunJob(n, tag, *args, **env)
        jobs.append(job)
        return job

    yield _start
    for job in jobs:
        subprocess.run(["scancel", "-n", job.name], capture_output=True, timeout=15)
        if job.proc.poll() is None:
            os.killpg(job.proc.pid, signal.SIGKILL)
    kill_tagged(tag)


@pytest.mark.parametrize(("scenario", "code"), [("os-exit", 0), ("os-exit", 5), ("sys-exit", 3)])
def test_client_exit_code_is_the_jobs(start, scenario, code):
    job = start(4, scenario, str(code))
    rc, _ = job.wait(60)
    assert rc == code, job.stderr
    job.all_gone_within(2)


def test_client_raises_rc_1_traceback_once(start):
    job = start(4, "raise")
    rc, _ = job.wait(60)
    assert rc == 1, job.stderr
    assert job.stderr.count("RuntimeError: the client failed on purpose") == 1, job.stderr
    job.all_gone_within(2)


def test_client_killed_by_signal_fails_the_job_fast(start):
    job = start(4, "sleep", "120")
    os.kill(int(job.value("READY")), signal.SIGKILL)
    t = time.monotonic()
    rc, _ = job.wait(30)
    assert rc != 0 and time.monotonic() - t <= 10, job.stderr
    job.all_gone_within(5)


def test_worker_process_killed_is_restarted_by_its_nanny(start):
    job = start(4, "kill-worker-process", DASK_BATCH__WORKER__NANNY="true")
    assert job.value("RESULT") == RESULT
    assert job.value("RESTARTED") == "2"
    rc, _ = job.wait(60)
    assert rc == 0, job.stderr
    # quiet: no INFO from the nanny's worker processes, no teardown tracebacks or warnings
    assert "Traceback" not in job.stderr and " - INFO - " not in job.stderr, job.stderr
    assert "leaked" not in job.stderr, job.stderr
    job.all_gone_within(5)


def test_dead_worker_rank_job_finishes_on_the_others(start):
    job = start(5, "kill-worker-rank")
    victim = job.value("KILLED")
    assert job.value("RESULT", 60) == RESULT
    rc, _ = job.wait(60)
    assert f"(pid {victim}) died; continuing with the others" in job.stderr, job.stderr
    # the client's code is the job's; srun adds the killed task's status
    assert rc in (0, 137, 9), job.stderr
    job.all_gone_within(5)


def test_scheduler_dies_client_and_workers_exit_nonzero_naming_it(start):
    job = start(4, "sleep", "120")
    os.kill(int(job.value("SCHEDULER_PID")), signal.SIGKILL)
    t = time.monotonic()
    rc, _ = job.wait(30)
    assert rc != 0 and time.monotonic() - t <= 15, job.stderr
    assert "lost the scheduler" in job.stderr
    job.all_gone_within(5)


def test_client_never_connects_scheduler_and_workers_stop(start):
    job = start(4, "crash-before-client", DASK_BATCH__LIFECYCLE__CLIENT_TIMEOUT="3")
    rc, seconds = job.wait(40)
    assert rc != 0
    assert "did not connect within 3 s" in job.stderr, job.stderr
    assert seconds < 30
    job.all_gone_within(5)


def test_walltime_signal_client_saves_state_and_job_ends_in_grace(start):
    job = start(4, "walltime", DASK_BATCH__LIFECYCLE__SIGNAL_GRACE="20")
    job.value("SCHEDULER_PID")
    time.sleep(0.5)
    _signal_all_ranks(job, signal.SIGTERM)
    assert job.value("ENDING", 20) == str(int(signal.SIGTERM))
    assert job.value("SAVED", 20) == "state"
    rc, _ = job.wait(25)
    assert rc == 0, job.stderr
    job.all_gone_within(3)


def test_scancel_signal_uncaught_is_128_plus_signal(start):
    """What `#SBATCH --signal=USR2@120` does: Slurm signals every task of the step."""
    job = start(4, "walltime", "reraise", DASK_BATCH__LIFECYCLE__SIGNAL_GRACE="20")
    job.value("SCHEDULER_PID")
    time.sleep(0.5)
    subprocess.run(["scancel", "--signal=USR2", "-n", job.name], check=True, timeout=15)
    rc, _ = job.wait(25)
    assert rc == 128 + signal.SIGUSR2, job.stderr
    assert "AllocationEnding" in job.stderr
    job.all_gone_within(3)
