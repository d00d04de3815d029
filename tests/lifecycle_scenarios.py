"""Lifecycle scenarios shared by every launcher: each test module that imports them gives
its own ``start`` fixture, ``start(n, *scenario_args, survive=False, **env) -> Running``
(``survive``: ask the launcher to keep the other ranks when one dies), and pytest runs them
there (tests/test_lifecycle.py under mpiexec, tests/test_lifecycle_srun.py under srun)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest
from conftest import ROOT, job_env, kill_tagged, tagged

JOB = str(ROOT / "mpi_tests" / "lifecycle_job.py")
RESULT = str(sum(abs(x) for x in range(-50, 50)))


class Running:
    """A job started in the background whose stdout lines are collected as they come."""

    # what a launcher that ends every rank when one dies (hydra) prints on stdout: it may
    # end the others before they can say what they saw
    ends_all_banner: str | None = None

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


def signal_all_ranks(job: Running, sig: int) -> None:
    for p in tagged(job.tag):  # the ranks, not the launcher or its helpers
        if p.name().startswith("python"):
            os.kill(p.pid, sig)


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
    """By default (no option): what the OOM killer does to a worker does not end the job."""
    job = start(4, "kill-worker-process")
    assert job.value("RESULT") == RESULT
    assert job.value("RESTARTED") == "2"
    rc, _ = job.wait(60)
    assert rc == 0, job.stderr
    # quiet: no INFO from the nanny's worker processes, no teardown tracebacks or warnings
    assert "Traceback" not in job.stderr and " - INFO - " not in job.stderr, job.stderr
    assert "leaked" not in job.stderr, job.stderr
    job.all_gone_within(5)


def test_scheduler_dies_client_and_workers_exit_nonzero_naming_it(start):
    job = start(4, "sleep", "120", survive=True)
    os.kill(int(job.value("SCHEDULER_PID")), signal.SIGKILL)
    t = time.monotonic()
    rc, _ = job.wait(30)
    assert rc != 0 and time.monotonic() - t <= 10, job.stderr
    named = "lost the scheduler" in job.stderr
    banner = job.ends_all_banner is not None and job.ends_all_banner in "\n".join(job.lines)
    assert named or banner, (job.lines, job.stderr)
    job.all_gone_within(5)


def test_client_never_connects_scheduler_and_workers_stop(start, tmp_path):
    # without MPI (under mpiexec too): the launcher keeps the others, the client timeout ends them
    job = start(4, "crash-before-client", survive=True, DASK_BATCH__MPI="false",
                DASK_BATCH__LIFECYCLE__CLIENT_TIMEOUT="3",
                DASK_BATCH__SCHEDULER_FILE=str(tmp_path / "s.json"))
    rc, seconds = job.wait(40)
    assert rc != 0
    assert "did not connect within 3 s" in job.stderr, job.stderr
    assert seconds < 30
    job.all_gone_within(5)


def test_walltime_signal_client_saves_state_and_job_ends_in_grace(start):
    job = start(4, "walltime", DASK_BATCH__LIFECYCLE__SIGNAL_GRACE="20")
    job.value("SCHEDULER_PID")
    time.sleep(0.5)
    signal_all_ranks(job, signal.SIGTERM)
    assert job.value("ENDING", 20) == str(int(signal.SIGTERM))
    assert job.value("SAVED", 20) == "state"
    rc, _ = job.wait(25)
    assert rc == 0, job.stderr
    job.all_gone_within(3)
