"""HTCondor: a submit description (no directives, no script), queue N, condor_q/history -json."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil

from ..units import mib
from .base import Element, Request, System, no_job_id, worker_argv

logger = logging.getLogger(__name__)


def quote_arguments(args: list[str]) -> str:
    """The "new" syntax of ``arguments``: double quotes around all, single around each word.

    >>> quote_arguments(["-c", "it's", 'say "hi"'])
    '"\\'-c\\' \\'it\\'\\'s\\' \\'say ""hi""\\'"'
    """
    words = ("'" + a.replace("'", "''").replace('"', '""') + "'" for a in args)
    return '"' + " ".join(words) + '"'


def render(req: Request) -> str:
    s = req.spec
    ec = os.path.join(req.state_dir, "ec")
    # no job id in the environment: pass $(ClusterId)/$(ProcId) to the worker, which builds
    # the name and writes its exit-code file itself (there is no shell script around it)
    argv = [*worker_argv(req, s.name_prefix), "--job-id", "$(ClusterId)",
            "--array-index", "$(ProcId)", "--exit-code-dir", ec]
    if s.prologue:  # set-up lines need a shell: bash -c '<prologue>; exec "$0" "$@"' python …
        executable = "/bin/bash"
        args = ["-c", "; ".join([*s.prologue, 'exec "$0" "$@"']), *argv]
    else:  # a wrapper (python="env X=1 python") names a command: HTCondor wants a path
        executable, args = shutil.which(argv[0]) or argv[0], argv[1:]
    stem = os.path.join(os.path.dirname(ec), "logs", s.name_prefix) if not s.log_directory \
        else os.path.join(s.log_directory, s.name_prefix)
    lines = {
        "universe": "vanilla",
        "executable": executable,
        "arguments": quote_arguments(args),
        "batch_name": s.name_prefix,
        "getenv": "false",
        "request_cpus": str(s.cores),
        "output": f"{stem}-$(ClusterId).$(ProcId).out",
        "error": f"{stem}-$(ClusterId).$(ProcId).err",
        "log": f"{stem}-$(ClusterId).log",
        # no walltime in HTCondor: remove a job that has run longer than asked
        "periodic_remove": f"(JobStatus == 2) && (time() - EnteredCurrentStatus > {s.walltime})",
    }
    if s.memory:
        lines["request_memory"] = str(mib(s.memory))  # bare = MiB
    if s.gpus:
        lines["request_gpus"] = str(s.gpus)
    if s.account:
        lines["accounting_group"] = s.account
    if s.queue:
        logger.warning("HTCondor has no queues: queue %r ignored (use extra directives, e.g. "
                       "'requirements = ...')", s.queue)
    kept = [f"{k} = {v}" for k, v in sorted(lines.items())
            if not any(x in f"{k} = {v}" for x in s.skip_directives)]
    return "\n".join(["# dask-batch add-on workers: HTCondor submit description", *kept,
                      *s.extra_directives, f"queue {req.n if req.array else 1}"]) + "\n"


def submit_argv(path: str) -> list[str]:
    return ["condor_submit", path]


def parse_submit(out: str, req: Request) -> list[Element]:
    m = re.search(r"(\d+) job\(s\) submitted to cluster (\d+)\.", out)
    if m is None:
        raise no_job_id("condor_submit", out)
    cluster = m.group(2)
    return [Element(f"{cluster}.{i}", cluster, i) for i in range(int(m.group(1)))]


ATTRS = "ClusterId,ProcId,JobStatus,ExitCode"


def status_argv(ids: list[str]) -> list[str]:
    return ["condor_q", "-json", "-attributes", ATTRS, *ids]


def parse_status(out: str) -> dict[str, str]:
    if not out.strip():
        return {}  # condor_q -json prints nothing when no job matches
    states = {}
    for ad in json.loads(out):
        status = str(ad.get("JobStatus", ""))
        if status == "4" and ad.get("ExitCode") not in (None, 0):
            status = "=failed"
        states[f"{ad['ClusterId']}.{ad['ProcId']}"] = status
    return states


def accounting_argv(ids: list[str]) -> list[str]:
    return ["condor_history", "-json", "-attributes", ATTRS, *ids]


def cancel_argv(ids: list[str]) -> list[str]:
    return ["condor_rm", *ids]  # C = whole cluster, C.P = one job


SYSTEM = System(
    gone_pattern="not found|couldn't find",
    name="htcondor", submit_command="condor_submit", render=render, submit_argv=submit_argv,
    parse_submit=parse_submit, status_argv=status_argv, parse_status=parse_status,
    cancel_argv=cancel_argv, accounting_argv=accounting_argv, parse_accounting=parse_status,
    max_array=100000, script_suffix=".sub", status_takes_cancel_args=True,
)
