"""The ``dask-batch`` command: parse, then call the library. Defaults come from dask config."""

from __future__ import annotations

import functools
import json
import os
import runpy
import sys
from collections.abc import Callable
from typing import Any

import click

from . import __version__


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
        click.option("--scheduler/--no-scheduler", "scheduler", default=True,
                     help="Start a scheduler on rank 0 [default], or add every rank as a worker "
                     "to an existing cluster (--no-scheduler --scheduler-file F)."),
        click.option("--scheduler-port", type=int, default=None,
                     help="Scheduler port. Default: a random free port."),
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
                     "(e.g. OOM). Default: batch.worker.nanny (false)."),
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
        from .errors import BatchError
        from .lifecycle import report_and_exit

        try:
            return f(*args, **kwargs)
        except (BatchError, ImportError, ValueError) as e:
            report_and_exit(e, _env_rank())

    return wrapper


def _env_rank() -> int | None:
    from .errors import BatchError
    from .placement import detect

    try:
        return detect(os.environ).rank
    except BatchError:
        return None


class OncePerJobGroup(click.Group):
    """click's usage errors as one line, printed by rank 0 only: every rank of the job parses
    the same command line, and N copies of a usage block are not news."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("standalone_mode", True) is False:
            return super().main(*args, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.ClickException as e:
            if not _env_rank():
                hint = "" if isinstance(e, BadInput) else " (dask-batch --help)"
                sys.stderr.write(f"dask-batch: error: {e.format_message()}{hint}\n")
            sys.exit(e.exit_code)
        except click.Abort:
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(name="batch", cls=OncePerJobGroup, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@cluster_options
@click.version_option(__version__, prog_name="dask-batch")
@click.pass_context
def main(ctx: click.Context, **params: Any) -> None:
    """Dask on every rank of a batch allocation.

    \b
    Without a command (dask-mpi style): rank 0 runs the scheduler, every other rank a worker.
      mpiexec -n 4 dask-batch --scheduler-file sched.json
      mpiexec -n 2 dask-batch --no-scheduler --scheduler-file sched.json   # more workers
    \b
    With a client script: rank 0 scheduler, rank 1 your script, the rest workers.
      srun -n 12 dask-batch run script.py --its-args
    """
    ctx.obj = params
    if ctx.invoked_subcommand is None:
        _serve(params)


@handle_errors
def _serve(params: dict[str, Any]) -> None:
    from .runner import BatchRunner

    opts = runner_options(params)
    runner = BatchRunner(client=False, **opts)
    runner.start()  # serves, then exits the process


@main.command(context_settings={"ignore_unknown_options": True,
                                "allow_interspersed_args": False})
@click.option("-m", "module", is_flag=True, help="Run a module (python -m style).")
@click.option("--client-on-scheduler", is_flag=True, default=None,
              help="Run the client on rank 0 next to the scheduler; every other rank works.")
@click.argument("target")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run(ctx: click.Context, module: bool, client_on_scheduler: bool | None, target: str,
        args: tuple[str, ...]) -> None:
    """Run SCRIPT (or -m MODULE) as the client on rank 1; its exit code is the job's.

    Inside the script a plain Client() connects to this job's cluster.

    \b
      srun -n 12 dask-batch run analysis.py --year 2024
      mpiexec -n 6 dask-batch run -m mypackage.pipeline
    """
    params = dict(ctx.obj or {})
    if client_on_scheduler:
        params["client_on_scheduler"] = True
    if not module and not os.path.exists(target):
        raise BadInput(f"no such script: {target}")
    runner = _start_client(params)
    code = run_client_code(target, args, module)
    runner.finish(code)
    from .lifecycle import flush_and_exit

    flush_and_exit(code)


@handle_errors
def _start_client(params: dict[str, Any]) -> Any:
    from .runner import BatchRunner

    runner = BatchRunner(**runner_options(params))
    runner.start()
    return runner


def run_client_code(target: str, args: tuple[str, ...], module: bool) -> int:
    """Run a script or module as __main__ (mpi4py.run style); return its exit code."""
    import traceback

    from .lifecycle import exit_code_of

    sys.argv = [target, *args]
    try:
        if module:
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
            runpy.run_path(target, run_name="__main__")
    except SystemExit as e:
        return exit_code_of(e)
    except BaseException as e:  # noqa: BLE001 - the user's code: report once, map to a code
        traceback.print_exc()
        return exit_code_of(e)
    return 0


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--interface", type=str, default=None, help="Interface to check.")
@click.option("--mpi", "use_mpi", is_flag=True,
              help="Ask MPI too (MPI_Init, as a job does): node index under hydra or mpirun.")
@handle_errors
def info(as_json: bool, interface: str | None, use_mpi: bool) -> None:
    """Show what this process detected: launcher, rank, node, threads, memory, GPUs."""
    from .info import collect, render

    data = collect(os.environ, interface=interface, use_mpi=use_mpi)
    click.echo(json.dumps(data, indent=2, default=str) if as_json else render(data))


def _register_optional() -> None:
    """Commands that live in their own modules (submit, lab) register here if present."""
    import importlib

    for name in ("dask_batch.submit.cli", "dask_batch.lab"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        register = getattr(module, "register", None)
        if register is not None:
            register(main)


_register_optional()
