"""Clients from outside the job: a plain ``Client(scheduler_file=F)`` speaks the job's TLS.

A secure job writes its scheduler address into the scheduler file as ``dask-batch-tls://h:p``
and its client credentials into a 0600 file of the user's state directory. distributed finds
this scheme through the ``distributed.comm.backends`` entry point (``batch_tls``): its
connector loads the credentials of that address and hands over to distributed's TLS connector.
This module does not import distributed: the runner uses it before MPI_Init. A process of
another user cannot read the file (nor find it in its own state directory) and is refused,
and the scheduler refuses any TLS peer without the job's certificate anyway.

Where dask-batch is not installed, distributed says ``unknown address scheme
'dask-batch-tls'``: install dask-batch there, or pass ``security=`` with the job's certificate.
"""

from __future__ import annotations

import json
import os
import re
import stat

from .errors import BatchError
from .files import write_private_json

SCHEME = "dask-batch-tls"
_PREFIX = f"{SCHEME}://"


class OutsideError(BatchError, RuntimeError):
    """An outside client cannot reach the job: no scheduler file, no readable credentials."""


# ---------------------------------------------------------------- addresses


def outside_address(address: str) -> str:
    """The address the scheduler file shows: ``tls://`` becomes ``dask-batch-tls://``."""
    return _PREFIX + address[len("tls://"):] if address.startswith("tls://") else address


def inside_address(address: str) -> str:
    """The real address behind an outside one (what ranks and add-on workers connect to)."""
    return "tls://" + address[len(_PREFIX):] if address.startswith(_PREFIX) else address


# ---------------------------------------------------------------- the state file


def state_dir() -> str:
    """$DASK_BATCH_STATE_DIR, else $XDG_STATE_HOME/dask-batch, else ~/.local/state/dask-batch."""
    explicit = os.environ.get("DASK_BATCH_STATE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "dask-batch")


def state_file(address: str) -> str:
    """The credentials file of one scheduler address (``tls://`` or ``dask-batch-tls://``)."""
    loc = inside_address(address)[len("tls://"):]
    return os.path.join(state_dir(), re.sub(r"[^A-Za-z0-9.-]", "_", loc) + ".json")


def write_state(address: str, creds: dict[str, str], scheduler_file: str | None) -> str:
    """Write the client credentials of ``address`` atomically, mode 0600, in a 0700 directory."""
    directory = state_dir()
    os.makedirs(directory, mode=0o700, exist_ok=True)
    st = os.stat(directory)
    if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(directory, 0o700)  # made by something with a looser umask
    path = state_file(address)
    data = {"address": inside_address(address), "scheduler_file": scheduler_file,
            "creds": {k: creds[k] for k in ("ca", "cert", "key")}}
    write_private_json(path, data)
    return path


def remove_state(address: str) -> None:
    """Remove the credentials of ``address`` if they are there (the job has ended)."""
    try:
        os.unlink(state_file(address))
    except OSError:
        pass


def read_state(address: str) -> dict[str, str]:
    """The client credentials of ``address``; OutsideError naming the fix if there are none."""
    path = state_file(address)
    fix = "connect with dask_batch.connect(SCHEDULER_FILE)"
    try:
        with open(path) as f:
            st = os.fstat(f.fileno())
            data = json.load(f)
    except (FileNotFoundError, NotADirectoryError):
        raise OutsideError(
            f"no dask-batch credentials for {outside_address(address)} at {path}: the job has "
            "ended, or its scheduler does not see this directory (set DASK_BATCH_STATE_DIR to "
            f"one that both see), or {fix}") from None
    except PermissionError:
        raise OutsideError(
            f"cannot read the credentials file {path}: only the user who started the job can "
            "connect to it") from None
    except (OSError, ValueError) as e:
        raise OutsideError(f"credentials file {path} is unreadable: {e}; {fix}") from None
    if st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise OutsideError(f"refusing credentials file {path}: it is not yours alone "
                           f"(uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):o})")
    if data.get("address") != inside_address(address):
        raise OutsideError(f"credentials file {path} is for {data.get('address')}, not "
                           f"{address}; {fix}")
    return data["creds"]
