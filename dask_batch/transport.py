"""Which network and protocol: interface choice (psutil) and tcp/tls/ucx."""

from __future__ import annotations

import importlib.util
import os
import socket

from .errors import BatchError

# Fast fabrics first: InfiniBand, HPE Slingshot, Omni-Path, Cray Aries, then Ethernet.
FAST_PREFIXES = ("ib", "hsn", "hfi", "ipogif", "opa")
PROTOCOLS = ("tcp", "tls", "ucx", "inproc")


class TransportError(BatchError, ValueError):
    """An interface or protocol that cannot be used here."""

    every_rank = True


def interfaces() -> dict[str, str]:
    """Up interfaces with an IPv4 address: name -> address."""
    import psutil

    stats = psutil.net_if_stats()
    found: dict[str, str] = {}
    for name, addrs in psutil.net_if_addrs().items():
        if name in stats and not stats[name].isup:
            continue
        for a in addrs:
            if a.family == socket.AF_INET:
                found[name] = a.address
                break
    return found


def choose_interface(
    wanted: str | None, available: dict[str, str], single_node: bool
) -> str | None:
    """The interface name to use, or None to let distributed bind to its default.

    An explicit name must exist. Otherwise: a fast fabric if the node has one, else the first
    non-loopback interface; loopback only when every rank runs on this node.
    """
    if wanted:
        if wanted not in available:
            names = ", ".join(f"{n} ({a})" for n, a in sorted(available.items())) or "none"
            raise TransportError(f"no interface named {wanted!r} here; interfaces: {names}")
        return wanted
    names = sorted(n for n, a in available.items() if not a.startswith("127."))
    for prefix in FAST_PREFIXES:
        for name in names:
            if name.startswith(prefix):
                return name
    if single_node and "lo" in available:
        return "lo"
    # skip virtual bridges and container links when a physical-looking interface exists
    plain = [n for n in names if not n.startswith(("docker", "veth", "virbr", "br-", "cni"))]
    return (plain or names or [None])[0]


def choose_protocol(protocol: str | None, secure: bool) -> str:
    """The comm protocol: ``tls`` when secure, else ``tcp``, unless one is named.

    ``ucx`` needs distributed-ucxx and ``--insecure`` (distributed's UCX comms have no TLS);
    when both hold, UCX's libraries are loaded here, so call this before MPI starts (see
    :func:`load_ucx`).
    """
    proto = (protocol or ("tls" if secure else "tcp")).lower().removesuffix("://")
    if proto not in PROTOCOLS:
        raise TransportError(f"unknown protocol {proto!r}: use one of {', '.join(PROTOCOLS)}")
    if proto == "ucx":
        problems = []
        if secure:  # say so, rather than silently dropping the job's TLS
            problems.append("it has no TLS in distributed, so add --insecure "
                            "(batch.secure: false) or use 'tls'")
        if importlib.util.find_spec("distributed_ucxx") is None:
            problems.append("it needs distributed-ucxx: pip install 'dask-batch[ucx]'")
        if problems:
            raise TransportError(f"protocol 'ucx': {'; '.join(problems)}")
        load_ucx()
    if secure and proto == "tcp":
        raise TransportError("protocol 'tcp' is not encrypted: use 'tls', or --insecure")
    return proto


_ucx_loaded = False


def _mapped(name: str) -> list[str]:
    """Paths of the loaded shared libraries whose file name starts with ``name``."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "/" + name in line}
    except OSError:
        return []
    return sorted(p for p in paths if os.path.basename(p).startswith(name))


def load_ucx() -> None:
    """Load the UCX libraries of distributed-ucxx's ``libucx`` wheel, once.

    Must run before MPI starts: the MPICH wheel bundles its own, older UCX under the same
    sonames (``libucs.so.0``), and whichever loads first serves both. MPICH works with the
    newer UCX of ``libucx``; ``libucx`` fails with the older one ("undefined symbol").
    ``BatchRunner`` calls this (through :func:`choose_protocol`) before ``MPI_Init``; a script
    that imports ``mpi4py.MPI`` itself must call it first.
    """
    global _ucx_loaded
    if _ucx_loaded:
        return
    # ucxx sets UCX_MEMTYPE_CACHE, which UCX >= 1.21 no longer knows and warns about per rank
    os.environ.setdefault("UCX_WARN_UNUSED_ENV_VARS", "n")
    before = _mapped("libucs.so")
    try:
        import libucx
    except ImportError:  # a build of ucxx against a site UCX, without the libucx wheel
        _ucx_loaded = True
        return
    try:
        libucx.load_library()
    except OSError as e:
        if before:
            raise TransportError(
                f"protocol 'ucx': this process loaded another UCX first ({before[0]}, e.g. "
                "MPI's), which distributed-ucxx cannot use: load UCX before MPI starts "
                "(dask_batch.transport.load_ucx() before `from mpi4py import MPI`), or "
                "run with --no-mpi"
            ) from None
        raise TransportError(f"protocol 'ucx': cannot load UCX: {e}") from None
    _ucx_loaded = True
