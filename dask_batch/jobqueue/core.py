"""``dask_jobqueue.core``'s names: ``JobQueueCluster``, and ``Job``, which does not exist here.

dask-jobqueue makes one ``Job`` object per batch job; dask_batch's jobs are rows of one job
spec, rendered by the cluster. Code that builds a ``Job`` itself gets one line naming the
alternative instead of an ``ImportError``.
"""

from __future__ import annotations

from typing import Any

from .clusters import JobQueueCluster


class Job:
    """dask-jobqueue's per-job class; dask_batch has none (see the module's docstring)."""

    cluster_name = "JobQueueCluster"

    def __init__(self, *args: Any, **kwargs: Any):
        raise TypeError(
            f"{type(self).__name__} does not exist in dask_batch: its jobs are made by "
            f"{self.cluster_name}(...); see {self.cluster_name}(...).job_script() for the "
            "script, or BatchCluster for the job spec")


def job_class(name: str, cluster_name: str, module: str) -> type[Job]:
    return type(name, (Job,), {"cluster_name": cluster_name, "__module__": module,
                               "__doc__": f"dask-jobqueue's {name}: use {cluster_name}."})


__all__ = ["Job", "JobQueueCluster"]
