"""How a job ends: the member link to the scheduler (``link``), the walltime signal
(``signals``) and the one way out of a process (``exit``)."""

from ..errors import EXIT_CLIENT_LOST, EXIT_NO_CLIENT, EXIT_SCHEDULER_LOST
from .exit import exit_code_of, flush_and_exit, hard_exit_after, report_and_exit
from .link import JobWatch, Member, MemberLink, lost_grace, set_keepalive
from .signals import AllocationEnding

__all__ = [
    "EXIT_CLIENT_LOST", "EXIT_NO_CLIENT", "EXIT_SCHEDULER_LOST", "AllocationEnding", "JobWatch",
    "Member", "MemberLink", "exit_code_of", "flush_and_exit", "hard_exit_after", "lost_grace",
    "report_and_exit", "set_keepalive",
]
