"""``dask_jobqueue.pbs``'s names: ``from dask_jobqueue.pbs import ...`` has a home."""

from .clusters import PBSCluster
from .core import job_class

PBSJob = job_class("PBSJob", "PBSCluster", __name__)

__all__ = ["PBSCluster", "PBSJob"]
