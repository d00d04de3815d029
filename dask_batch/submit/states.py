"""One normalised job state, and each system's native codes mapped onto it.

TIMEOUT is kept apart from FAILED: add-on workers are pilot jobs and normally end at walltime
(Parsl #2207). A job that has left the queue is MISSING until accounting (or the exit-code file
the job script writes) says how it ended (Parsl #1588). An unknown native code is UNKNOWN,
logged once, never terminal (Parsl #2255).
"""

from __future__ import annotations

import enum
import logging

logger = logging.getLogger(__name__)


class JobState(str, enum.Enum):
    PENDING = "pending"
    HELD = "held"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    MISSING = "missing"  # gone from the queue, no accounting record: ended somehow
    UNKNOWN = "unknown"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def active(self) -> bool:
        """Counts as requested: asked for and not over (pending jobs included)."""
        return self in (JobState.PENDING, JobState.HELD, JobState.RUNNING, JobState.UNKNOWN)


TERMINAL = frozenset(
    {JobState.DONE, JobState.FAILED, JobState.CANCELLED, JobState.TIMEOUT, JobState.MISSING}
)

S = JobState
NATIVE_STATES: dict[str, dict[str, JobState]] = {
    # squeue %T / sacct State (sacct adds "CANCELLED by 0": first word is used)
    "slurm": {
        "PENDING": S.PENDING, "CONFIGURING": S.PENDING, "REQUEUED": S.PENDING,
        "REQUEUE_HOLD": S.HELD, "REQUEUE_FED": S.PENDING, "RESV_DEL_HOLD": S.HELD,
        "RUNNING": S.RUNNING, "COMPLETING": S.RUNNING, "STAGE_OUT": S.RUNNING,
        "SIGNALING": S.RUNNING, "RESIZING": S.RUNNING, "SUSPENDED": S.HELD, "STOPPED": S.HELD,
        "COMPLETED": S.DONE, "FAILED": S.FAILED, "BOOT_FAIL": S.FAILED, "NODE_FAIL": S.FAILED,
        "OUT_OF_MEMORY": S.FAILED, "DEADLINE": S.TIMEOUT, "TIMEOUT": S.TIMEOUT,
        "PREEMPTED": S.CANCELLED, "CANCELLED": S.CANCELLED, "REVOKED": S.CANCELLED,
        "SPECIAL_EXIT": S.FAILED,
    },
    # qstat job_state (PBS Pro / OpenPBS)
    "pbs": {
        "Q": S.PENDING, "W": S.PENDING, "T": S.PENDING, "B": S.RUNNING, "R": S.RUNNING,
        "E": S.RUNNING, "H": S.HELD, "S": S.HELD, "U": S.HELD, "M": S.PENDING,
        "F": S.DONE, "X": S.DONE,
    },
    # qstat state letters; "E" anywhere = error (Eqw) -> FAILED, "d" = being deleted
    "sge": {
        "qw": S.PENDING, "hqw": S.HELD, "hRwq": S.HELD, "r": S.RUNNING, "t": S.RUNNING,
        "Rr": S.RUNNING, "Rt": S.RUNNING, "s": S.HELD, "ts": S.HELD, "S": S.HELD,
        "T": S.HELD, "Eqw": S.FAILED, "Ehqw": S.FAILED, "dr": S.CANCELLED, "dt": S.CANCELLED,
        "dqw": S.CANCELLED, "Rq": S.PENDING,
    },
    "lsf": {
        "PEND": S.PENDING, "WAIT": S.PENDING, "PROV": S.PENDING, "RUN": S.RUNNING,
        "PSUSP": S.HELD, "USUSP": S.HELD, "SSUSP": S.HELD, "DONE": S.DONE, "EXIT": S.FAILED,
        "ZOMBI": S.FAILED, "UNKWN": S.UNKNOWN,
    },
    # JobStatus codes
    "htcondor": {
        "1": S.PENDING, "2": S.RUNNING, "3": S.CANCELLED, "4": S.DONE, "5": S.HELD,
        "6": S.RUNNING, "7": S.HELD,
    },
    # showq/checkjob State [unv: Moab manual not checked]
    "moab": {
        "Idle": S.PENDING, "Deferred": S.HELD, "BatchHold": S.HELD, "SystemHold": S.HELD,
        "UserHold": S.HELD, "Hold": S.HELD, "Running": S.RUNNING, "Starting": S.RUNNING,
        "Staging": S.RUNNING, "Suspended": S.HELD, "Completed": S.DONE, "Removed": S.CANCELLED,
        "Vacated": S.CANCELLED, "Canceling": S.CANCELLED,
    },
    "oar": {
        "Waiting": S.PENDING, "toLaunch": S.PENDING, "Launching": S.PENDING, "toAckReservation":
        S.PENDING, "Hold": S.HELD, "Suspended": S.HELD, "Resuming": S.RUNNING,
        "Running": S.RUNNING, "Finishing": S.RUNNING, "Terminated": S.DONE, "Error": S.FAILED,
        "toError": S.FAILED,
    },
}

_warned: set[tuple[str, str]] = set()


def translate(system: str, native: str) -> JobState:
    """The normalised state of a native code; UNKNOWN (logged once) if the code is new."""
    table = NATIVE_STATES[system]
    code = native.strip()
    if code.startswith("="):  # a parser that already knew (e.g. from an exit code)
        return JobState(code[1:])
    state = table.get(code) or table.get(code.split(" ")[0].rstrip("+"))
    if state is None and system == "sge" and "E" in code:
        state = JobState.FAILED
    if state is None:
        if (system, code) not in _warned:
            _warned.add((system, code))
            logger.warning("unknown %s job state %r: treated as UNKNOWN", system, code)
        return JobState.UNKNOWN
    return state


def from_exit_code(code: int | None) -> JobState:
    """How a job ended from the exit code its script wrote (None: no file)."""
    if code is None:
        return JobState.MISSING
    return JobState.DONE if code == 0 else JobState.FAILED
