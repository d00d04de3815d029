"""How ranks meet: rank 0 publishes the scheduler's contact, the others wait for it.

Three ways, each with a timeout on every wait:

* MPI: point-to-point messages from rank 0, received by polling a matched probe so waiting
  ranks do not spin on a CPU that the importing ranks need; no collective after start-up.
* a scheduler file on a shared filesystem, named after the job, written atomically (temp file
  + rename) with mode 0600; a reader takes only a file of *its* job and refuses one that others
  can write.
* an explicit address (joining a scheduler started elsewhere).
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import BatchError
from .files import write_private_json
from .outside import (
    SCHEME,
    inside_address,
    outside_address,
    read_state,
    remove_state,
    write_state,
)
from .placement import Placement
from .settings import Settings

logger = logging.getLogger("dask_batch")

TAG = 0xDA5C  # MPI tag of the contact message


class RendezvousError(BatchError, RuntimeError):
    """The ranks could not meet: timeout, a foreign or unsafe scheduler file, a bad address."""


@dataclass(frozen=True)
class Contact:
    """Everything a rank needs to join the scheduler."""

    address: str
    job: str | None = None
    creds: dict[str, str] | None = None
    dashboard: str | None = None
    created: float = field(default_factory=time.time)
    extra: dict[str, Any] = field(default_factory=dict)
    # written by another tool (`dask scheduler --scheduler-file`): no job watch to link to
    foreign: bool = False


def _backoff(start: float = 0.002, cap: float = 0.05):
    delay = start
    while True:
        yield delay
        delay = min(cap, delay * 1.5)


# ---------------------------------------------------------------- scheduler file


def check_writable(path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        raise RendezvousError(f"cannot write scheduler file {path}: {directory} is not writable")


def write_scheduler_file(path: str, contact: Contact) -> None:
    """Write atomically with mode 0600: readers see the old file or the whole new one."""
    check_writable(path)
    # distributed's own keys, so a plain `Client(scheduler_file=...)` reads it too; a TLS
    # address in the dask-batch-tls scheme, whose connector finds the job's credentials
    data = {
        "type": "Scheduler",
        "address": outside_address(contact.address) if contact.creds else contact.address,
        "services": {"dashboard": contact.dashboard} if contact.dashboard else {},
        "started": contact.created,
        "workers": {},
        "dask_batch": {k: v for k, v in asdict(contact).items() if k != "address"},
    }
    write_private_json(path, data, fsync=True)


def check_file_safe(path: str) -> None:
    """Refuse a scheduler file that others could have written: it says where to send code."""
    st = os.stat(path)
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise RendezvousError(
            f"scheduler file {path} is writable by others (mode {stat.S_IMODE(st.st_mode):o}): "
            f"refusing it; run 'chmod 600 {path}'"
        )
    if hasattr(os, "getuid") and st.st_uid not in (os.getuid(), 0):
        raise RendezvousError(f"scheduler file {path} belongs to another user (uid {st.st_uid})")


def read_scheduler_file(path: str) -> Contact:
    """Parse a scheduler file (ours or distributed's own format)."""
    check_file_safe(path)
    try:
        with open(path) as f:
            data = json.load(f)
        address = data["address"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RendezvousError(f"scheduler file {path} is corrupt: {e}") from e
    ours = data.get("dask_batch") or {}
    return Contact(
        address=inside_address(address),
        job=ours.get("job"),
        creds=ours.get("creds"),
        dashboard=ours.get("dashboard"),
        created=float(ours.get("created") or data.get("started") or 0),
        extra=ours.get("extra") or {},
        foreign=not ours,
    )


def wait_for_scheduler_file(
    path: str,
    timeout: float,
    job: str | None,
    not_before: float | None = None,
    probe_before: float | None = None,
) -> Contact:
    """Wait for the scheduler file of this job.

    ``job`` is the stamp the file must carry; None accepts any job (joining a cluster started
    elsewhere), unless ``not_before`` is given: then the file must be newer than that time.
    Without a stamp, a file older than ``probe_before`` (this process's start) may be a dead
    job's: it is taken only if its address does not refuse connections.
    A file of another job, or a corrupt one, is waited past: rank 0 replaces it atomically.
    """
    deadline = time.monotonic() + timeout
    why = "it does not exist"
    for delay in _backoff():
        if os.path.exists(path):
            try:
                contact = read_scheduler_file(path)
            except RendezvousError as e:
                if "corrupt" not in str(e):
                    raise  # unsafe: waiting does not help
                why = str(e)
            else:
                if job is not None and contact.job != job:
                    why = f"it belongs to job {contact.job}, not to this job {job} (stale)"
                elif job is None and not_before is not None and contact.created < not_before:
                    why = "it is older than this job (stale)"
                elif (job is None and probe_before is not None
                      and contact.created < probe_before and _refused(contact.address)):
                    # no job stamp to tell a stale file from ours: a dead address tells
                    why = f"its scheduler {contact.address} refuses connections (stale)"
                else:
                    return contact
        if time.monotonic() > deadline:
            raise RendezvousError(
                f"no scheduler file for this job at {path} after {timeout:g} s: {why}"
            )
        time.sleep(delay)
    raise AssertionError("unreachable")


def _refused(address: str) -> bool:
    """True if nothing listens at a tcp/tls ``address`` on a host that answers (a stale file).

    Only a refusal counts: a timeout or an unreachable route says nothing about staleness.
    """
    import socket

    from distributed.comm import parse_address
    from distributed.comm.addressing import parse_host_port

    try:
        scheme, loc = parse_address(address)
        if scheme not in ("tcp", "tls"):
            return False
        with socket.create_connection(parse_host_port(loc), timeout=2):
            return False
    except ConnectionRefusedError:
        return True
    except (OSError, ValueError):
        return False


def remove_scheduler_file(path: str, contact: Contact) -> None:
    """Remove the file if it is still ours (a later job may have replaced it)."""
    try:
        if read_scheduler_file(path).created == contact.created:
            os.unlink(path)
    except (OSError, RendezvousError):
        pass


# ---------------------------------------------------------------- MPI


def mpi_publish(comm: Any, contact: Contact, root: int = 0) -> None:
    """Send the contact to every other rank (non-blocking sends, completed before return)."""
    payload = asdict(contact)
    requests = [
        comm.isend(payload, dest=r, tag=TAG) for r in range(comm.Get_size()) if r != root
    ]
    for req in requests:
        req.wait()


def mpi_wait(comm: Any, timeout: float, root: int = 0) -> Contact:
    """Receive the contact from ``root`` without spinning a CPU, with a timeout."""
    deadline = time.monotonic() + timeout
    # a probe is a call into the MPI library's progress engine, no file system: a 10 ms cap
    # costs nothing measurable, and the contact is taken 5 ms after it arrives on average
    # (the file's 50 ms cap, here, cost the job's start-up 25 ms on average, up to 50)
    for delay in _backoff(cap=0.01):
        msg = comm.improbe(source=root, tag=TAG)
        if msg is not None:
            return Contact(**msg.recv())
        if time.monotonic() > deadline:
            raise RendezvousError(
                f"no scheduler address from rank {root} after {timeout:g} s "
                "(did rank 0 fail to start? see its error above)"
            )
        time.sleep(delay)
    raise AssertionError("unreachable")


# ---------------------------------------------------------------- how this job's ranks meet


def meet(s: Settings, method: str, comm: Any, path: str | None, placement: Placement) -> Contact:
    """The scheduler's contact, as this rank learns it (or the error rank 0 published)."""
    if method == "address":
        try:
            contact = address_contact(str(s.scheduler_address), s.secure)
        except BatchError as e:
            e.every_rank = True  # the same on every rank: said once, by rank 0
            raise
    elif method == "mpi":
        contact = mpi_wait(comm, s.rendezvous_timeout, root=s.scheduler_rank)
    else:
        assert path is not None
        joining = not s.scheduler  # --no-scheduler: the file belongs to another job
        stamp = None if joining else placement.job_stamp
        started = None if joining or stamp else _process_start()
        contact = wait_for_scheduler_file(path, s.rendezvous_timeout, stamp,
                                          None if started is None else started - 10.0, started)
    if contact.extra.get("error"):
        err = RendezvousError(f"rank 0 could not start the scheduler: {contact.extra['error']}")
        err.every_rank = True  # rank 0 has reported it already
        raise err
    return contact


def address_contact(address: str, secure: bool) -> Contact:
    """Joining by address (dask-mpi's positional SCHEDULER_ADDRESS): over TLS the job's
    credentials come from this user's state directory, as for an outside client; a plain
    TCP scheduler only with --insecure (a secure job's workers never speak plain TCP)."""
    scheme = address.split("://", 1)[0] if "://" in address else "tcp"
    if scheme in ("tls", SCHEME):
        return Contact(address=inside_address(address), creds=read_state(address))
    if not secure or scheme == "ucx":
        return Contact(address=address)
    if scheme == "tcp":
        raise RendezvousError(
            f"{address} is a plain TCP scheduler and this job is secure (mutual TLS): "
            "add --insecure to join it, or join a dask-batch job by its --scheduler-file")
    raise RendezvousError(f"cannot join {address}: unknown address scheme")


def _process_start() -> float:
    import psutil

    return psutil.Process().create_time()


def publish_for_outside(contact: Contact, path: str) -> None:
    """Credentials for outside clients, before the scheduler file that points at them.

    Not fatal: the job itself does not need them (a home directory may be read-only on the
    compute nodes); outside clients then connect with ``dask_batch.connect``.
    """
    try:
        write_state(contact.address, contact.creds or {}, path)
    except OSError as e:
        logger.warning("cannot write the credentials for outside clients (%s): a plain "
                       "Client(scheduler_file=...) will not connect; use "
                       "dask_batch.connect(%r)", e, path)


def forget(path: str | None, contact: Contact | None) -> None:
    """The scheduler has ended: remove its scheduler file and outside clients' credentials."""
    if not path or contact is None or not contact.address:
        return
    remove_state(contact.address)
    remove_scheduler_file(path, contact)
