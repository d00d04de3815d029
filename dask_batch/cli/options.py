"""The options every cluster command shares (dask-mpi's flags and ours) and their errors."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import click


class BadInput(click.ClickException):
    """A one-line error with exit code 2 (bad input, nothing started)."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"dask-batch: error: {self.format_message()}", err=True)


def cluster_options(f: Callable) -> Callable:
    """The dask-mpi flags, plus ours. Every default is None: the value comes from dask config."""
    options = [
        click.option("--scheduler-file", type=str, default=None,
                     help="Scheduler file to write (scheduler) or read (--no-scheduler). "
                     "Default: scheduler-<job>.json in the working directory when needed."),
        click.option("--scheduler-address", type=str, default=None,
                     help="Join this scheduler instead of starting one, e.g. tls://10.0.0.1:8786."),
        click.option("--scheduler/--no-scheduler", "scheduler", default=None,
                     help="Start a scheduler on rank 0 [default], or add every rank as a worker "
                     "to an existing cluster (--no-scheduler --scheduler-file F)."),
        click.option("--scheduler-port", type=int, default=None,
                     help="Scheduler port. Default: a random free port."),
        click.option("--scheduler-rank", type=int, default=None,
                     help="The rank that runs the scheduler [default: 0]."),
        click.option("--exclusive-workers/--inclusive-workers", "exclusive_workers",
                     default=None, help="Workers only on ranks of their own [default], or "
                     "also on the scheduler's (and the client's) rank, as dask-mpi's."),
        click.option("--interface", type=str, default=None,
                     help="Network interface, e.g. ib0 or eth0. Default: InfiniBand/Slingshot "
                     "when present, else the first one that is up."),
        click.option("--protocol", type=str, default=None,
                     help="tcp, tls or ucx. Default: tls (tcp with --insecure)."),
        click.option("--insecure", is_flag=True, default=False,
                     help="Turn off TLS: anyone who can reach the scheduler can run code."),
        click.option("--nthreads", type=int, default=None,
                     help="Threads per worker. Default: the rank's CPU share."),
        click.option("--memory-limit", type=str, default=None,
                     help="Memory per worker, e.g. 4GiB. Default: the node's granted memory "
                     "divided among its worker ranks."),
        click.option("--local-directory", type=str, default=None,
                     help="Worker scratch directory. Default: $TMPDIR, else /tmp."),
        click.option("--nanny/--no-nanny", "nanny", default=None,
                     help="Run each worker under a nanny that restarts it if it dies "
                     "(e.g. OOM) [default], or run the worker in the rank itself."),
        click.option("--dashboard/--no-dashboard", "dashboard", default=None,
                     help="Serve the dashboard on the scheduler [default: on]."),
        click.option("--dashboard-address", type=str, default=None,
                     help="Dashboard address. Default: :8787 (another port if taken)."),
        click.option("--name", type=str, default=None,
                     help="Worker name prefix; workers are named <name>-<rank>."),
        click.option("--worker-class", type=str, default=None,
                     help="Worker class, e.g. distributed.Nanny or dask_cuda.CUDAWorker."),
        click.option("--worker-options", type=str, default=None,
                     help='JSON dict of extra worker arguments, e.g. \'{"lifetime": "1h"}\'.'),
        click.option("--gpus", type=str, default=None,
                     help="GPUs per worker: auto (one each, by local rank) or a number."),
        click.option("--mpi/--no-mpi", "mpi", default=None,
                     help="Use MPI (mpi4py) for placement and rendezvous. Default: when mpi4py "
                     "is installed and an MPI launcher started this process."),
        click.option("--rendezvous", type=click.Choice(["auto", "mpi", "file", "address"]),
                     default=None, help="How ranks meet. Default: MPI when in use, else a file."),
        click.option("-v", "--verbose", count=True, help="More output: -v info, -vv debug."),
        click.option("--log-level", type=str, default=None,
                     help="Level for Dask's own loggers (default: warning)."),
    ]
    for option in reversed(options):
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
