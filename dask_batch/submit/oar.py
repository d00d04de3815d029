"""OAR: oarsub -S (reads #OAR lines), --array N (each subjob its own id), oarstat -J."""

from __future__ import annotations

import json
import logging
import os
import re

from ..units import hms
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

logger = logging.getLogger(__name__)


def render(req: Request) -> str:
    s = req.spec
    level = f"/nodes=1/gpu={s.gpus}/core={s.cores}" if s.gpus else f"/nodes=1/core={s.cores}"
    stem = os.path.join(log_path(req), s.name_prefix)
    d = [opt("-n", s.name_prefix), opt("-l", f"{level},walltime={hms(s.walltime)}"),
         opt("-O", f"{stem}-%jobid%.out"), opt("-E", f"{stem}-%jobid%.err")]
    if s.queue:
        d.append(opt("-q", s.queue))
    if s.account:
        d.append(opt("--project", s.account))
    if s.memory:
        logger.warning("OAR has no memory request: memory is only the workers' limit here")
    if req.array:
        d.append(opt("--array", req.n))
        # sources disagree on the index name (code: OAR_ARRAY_INDEX, man page: OAR_JOB_INDEX)
        body = script_body(req, "$OAR_ARRAY_ID", "${OAR_ARRAY_INDEX:-$OAR_JOB_INDEX}")
    else:
        body = script_body(req, "$OAR_JOB_ID", "0")
    return shell_script(directive_lines("#OAR", d, s), body, s.shebang)


def submit_argv(path: str) -> list[str]:
    return ["oarsub", "-S", path]


def parse_submit(out: str, req: Request) -> list[Element]:
    """``OAR_JOB_ID=101`` per subjob, then ``OAR_ARRAY_ID=101``; admission-rule lines first."""
    ids = re.findall(r"^OAR_JOB_ID=(\d+)\s*$", out, re.M)
    array = re.search(r"^OAR_ARRAY_ID=(\d+)\s*$", out, re.M)
    if not ids or len(ids) != (req.n if req.array else 1):
        raise no_job_id("oarsub", out)
    if req.array:
        array_id = array.group(1) if array else ids[0]
        return [Element(job, array_id, i) for i, job in enumerate(ids, start=1)]
    return [Element(ids[0], ids[0], 0)]


def status_argv(ids: list[str]) -> list[str]:
    argv = ["oarstat", "-J"]
    for job in ids:
        argv += ["-j", job]
    return argv


def parse_status(out: str) -> dict[str, str]:
    if not out.strip():
        return {}
    data = json.loads(out)
    states = {}
    for job_id, info in data.items():
        state = str(info.get("state", ""))
        if state == "Terminated" and info.get("exit_code") not in (None, 0):
            state = "=failed"
        states[str(job_id)] = state
    return states


def cancel_argv(ids: list[str]) -> list[str]:
    return ["oardel", *ids]


SYSTEM = System(
    gone_pattern='unknown job|does not exist|not found',
    name="oar", submit_command="oarsub", render=render, submit_argv=submit_argv,
    parse_submit=parse_submit, status_argv=status_argv, parse_status=parse_status,
    cancel_argv=cancel_argv, max_array=10000, whole_job=None,  # subjobs have their own ids
)
