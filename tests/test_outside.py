"""Clients from outside a dask-mpi style job: plain Client(scheduler_file=F), connect(),
security_for(), another user refused, --insecure, the credentials file's life."""

from __future__ import annotations

import json
import os
import pwd
import re
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BIN, MPIEXEC, job_env, kill_tagged, mpiexec, require

from dask_batch.outside import OutsideError, read_state, state_dir, state_file, write_state

pytestmark = pytest.mark.timeout(120)

DASK_BATCH = str(BIN / "dask-batch")
OTHER_USER = "dbtest2"

# the whole of a plain client: nothing from dask_batch, no security
PLAIN = """
import sys
from distributed import Client
with Client(scheduler_file=sys.argv[1], timeout=10) as client:
    print(client.submit(sum, range(10)).result(), client.scheduler.address,
          client.dashboard_link)
    if sys.argv[2:] == ["shutdown"]:
        client.shutdown()
"""

EXPLICIT = """
import sys
from dask_batch import connect
connect(sys.argv[1], timeout=5)
"""

# another user: root imports what the client needs (the interpreter lives under root's 0700
# home, so the other user could not start it), then becomes that user and runs PLAIN
AS_OTHER = """
import os, pwd, sys
import distributed, distributed.client, dask_batch.batch_tls, dask_batch.rendezvous, ssl
user = pwd.getpwnam(sys.argv.pop(1))
os.setgroups([]); os.setgid(user.pw_gid); os.setuid(user.pw_uid)
assert os.getuid() == user.pw_uid and os.geteuid() != 0
exec(compile(open(sys.argv.pop(1)).read(), "plain", "exec"))
"""


