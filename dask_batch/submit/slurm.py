"""Slurm: sbatch --parsable, squeue -r for status, sacct for jobs that left the queue."""

from __future__ import annotations

import os

from ..units import hms, mib
from .base import (
    Element,
    Request,
    System,
    directive_lines,
    log_path,
    no_job_id,
    script_body,
    shell_script,
)


def render(req: Request) -> str:
    s = req.spec
    logs = log_path(req)
    stem = "%A_%a" if req.array else "%j"
    d = [
        f"--job-name={s.name_prefix}", "--nodes=1", "--ntasks=1", f"--cpus-per-task={s.cores}",
        f"--time={hms(s.walltime)}",
        f"--output={os.path.join(logs, s.name_prefix)}-{stem}.out",
        f"--error={os.path.join(logs, s.name_prefix)}-{stem}.err",
    ]
    if s.memory:
        d.append(f"--mem={mib(s.memory)}M")  # bare number = MiB; explicit suffix is clearer
    if s.queue:
        d.append(f"--partition={s.queue}")
    if s.account:
        d.append(f"--account={s.account}")
    if s.gpus:
        d.append(f"--gpus={s.gpus}")
    if req.array:
        d.append(f"--array=0-{req.n - 1}")
    # --key=value with a quoted value: sbatch tokenises #SBATCH lines itself
    d = [_quote(x) for x in d]
    if req.array:
        body = script_body(req, "$SLURM_ARRAY_JOB_ID", "$SLURM_ARRAY_TASK_ID")
    else:
        body = script_body(req, "$SLURM_JOB_ID", "0")
    return shell_script(directive_lines("#SBATCH", d, s), body, s.shebang)


def _quote(directive: str) -> str:
    import shlex

    key, _, value = directive.partition("=")
    return f"{key}={shlex.quote(value)}" if value else key


def submit_argv(path: str) -> list[str]:
    return ["sbatch", "--parsable", path]


def parse_submit(out: str, req: Request) -> list[Element]:
    """``123`` or ``123;cluster`` (--parsable), possibly after site banner lines."""
    lines = [ln.strip() for ln in out.strip().splitlines() if ln.strip()]
    job = lines[-1].split(";")[0] if lines else ""
    if not job.isdigit():
        raise no_job_id("sbatch", out)
    if req.array:
        return [Element(f"{job}_{i}", job, i) for i in range(req.n)]
    return [Element(job, job, 0)]


def status_argv(ids: list[str]) -> list[str]:
    # -r: one line per array element, pending ones too (else "123_[4-9]")
    return ["squeue", "-h", "-r", "-j", ",".join(ids), "-o", "%i %T"]


def parse_status(out: str) -> dict[str, str]:
    states = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            states[parts[0]] = parts[1]
    return states


def accounting_argv(ids: list[str]) -> list[str]:
    return ["sacct", "-X", "-n", "-P", "-j", ",".join(ids), "-o", "JobID,State"]


def parse_accounting(out: str) -> dict[str, str]:
    states = {}
    for line in out.splitlines():
        job, _, state = line.strip().partition("|")
        if job and state:
            states[job] = state.split()[0]  # "CANCELLED by 0"
    return states


def cancel_argv(ids: list[str]) -> list[str]:
    return ["scancel", *ids]


SYSTEM = System(
    name="slurm", submit_command="sbatch", render=render, submit_argv=submit_argv,
    parse_submit=parse_submit, status_argv=status_argv, parse_status=parse_status,
    cancel_argv=cancel_argv, accounting_argv=accounting_argv,
    parse_accounting=parse_accounting, max_array=1000,
    # squeue exits 1 when every id has left the queue
    status_exit_ok=(0, 1), gone_pattern="Invalid job id",
)
