"""The lifecycle scenarios (lifecycle_scenarios.py) again under a real `srun` (single-node
Slurm of ci/clusters), in environment mode, and srun's own: Slurm lets the other tasks live
when one dies (its default), so here a dead worker rank must not end the job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from clusters import slurm_env, slurm_up
from conftest import kill_tagged, require
from lifecycle_scenarios import (  # noqa: F401  (run here with this file's `start`)
    JOB,
    RESULT,
    Running,
    signal_all_ranks,
    test_client_exit_code_is_the_jobs,
    test_client_killed_by_signal_fails_the_job_fast,
    test_client_never_connects_scheduler_and_workers_stop,
    test_client_raises_rc_1_traceback_once,
    test_scheduler_dies_client_and_workers_exit_nonzero_naming_it,
    test_walltime_signal_client_saves_state_and_job_ends_in_grace,
    test_worker_process_killed_is_restarted_by_its_nanny,
)

pytestmark = pytest.mark.slurm


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

    def _start(n: int, *args: str, survive: bool = False, **env: str) -> SrunJob:
        # srun keeps the other tasks when one dies by default (--kill-on-bad-exit=0)
        job = SrunJob(n, tag, *args, **env)
        jobs.append(job)
        return job

    yield _start
    for job in jobs:
        subprocess.run(["scancel", "-n", job.name], capture_output=True, timeout=15)
        if job.proc.poll() is None:
            os.killpg(job.proc.pid, signal.SIGKILL)
    kill_tagged(tag)


def test_dead_worker_rank_job_finishes_on_the_others(start):
    job = start(5, "kill-worker-rank")
    victim = job.value("KILLED")
    assert job.value("RESULT", 60) == RESULT
    rc, _ = job.wait(60)
    assert f"(pid {victim}) died; continuing with the others" in job.stderr, job.stderr
    # the client's code is the job's; srun adds the killed task's status
    assert rc in (0, 137, 9), job.stderr
    job.all_gone_within(5)


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
