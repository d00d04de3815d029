"""PBS Pro / OpenPBS: qsub -J arrays, qstat -f -F json -x (finished jobs included)."""

from __future__ import annotations

import json
import re

from ..units import hms, mib
from .base import (
    Element,
    Request,
    System,
    directive_lines,
    log_path,
    no_job_id,
    opt,
    script_body,
    shell_script,
)

# MoM's exit status for a job killed at its walltime (JOB_EXEC_KILL_WALLTIME)
WALLTIME_EXIT = -29


def render(req: Request) -> str:
    s = req.spec
    select = f"select=1:ncpus={s.cores}"
    if s.memory:
        select += f":mem={mib(s.memory)}mb"  # PBS rejects GiB; mb = MiB
    if s.gpus:
        select += f":ngpus={s.gpus}"
    logs = log_path(req) + "/"  # a directory: PBS names the files itself
    d = [opt("-N", s.name_prefix), opt("-l", select), opt("-l", f"walltime={hms(s.walltime)}"),
         opt("-o", logs), opt("-e", logs)]
    if s.queue:
        d.append(opt("-q", s.queue))
    if s.account:
        d.append(opt("-A", s.account))
    if req.array:
        d.append(opt("-J", f"0-{req.n - 1}"))
        body = script_body(req, "$PBS_ARRAY_ID", "$PBS_ARRAY_INDEX")
    else:
        body = script_body(req, "$PBS_JOBID", "0")
    return shell_script(directive_lines("#PBS", d, s), body, s.shebang)


def submit_argv(path: str) -> list[str]:
    return ["qsub", path]


def short(job_id: str) -> str:
    """``123[4].server`` -> ``123[4]``: qstat may print a longer or shorter server name."""
    return job_id.strip().split(".", 1)[0]


def parse_submit(out: str, req: Request) -> list[Element]:
    m = None
    for line in out.strip().splitlines():
        m = re.fullmatch(r"(\d+)(\[\])?(\.\S+)?", line.strip()) or m
    if m is None:
        raise no_job_id("qsub", out)
    seq = m.group(1)
    if req.array:
        return [Element(f"{seq}[{i}]", seq, i) for i in range(req.n)]
    return [Element(seq, seq, 0)]


def status_argv(ids: list[str]) -> list[str]:
    # -x: finished jobs too (job history), -t: one entry per subjob
    return ["qstat", "-f", "-F", "json", "-x", "-t", *ids]


def parse_status(out: str) -> dict[str, str]:
    if not out.strip():
        return {}
    jobs = json.loads(out).get("Jobs") or {}
    states = {}
    for job_id, attrs in jobs.items():
        state = str(attrs.get("job_state", ""))
        if state in ("F", "X") and "Exit_status" in attrs:
            code = int(attrs["Exit_status"])
            state = "=done" if code == 0 else "=timeout" if code == WALLTIME_EXIT else "=failed"
        states[short(job_id)] = state
    return states


def cancel_argv(ids: list[str]) -> list[str]:
    return ["qdel", *ids]


SYSTEM = System(
    name="pbs", submit_command="qsub", render=render, submit_argv=submit_argv,
    parse_submit=parse_submit, status_argv=status_argv, parse_status=parse_status,
    cancel_argv=cancel_argv, max_array=10000, whole_job="{id}[]",
    status_exit_ok=(0, 35, 153), gone_pattern="Unknown Job Id|Job has finished",
)
