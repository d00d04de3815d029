"""Helpers for the tests on the real clusters of ci/clusters: Slurm (one node, three nodes), SGE.

Every command runs under a timeout; batch jobs are polled every 0.25 s (``sbatch --wait``
polls after 2, 8 and 32 s) and whatever a test leaves in a queue is cancelled by a fixture.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from conftest import ROOT, job_env, kill_tagged, tagged

MN_CONF = "/etc/slurm-mn/slurm.conf"
SGE = {"SGE_ROOT": "/var/lib/gridengine", "SGE_CELL": "default"}
VENV = Path(os.environ.get("VIRTUAL_ENV") or ROOT / ".venv")
PYTHON = str(VENV / "bin" / "python")
DASK_BATCH = str(VENV / "bin" / "dask-batch")
CLUSTER = str(ROOT / "mpi_tests" / "cluster.py")
RANKS = str(ROOT / "mpi_tests" / "ranks.py")
JOB = str(ROOT / "mpi_tests" / "job.py")
LAUNCHERS = ROOT / "launchers"
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
            "BOOT_FAIL", "DEADLINE", "PREEMPTED")


def slurm_env(tag: str, multinode: bool = False, **extra: str) -> dict[str, str]:
    """A job environment for one of the two Slurm clusters (SLURM_CONF only for three nodes)."""
    env = job_env(tag, **extra)
    env.pop("SLURM_CONF", None)
    if multinode:
        env["SLURM_CONF"] = MN_CONF
    return env


def sge_env(tag: str, **extra: str) -> dict[str, str]:
    return job_env(tag, **SGE, **extra)


def _ok(argv: list[str], env: dict[str, str], timeout: float = 15) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    except (subprocess.TimeoutExpired, OSError):
        return None
    return p.stdout if p.returncode == 0 else None


def slurm_up(multinode: bool = False) -> bool:
    env = slurm_env("probe", multinode)
    out = _ok(["sinfo", "-h", "-N", "-o", "%N %t"], env)
    if not out:
        return False
    states = dict(line.split() for line in out.splitlines() if line.strip())
    if multinode:
        return all(states.get(f"node{i}", "").startswith(("idle", "mix")) for i in (1, 2, 3))
    return any(s.startswith(("idle", "mix")) for s in states.values())


def sge_up() -> bool:
    out = _ok(["qstat", "-f", "-q", "all.q"], sge_env("probe"))
    return bool(out and "all.q@" in out and _ok(["qconf", "-sp", "smp"], sge_env("probe")))


def srun(n: int | None = None, *args: str, extra: tuple[str, ...] = ()) -> list[str]:
    """srun -K (a failed task ends the step) under timeout: too many tasks would wait forever."""
    argv = ["timeout", "-k", "5", "150", "srun", "-K", *extra]
    if n is not None:
        argv += ["-n", str(n)]
    return argv + list(args)


def json_lines(text: str) -> list[dict]:
    return [json.loads(ln) for ln in text.splitlines() if ln.startswith("{")]


def one_result(text: str, job: object = None) -> dict:
    lines = json_lines(text)
    assert len(lines) == 1, job if job is not None else text
    return lines[0]


def no_leftovers(tag: str, linger: float = 5.0) -> None:
    """Nothing started under this tag is still alive (killed and reported if it is)."""
    deadline = time.monotonic() + linger
    while tagged(tag) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = kill_tagged(tag)
    assert not left, f"processes left behind: {left}"


# ---------------------------------------------------------------- Slurm batch jobs


class Slurm:
    """Submit with sbatch, poll scontrol every 0.25 s, scancel what is left at the end."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.ids: list[str] = []

    def sbatch(self, *args: str, cwd: str | Path) -> str:
        p = subprocess.run(["sbatch", "--parsable", *args], env=self.env, cwd=cwd,
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        job_id = p.stdout.strip().split(";")[0]
        self.ids.append(job_id)
        return job_id

    def show(self, job_id: str) -> dict[str, str]:
        p = subprocess.run(["scontrol", "show", "job", "-o", job_id], env=self.env,
                           capture_output=True, text=True, timeout=15)
        return dict(re.findall(r"(\w+)=(\S*)", p.stdout))

    def wait(self, job_id: str, timeout: float = 120) -> tuple[str, int, float]:
        """(JobState, exit code of the batch script, seconds waited)."""
        t0 = time.monotonic()
        while True:
            info = self.show(job_id)
            state = info.get("JobState", "")
            if state in TERMINAL:
                code, _, sig = info.get("ExitCode", "0:0").partition(":")
                return state, int(code) or (128 + int(sig) if sig and sig != "0" else 0), \
                    time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"job {job_id} still {state or 'unknown'} after {timeout} s")
            time.sleep(0.25)

    def cancel_all(self) -> None:
        for job_id in self.ids:
            subprocess.run(["scancel", job_id], env=self.env, capture_output=True, timeout=15)


def sge_queued(env: dict[str, str], job: str) -> list[str]:
    """The task ids of Grid Engine job ``job`` that qstat still shows (not being deleted)."""
    from dask_batch.submit.sge import parse_status

    p = subprocess.run(["qstat", "-xml"], env=env, capture_output=True, text=True, timeout=15)
    return sorted(k for k, v in parse_status(p.stdout).items()
                  if k.split(".")[0] == job and "d" not in v)
