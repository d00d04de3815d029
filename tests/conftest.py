"""Shared helpers: launch jobs under a tag, find what they left behind, clean it up by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
MPIEXEC = BIN / "mpiexec"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TAG = "DASK_BATCH_TEST_TAG"


def require(condition: bool, reason: str) -> None:
    """Skip when a real system is missing; in CI a missing system is a failure."""
    if not condition:
        if IN_CI:
            pytest.fail(f"required in CI: {reason}")
        pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tagged(tag: str) -> list[psutil.Process]:
    """Processes whose environment carries this tag (hydra puts ranks in their own sessions)."""
    found = []
    for p in psutil.process_iter():
        try:
            if p.pid != os.getpid() and p.environ().get(TAG) == tag:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    return found


def kill_tagged(tag: str) -> list[int]:
    procs = tagged(tag)
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=5)
    return [p.pid for p in procs]


def job_env(tag: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for k in list(env):  # a test must not inherit the launcher of whoever runs pytest
        if k.startswith(("SLURM_", "PMI_", "PMIX_", "OMPI_", "MPI_LOCAL", "DASK_BATCH")):
            del env[k]
    env[TAG] = tag
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["DASK_BATCH__DASHBOARD_ADDRESS"] = ":0"  # never the fixed 8787
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


class Job:
    def __init__(self, proc: subprocess.CompletedProcess, tag: str, seconds: float):
        self.returncode, self.stdout, self.stderr = proc.returncode, proc.stdout, proc.stderr
        self.tag, self.seconds = tag, seconds

    def __repr__(self) -> str:
        return f"<Job rc={self.returncode}\n--stdout--\n{self.stdout}\n--stderr--\n{self.stderr}>"


def run_job(argv: list[str], timeout: float = 90, env: dict[str, str] | None = None,
            cwd: str | Path | None = None, linger: float = 3.0) -> Job:
    """Run a whole job, then require that nothing it started is still alive."""
    tag = (env or {}).get(TAG) or uuid.uuid4().hex
    full_env = env or job_env(tag)
    full_env[TAG] = tag
    t0 = time.monotonic()
    try:
        proc = subprocess.run(argv, env=full_env, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as e:
        killed = kill_tagged(tag)
        raise AssertionError(f"job hung past {timeout}s (killed {killed}):\n"
                             f"{e.stdout}\n{e.stderr}") from None
    seconds = time.monotonic() - t0
    deadline = time.monotonic() + linger
    while tagged(tag) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = kill_tagged(tag)
    assert not left, f"processes left behind: {left}"
    return Job(proc, tag, seconds)


def mpiexec(n: int, *args: str, extra: tuple[str, ...] = ()) -> list[str]:
    return [str(MPIEXEC), *extra, "-n", str(n), *args]


@pytest.fixture
def tag() -> str:
    t = uuid.uuid4().hex
    yield t
    kill_tagged(t)


def terminate(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
