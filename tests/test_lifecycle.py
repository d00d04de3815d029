"""Lifecycle and faults under real mpiexec: exit codes, dead ranks, signals, bounded ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import MPIEXEC, ROOT, job_env, kill_tagged, mpiexec, require, tagged

JOB = str(ROOT / "mpi_tests" / "lifecycle_job.py")
SURVIVE = ("-disable-auto-cleanup",)  # hydra: let the other ranks live when one dies

pytestmark = pytest.mark.mpi


@pytest.fixture(autouse=True)
def _need_mpiexec():
    require(MPIEXEC.exists(), f"mpiexec not found at {MPIEXEC}")


class Running:
    """A job started in the background whose stdout lines are collected as they come."""

    def __init__(self, argv: list[str], tag: str, **env: str):
        self.tag = tag
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, env=job_env(tag, **env), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.lines: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(s, b), daemon=True)
                         for s, b in ((self.proc.stdout, self.lines), (self.proc.stderr, self.err))]
        for r in self._readers:
            r.start()

    def _read(self, stream, sink) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))

    def value(self, key: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ln in self.lines:
                if ln.startswith(key + " "):
                    return ln.split(" ", 1)[1]
            if self.proc.poll() is not None and not any(r.is_alive() for r in self._readers):
                break
            time.sleep(0.02)
        raise AssertionError(f"no {key} line; stdout={self.lines} stderr={self.err}")

    def wait(self, timeout: float) -> tuple[int, float]:
        """Exit code and seconds since start; fails (after killing all) if it takes longer."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            kill_tagged(self.tag)
            raise AssertionError(f"hung past {timeout}s: {self.lines} {self.err}") from None
        for r in self._readers:
            r.join(5)
        return rc, time.monotonic() - self.t0

    def all_gone_within(self, seconds: float) -> float:
        t = time.monotonic()
        while tagged(self.tag):
            if time.monotonic() - t > seconds:
                left = kill_tagged(self.tag)
                raise AssertionError(f"processes left after {seconds}s: {left}")
            time.sleep(0.02)
        return time.monotonic() - t

    @property
    def stderr(self) -> str:
        return "\n".join(self.err)


@pytest.fixture
def start(tag):
    jobs: list[Running] = []

    def _start(n: int, *args: str, extra: tuple[str, ...] = (), **env: str) -> Running:
        job = Running(mpiexec(n, sys.executable, JOB, *args, extra=extra), tag, **env)
        jobs.append(job)
        return job

    yield _start
    for job in jobs:
        if job.proc.poll() is None:
            os.killpg(job.proc.pid, signal.SIGKILL)
    kill_tagged(tag)


@pytest.mark.parametrize("code", [0, 5])
def test_client_os_exit_code_is_the_jobs(start, code):
    job = start(4, "os-exit", str(code))
    rc, _ = job.wait(30)
    assert rc == code, job.stderr
    job.all_gone_within(2)


def test_client_killed_by_signal_fails_the_job_fast(start):
    job = start(4, "sleep", "120")
    os.kill(int(job.value("READY")), signal.SIGKILL)
    t = time.monotonic()
    rc, _ = job.wait(30)
    assert rc != 0
    assert time.monotonic() - t <= 10
    job.all_gone_within(5)


def test_worker_process_killed_is_restarted_by_its_nanny(start):
    job = start(4, "kill-worker-process", DASK_BATCH__WORKER__NANNY="true")
    assert job.value("RESULT") == str(sum(abs(x) for x in range(-50, 50)))
    assert job.value("RESTARTED") == "2"
    rc, _ = job.wait(60)
    assert rc == 0, job.stderr
    # quiet: no INFO from the nanny's worker processes, no teardown tracebacks or warnings
    assert "Traceback" not in job.stderr and " - INFO - " not in job.stderr, job.stderr
    assert "leaked" not in job.stderr, job.stderr
    job.all_gone_within(5)


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
    if extra:  # hydra leaves the scheduler time to say which rank died
        assert f"(pid {victim}) died" in job.stderr, job.stderr
    else:  # hydra kills the scheduler at once; its banner says a process died (not always which)
        assert "BAD TERMINATION" in "\n".join(job.lines), job.lines
    job.all_gone_within(5)


def test_scheduler_dies_client_and_workers_exit_nonzero_naming_it(start):
    job = start(4, "sleep", "120", extra=SURVIVE)
    os.kill(int(job.value("SCHEDULER_PID")), signal.SIGKILL)
    t = time.monotonic()
    rc, _ = job.wait(30)
    assert rc != 0 and time.monotonic() - t <= 10
    assert "lost the scheduler" in job.stderr
    job.all_gone_within(5)


def test_client_never_connects_under_mpi_ends_within_the_rendezvous_timeout(start):
    # the client rank dies before MPI_Init: the others wait in MPI_Init, which only a hard
    # exit after batch.rendezvous-timeout can end (hydra does not count it as a failure)
    job = start(4, "crash-before-client", DASK_BATCH__RENDEZVOUS_TIMEOUT="5")
    rc, seconds = job.wait(30)
    assert rc != 0 and seconds < 20
    assert "MPI_Init did not return" in job.stderr
    job.all_gone_within(5)


def test_client_never_connects_scheduler_and_workers_stop(start, tmp_path):
    # without MPI (as under srun): the launcher keeps the others, our client timeout ends them
    job = start(4, "crash-before-client", extra=SURVIVE, DASK_BATCH__MPI="false",
                DASK_BATCH__LIFECYCLE__CLIENT_TIMEOUT="3",
                DASK_BATCH__SCHEDULER_FILE=str(tmp_path / "s.json"))
    rc, seconds = job.wait(40)
    assert rc != 0
    assert "did not connect within 3 s" in job.stderr
    assert seconds < 30
    job.all_gone_within(5)


def _signal_all_ranks(job: Running, sig: int) -> None:
    for p in tagged(job.tag):  # the ranks, not mpiexec or hydra's proxy
        if p.name().startswith("python"):
            os.kill(p.pid, sig)


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


def test_walltime_signal_uncaught_exit_code_is_128_plus_signal(start):
    job = start(4, "walltime", "reraise", DASK_BATCH__LIFECYCLE__SIGNAL_GRACE="20")
    job.value("SCHEDULER_PID")
    time.sleep(0.5)
    _signal_all_ranks(job, signal.SIGUSR2)
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
