"""``dask_jobqueue.oar``'s names: ``from dask_jobqueue.oar import ...`` has a home."""

from .clusters import OARCluster
from .core import job_class

OARJob = job_class("OARJob", "OARCluster", __name__)

__all__ = ["OARCluster", "OARJob"]
