"""``dask-batch lab``: JupyterLab on the client rank (the library part is dask_batch.lab)."""

from __future__ import annotations

from typing import Any

import click

from .options import cluster_options, handle_errors, merged, runner_options


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--port", type=int, default=None,
              help="JupyterLab's port. Default: a random free port.")
@click.option("--ip", type=str, default=None,
              help="Address JupyterLab listens on. Default: that of the cluster's interface "
              "(see --interface; 127.0.0.1 when the job has one node).")
@cluster_options
@click.argument("jupyter_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def lab(ctx: click.Context, port: int | None, ip: str | None,
        jupyter_args: tuple[str, ...], **options: Any) -> None:
    """JupyterLab on rank 1, its notebooks' plain Client() on this job's cluster.

    Prints the lab URL with its token, the dashboard URL and the ssh tunnel command for your
    laptop. File > Shut Down ends the job (exit code 0). Extra arguments go to Jupyter.
    Needs pip install 'dask-batch[lab]'.

    \b
      srun -n 12 dask-batch lab
      mpiexec -n 6 dask-batch lab --interface ib0 --port 8888 --ServerApp.root_dir=$HOME
    """
    from ..lab import run_lab
    from ..lifecycle import flush_and_exit

    opts = runner_options(merged(ctx.obj, options))
    code = handle_errors(run_lab)(port=port, ip=ip, jupyter_args=jupyter_args, **opts)
    flush_and_exit(code)
