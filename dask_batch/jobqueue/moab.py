"""``dask_jobqueue.moab``'s names: ``from dask_jobqueue.moab import ...`` has a home."""

from .clusters import MoabCluster
from .core import job_class

MoabJob = job_class("MoabJob", "MoabCluster", __name__)

__all__ = ["MoabCluster", "MoabJob"]