class ServeJob:
    """``mpiexec -n 3 dask-batch --scheduler-file F`` with its own state directory."""

    def __init__(self, tmp: Path, tag: str, *options: str, state: str | None = None):
        self.sched = str(tmp / "sched.json")
        self.state = state or str(tmp / "state")
        self.env = job_env(tag, DASK_BATCH_STATE_DIR=self.state)
        self.proc = subprocess.Popen(
            mpiexec(3, DASK_BATCH, *options, "--scheduler-file", self.sched), env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not os.path.exists(self.sched):
            assert self.proc.poll() is None, self.proc.communicate()
            assert time.monotonic() < deadline, "no scheduler file after 60 s"
            time.sleep(0.05)
        data = json.load(open(self.sched))
        self.address, self.dashboard = data["address"], data["services"]["dashboard"]

    def plain(self, *args: str, env: dict[str, str] | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", PLAIN, self.sched, *args],
                              env=env or self.env, capture_output=True, text=True,
                              timeout=timeout)

    def stop(self) -> None:
        """End the job as its users do (a client's shutdown); kill it if that fails."""
        if self.proc.poll() is None:
            from dask_batch import connect

            try:
                with connect(self.sched, timeout=5) as client:
                    client.shutdown()
                self.proc.wait(20)
            except Exception:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def serve(tmp_path, tag) -> Iterator:
    require(MPIEXEC.exists(), f"mpiexec not found at {MPIEXEC}")
    jobs: list[ServeJob] = []

    def start(*options: str) -> ServeJob:
        jobs.append(ServeJob(tmp_path, tag, *options))
        return jobs[-1]

    yield start
    for job in jobs:
        job.stop()
    kill_tagged(tag)


def test_plain_client_computes_and_the_credentials_go_with_the_job(serve):
    job = serve()
    assert job.address.startswith("dask-batch-tls://127.0.0.1:"), job.address
    creds = state_file_of(job)
    assert stat.S_IMODE(os.stat(creds).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(job.state).st_mode) == 0o700
    got = job.plain("shutdown")
    assert got.returncode == 0, got.stderr
    # the dashboard link works out from the new scheme's host as from tls://
    assert got.stdout.split() == ["45", job.address, job.dashboard]
    assert job.proc.wait(30) == 0, job.proc.stderr.read()
    assert not os.path.exists(creds)  # removed when the job ended
    assert not os.path.exists(job.sched)


def state_file_of(job: ServeJob) -> str:
    files = os.listdir(job.state)
    assert len(files) == 1, files
    return os.path.join(job.state, files[0])


def test_connect_and_security_for(serve, monkeypatch):
    from distributed import Client

    from dask_batch import connect, security_for

    job = serve()
    with connect(job.sched, timeout=10) as client:
        assert client.submit(lambda: 6 * 7).result() == 42
        assert client.scheduler.address == job.address.replace("dask-batch-tls://", "tls://")
    for address in (job.address, job.address.replace("dask-batch-tls://", "tls://")):
        with Client(address, security=security_for(job.sched), timeout=10) as client:
            assert client.submit(len, "abc").result() == 3
    # a plain client without the job's state directory: our error, not distributed's
    # retrying until its timeout ("Timed out trying to connect")
    got = job.plain(env={**job.env, "DASK_BATCH_STATE_DIR": job.state + "-elsewhere"})
    assert got.returncode != 0
    assert re.search(r"OutsideError: no dask-batch credentials .* dask_batch\.connect",
                     got.stderr), got.stderr
    assert "Timed out" not in got.stderr
    # a plain `dask worker` cannot serve on the new scheme: it fails at once, naming the way
    worker = subprocess.run([str(BIN / "dask"), "worker", "--scheduler-file", job.sched],
                            env=job.env, capture_output=True, text=True, timeout=60)
    assert worker.returncode != 0
    assert "'python -m dask_batch.submit.worker --scheduler-file" in worker.stderr
    monkeypatch.setenv("DASK_BATCH_STATE_DIR", job.state + "-elsewhere")
    with connect(job.sched, timeout=10) as client:  # needs no state directory
        assert client.submit(lambda: 1).result() == 1


def test_unwritable_state_dir_does_not_stop_the_job(tmp_path, tag):
    """A read-only home on the compute nodes: a warning; connect(F) still works."""
    from dask_batch import connect

    require(MPIEXEC.exists(), f"mpiexec not found at {MPIEXEC}")
    (tmp_path / "afile").write_text("")
    job = ServeJob(tmp_path, tag, state=str(tmp_path / "afile" / "state"))
    try:
        with connect(job.sched, timeout=10) as client:
            assert client.submit(lambda: 2).result() == 2
        got = job.plain()
        assert got.returncode != 0 and "no dask-batch credentials for" in got.stderr, got
    finally:
        job.stop()
        kill_tagged(tag)
    assert "cannot write the credentials for outside clients" in job.proc.stderr.read()


def test_missing_scheduler_file_is_one_clear_error(tmp_path):
    from dask_batch import connect, security_for

    for call in (connect, security_for):
        with pytest.raises(OutsideError, match="does not exist: start the job"):
            call(str(tmp_path / "none.json"))


def _other_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(OTHER_USER)
    except KeyError:
        subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", OTHER_USER], check=True,
                       capture_output=True, timeout=30)
        return pwd.getpwnam(OTHER_USER)


