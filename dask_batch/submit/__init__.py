"""Add-on worker jobs: grow a running cluster with Slurm, PBS, SGE, LSF, HTCondor, Moab, OAR."""

from __future__ import annotations

from typing import Any

__all__ = ["AddOnWorkers", "JobSpec", "JobState", "SubmitError"]


def __getattr__(name: str) -> Any:  # lazy: `dask-batch --help` must not import distributed
    if name == "AddOnWorkers":
        from .addon import AddOnWorkers

        return AddOnWorkers
    if name == "JobSpec":
        from .spec import JobSpec

        return JobSpec
    if name == "JobState":
        from .states import JobState

        return JobState
    if name == "SubmitError":
        from .base import SubmitError

        return SubmitError
    raise AttributeError(name)
