"""``dask-batch run script.py``: rank 1 runs the script as the client, and ends the job."""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Callable
from typing import Any

import click

from .options import (
    BadInput,
    cluster_options,
    handle_errors,
    merged,
    runner_options,
    setting_option,
    settings_with_flags,
)


def run_only_options(f: Callable) -> Callable:
    """The settings whose flag only ``run`` has (e.g. --client-on-scheduler)."""
    for field in reversed(settings_with_flags("run")):
        f = setting_option(field)(f)
    return f


@click.command(context_settings={"ignore_unknown_options": True,
                                 "allow_interspersed_args": False})
@click.option("-m", "module", is_flag=True, help="Run a module (python -m style).")
@cluster_options
@run_only_options
@click.argument("target")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run(ctx: click.Context, module: bool, client_on_scheduler: bool | None, target: str,
        args: tuple[str, ...], **options: Any) -> None:
    """Run SCRIPT (or -m MODULE) as the client on rank 1; its exit code is the job's.

    Inside the script a plain Client() connects to this job's cluster. The cluster options
    go before or after 'run'; everything after SCRIPT is the script's.

    \b
      srun -n 12 dask-batch run analysis.py --year 2024
      mpiexec -n 6 dask-batch run --nthreads 4 -m mypackage.pipeline
    """
    params = merged(ctx.obj, options)
    if client_on_scheduler:
        params["client_on_scheduler"] = True
    if not module and not os.path.exists(target):
        raise BadInput(f"no such script: {target}")
    runner = _start_client(params)
    code = run_client_code(target, args, module)
    runner.finish(code)
    from ..lifecycle import flush_and_exit

    flush_and_exit(code)


@handle_errors
def _start_client(params: dict[str, Any]) -> Any:
    from ..runner import BatchRunner

    runner = BatchRunner(**runner_options(params))
    runner.start()
    return runner


def run_client_code(target: str, args: tuple[str, ...], module: bool) -> int:
    """Run a script or module as __main__ (mpi4py.run style); return its exit code."""
    import traceback

    from ..lifecycle import exit_code_of

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
