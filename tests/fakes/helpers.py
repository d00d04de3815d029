"""Test helpers for add-on workers: an in-process TLS scheduler with a scheduler file, and a
PATH with the strict fake batch commands."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

FAKES = Path(__file__).resolve().parent
COMMANDS = {
    "pbs": ["qsub", "qstat", "qdel"],
    "lsf": ["bsub", "bjobs", "bkill"],
    "htcondor": ["condor_submit", "condor_q", "condor_history", "condor_rm"],
    "oar": ["oarsub", "oarstat", "oardel"],
    "moab": ["msub", "showq", "canceljob"],
}


@contextlib.contextmanager
def running_scheduler(directory: Path) -> Iterator[tuple[str, object]]:
    """A TLS scheduler on 127.0.0.1 (random port) and its 0600 scheduler file."""
    from distributed import LocalCluster

    from dask_batch.rendezvous import Contact, write_scheduler_file
    from dask_batch.security import make_credentials, security_from

    creds = make_credentials()
    sec = security_from(creds)
    lc = LocalCluster(n_workers=0, processes=False, protocol="tls://", host="127.0.0.1",
                      security=sec, dashboard_address=":0")
    path = str(directory / "sched.json")
    write_scheduler_file(path, Contact(address=lc.scheduler_address, job="test", creds=creds))
    try:
        yield path, sec
    finally:
        lc.close()


def fake_env(system: str, directory: Path) -> dict[str, str]:
    """PATH with the fake commands of ``system`` first; its state in ``directory``."""
    bin_dir = directory / "bin"
    bin_dir.mkdir(exist_ok=True)
    for cmd in COMMANDS[system]:
        link = bin_dir / cmd
        if not link.exists():
            link.symlink_to(FAKES / "fakebatch.py")
    state = directory / "fakestate"
    state.mkdir(exist_ok=True)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_BATCH_DIR": str(state),
            "FAKE_BATCH_SYSTEM": system}


def fake_calls(env: dict[str, str]) -> list[list[str]]:
    try:
        with open(os.path.join(env["FAKE_BATCH_DIR"], "state.json")) as f:
            return json.load(f)["calls"]
    except FileNotFoundError:
        return []


def kill_fake_jobs(env: dict[str, str]) -> None:
    """Kill every job process group the fakes started (by PID)."""
    try:
        with open(os.path.join(env["FAKE_BATCH_DIR"], "state.json")) as f:
            jobs = json.load(f)["jobs"]
    except FileNotFoundError:
        return
    for job in jobs.values():
        for el in job["elements"].values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(el["pid"], signal.SIGKILL)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
