"""How a user on a laptop or login node reaches a service on a compute node: the ssh tunnel
command to print, and whether the dashboard has anything to show."""

from __future__ import annotations

import importlib.util
import ipaddress
import os
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit


def login_host(environ: Mapping[str, str]) -> str | None:
    """The host the job was submitted from (where a laptop's ssh lands first), if known.

    A batch server that took the submission over loopback may name it ``localhost`` (seen
    with Grid Engine): no use to a laptop, so unknown.

    >>> login_host({"SGE_O_HOST": "localhost"}) is None
    True
    """
    for name in ("SLURM_SUBMIT_HOST", "PBS_O_HOST", "SGE_O_HOST", "LSB_SUB_HOST"):
        host = environ.get(name)
        if host and not _is_loopback(host):
            return host
    return None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def tunnel_command(urls: Sequence[str], node: str, environ: Mapping[str, str] | None = None) -> str:
    """The ``ssh -N -L`` command that makes ``urls`` (served on ``node``) reach a laptop.

    Each remote port is forwarded to the same local port. Through the submit host when the job
    knows one; a service bound to loopback is only reachable from its own node, so then the
    login host is a jump host (``-J``).

    >>> tunnel_command(["http://10.1.0.7:8888/lab"], "n7", {"SLURM_SUBMIT_HOST": "login1",
    ...                                                     "USER": "ada"})
    'ssh -N -L 8888:10.1.0.7:8888 ada@login1'
    >>> tunnel_command(["http://127.0.0.1:8888/lab", "http://127.0.0.1:8787/status"], "n7",
    ...                {"SLURM_SUBMIT_HOST": "login1", "USER": "ada"})
    'ssh -N -L 8888:127.0.0.1:8888 -L 8787:127.0.0.1:8787 -J ada@login1 ada@n7'
    >>> tunnel_command(["http://127.0.0.1:8888/lab"], "ws3", {})
    'ssh -N -L 8888:127.0.0.1:8888 ws3'
    """
    environ = os.environ if environ is None else environ
    parts = [urlsplit(u) for u in urls]
    forwards = " ".join(f"-L {p.port}:{p.hostname}:{p.port}" for p in parts)
    user = environ.get("USER") or environ.get("LOGNAME")
    at = f"{user}@" if user else ""
    login = login_host(environ)
    if not login or login.split(".")[0] == node.split(".")[0]:
        dest = f"{at}{node}"
    elif any(_is_loopback(p.hostname or "") for p in parts):
        dest = f"-J {at}{login} {at}{node}"
    else:
        dest = f"{at}{login}"
    return f"ssh -N {forwards} {dest}"


def local_url(url: str) -> str:
    """The URL as seen on the laptop once the tunnel runs (same port, localhost)."""
    p = urlsplit(url)
    return p._replace(netloc=f"localhost:{p.port}").geturl()


def dashboard_ready() -> bool:
    """The scheduler serves the dashboard's plots only when bokeh is installed."""
    return importlib.util.find_spec("bokeh") is not None
