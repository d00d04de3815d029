"""Scheduler files: atomic, 0600, this job's only, refused when others can write them."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time

import pytest

from dask_batch.plan import default_scheduler_file
from dask_batch.rendezvous import (
    Contact,
    RendezvousError,
    read_scheduler_file,
    remove_scheduler_file,
    wait_for_scheduler_file,
    write_scheduler_file,
)

CREDS = {"ca": "-----BEGIN CERTIFICATE-----\nx\n", "cert": "c\n", "key": "k\n"}


def test_written_0600_and_readable_by_distributed(tmp_path):
    path = str(tmp_path / "s.json")
    write_scheduler_file(path, Contact("tls://10.0.0.1:1234", job="7.0", creds=CREDS))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    data = json.load(open(path))
    # what a plain Client(scheduler_file=) reads: the scheme whose connector brings the creds
    assert data["address"] == "dask-batch-tls://10.0.0.1:1234"
    back = read_scheduler_file(path)  # ranks and add-on workers get the real address
    assert (back.address, back.job, back.creds) == ("tls://10.0.0.1:1234", "7.0", CREDS)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_insecure_address_is_written_as_is(tmp_path):
    path = str(tmp_path / "s.json")
    write_scheduler_file(path, Contact("tcp://10.0.0.1:1234", job="7.0"))
    assert json.load(open(path))["address"] == "tcp://10.0.0.1:1234"
    assert read_scheduler_file(path).address == "tcp://10.0.0.1:1234"


def test_default_name_carries_the_job(tmp_path):
    assert default_scheduler_file("42.0", str(tmp_path)).endswith("scheduler-42.0.json")


def test_stale_file_of_another_job_is_never_used(tmp_path):
    path = str(tmp_path / "s.json")
    write_scheduler_file(path, Contact("tcp://old:1", job="41.0"))
    with pytest.raises(RendezvousError, match="belongs to job 41.0"):
        wait_for_scheduler_file(path, 0.3, job="42.0")


def test_waits_until_this_jobs_file_replaces_the_stale_one(tmp_path):
    path = str(tmp_path / "s.json")
    write_scheduler_file(path, Contact("tcp://old:1", job="41.0"))
    t = threading.Timer(0.2, write_scheduler_file, (path, Contact("tcp://new:2", job="42.0")))
    t.start()
    got = wait_for_scheduler_file(path, 5, job="42.0")
    t.join()
    assert got.address == "tcp://new:2"


def test_file_older_than_the_job_is_stale_without_job_id(tmp_path):
    path = str(tmp_path / "s.json")
    write_scheduler_file(path, Contact("tcp://old:1", created=time.time() - 3600))
    with pytest.raises(RendezvousError, match="older than this job"):
        wait_for_scheduler_file(path, 0.2, job=None, not_before=time.time() - 10)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_recent_file_of_a_dead_job_is_waited_past_without_job_id(tmp_path):
    """No job stamp (hydra), a file from a job that ended seconds ago: its address refuses
    connections, so the ranks wait for their own scheduler's file."""
    path = str(tmp_path / "s.json")
    start = time.time()
    write_scheduler_file(path, Contact(f"tls://127.0.0.1:{_closed_port()}", created=start - 3))
    with socket.socket() as live:
        live.bind(("127.0.0.1", 0))
        live.listen()
        new = Contact(f"tls://127.0.0.1:{live.getsockname()[1]}")
        with pytest.raises(RendezvousError, match="refuses connections"):
            wait_for_scheduler_file(path, 0.3, None, start - 10, probe_before=start)
        t = threading.Timer(0.3, write_scheduler_file, (path, new))
        t.start()
        got = wait_for_scheduler_file(path, 5, None, start - 10, probe_before=start)
        t.join()
    assert got.address == new.address


def test_missing_file_times_out_with_a_clear_error(tmp_path):
    t0 = time.monotonic()
    with pytest.raises(RendezvousError, match="does not exist"):
        wait_for_scheduler_file(str(tmp_path / "none.json"), 0.3, job="1")
    assert time.monotonic() - t0 < 3


def test_writable_by_others_is_refused(tmp_path):
    path = str(tmp_path / "s.json")
    write_scheduler_file(path, Contact("tcp://a:1"))
    os.chmod(path, 0o666)
    with pytest.raises(RendezvousError, match="writable by others"):
        read_scheduler_file(path)


def test_corrupt_file_is_reported(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("{not json")
    os.chmod(path, 0o600)
    with pytest.raises(RendezvousError, match="corrupt"):
        wait_for_scheduler_file(str(path), 0.2, job=None)


def test_unwritable_directory_is_a_clear_error(tmp_path):
    with pytest.raises(RendezvousError, match="not writable"):
        write_scheduler_file(str(tmp_path / "nodir" / "s.json"), Contact("tcp://a:1"))


def test_remove_only_our_own(tmp_path):
    path = str(tmp_path / "s.json")
    ours = Contact("tcp://a:1", created=1.0)
    write_scheduler_file(path, Contact("tcp://b:2", created=2.0))
    remove_scheduler_file(path, ours)
    assert os.path.exists(path)
    write_scheduler_file(path, ours)
    remove_scheduler_file(path, ours)
    assert not os.path.exists(path)