def test_another_user_is_refused(serve, tmp_path):
    require(os.geteuid() == 0, "needs root to act as a second user")
    user = _other_user()
    job = serve()
    # what the other user may know: the address (never the credentials) in a file it can read
    shared = tempfile.mkdtemp(prefix="outside-")
    try:
        os.chmod(shared, 0o755)
        copy = os.path.join(shared, "sched.json")
        with open(copy, "w") as f:
            json.dump({"type": "Scheduler", "address": job.address}, f)
        plain = os.path.join(shared, "plain.py")
        Path(plain).write_text(PLAIN)
        for path in (copy, plain):
            os.chmod(path, 0o644)
        argv = [sys.executable, "-c", AS_OTHER, user.pw_name, plain, copy]
        t0 = time.monotonic()
        got = subprocess.run(argv, env=job.env, capture_output=True, text=True, timeout=60)
        assert got.returncode != 0, got.stdout
        assert "cannot read the credentials file" in got.stderr, got.stderr
        assert time.monotonic() - t0 < 30
        # nor can it use the job's own scheduler file, which holds the credentials
        explicit = os.path.join(shared, "explicit.py")
        Path(explicit).write_text(EXPLICIT)
        os.chmod(explicit, 0o644)
        got = subprocess.run([sys.executable, "-c", AS_OTHER, user.pw_name, explicit,
                              job.sched], env=job.env, capture_output=True, text=True,
                             timeout=60)
        assert got.returncode != 0
        assert "OutsideError: cannot read scheduler file" in got.stderr, got.stderr
        # the same, as the job's user: it connects (the refusal above is the user's)
        ok = subprocess.run([sys.executable, "-c", PLAIN, copy], env=job.env,
                            capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0 and ok.stdout.split()[0] == "45", ok.stderr
    finally:
        for name in os.listdir(shared):
            os.unlink(os.path.join(shared, name))
        os.rmdir(shared)


def test_insecure_is_plain_tcp_and_any_client_connects(serve):
    job = serve("--insecure")
    assert job.address.startswith("tcp://127.0.0.1:"), job.address
    got = job.plain("shutdown", env={**job.env, "DASK_BATCH_STATE_DIR": job.state + "-none"})
    assert got.returncode == 0, got.stderr
    assert got.stdout.split() == ["45", job.address, job.dashboard]
    assert not os.path.exists(job.state)  # nothing to protect, nothing written
    assert job.proc.wait(30) == 0


# ---------------------------------------------------------------- the state file alone


def test_state_dir_order(monkeypatch, tmp_path):
    monkeypatch.delenv("DASK_BATCH_STATE_DIR", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert state_dir() == str(tmp_path / "home" / ".local" / "state" / "dask-batch")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state_dir() == str(tmp_path / "xdg" / "dask-batch")
    monkeypatch.setenv("DASK_BATCH_STATE_DIR", str(tmp_path / "explicit"))
    assert state_dir() == str(tmp_path / "explicit")


def test_state_file_written_private_and_checked(monkeypatch, tmp_path):
    monkeypatch.setenv("DASK_BATCH_STATE_DIR", str(tmp_path / "st"))
    creds = {"ca": "A", "cert": "C", "key": "K"}
    path = write_state("tls://[::1]:8786", creds, "/x/sched.json")
    assert path == state_file("dask-batch-tls://[::1]:8786")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "st").st_mode) == 0o700
    assert read_state("dask-batch-tls://[::1]:8786") == creds
    assert os.listdir(tmp_path / "st") == [os.path.basename(path)]  # no temp file left
    os.chmod(path, 0o666)
    with pytest.raises(OutsideError, match="not yours alone"):
        read_state("tls://[::1]:8786")
    os.chmod(path, 0o600)
    with pytest.raises(OutsideError, match="no dask-batch credentials"):
        read_state("tls://[::1]:8787")
    Path(path).write_text("{not json")
    with pytest.raises(OutsideError, match="unreadable"):
        read_state("tls://[::1]:8786")


def test_without_dask_batch_the_error_names_it(tmp_path):
    """A client environment without dask-batch (no entry point): distributed's error names
    the scheme. In its own process: a failed Client left to the garbage collector can
    deadlock the next one's start."""
    from dask_batch.rendezvous import Contact, write_scheduler_file
    from dask_batch.security import make_credentials

    sched = str(tmp_path / "sched.json")
    write_scheduler_file(sched, Contact("tls://127.0.0.1:1", creds=make_credentials()))
    hide = "from distributed.comm import registry\nregistry._entry_points = lambda **kw: []\n"
    got = subprocess.run([sys.executable, "-c", hide + PLAIN, sched], capture_output=True,
                         text=True, timeout=60)
    assert got.returncode != 0
    assert "ValueError: unknown address scheme 'dask-batch-tls'" in got.stderr, got.stderr
