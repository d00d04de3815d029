"""dask-jobqueue keywords that change one generated directive or the worker's options.

* ``worker_extra_args`` (``extra``): dask-worker's flags, each mapped onto a job spec key or a
  Worker/Nanny keyword argument (``WORKER_FLAGS``); a flag with no meaning here is refused.
* ``job_cpu``/``job_mem`` (Slurm), ``ncpus``/``mem``/``lsf_units`` (LSF),
  ``memory_per_core_property_name`` (OAR): the directive dask-jobqueue writes for them
  replaces the one generated from ``cores``/``memory`` (``DIRECTIVES``).
"""

from __future__ import annotations

import math
import shlex
import warnings
from collections.abc import Callable
from typing import Any

from ..units import parse_ports

# dask-worker flag -> (where its value goes: a job spec key, or "option:<Worker keyword>",
# whether it takes a value). The value is dask-worker's text; the worker parses it as
# dask-worker would (times, sizes).
WORKER_FLAGS: dict[str, tuple[str, bool]] = {
    "--nthreads": ("nthreads", True),
    "--memory-limit": ("option:memory_limit", True),
    "--resources": ("resources", True),
    "--lifetime": ("option:lifetime", True),
    "--lifetime-stagger": ("option:lifetime_stagger", True),
    "--lifetime-restart": ("option:lifetime_restart", False),
    "--no-lifetime-restart": ("option:lifetime_restart", False),
    "--local-directory": ("local_directory", True),
    "--interface": ("interface", True),
    "--protocol": ("protocol", True),
    "--death-timeout": ("death_timeout", True),
    "--nanny": ("nanny", False),
    "--no-nanny": ("nanny", False),
    "--preload": ("option:preload", True),
    "--dashboard-address": ("option:dashboard_address", True),
    # where the job's servers listen: ports (or ranges, one port a worker process) and host
    "--worker-port": ("option:worker_port", True),
    "--nanny-port": ("option:nanny_port", True),
    "--host": ("option:host", True),
    "--contact-address": ("option:contact_address", True),
    "--dashboard": ("option:dashboard", False),
    "--no-dashboard": ("option:dashboard", False),
}
_OFF = ("--no-nanny", "--no-dashboard", "--no-lifetime-restart")


def worker_extra_args(args: list[str] | tuple[str, ...] | str,
                      keyword: str = "worker_extra_args") -> dict[str, Any]:
    """Job spec keys (``worker_options`` among them) for dask-worker's flags ``args``
    (``keyword``: the name the user gave them, for the error)."""
    words = shlex.split(args) if isinstance(args, str) else [str(a) for a in args]
    spec: dict[str, Any] = {}
    options: dict[str, Any] = {}
    i = 0
    while i < len(words):
        flag, _, inline = words[i].partition("=")
        if flag not in WORKER_FLAGS:
            raise TypeError(f"{keyword}={list(words)!r} is not supported: {flag} is not "
                            f"a dask-worker flag the workers take here (known: "
                            f"{', '.join(sorted(WORKER_FLAGS))})")
        target, takes_value = WORKER_FLAGS[flag]
        if takes_value and not inline:
            if i + 1 >= len(words):
                raise TypeError(f"{keyword}: {flag} needs a value")
            inline, i = words[i + 1], i + 1
        value: Any = inline if takes_value else flag not in _OFF
        if target == "resources":
            value = _resources(value)
        elif target in ("option:worker_port", "option:nanny_port"):
            try:
                parse_ports(value, flag)
            except ValueError:
                raise TypeError(f"{keyword}: {flag} takes a port or a range such as "
                                f"8000:8010, not {value!r}") from None
        if target.startswith("option:"):
            key = target.removeprefix("option:")
            options[key] = [*options.get(key, []), value] if key == "preload" else value
        else:
            spec[target] = value
        i += 1
    if options:
        spec["worker_options"] = options
    return spec


def _resources(text: str) -> dict[str, float]:
    """dask-worker's ``--resources "GPU=2 MEM=10e9"`` (commas too)."""
    out = {}
    for item in text.replace(",", " ").split():
        key, sep, value = item.partition("=")
        try:
            out[key] = float(value)
        except ValueError:
            sep = ""
        if not sep or not key:
            raise TypeError(f"worker_extra_args: --resources {text!r}: expected NAME=NUMBER")
    return out


def _lsf_memory(nbytes: int, units: str | None) -> str:
    """``-M`` in ``lsf_units`` as dask-jobqueue writes it (a bare number of 1000-based units,
    rounded up); with no unit, an explicit MB (LSF >= 10.1.0.2) of MiB, as for memory."""
    if not units:
        return f"{math.ceil(nbytes / 2**20)}MB"
    power = {"kb": 1, "mb": 2, "gb": 3, "tb": 4, "pb": 5, "eb": 6, "zb": 7}.get(units.lower())
    if power is None:
        raise ValueError(f"lsf_units={units!r}: expected one of KB, MB, GB, TB, PB, EB, ZB")
    return str(math.ceil(nbytes / 1000 ** power))


def _parse(memory: Any) -> int:
    from ..units import parse_memory

    return parse_memory(memory) if isinstance(memory, str) else int(memory)


# keyword -> (system, the generated directive it replaces (its start), its directive)
DIRECTIVES: dict[str, tuple[str, str, Callable[[Any, dict[str, Any]], str]]] = {
    "job_cpu": ("slurm", "--cpus-per-task=", lambda x, v: f"--cpus-per-task={int(x)}"),
    "job_mem": ("slurm", "--mem=", lambda x, v: f"--mem={x}"),
    "ncpus": ("lsf", "-n ", lambda x, v: f"-n {int(x)}"),
    "mem": ("lsf", "-M ", lambda x, v: f"-M {_lsf_memory(_parse(x), v.get('lsf_units'))}"),
}


def directive_keywords(system: str, v: dict[str, Any],
                       user: list[str]) -> tuple[list[str], list[str]]:
    """(directives to add after the user's ``user``, generated ones to skip) for the keywords
    of ``DIRECTIVES``, LSF's ``lsf_units`` and OAR's ``memory_per_core_property_name``."""
    extra: list[str] = []
    skip: list[str] = []
    v = dict(v)
    if system == "lsf" and v.get("lsf_units") and v.get("mem") is None:
        v["mem"] = v["memory"]  # the unit alone changes how -M is written
    for key, (where, replaced, write) in DIRECTIVES.items():
        if where == system and v.get(key) is not None:
            extra.append(write(v[key], v))
            skip.append(replaced)
    if system == "oar":
        extra += _oar_memory(v, user)
    return extra, skip


def _oar_memory(v: dict[str, Any], user: list[str]) -> list[str]:
    """OAR has no memory request, only node properties: as dask-jobqueue, ``-p NAME>=MiB``
    per core (joined to the user's last ``-p``: OAR reads only the last one)."""
    name = v.get("memory_per_core_property_name")
    if name is None:
        warnings.warn("OAR Job memory reserved resources will not be set according to Dask "
                      "Worker memory limit, which can cause crashes. See "
                      "`memory_per_core_property_name` documentation for more details",
                      UserWarning, stacklevel=5)
        return []
    if name == "not_applicable":
        return []
    per_core = math.ceil(_parse(v["memory"]) / int(v["cores"]) / 2**20)
    last = next((d[3:] for d in reversed(user) if d.startswith("-p ")), None)
    return [f"-p '{last} AND {name}>={per_core}'" if last else f"-p {name}>={per_core}"]
