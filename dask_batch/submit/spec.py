"""One job spec for add-on worker jobs, with unit parsing and pool resolution.

A ``JobSpec`` is frozen and describes one pool: what every job of it asks the batch system for
and how its workers start. Values come from (highest first) keyword arguments / CLI flags, the
pool (``batch.pools.<name>`` or a pools YAML file), then ``batch.submit.*``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

import dask.config

from ..errors import BatchError
from ..settings import as_bool, json_object  # (importing settings loads the defaults)
from ..units import parse_duration, parse_memory


class SpecError(BatchError, ValueError):
    """A job spec that cannot be rendered: unknown key, bad unit, missing walltime."""


@dataclass(frozen=True)
class JobSpec:
    """What one add-on job asks for (all jobs of one pool are alike)."""

    walltime: int  # seconds; required: no hidden default (dask-jobqueue #500)
    cores: int = 1
    processes: int = 1  # worker processes per job
    nthreads: int | None = None  # per worker; None = cores // processes
    memory: int | None = None  # bytes per job; None = ask the system for nothing
    queue: str | None = None
    account: str | None = None
    gpus: int = 0
    job_name: str = "dask-worker"
    prologue: tuple[str, ...] = ()  # set-up lines, e.g. "module load python"
    extra_directives: tuple[str, ...] = ()  # appended verbatim after ours
    skip_directives: tuple[str, ...] = ()  # drop generated directives containing these
    local_directory: str | None = None
    log_directory: str | None = None
    interface: str | None = None
    protocol: str | None = None
    resources: tuple[tuple[str, float], ...] = ()  # Dask resource tags per worker
    nanny: bool = True
    lifetime_margin: int = 300  # seconds before walltime that a worker retires
    lifetime_stagger: int | None = None  # None = a quarter of the margin
    death_timeout: int = 60
    array: bool = True
    python: str = field(default_factory=lambda: sys.executable)
    shebang: str = "#!/usr/bin/env bash"  # the job script's first line; the script is bash
    worker_options: str = ""  # JSON object: more Worker/Nanny keyword arguments
    submit_args: tuple[str, ...] = ()  # more arguments of the submit command, before the script
    cancel_args: tuple[str, ...] = ()  # more arguments of the cancel command (HTCondor: and of
    # its status queries, which take the same -name/-pool)
    pool: str | None = None

    @property
    def threads(self) -> int:
        return self.nthreads or max(1, self.cores // self.processes)

    @property
    def worker_memory(self) -> int | None:
        return None if self.memory is None else self.memory // self.processes

    @property
    def lifetime(self) -> int:
        """Worker lifetime: walltime minus the margin (never below a minute)."""
        return max(60, self.walltime - self.lifetime_margin)

    @property
    def stagger(self) -> int:
        if self.lifetime_stagger is not None:
            return self.lifetime_stagger
        return min(self.lifetime_margin // 4, self.lifetime // 10)

    @property
    def name_prefix(self) -> str:
        return f"{self.job_name}-{self.pool}" if self.pool else self.job_name


KEYS = tuple(f.name for f in fields(JobSpec))


# ---------------------------------------------------------------- units


# ---------------------------------------------------------------- resolution


def _norm(key: str) -> str:
    return key.replace("-", "_")


def _coerce(key: str, value: Any) -> Any:
    if key == "walltime":
        return parse_duration(value, "walltime")
    if key == "memory":
        return None if value is None else parse_memory(value, "memory")
    if key in ("prologue", "extra_directives", "skip_directives", "submit_args", "cancel_args"):
        if isinstance(value, str):
            return (value,)
        return tuple(str(v) for v in value or ())
    if key == "resources":
        items = value.items() if isinstance(value, Mapping) else (value or ())
        return tuple(sorted((str(k), float(v)) for k, v in items))
    if key in ("cores", "processes", "gpus", "lifetime_margin", "death_timeout"):
        n = int(value)
        if n < (1 if key in ("cores", "processes") else 0):
            raise SpecError(f"{key}={value!r} is too small")
        return n
    if key in ("nthreads", "lifetime_stagger"):
        return None if value is None else int(value)
    if key in ("nanny", "array"):
        return as_bool(value, f"submit.{key}")
    if key == "shebang":
        return _shebang(value)
    if key == "worker_options":
        return _worker_options(value)
    return value


def _shebang(value: Any) -> str:
    text = str(value).strip()
    if not text.startswith("#!") or "bash" not in text or "\n" in text:
        raise SpecError(f"shebang={value!r}: the job script is bash, so its first line must run "
                        "bash, e.g. '#!/bin/bash -l'")
    return text


def _worker_options(value: Any) -> str:
    """Extra Worker/Nanny keyword arguments as canonical JSON text ("" for none)."""
    import json

    try:
        value = json_object(dict(value) if isinstance(value, Mapping) else value,
                            "worker_options")
        return json.dumps(value, sort_keys=True) if value else ""
    except (TypeError, ValueError) as e:
        raise SpecError(str(e)) from e


def check_keys(options: Mapping[str, Any], where: str) -> None:
    unknown = sorted(k for k in options if _norm(k) not in KEYS)
    if unknown:
        raise SpecError(
            f"unknown job spec key(s) {', '.join(unknown)} in {where}; "
            f"valid keys: {', '.join(KEYS)}"
        )


def load_pools(path: str | None = None) -> dict[str, dict[str, Any]]:
    """Named pools: ``batch.pools`` updated by a YAML file ``{name: {key: value}}``."""
    pools = dict(dask.config.get("batch.pools", default={}) or {})
    if path:
        import yaml

        try:
            with open(path) as f:
                data = yaml.safe_load(f) or {}
        except OSError as e:
            raise SpecError(f"cannot read pools file {path}: {e.strerror}") from e
        data = data.get("pools", data) if isinstance(data, dict) else data
        if not isinstance(data, dict):
            raise SpecError(f"pools file {path}: expected a mapping of pool name to job spec")
        pools.update(data)
    return pools


def resolve_spec(
    pool: str | None = None, pools_file: str | None = None,
    pools: dict[str, dict[str, Any]] | None = None, **options: Any
) -> JobSpec:
    """Merge ``batch.submit`` < pool < ``options`` (None values ignored) into a JobSpec; the
    pool is one of ``batch.pools``, ``pools_file`` and ``pools`` (given here, winning)."""
    check_keys(options, "the arguments")
    merged: dict[str, Any] = {}
    defaults = dict(dask.config.get("batch.submit", default={}) or {})
    for k, v in defaults.items():  # config also holds non-spec keys (system, timeout, ...)
        if _norm(k) in KEYS:
            merged[_norm(k)] = v
    if pool is not None:
        pools = {**load_pools(pools_file), **(pools or {})}
        if pool not in pools:
            known = ", ".join(sorted(pools)) or "none defined"
            raise SpecError(f"unknown pool {pool!r} (pools: {known})")
        check_keys(pools[pool] or {}, f"pool {pool!r}")
        merged.update({_norm(k): v for k, v in (pools[pool] or {}).items()})
        merged["pool"] = pool
    merged.update({_norm(k): v for k, v in options.items() if v is not None})
    if merged.get("walltime") is None:
        raise SpecError(
            "no walltime: pass --walltime HH:MM:SS (or set batch.submit.walltime / the pool's "
            "walltime); there is no hidden default"
        )
    if merged.get("python") is None:
        merged.pop("python", None)
    try:
        spec = JobSpec(**{k: _coerce(k, v) for k, v in merged.items()})
    except (TypeError, ValueError) as e:
        if isinstance(e, SpecError):
            raise
        raise SpecError(f"bad job spec: {e}") from e
    if spec.processes > spec.cores:
        raise SpecError(f"processes={spec.processes} exceeds cores={spec.cores}")
    return with_gpus_resource(spec)


def with_gpus_resource(spec: JobSpec) -> JobSpec:
    """GPU jobs advertise a ``GPU`` resource per worker unless the pool names its own."""
    if spec.gpus and not any(k == "GPU" for k, _ in spec.resources):
        per = spec.gpus / spec.processes
        return replace(spec, resources=tuple(sorted((*spec.resources, ("GPU", per)))))
    return spec
