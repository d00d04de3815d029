"""IBM Spectrum LSF: bsub < script (stdin, so #BSUB lines are read), bjobs -json."""

from __future__ import annotations

import json
import os
import re

from ..units import mib
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
    walltime_minutes,
)


def render(req: Request) -> str:
    s = req.spec
    minutes = walltime_minutes(s.walltime)
    name = f"{s.name_prefix}[1-{req.n}]" if req.array else s.name_prefix
    stem = os.path.join(log_path(req), s.name_prefix) + ("-%J_%I" if req.array else "-%J")
    d = [opt("-J", name), opt("-n", s.cores), opt("-W", f"{minutes // 60}:{minutes % 60:02d}"),
         opt("-o", f"{stem}.out"), opt("-e", f"{stem}.err")]
    if s.cores > 1:
        d.append(opt("-R", "span[hosts=1]"))
    if s.memory:  # explicit unit (LSF >= 10.1.0.2): bare numbers depend on LSF_UNIT_FOR_LIMITS
        d.append(opt("-M", f"{mib(s.memory)}MB"))
    if s.gpus:
        d.append(opt("-gpu", f"num={s.gpus}"))
    if s.queue:
        d.append(opt("-q", s.queue))
    if s.account:
        d.append(opt("-P", s.account))
    if req.array:
        body = script_body(req, "$LSB_JOBID", "$LSB_JOBINDEX")
    else:
        body = script_body(req, "$LSB_JOBID", "0")
    return shell_script(directive_lines("#BSUB", d, s), body, s.shebang)


def submit_argv(path: str) -> list[str]:
    return ["bsub"]  # script on stdin (submit_stdin)


def parse_submit(out: str, req: Request) -> list[Element]:
    m = re.search(r"Job <(\d+)> is submitted", out)
    if m is None:
        raise no_job_id("bsub", out)
    job = m.group(1)
    if req.array:
        return [Element(f"{job}[{i}]", job, i) for i in range(1, req.n + 1)]
    return [Element(job, job, 0)]


def status_argv(ids: list[str]) -> list[str]:
    # -json needs -o and excludes -noheader (LSF 10.1.0.2); -a keeps recently finished jobs
    return ["bjobs", "-a", "-o", "jobid jobindex stat exit_code", "-json", *ids]


def parse_status(out: str) -> dict[str, str]:
    if not out.strip():
        return {}
    states = {}
    for rec in json.loads(out).get("RECORDS", []):
        if "ERROR" in rec or not rec.get("JOBID"):
            continue  # "Job <123> is not found": gone
        index = str(rec.get("JOBINDEX") or "0")
        key = rec["JOBID"] if index == "0" else f"{rec['JOBID']}[{index}]"
        states[key] = rec.get("STAT", "")
    return states


def cancel_argv(ids: list[str]) -> list[str]:
    return ["bkill", *ids]  # 123 = whole array, 123[4] = one element


SYSTEM = System(
    gone_pattern='not found|already finished',
    name="lsf", submit_command="bsub", render=render, submit_argv=submit_argv,
    parse_submit=parse_submit, status_argv=status_argv, parse_status=parse_status,
    cancel_argv=cancel_argv, max_array=1000, status_exit_ok=(0, 255), submit_stdin=True,
)
