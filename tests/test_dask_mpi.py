"""dask-mpi 2026.3's interface, run the dask-mpi way under real mpiexec: execute() with its
rank arguments, the CLI's --scheduler-rank, --inclusive-workers and positional address."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import BIN, MPIEXEC, ROOT, job_env, kill_tagged, mpiexec, require, run_job

EXECUTE = str(ROOT / "mpi_tests" / "dask_mpi_execute.py")
DASK_BATCH = str(BIN / "dask-batch")

pytestmark = pytest.mark.mpi


@pytest.fixture(autouse=True)
def _need_mpiexec():
    require(MPIEXEC.exists(), f"mpiexec not found at {MPIEXEC}")


def result_of(job) -> dict:
    lines = [ln for ln in job.stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, job
    return json.loads(lines[0])


def returned_ranks(job) -> list[int]:
    return sorted(int(ln.split()[1]) for ln in job.stdout.splitlines()
                  if ln.startswith("RETURNED"))


@pytest.mark.parametrize(("args", "workers"), [
    ((), ["2", "3"]),                                          # dask-mpi's defaults
    (("exclusive_workers=False",), ["0", "1", "2", "3"]),      # scheduler's, client's ranks too
    (("scheduler_rank=2", "client_rank=0"), ["1", "3"]),
    (("scheduler_rank=1",), ["0", "2", "3"]),                 # client_rank 1: beside the scheduler
    (("worker_name=w",), ["w-2", "w-3"]),
])
def test_execute_places_the_roles_as_dask_mpi_does(args, workers):
    job = run_job(mpiexec(4, sys.executable, EXECUTE, "dashboard=False", *args))
    assert job.returncode == 0, job
    assert result_of(job)["workers"] == workers
    assert result_of(job)["total"] == 45
    assert returned_ranks(job) == [0, 1, 2, 3], job  # execute() returns on every rank
    assert "Traceback" not in job.stderr, job


def test_execute_and_send_close_signal_signatures_are_dask_mpis():
    """execute() and send_close_signal(): dask-mpi 2026.3's parameters, in its order, with its
    defaults (initialize()'s are checked against migration.md in test_docs)."""
    dask_mpi = pytest.importorskip("dask_mpi")
    import inspect

    import dask_batch

    for name in ("execute", "send_close_signal"):
        theirs = inspect.signature(getattr(dask_mpi, name)).parameters
        ours = inspect.signature(getattr(dask_batch, name)).parameters
        # ours may end with **settings (any dask-batch setting as a keyword), nothing else
        named = [p for p in ours.values() if p.kind is not p.VAR_KEYWORD]
        assert [(p.name, p.default, p.kind) for p in theirs.values()] == \
            [(p.name, p.default, p.kind) for p in named], name


@pytest.mark.parametrize("what", ["ok", "raise"])
def test_execute_client_args_and_a_raising_client_function(what):
    """client_args and client_kwargs reach the function; a function that raises ends the
    cluster at once and fails the job on the client rank, as in dask-mpi."""
    job = run_job(mpiexec(4, sys.executable, str(ROOT / "mpi_tests" / "dask_mpi_execute_args.py"),
                          what), timeout=90)
    if what == "ok":
        assert job.returncode == 0, job
        assert result_of(job) == {"total": 3 * 45 + 10, "label": "ok"}
        assert returned_ranks(job) == [0, 1, 2, 3], job
        assert "Traceback" not in job.stderr, job
    else:
        assert job.returncode != 0, job
        assert "RuntimeError: the client function failed on purpose" in job.stderr, job
        assert job.stderr.count("Traceback") == 1, job  # the client's own error, once


def test_execute_too_few_ranks_is_one_line_not_a_hang():
    job = run_job(mpiexec(3, sys.executable, EXECUTE, "scheduler_rank=3"), timeout=60)
    assert job.returncode == 2, job
    assert job.stderr.count("at least 4") == 1 and "Traceback" not in job.stderr, job


def serve(tag: str, n: int, sched: str, *flags: str) -> subprocess.Popen:
    return subprocess.Popen(mpiexec(n, DASK_BATCH, "--scheduler-file", sched, "--no-dashboard",
                                    *flags), env=job_env(tag), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def workers_of(sched: str, n: int, insecure: bool = False) -> dict:
    from distributed import Client

    from dask_batch.rendezvous import read_scheduler_file
    from dask_batch.security import security_from

    deadline = time.monotonic() + 60
    while not os.path.exists(sched) and time.monotonic() < deadline:
        time.sleep(0.05)
    contact = read_scheduler_file(sched)
    with Client(contact.address, security=security_from(contact.creds), timeout=30) as c:
        c.wait_for_workers(n, timeout=60)
        info = c.scheduler_info()
        names = sorted(str(w["name"]) for w in info["workers"].values())
        scheduler_pid = c.run_on_scheduler(os.getpid)
        c.shutdown()
    return {"names": names, "scheduler_pid": scheduler_pid, "address": contact.address}


def stop(proc: subprocess.Popen, tag: str) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
    kill_tagged(tag)
    return proc.returncode, err


@pytest.mark.parametrize(("flags", "names"), [
    (("--inclusive-workers",), ["dask_mpi-0", "dask_mpi-1", "dask_mpi-2"]),
    (("--scheduler-rank", "2"), ["dask_mpi-0", "dask_mpi-1"]),
    (("--scheduler-rank", "1", "--inclusive-workers", "--name", "w"), ["w-0", "w-1", "w-2"]),
])
def test_cli_scheduler_rank_and_inclusive_workers(tmp_path, tag, flags, names):
    sched = str(tmp_path / "s.json")
    proc = serve(tag, 3, sched, *flags)
    try:
        got = workers_of(sched, len(names))
    finally:
        rc, err = stop(proc, tag)
    assert got["names"] == names, err
    assert rc == 0, err  # Client.shutdown() ends the job cleanly
    assert "Traceback" not in err, err


@pytest.mark.parametrize(("flags", "scheme"), [(("--insecure",), "tcp://"),
                                            ((), "dask-batch-tls://")])
def test_cli_positional_scheduler_address_adds_workers(tmp_path, tag, flags, scheme):
    """`dask-mpi ADDRESS --no-scheduler`: the address as dask-mpi's positional, as the
    scheduler file shows it. A secure job's (dask-batch-tls://) joins with the credentials of
    the user's state directory, as an outside Client does."""
    sched = str(tmp_path / "s.json")
    first = serve(tag, 2, sched, *flags)
    more = None
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(sched) and time.monotonic() < deadline:
            time.sleep(0.05)
        with open(sched) as f:
            address = json.load(f)["address"]
        assert address.startswith(scheme), address
        more = subprocess.Popen(mpiexec(2, DASK_BATCH, address, "--no-scheduler", *flags,
                                        "--name", "more"), env=job_env(tag),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        got = workers_of(sched, 3)
    finally:
        rc, err = stop(first, tag)
        if more is not None:
            stop(more, tag)
    assert got["names"] == ["dask_mpi-1", "more-0", "more-1"], err


def test_cli_worker_flags_reach_the_workers(tmp_path, tag):
    """dask-mpi's worker flags, as dask-mpi users pass them, arrive where they mean to:
    --nthreads, --memory-limit, --local-directory, --worker-options, --interface,
    --dashboard-address, and --worker-class distributed.Worker (no nanny, as in dask-mpi)."""
    import socket

    from distributed import Client

    from dask_batch.rendezvous import read_scheduler_file
    from dask_batch.security import security_from

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sched = str(tmp_path / "s.json")
    scratch = tmp_path / "scratch"
    proc = subprocess.Popen(mpiexec(
        3, DASK_BATCH, "--scheduler-file", sched, "--nthreads", "2", "--memory-limit", "300MiB",
        "--local-directory", str(scratch), "--worker-options", '{"resources": {"FOO": 1}}',
        "--interface", "lo", "--dashboard-address", f"127.0.0.1:{port}",
        "--worker-class", "distributed.Worker"),
        env=job_env(tag), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(sched) and time.monotonic() < deadline:
            time.sleep(0.05)
        contact = read_scheduler_file(sched)
        with Client(contact.address, security=security_from(contact.creds), timeout=30) as c:
            c.wait_for_workers(2, timeout=60)
            workers = c.scheduler_info()["workers"]
            dirs = c.run(lambda dask_worker: dask_worker.local_directory)
            dashboard = c.scheduler_info()["services"].get("dashboard")
            c.shutdown()
    finally:
        rc, err = stop(proc, tag)
    assert len(workers) == 2, err
    for address, w in workers.items():
        assert address.startswith("tls://127.0.0.1:"), address  # lo
        assert (w["nthreads"], w["memory_limit"]) == (2, 300 * 2**20), w
        assert w["resources"] == {"FOO": 1}, w
        assert w["nanny"] is None, w  # distributed.Worker given: the rank runs it, no nanny
    assert all(d.startswith(str(scratch)) for d in dirs.values()), dirs
    assert dashboard == port, err
    assert rc == 0, err


@pytest.mark.parametrize(("address", "flags", "says"), [
    ("tls://127.0.0.1:9", (), "no dask-batch credentials for dask-batch-tls://127.0.0.1:9"),
    ("tcp://127.0.0.1:9", (), "plain TCP scheduler and this job is secure (mutual TLS): add "
                              "--insecure"),
    ("127.0.0.1:9", (), "add --insecure"),
    ("tcp://127.0.0.1:9", ("--insecure",), "cannot reach the scheduler: Timed out trying to "
                                           "connect to tcp://127.0.0.1:9"),
])
def test_cli_positional_address_that_cannot_be_joined_is_one_line(address, flags, says):
    """A secure job joining by address: no credentials, or a plain TCP address, is one line
    naming the fix, at once; an address nobody listens on is one line per rank."""
    job = run_job(mpiexec(2, DASK_BATCH, address, "--no-scheduler", *flags), timeout=90)
    assert job.returncode == 2, job
    assert "Traceback" not in job.stderr, job
    lines = [ln for ln in job.stderr.splitlines() if ln.strip()]
    assert lines and all(says in ln and "error:" in ln for ln in lines), job
    assert len(lines) == (2 if flags else 1), job  # the same on every rank: said once


def test_cli_scheduler_rank_past_the_world_is_one_line_not_a_hang(tmp_path):
    job = run_job(mpiexec(3, DASK_BATCH, "--scheduler-file", str(tmp_path / "s.json"),
                          "--scheduler-rank", "5"), timeout=60)
    assert job.returncode == 2, job
    assert job.stderr.count("error:") == 1 and "Traceback" not in job.stderr, job


def test_cli_no_scheduler_without_a_cluster_to_join_is_one_line():
    job = run_job(mpiexec(2, DASK_BATCH, "--no-scheduler"), timeout=60)
    assert job.returncode == 2, job
    assert job.stderr.count("--no-scheduler needs the cluster to join") == 1, job
    assert "Traceback" not in job.stderr, job
