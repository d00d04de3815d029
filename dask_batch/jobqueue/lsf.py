"""``dask_jobqueue.lsf``'s names: ``from dask_jobqueue.lsf import ...`` has a home."""

from .clusters import LSFCluster
from .core import job_class

LSFJob = job_class("LSFJob", "LSFCluster", __name__)

__all__ = ["LSFCluster", "LSFJob"]
