"""Which network and protocol: interface choice (psutil) and tcp/tls/ucx."""

from __future__ import annotations

import importlib.util
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
    proto = (protocol or ("tls" if secure else "tcp")).lower().removesuffix("://")
    if proto not in PROTOCOLS:
        raise TransportError(f"unknown protocol {proto!r}: use one of {', '.join(PROTOCOLS)}")
    if proto == "ucx" and importlib.util.find_spec("distributed_ucxx") is None:
        raise TransportError(
            "protocol 'ucx' needs distributed-ucxx: pip install 'dask-batch[ucx]'"
        )
    if secure and proto == "tcp":
        raise TransportError("protocol 'tcp' is not encrypted: use 'tls', or --insecure")
    return proto
