"""Lifecycle and faults under real mpiexec: exit codes, dead ranks, signals, bounded ends.

The scenarios every launcher shares are in lifecycle_scenarios.py; hydra's own are here."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest
from conftest import MPIEXEC, kill_tagged, mpiexec, require, tagged
from lifecycle_scenarios import (  # noqa: F401  (run here with this file's `start`)
    JOB,
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

SURVIVE = ("-disable-auto-cleanup",)  # hydra: let the other ranks live when one dies
HYDRA_BANNER = "YOUR APPLICATION TERMINATED"  # hydra's report of a rank that died

pytestmark = pytest.mark.mpi


@pytest.fixture(autouse=True)
def _need_mpiexec():
    require(MPIEXEC.exists(), f"mpiexec not found at {MPIEXEC}")


@pytest.fixture
def start(tag):
    jobs: list[Running] = []

    def _start(n: int, *args: str, survive: bool = False, extra: tuple[str, ...] = (),
               **env: str) -> Running:
        extra = extra + (SURVIVE if survive else ())
        job = Running(mpiexec(n, sys.executable, JOB, *args, extra=extra), tag, **env)
        job.ends_all_banner = HYDRA_BANNER
        jobs.append(job)
        return job

    yield _start
    for job in jobs:
        if job.proc.poll() is None:
            os.killpg(job.proc.pid, signal.SIGKILL)
    kill_tagged(tag)


@pytest.mark.parametrize("extra", [(), SURVIVE], ids=["default", "disable-auto-cleanup"])
def test_dead_worker_rank_under_hydra_ends_fast_naming_it(start, extra):
    """The MPICH wheel's hydra ends every rank when one dies, -disable-auto-cleanup or not
    (measured with plain processes too): the job must end fast and say which rank died.
    Surviving a dead rank is tested under srun (tests/test_slurm.py), which allows it."""
    job = start(5, "kill-worker-rank", extra=extra)
    victim = job.value("KILLED")
    t = time.monotonic()
    rc, _ = job.wait(30)
    assert rc != 0 and time.monotonic() - t <= 10
    if extra:
        # hydra usually leaves the scheduler the few ms it needs to say which rank died, but
        # it ends every rank anyway, sometimes first (2 in ~40 runs): then hydra's own banner
        # is what reports the killed process
        named = f"(pid {victim}) died" in job.stderr
        assert named or HYDRA_BANNER in "\n".join(job.lines), \
            (job.lines, job.stderr)
    else:  # hydra kills the scheduler at once; its banner says a process died (not always which)
        assert "BAD TERMINATION" in "\n".join(job.lines), job.lines
    job.all_gone_within(5)


def test_no_nanny_keeps_the_old_behaviour_a_killed_worker_ends_the_job(start):
    """--no-nanny (batch.worker.nanny: false): the worker is the rank, so a SIGKILLed worker
    process is a dead rank, and hydra ends the job fast (the default survives it:
    test_worker_process_killed_is_restarted_by_its_nanny)."""
    job = start(4, "kill-worker-process", DASK_BATCH__WORKER__NANNY="false")
    job.value("KILLED")
    t = time.monotonic()
    rc, _ = job.wait(30)
    assert rc != 0 and time.monotonic() - t <= 10, job.stderr
    assert not any(ln.startswith("RESULT ") for ln in job.lines), job.lines  # job lost
    job.all_gone_within(5)


def test_client_never_connects_under_mpi_ends_within_the_rendezvous_timeout(start):
    # the client rank dies before MPI_Init: the others wait in MPI_Init, which only a hard
    # exit after batch.rendezvous-timeout can end (hydra does not count it as a failure)
    job = start(4, "crash-before-client", DASK_BATCH__RENDEZVOUS_TIMEOUT="5")
    rc, seconds = job.wait(30)
    assert rc != 0 and seconds < 20
    assert "MPI_Init did not return" in job.stderr
    job.all_gone_within(5)


def test_walltime_signal_uncaught_exit_code_is_128_plus_signal(start):
    job = start(4, "walltime", "reraise", DASK_BATCH__LIFECYCLE__SIGNAL_GRACE="20")
    job.value("SCHEDULER_PID")
    time.sleep(0.5)
    signal_all_ranks(job, signal.SIGUSR2)
    rc, _ = job.wait(25)
    assert rc == 128 + signal.SIGUSR2, job.stderr
    assert job.stderr.count("AllocationEnding") >= 1
    job.all_gone_within(3)


def test_walltime_signal_to_scheduler_only_reaches_the_client(start):
    job = start(4, "walltime", DASK_BATCH__LIFECYCLE__SIGNAL_GRACE="20")
    os.kill(int(job.value("SCHEDULER_PID")), signal.SIGTERM)
    assert job.value("SAVED", 20) == "state"
    rc, _ = job.wait(25)
    assert rc == 0, job.stderr
    job.all_gone_within(3)


def test_ctrl_c_on_the_launcher_stops_everything(start):
    job = start(4, "sleep", "120")
    job.value("READY")
    os.kill(job.proc.pid, signal.SIGINT)
    t = time.monotonic()
    job.wait(15)
    assert time.monotonic() - t <= 5
    job.all_gone_within(2)


@pytest.mark.parametrize(("who", "sig"), [("all-ranks", signal.SIGTERM),
                                          ("scheduler-only", signal.SIGTERM),
                                          ("all-ranks", signal.SIGUSR2)])
def test_walltime_signal_without_a_client_retires_the_workers_at_once(tag, tmp_path, who, sig):
    """dask-mpi style (`dask-batch --scheduler-file F`, no client): SIGTERM (scancel) or
    SIGUSR2 (a walltime warning) has no client to warn, so the job ends within 5 s with
    128 + the signal, not after the 60 s grace."""
    from conftest import BIN
    from distributed import Client

    from dask_batch.rendezvous import read_scheduler_file
    from dask_batch.security import security_from

    sched = tmp_path / "sched.json"
    job = Running(mpiexec(4, str(BIN / "dask-batch"), "--scheduler-file", str(sched)), tag)
    try:
        deadline = time.monotonic() + 60
        while not sched.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sched.exists(), job.stderr
        contact = read_scheduler_file(str(sched))
        with Client(contact.address, security=security_from(contact.creds), timeout=30) as c:
            c.wait_for_workers(3, timeout=60)
        ranks = {int(p.environ()["PMI_RANK"]): p for p in tagged(tag)
                 if "PMI_RANK" in p.environ()}
        assert sorted(ranks) == [0, 1, 2, 3], tagged(tag)
        for rank in (ranks if who == "all-ranks" else [0]):  # scancel, or rank 0 only
            os.kill(ranks[rank].pid, sig)
        t = time.monotonic()
        rc, _ = job.wait(30)
        waited = time.monotonic() - t
    finally:
        if job.proc.poll() is None:
            os.killpg(job.proc.pid, signal.SIGKILL)
        kill_tagged(tag)
    assert rc == 128 + sig, job.stderr
    assert f"{sig.name}: no client to tell; retiring the workers" in job.stderr, job.stderr
    assert "Traceback" not in job.stderr, job.stderr
    assert waited <= 5, f"took {waited:.1f} s to end (the issue's bound: 5 s)"
    job.all_gone_within(3)
