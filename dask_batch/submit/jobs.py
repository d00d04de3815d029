"""Submit, query and cancel add-on jobs, and keep their ids in a 0600 state file.

The state file sits next to the scheduler file (``sched.json`` -> ``sched.addon.json``) with a
directory ``sched.addon/`` for the rendered scripts, logs and the exit-code files that job
scripts write. A submission is recorded only once its job id is known, under a lock, so two
``dask-batch submit`` calls cannot lose each other's jobs.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

from ..files import write_private_json
from .base import Element, Request, SubmitError, System, get_system, run, with_args
from .spec import JobSpec
from .states import JobState, from_exit_code, translate

logger = logging.getLogger(__name__)


@dataclass
class Record:
    """One submission (an array, or a single job) as stored in the state file."""

    system: str
    pool: str | None
    prefix: str  # worker names are <prefix>-<name_id>-<index>[-<process>]
    processes: int
    array: bool
    elements: list[Element]
    submitted: float = field(default_factory=time.time)
    cancelled: list[str] = field(default_factory=list)  # query ids we cancelled
    cancel_args: list[str] = field(default_factory=list)  # the spec's, for a later cancel

    def status_args(self, system: System) -> tuple[str, ...]:
        return tuple(self.cancel_args) if system.status_takes_cancel_args else ()

    @property
    def job_id(self) -> str:
        return self.elements[0].name_id

    def worker_names(self, element: Element) -> list[str]:
        name = element.name(self.prefix)
        return [name] if self.processes == 1 else [f"{name}-{p}" for p in range(self.processes)]

    def to_json(self) -> dict:
        d = asdict(self)
        d["elements"] = [[e.query_id, e.name_id, e.index] for e in self.elements]
        return d

    @classmethod
    def from_json(cls, d: dict) -> Record:
        d = dict(d)
        d["elements"] = [Element(str(q), str(n), int(i)) for q, n, i in d["elements"]]
        return cls(**d)


def state_paths(scheduler_file: str) -> tuple[str, str]:
    """(state file, state directory) next to the scheduler file."""
    path = os.path.abspath(scheduler_file)
    stem = path[:-5] if path.endswith(".json") else path
    return f"{stem}.addon.json", f"{stem}.addon"


def prepare_dir(state_dir: str) -> None:
    for sub in ("", "ec", "logs", "scripts"):
        os.makedirs(os.path.join(state_dir, sub), mode=0o700, exist_ok=True)


@contextlib.contextmanager
def locked(scheduler_file: str) -> Iterator[list[Record]]:
    """The records, locked for update; written back (atomically, 0600) on exit."""
    path, _ = state_paths(scheduler_file)
    fd = os.open(path + ".lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        records = load(scheduler_file)
        before = [r.to_json() for r in records]
        yield records
        if [r.to_json() for r in records] != before:
            _write(path, records)
    finally:
        os.close(fd)


def load(scheduler_file: str) -> list[Record]:
    path, _ = state_paths(scheduler_file)
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as e:
        raise SubmitError(f"state file {path} is unreadable: {e}") from e
    return [Record.from_json(d) for d in data.get("jobs", [])]


def _write(path: str, records: list[Record]) -> None:
    write_private_json(path, {"jobs": [r.to_json() for r in records]}, indent=1)


# ---------------------------------------------------------------- submit


def requests(spec: JobSpec, system: System, n: int, scheduler_file: str) -> list[Request]:
    """One array per ``max_array`` jobs where the system has arrays, else ``n`` single jobs."""
    _, state_dir = state_paths(scheduler_file)
    sched = os.path.abspath(scheduler_file)
    if spec.array and system.max_array > 1 and n > 1:
        sizes = [min(system.max_array, n - i) for i in range(0, n, system.max_array)]
    else:
        sizes = [1] * n
    return [Request(spec, k, k > 1, sched, state_dir) for k in sizes]


def submit_one(system: System, req: Request, timeout: float) -> Record:
    prepare_dir(req.state_dir)
    if req.spec.log_directory:
        os.makedirs(req.spec.log_directory, exist_ok=True)
    text = system.render(req)
    fd, script = tempfile.mkstemp(prefix=f"{req.spec.name_prefix}-", suffix=system.script_suffix,
                                  dir=os.path.join(req.state_dir, "scripts"))
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(script, 0o700)  # oarsub -S runs the file itself
    argv = with_args(system.submit_argv(script), req.spec.submit_args)
    out = run(argv, timeout, input=text if system.submit_stdin else None).stdout
    elements = system.parse_submit(out, req)
    logger.info("submitted %d %s job(s): %s", len(elements), system.name, elements[0].name_id)
    return Record(system.name, req.spec.pool, req.spec.name_prefix, req.spec.processes,
                  req.array, elements, cancel_args=list(req.spec.cancel_args))


def submit(spec: JobSpec, system: System, n: int, scheduler_file: str,
           timeout: float = 60) -> list[Record]:
    """Submit ``n`` worker jobs and record them; on a failure, what was accepted stays recorded."""
    if n < 1:
        raise SubmitError(f"number of jobs must be at least 1, got {n}")
    done: list[Record] = []
    try:
        for req in requests(spec, system, n, scheduler_file):
            done.append(submit_one(system, req, timeout))
    except SubmitError as e:
        e.accepted = list(done)  # the caller owns them too: to count, watch and cancel
        raise
    finally:
        if done:
            try:
                with locked(scheduler_file) as records:
                    records.extend(done)
            except BaseException:
                # we could not record them: do not leave unrecorded jobs behind
                for rec in done:
                    with contextlib.suppress(SubmitError):
                        cancel_records(get_system(rec.system), [rec], timeout)
                raise
    return done


# ---------------------------------------------------------------- status


def read_exit_code(state_dir: str, name: str) -> int | None:
    try:
        with open(os.path.join(state_dir, "ec", f"{name}.ec")) as f:
            return int(f.read().strip() or "1")
    except (OSError, ValueError):
        return None


def query(records: list[Record], state_dir: str, timeout: float = 60
          ) -> dict[str, JobState]:
    """State of every element (by query id), one status call per system.

    A job missing from the queue is looked up in accounting, then in its exit-code file; with
    neither it is MISSING (over, but we cannot say how) or CANCELLED if we cancelled it.
    """
    out: dict[str, JobState] = {}
    by_query: dict[tuple[str, tuple[str, ...]], list[Record]] = {}
    for rec in records:
        key = (rec.system, rec.status_args(get_system(rec.system)))
        by_query.setdefault(key, []).append(rec)
    for (name, extra), recs in by_query.items():
        system = get_system(name)
        elements = [e for r in recs for e in r.elements]
        native = _ask(system, [e.query_id for e in elements], timeout, extra)
        gone = [e for e in elements if e.query_id not in native]
        if gone and system.accounting_argv is not None:
            native.update(_accounting(system, gone, timeout, extra))
        for rec in recs:
            for e in rec.elements:
                if e.query_id in native:
                    out[e.query_id] = translate(name, native[e.query_id])
                elif e.query_id in rec.cancelled:
                    out[e.query_id] = JobState.CANCELLED
                else:
                    out[e.query_id] = from_exit_code(read_exit_code(state_dir, e.name(rec.prefix)))
    return out


def _ask(system: System, ids: list[str], timeout: float,
         extra: tuple[str, ...] = ()) -> dict[str, str]:
    proc = run(with_args(system.status_argv(ids), extra), timeout, ok=system.status_exit_ok)
    if proc.returncode != 0:
        if _gone(system, proc.stderr):
            pass  # some or all ids have left the queue: the output holds the rest
        elif not proc.stdout.strip():
            raise SubmitError(f"{system.status_argv(ids)[0]} failed (exit {proc.returncode}): "
                              f"{proc.stderr.strip()[:300]}", proc.args, proc.returncode,
                              proc.stdout, proc.stderr)
    try:
        return system.parse_status(proc.stdout)
    except ValueError as e:  # JSON/XML that does not parse
        raise SubmitError(f"{system.name}: unreadable status output: {e}") from e


_no_accounting: set[str] = set()


def _accounting(system: System, gone: list[Element], timeout: float,
                extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Accounting records of jobs that left the queue; none (logged once) if it is off."""
    if system.name in _no_accounting:
        return {}
    assert system.accounting_argv is not None and system.parse_accounting is not None
    batches: Iterable[list[str]]
    if system.accounting_per_id:
        batches = [[j] for j in dict.fromkeys(e.name_id for e in gone)]
    else:
        batches = [[e.query_id for e in gone]]
    found: dict[str, str] = {}
    for ids in batches:
        try:
            argv = with_args(system.accounting_argv(ids), extra)
            found.update(system.parse_accounting(run(argv, timeout).stdout))
        except SubmitError as e:
            if "disabled" in str(e) or "not found" in str(e) and not system.accounting_per_id:
                _no_accounting.add(system.name)
                logger.info("%s: no accounting (%s); finished jobs are judged by their "
                            "exit-code files", system.name, e)
                return found
            logger.debug("%s: no accounting record for %s: %s", system.name, ids, e)
        except ValueError as e:
            logger.debug("%s: unreadable accounting output: %s", system.name, e)
    return found


