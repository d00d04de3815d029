"""What every batch system shares: the command runner, the system row, script rendering.

A batch system is one row (``System``) of argv builders and pure text parsers, defined in its
own module (PSI/J's split): the code here runs the commands and turns failures into
``SubmitError``. Nothing here goes through a shell.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ..errors import BatchError
from .spec import JobSpec

logger = logging.getLogger(__name__)

# detection order: the first whose submit command is on PATH wins (qsub is both SGE and PBS:
# SGE also has qconf, PBS Pro pbsnodes)
DETECT: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("slurm", ("sbatch",)),
    ("lsf", ("bsub",)),
    ("htcondor", ("condor_submit",)),
    ("oar", ("oarsub",)),
    ("moab", ("msub",)),
    ("sge", ("qsub", "qconf")),
    ("pbs", ("qsub",)),
)
NAMES = tuple(name for name, _ in DETECT)


class SubmitError(BatchError, RuntimeError):
    """A batch command that is missing, failed, timed out or printed no job id."""

    def __init__(self, message: str, argv: Sequence[str] = (), returncode: int | None = None,
                 stdout: str = "", stderr: str = ""):
        super().__init__(message)
        self.argv, self.returncode = list(argv), returncode
        self.stdout, self.stderr = stdout, stderr
        self.accepted: list = []  # jobs of the same submission the system took before it failed


@dataclass(frozen=True)
class Element:
    """One worker job: a single job, or one element of an array."""

    query_id: str  # what status and cancel take, e.g. 123_4, 123[4], 123.4
    name_id: str  # the number in the worker name (the array's id)
    index: int

    def name(self, prefix: str) -> str:
        return f"{prefix}-{self.name_id}-{self.index}"


@dataclass(frozen=True)
class Request:
    """One submission: ``n`` jobs of ``spec``, as one array or as a single job (n == 1)."""

    spec: JobSpec
    n: int
    array: bool
    scheduler_file: str
    state_dir: str


@dataclass(frozen=True)
class System:
    """One batch system as data: argv builders and parsers, nothing that runs."""

    name: str
    submit_command: str
    render: Callable[[Request], str]
    submit_argv: Callable[[str], list[str]]
    parse_submit: Callable[[str, Request], list[Element]]
    status_argv: Callable[[list[str]], list[str]]
    parse_status: Callable[[str], dict[str, str]]  # query id -> native state
    cancel_argv: Callable[[list[str]], list[str]]
    accounting_argv: Callable[[list[str]], list[str]] | None = None
    parse_accounting: Callable[[str], dict[str, str]] | None = None
    max_array: int = 1000  # 1 = no arrays
    status_exit_ok: tuple[int, ...] = (0,)  # exit codes that may still carry an answer
    gone_pattern: str | None = None  # a non-zero status exit whose stderr matches: all gone
    whole_job: str | None = "{id}"  # cancel id of a whole submission; None = per element
    accounting_per_id: bool = False  # the accounting command takes one id per call
    submit_stdin: bool = False  # the script goes to the submit command's stdin (LSF)
    script_suffix: str = ".sh"
    status_takes_cancel_args: bool = False  # HTCondor: condor_q/_history select as condor_rm


def with_args(argv: list[str], extra: Sequence[str]) -> list[str]:
    """``argv`` with the user's ``extra`` arguments right after the command's name, where
    dask-jobqueue puts its submit_command_extra and cancel_command_extra."""
    return [argv[0], *extra, *argv[1:]] if extra else argv


def get_system(name: str) -> System:
    if name not in NAMES:
        raise SubmitError(f"unknown batch system {name!r}; choose one of {', '.join(NAMES)}")
    module = importlib.import_module(f"{__package__}.{name}")
    return module.SYSTEM


def detect_system(which: Callable[[str], str | None] = shutil.which) -> str:
    found = [name for name, cmds in DETECT if all(which(c) for c in cmds)]
    if not found:
        cmds = ", ".join(sorted({c for _, cs in DETECT for c in cs}))
        raise SubmitError(f"no batch system found: none of {cmds} is on PATH; use --system")
    if len(found) > 1:
        logger.info("batch systems found: %s; using %s (--system to choose)", found, found[0])
    return found[0]


# ---------------------------------------------------------------- running commands


def run(argv: Sequence[str], timeout: float, ok: Iterable[int] = (0,),
        input: str | None = None) -> subprocess.CompletedProcess:
    """Run one batch command (argv, no shell) with a timeout; errors are ``SubmitError``."""
    argv = [str(a) for a in argv]
    logger.debug("running %s", shlex.join(argv))
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              input=input, stdin=None if input is not None else subprocess.DEVNULL)
    except FileNotFoundError:
        raise SubmitError(f"{argv[0]}: command not found (is this the right batch system? "
                          "see --system)", argv) from None
    except subprocess.TimeoutExpired as e:
        raise SubmitError(f"{argv[0]} timed out after {timeout:g} s", argv, None,
                          _text(e.stdout), _text(e.stderr)) from None
    logger.debug("%s -> exit %d\n%s%s", argv[0], proc.returncode, proc.stdout, proc.stderr)
    if proc.returncode not in tuple(ok):
        said = "; ".join(line.strip() for line in (proc.stderr or proc.stdout).splitlines()
                         if line.strip())
        raise SubmitError(f"{argv[0]} failed (exit {proc.returncode}): {said[:500] or 'no output'}",
                          argv, proc.returncode, proc.stdout, proc.stderr)
    return proc


def _text(data: bytes | str | None) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


def no_job_id(system: str, out: str) -> SubmitError:
    first = out.strip().splitlines()[0] if out.strip() else "nothing"
    return SubmitError(f"{system}: no job id in the submit output (it said: {first[:200]})",
                       stdout=out)


# ---------------------------------------------------------------- rendering


def directive_lines(prefix: str, directives: Iterable[str], spec: JobSpec) -> list[str]:
    """Sorted generated directives minus skipped ones, then the user's extras as given."""
    kept = [d for d in sorted(set(directives))
            if not any(s in d for s in spec.skip_directives)]
    return [f"{prefix} {d}" for d in kept] + [
        e if e.startswith(prefix) else f"{prefix} {e}" for e in spec.extra_directives
    ]


