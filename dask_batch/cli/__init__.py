"""The ``dask-batch`` command: parse, then call the library. Defaults come from dask config."""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

import click

from .. import __version__, report
from . import submit
from .lab import lab
from .options import BadInput, cluster_options, env_rank, handle_errors, runner_options
from .run import run


class OncePerJobGroup(click.Group):
    """click's usage errors as one line, printed by rank 0 only: every rank of the job parses
    the same command line, and N copies of a usage block are not news."""

    def main(self, args: Any = None, *rest: Any, **kwargs: Any) -> Any:
        args = self.address_argument(sys.argv[1:] if args is None else list(args))
        if kwargs.get("standalone_mode", True) is False:
            return super().main(args, *rest, **kwargs)
        try:
            code = super().main(args, *rest, standalone_mode=False, **kwargs)
        except click.ClickException as e:
            if not env_rank():
                hint = "" if isinstance(e, BadInput) else " (dask-batch --help)"
                report.error(f"{e.format_message()}{hint}")
            sys.exit(e.exit_code)
        except click.Abort:
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


    def address_argument(self, args: list[str]) -> list[str]:
        """dask-mpi's positional SCHEDULER_ADDRESS (``dask-mpi tcp://h:8786 --no-scheduler``)
        as ``--scheduler-address``: a group with commands cannot take a positional argument."""
        takes_value = {o for p in self.params if isinstance(p, click.Option)
                       and not p.is_flag and not p.count for o in p.opts}
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == "--" or arg in self.commands:
                break
            if arg.startswith("-"):
                i += 2 if arg in takes_value else 1
                continue
            if "://" in arg or re.fullmatch(r"[\w.-]+:\d+", arg):
                return [*args[:i], "--scheduler-address", arg, *args[i + 1:]]
            break
        return args


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


# dask-mpi's CLI names its workers dask_mpi-<rank> (its initialize() names them <rank>, as
# `dask-batch run` and BatchRunner do): the dask-mpi-style command keeps that default
DASK_MPI_NAME = "dask_mpi"


@handle_errors
def _serve(params: dict[str, Any]) -> None:
    import dask

    from ..runner import BatchRunner

    opts = runner_options(params)
    if "name" not in opts and dask.config.get("batch.worker.name-prefix", None) is None:
        opts["name"] = DASK_MPI_NAME
    if "worker_class" in opts and "nanny" not in opts:
        # dask-mpi's --worker-class is what each worker rank runs (its default is
        # distributed.Nanny; distributed.Worker is its way to say no nanny); --nanny wraps it
        opts["nanny"] = False
    runner = BatchRunner(client=False, **opts)
    runner.start()  # serves, then exits the process


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--interface", type=str, default=None, help="Interface to check.")
@click.option("--mpi", "use_mpi", is_flag=True,
              help="Ask MPI too (MPI_Init, as a job does): node index under hydra or mpirun.")
@handle_errors
def info(as_json: bool, interface: str | None, use_mpi: bool) -> None:
    """Show what this process detected: launcher, rank, node, threads, memory, GPUs."""
    from ..info import collect, render

    data = collect(os.environ, interface=interface, use_mpi=use_mpi)
    click.echo(json.dumps(data, indent=2, default=str) if as_json else render(data))


for _command in (run, lab, *submit.commands):
    main.add_command(_command)