# ---------------------------------------------------------------- cancel


def cancel_records(system: System, records: list[Record], timeout: float,
                   only: set[str] | None = None) -> list[str]:
    """Cancel whole records (or only the elements in ``only``); returns the ids cancelled."""
    by_args: dict[tuple[str, ...], list[str]] = {}
    for rec in records:
        chosen = [e for e in rec.elements if only is None or e.query_id in only]
        if not chosen:
            continue
        ids = by_args.setdefault(tuple(rec.cancel_args), [])
        if only is None and rec.array and system.whole_job:
            ids.append(system.whole_job.format(id=rec.job_id))
        else:
            ids.extend(e.query_id for e in chosen)
        rec.cancelled = sorted(set(rec.cancelled) | {e.query_id for e in chosen})
    for extra, ids in by_args.items():
        try:
            run(with_args(system.cancel_argv(ids), extra), timeout)
        except SubmitError as e:
            if not _gone(system, e.stderr + e.stdout):
                raise
            logger.info("%s: some jobs had already left the queue: %s", system.name, e)
    return [i for ids in by_args.values() for i in ids]


def _gone(system: System, text: str) -> bool:
    """The system's way of saying "no such job" (it ended meanwhile)."""
    return bool(system.gone_pattern and re.search(system.gone_pattern, text, re.I))


def cancel(scheduler_file: str, pool: str | None = None, timeout: float = 60,
           only: set[str] | None = None, all_pools: bool = True) -> list[str]:
    """Cancel every job of this cluster (or of one pool, or some elements); record it."""
    cancelled: list[str] = []
    with locked(scheduler_file) as records:
        chosen = [r for r in records if all_pools and pool is None or r.pool == pool]
        by_system: dict[str, list[Record]] = {}
        for rec in chosen:
            by_system.setdefault(rec.system, []).append(rec)
        for name, recs in by_system.items():
            cancelled += cancel_records(get_system(name), recs, timeout, only)
    return cancelled
