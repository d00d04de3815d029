"""Grid Engine (SGE, SoGE, Univa/Altair): qsub -terse, qstat -xml, qacct for finished jobs."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import dask.config

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
    logs = log_path(req)
    # -S: the queue's default shell may be csh; the script is bash
    d = [opt("-N", s.name_prefix), "-S /bin/bash", opt("-l", f"h_rt={hms(s.walltime)}"),
         opt("-o", logs), opt("-e", logs)]
    if s.cores > 1:  # the parallel environment's name is site configuration
        d.append(f"-pe {dask.config.get('batch.submit.sge-pe', default='smp')} {s.cores}")
    if s.memory:  # a request, not a limit: h_vmem would count virtual memory
        d.append(opt("-l", f"mem_free={mib(s.memory)}M"))
    if s.gpus:
        d.append(opt("-l", f"gpu={s.gpus}"))
    if s.queue:
        d.append(opt("-q", s.queue))
    if s.account:  # -A is the accounting string; -P (project) needs a site permission
        d.append(opt("-A", s.account))
    if req.array:
        d.append(f"-t 1-{req.n}")  # SGE tasks start at 1
        body = script_body(req, "$JOB_ID", "$SGE_TASK_ID")
    else:
        body = script_body(req, "$JOB_ID", "0")
    return shell_script(directive_lines("#$", d, s), body, s.shebang)


def submit_argv(path: str) -> list[str]:
    return ["qsub", "-terse", path]


def parse_submit(out: str, req: Request) -> list[Element]:
    """``123`` or ``123.1-6:1`` (-terse); JSV messages may come first."""
    job = None
    for line in out.strip().splitlines():
        m = re.fullmatch(r"(\d+)(\.\d+-\d+:\d+)?", line.strip())
        job = m.group(1) if m else job
    if job is None:
        raise no_job_id("qsub", out)
    if req.array:
        return [Element(f"{job}.{i}", job, i) for i in range(1, req.n + 1)]
    return [Element(job, job, 0)]


def status_argv(ids: list[str]) -> list[str]:
    return ["qstat", "-xml"]  # every job of this user; ids are picked out by the parser


def _tasks(spec: str | None) -> list[int | None]:
    """``3``, ``1-6:1``, ``1,4-5`` -> task ids; None for a job that is not an array."""
    if not spec:
        return [None]
    out: list[int | None] = []
    for part in spec.split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", part.strip())
        if m:
            a, b, step = int(m.group(1)), int(m.group(2) or m.group(1)), int(m.group(3) or 1)
            out.extend(range(a, b + 1, step))
    return out


def parse_status(out: str) -> dict[str, str]:
    if not out.strip():
        return {}
    states = {}
    for job in ET.fromstring(out).iter("job_list"):
        number = job.findtext("JB_job_number", "").strip()
        state = job.findtext("state", "").strip()
        for task in _tasks(job.findtext("tasks")):
            states[number if task is None else f"{number}.{task}"] = state
    return states


def accounting_argv(ids: list[str]) -> list[str]:
    return ["qacct", "-j", ids[0]]  # one job per call (per_id)


def parse_accounting(out: str) -> dict[str, str]:
    states = {}
    for block in out.split("=" * 62):
        fields = dict(re.findall(r"^(\w+)\s+(.*?)\s*$", block, re.M))
        if "jobnumber" not in fields:
            continue
        task = fields.get("taskid", "undefined")
        key = fields["jobnumber"] if task == "undefined" else f"{fields['jobnumber']}.{task}"
        failed = fields.get("failed", "0").split()[0]
        code = fields.get("exit_status", "0").split()[0]
        states[key] = "=done" if failed == "0" and code == "0" else "=failed"
    return states


def cancel_argv(ids: list[str]) -> list[str]:
    return ["qdel", *ids]  # 123 = whole array, 123.4 = one task


SYSTEM = System(
    gone_pattern='does not exist',
    name="sge", submit_command="qsub", render=render, submit_argv=submit_argv,
    parse_submit=parse_submit, status_argv=status_argv, parse_status=parse_status,
    cancel_argv=cancel_argv, accounting_argv=accounting_argv,
    parse_accounting=parse_accounting, max_array=75000, accounting_per_id=True,
)