def opt(flag: str, value: object, sep: str = " ") -> str:
    return f"{flag}{sep}{shlex.quote(str(value))}"


def worker_argv(req: Request, name: str) -> list[str]:
    """The command the job runs; credentials stay in the scheduler file (never in argv)."""
    s = req.spec
    argv = [*python_words(s.python), "-m", "dask_batch.submit.worker",
            "--scheduler-file", req.scheduler_file, "--name", name, "--nthreads", str(s.threads),
            "--processes", str(s.processes), "--death-timeout", str(s.death_timeout),
            "--lifetime", f"{s.lifetime}s", "--lifetime-stagger", f"{s.stagger}s",
            "--nanny" if s.nanny else "--no-nanny"]
    if s.worker_memory:
        argv += ["--memory-limit", str(s.worker_memory)]
    for flag, value in (("--local-directory", s.local_directory), ("--interface", s.interface),
                        ("--protocol", s.protocol)):
        if value:
            argv += [flag, value]
    if s.resources:
        argv += ["--resources", json.dumps(dict(s.resources), sort_keys=True)]
    if s.worker_options:
        argv += ["--worker-options", s.worker_options]
    return argv


def python_words(python: str) -> list[str]:
    """The interpreter as words: a path (spaces and all), or a command line such as
    ``apptainer exec img.sif python`` (shell words: each is quoted on its own in the script)."""
    if os.path.exists(python):
        return [python]
    words = shlex.split(python)
    if not words:
        raise SubmitError("python: empty command")
    return words


def script_body(req: Request, job_id_expr: str, index_expr: str) -> list[str]:
    """Set-up lines, the worker command and the exit-code file (PSI/J's ``.ec``)."""
    name = f"{req.spec.name_prefix}-$job_id-$task"
    argv = worker_argv(req, "@NAME@")
    cmd = " ".join('"$name"' if a == "@NAME@" else shlex.quote(a) for a in argv)
    ec = os.path.join(req.state_dir, "ec")
    return [
        *req.spec.prologue,
        f"job_id={job_id_expr}",
        "job_id=${job_id%%[!0-9]*}  # 123[].server -> 123",
        f"task={index_expr}",
        f'name="{name}"',
        cmd,
        "code=$?",
        f'echo "$code" > {shlex.quote(ec)}/"$name".ec',
        'exit "$code"',
    ]


def shell_script(directives: list[str], body: list[str],
                 shebang: str = "#!/usr/bin/env bash") -> str:
    return "\n".join([shebang, *directives, "", *body]) + "\n"


def log_path(req: Request) -> str:
    return req.spec.log_directory or os.path.join(req.state_dir, "logs")


def walltime_minutes(seconds: int) -> int:
    return -(-seconds // 60)
