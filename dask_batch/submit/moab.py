"""Moab (msub over Torque): #PBS directives in Torque syntax, -t arrays, showq --xml.

Moab's output formats are [unv] in the reference (no Moab manual was checked): the parsers
take the last line that looks like a job id, and the XML of ``showq --xml``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

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


def render(req: Request) -> str:
    s = req.spec
    nodes = f"nodes=1:ppn={s.cores}" + (f":gpus={s.gpus}" if s.gpus else "")
    resources = [nodes, f"walltime={hms(s.walltime)}"]
    if s.memory:
        resources.append(f"mem={mib(s.memory)}mb")
    logs = log_path(req) + "/"
    d = [opt("-N", s.name_prefix), opt("-l", ",".join(resources)), opt("-o", logs),
         opt("-e", logs)]
    if s.queue:
        d.append(opt("-q", s.queue))
    if s.account:
        d.append(opt("-A", s.account))
    if req.array:
        d.append(opt("-t", f"{s.name_prefix}[1-{req.n}]"))
        # Moab's own index variable, else the Torque one underneath
        body = script_body(req, "${MOAB_JOBID:-$PBS_JOBID}",
                           "${MOAB_JOBARRAYINDEX:-$PBS_ARRAYID}")
    else:
        body = script_body(req, "${MOAB_JOBID:-$PBS_JOBID}", "0")
    return shell_script(directive_lines("#PBS", d, s), body, s.shebang)


def submit_argv(path: str) -> list[str]:
    return ["msub", path]


def parse_submit(out: str, req: Request) -> list[Element]:
    """A line ``123`` or ``Moab.123`` (blank lines around it)."""
    job = None
    for line in out.strip().splitlines():
        m = re.fullmatch(r"(?:\S+\.)?(\d+)", line.strip())
        job = m.group(1) if m else job
    if job is None:
        raise no_job_id("msub", out)
    if req.array:
        return [Element(f"{job}[{i}]", job, i) for i in range(1, req.n + 1)]
    return [Element(job, job, 0)]


def status_argv(ids: list[str]) -> list[str]:
    return ["showq", "--xml"]  # every queue section; ids picked out by the parser


def parse_status(out: str) -> dict[str, str]:
    if not out.strip():
        return {}
    states = {}
    for job in ET.fromstring(out).iter("job"):
        job_id = re.sub(r"^\D+\.", "", job.get("JobID", ""))  # "Moab.123" -> "123"
        if job_id:
            states[job_id] = job.get("State", "")
    return states


def cancel_argv(ids: list[str]) -> list[str]:
    return ["canceljob", *ids]


SYSTEM = System(
    gone_pattern='invalid job|cannot locate',
    name="moab", submit_command="msub", render=render, submit_argv=submit_argv,
    parse_submit=parse_submit, status_argv=status_argv, parse_status=parse_status,
    cancel_argv=cancel_argv, max_array=10000,
)
