"""``dask-batch submit | script | status | cancel``: parse, then call ``submit.jobs``.

Bad input (unknown key, no walltime, unknown system, unreadable scheduler file) exits 2; a
batch command that is missing, fails, times out or prints no job id exits 1. Both print one
line, never a traceback.
"""

from __future__ import annotations

import functools
import glob
import json
import os
from collections.abc import Callable
from typing import Any

import click

from .. import report


class SubmitFailed(click.ClickException):
    exit_code = 1

    def show(self, file: Any = None) -> None:
        report.error(self.format_message())


class BadInput(SubmitFailed):
    exit_code = 2


def errors(f: Callable) -> Callable:
    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..errors import BatchError
        from ..submit.base import SubmitError

        try:
            return f(*args, **kwargs)
        except SubmitError as e:
            if str(e).startswith("unknown batch system") or "no batch system found" in str(e):
                raise BadInput(str(e)) from None
            raise SubmitFailed(str(e)) from None
        except (BatchError, ValueError) as e:
            raise BadInput(str(e)) from None

    return wrapper


def spec_options(f: Callable) -> Callable:
    o = click.option
    options = [
        o("--scheduler-file", default=None, help="The running cluster's scheduler file "
          "(default: batch.scheduler-file)."),
        o("-n", "--jobs", "n", type=int, default=1, show_default=True,
          help="Number of worker jobs."),
        o("--system", type=click.Choice(["slurm", "pbs", "sge", "lsf", "htcondor", "moab",
                                         "oar"]), default=None,
          help="Batch system. Default: detected from the commands on PATH."),
        o("--pool", default=None, help="Named pool of batch.pools (or of --pools-file)."),
        o("--pools-file", default=None, help="YAML file of pools: {name: {key: value}}."),
        o("--walltime", default=None, help="Required (or in config): e.g. 02:00:00."),
        o("--cores", type=int, default=None, help="Cores per job (default 1)."),
        o("--processes", type=int, default=None, help="Worker processes per job (default 1)."),
        o("--nthreads", type=int, default=None, help="Threads per worker (cores/processes)."),
        o("--memory", default=None, help="Memory per job, e.g. 32GiB."),
        o("--queue", default=None, help="Queue / partition."),
        o("--account", default=None, help="Account / project to charge."),
        o("--gpus", type=int, default=None, help="GPUs per job."),
        o("--job-name", default=None, help="Job name and worker-name prefix (dask-worker)."),
        o("--prologue", multiple=True, help="Set-up line, e.g. 'module load python' (repeat)."),
        o("--extra-directive", "extra_directives", multiple=True,
          help="Extra directive, e.g. '--constraint=haswell' (repeat)."),
        o("--skip-directive", "skip_directives", multiple=True,
          help="Drop generated directives containing this text (repeat)."),
        o("--local-directory", default=None, help="Worker scratch directory."),
        o("--log-directory", default=None, help="Job logs (default <scheduler file>.addon/logs)."),
        o("--interface", default=None, help="Worker network interface, e.g. ib0."),
        o("--protocol", default=None, help="tcp, tls or ucx (default: the scheduler's)."),
        o("--resources", default=None,
          help='Dask resource tags per worker, JSON: \'{"MEM": 256e9}\'.'),
        o("--nanny/--no-nanny", "nanny", default=None, help="Workers under a nanny (default on)."),
        o("--lifetime-margin", type=int, default=None,
          help="Seconds before walltime that workers retire (default 300)."),
        o("--death-timeout", type=int, default=None,
          help="Seconds a worker waits for a lost scheduler (default 60)."),
        o("--python", default=None, help="Interpreter in the job (default: this one)."),
        o("--array/--no-array", "array", default=None,
          help="One job array per submission [default] or one job per worker."),
        o("--timeout", type=float, default=None, help="Seconds per batch command (default 60)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _split(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(control options, job spec keys)."""
    control = {k: params.pop(k) for k in ("scheduler_file", "n", "system", "pool", "pools_file",
                                          "timeout")}
    if params.get("resources"):
        try:
            params["resources"] = json.loads(params["resources"])
        except ValueError as e:
            raise BadInput(f"--resources is not JSON: {e}") from None
    for k in ("prologue", "extra_directives", "skip_directives"):
        if not params.get(k):
            params[k] = None
    return control, {k: v for k, v in params.items() if v is not None}


def _scheduler_file(path: str | None, must_exist: bool = True) -> str:
    import dask.config

    path = path or dask.config.get("batch.scheduler-file", default=None)
    if not path:  # status/cancel: the one cluster whose state file is here (a BatchCluster's
        # folder too: a notebook that died without close() left its jobs there)
        base = dask.config.get("batch.cluster.directory", default=None) or "."
        states = {*glob.glob("*.addon.json"),
                  *glob.glob(os.path.join(base, "dask-batch-*", "*.addon.json"))}
        found = sorted(f[: -len(".addon.json")] + ".json" for f in states)
        if len(found) == 1:
            return found[0]
        if found:
            raise BadInput(f"several clusters here ({', '.join(found)}): pick one with "
                           "--scheduler-file")
        raise BadInput("no --scheduler-file (and batch.scheduler-file is not set)")
    if must_exist:
        from ..rendezvous import read_scheduler_file

        try:  # missing, corrupt or unsafe: exit 2 now, not later in every job
            read_scheduler_file(path)
        except OSError as e:
            raise BadInput(f"cannot read scheduler file {path}: {e.strerror}") from None
    return path


def _system(name: str | None) -> Any:
    import dask.config

    from ..submit.base import detect_system, get_system

    return get_system(name or dask.config.get("batch.submit.system") or detect_system())


def _timeout(value: float | None) -> float:
    import dask.config

    return float(value or dask.config.get("batch.submit.timeout", default=60))


@click.command()
@spec_options
@errors
def submit(**params: Any) -> None:
    """Send N add-on worker jobs to the batch system; they join the running cluster.

    \b
      dask-batch submit --scheduler-file sched.json -n 100 --cores 8 --memory 32GiB \\
          --walltime 02:00:00 --queue normal --account proj42
    """
    from ..submit import jobs
    from ..submit.spec import resolve_spec

    control, keys = _split(params)
    sched = _scheduler_file(control["scheduler_file"])
    spec = resolve_spec(pool=control["pool"], pools_file=control["pools_file"], **keys)
    system = _system(control["system"])
    records = jobs.submit(spec, system, control["n"], sched, _timeout(control["timeout"]))
    for r in records:
        click.echo(f"{system.name} job {r.job_id}: {len(r.elements)} worker job(s)"
                   + (f" (pool {r.pool})" if r.pool else ""))


@click.command()
@spec_options
@errors
def script(**params: Any) -> None:
    """Print the job script(s) that `submit` would send with these options; submit nothing."""
    from ..submit import jobs
    from ..submit.spec import resolve_spec

    control, keys = _split(params)
    sched = _scheduler_file(control["scheduler_file"], must_exist=False)
    spec = resolve_spec(pool=control["pool"], pools_file=control["pools_file"], **keys)
    system = _system(control["system"])
    reqs = jobs.requests(spec, system, control["n"], sched)
    shown: set[str] = set()
    for req in reqs:
        text = system.render(req)
        if text in shown:
            continue
        shown.add(text)
        same = sum(system.render(r) == text for r in reqs)
        click.echo(f"# {' '.join(system.submit_argv('<script>'))}"
                   + (f"  (x {same})" if same > 1 else ""))
        click.echo(text)


@click.command()
@click.option("--scheduler-file", default=None, help="The cluster's scheduler file.")
@click.option("--pool", default=None, help="Only this pool's jobs.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--timeout", type=float, default=None, help="Seconds per batch command.")
@errors
def status(scheduler_file: str | None, pool: str | None, as_json: bool,
           timeout: float | None) -> None:
    """The add-on jobs this cluster sent: pending / running / done / failed."""
    from ..submit import jobs
    from ..submit.addon import summary

    sched = _scheduler_file(scheduler_file, must_exist=False)
    records = [r for r in jobs.load(sched) if pool is None or r.pool == pool]
    _, state_dir = jobs.state_paths(sched)
    states = jobs.query(records, state_dir, _timeout(timeout)) if records else {}
    result = summary(records, states)
    if as_json:
        click.echo(json.dumps(result, indent=1))
        return
    counts = ", ".join(f"{v} {k}" for k, v in result["counts"].items()) or "no jobs"
    click.echo(f"{len(result['jobs'])} add-on job(s): {counts}")
    for row in result["jobs"]:
        click.echo(f"{row['system']:<9} {row['job']:<16} {row['state']:<10} "
                   f"{row['pool'] or '-':<10} {' '.join(row['workers'])}")


@click.command()
@click.option("--scheduler-file", default=None, help="The cluster's scheduler file.")
@click.option("--pool", default=None, help="Only this pool's jobs.")
@click.option("--timeout", type=float, default=None, help="Seconds per batch command.")
@errors
def cancel(scheduler_file: str | None, pool: str | None, timeout: float | None) -> None:
    """Cancel every add-on job of this cluster (or of one pool) that is not over."""
    from ..submit import jobs

    sched = _scheduler_file(scheduler_file, must_exist=False)
    t = _timeout(timeout)
    records = [r for r in jobs.load(sched) if pool is None or r.pool == pool]
    _, state_dir = jobs.state_paths(sched)
    states = jobs.query(records, state_dir, t) if records else {}
    live = {q for q, s in states.items() if not s.terminal}
    ids = jobs.cancel(sched, pool, t, only=live, all_pools=pool is None) if live else []
    click.echo(f"cancelled {len(live)} add-on job(s)" + (f": {' '.join(ids)}" if ids else ""))


commands = (submit, script, status, cancel)
