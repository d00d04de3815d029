"""The options every cluster command shares (dask-mpi's flags and ours) and their errors."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import Field, fields
from typing import Any

import click

from ..settings import Settings


class BadInput(click.ClickException):
    """A one-line error with exit code 2 (bad input, nothing started)."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"dask-batch: error: {self.format_message()}", err=True)


def setting_option(f: Field) -> Callable:
    """The click option of one Settings field, from its metadata. Its default is None: the
    value comes from dask config unless the flag is given."""
    meta = f.metadata
    decls = [*meta["flag"].split(), f.name]
    kwargs: dict[str, Any] = {"default": None, "help": meta["help"]}
    if meta.get("is_flag"):
        kwargs["is_flag"] = True
    elif "choices" in meta:
        kwargs["type"] = click.Choice(meta["choices"])
    elif "/" not in meta["flag"]:
        kwargs["type"] = int if str(f.type).startswith("int") else str
    return click.option(*decls, **kwargs)


def settings_with_flags(command: str | None = None) -> list[Field]:
    """The Settings fields with a flag on every cluster command (``command=None``) or only on
    ``command``."""
    return [f for f in fields(Settings) if f.metadata.get("flag")
            and f.metadata.get("command") == command]


EXTRA = [  # flags that are not one setting each
    click.option("--insecure", is_flag=True, default=False,
                 help="Turn off TLS (batch.secure: false): anyone who can reach the scheduler "
                 "can run code."),
    click.option("-v", "--verbose", count=True, help="More output: -v info, -vv debug."),
]


def cluster_options(f: Callable) -> Callable:
    """The dask-mpi flags, plus ours: one per Settings field that has a flag, plus EXTRA."""
    for option in reversed([*map(setting_option, settings_with_flags()), *EXTRA]):
        f = option(f)
    return f


def runner_options(params: dict[str, Any]) -> dict[str, Any]:
    """Map CLI parameters to BatchRunner options (None = leave to dask config)."""
    p = dict(params)
    verbose = p.pop("verbose", 0)
    if verbose and not p.get("log_level"):
        p["log_level"] = "debug" if verbose > 1 else "info"
    if p.pop("insecure", False):
        p["secure"] = False
    mpi = p.pop("mpi", None)
    if mpi is not None:
        p["mpi"] = "true" if mpi else "false"
    return {k: v for k, v in p.items() if v is not None}


def handle_errors(f: Callable) -> Callable:
    """Known errors: one line, exit 2 (once per job when every rank has the same one)."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..errors import BatchError
        from ..lifecycle import report_and_exit

        try:
            return f(*args, **kwargs)
        except (BatchError, ImportError, ValueError) as e:
            report_and_exit(e, env_rank())

    return wrapper


def env_rank() -> int | None:
    from ..errors import BatchError
    from ..placement import detect

    try:
        return detect(os.environ).rank
    except BatchError:
        return None


def merged(group: dict[str, Any] | None, sub: dict[str, Any]) -> dict[str, Any]:
    """Options given before the command (``dask-batch --nthreads 2 run``) and after it
    (``dask-batch run --nthreads 2``): after wins where given; flags add up."""
    out = dict(group or {})
    for key, value in sub.items():
        if key == "verbose":
            out[key] = out.get(key, 0) + value
        elif key == "insecure":
            out[key] = out.get(key, False) or value
        elif value is not None:
            out[key] = value
    return out
