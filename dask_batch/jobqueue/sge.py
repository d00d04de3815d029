"""``dask_jobqueue.sge``'s names: ``from dask_jobqueue.sge import ...`` has a home."""

from .clusters import SGECluster
from .core import job_class

SGEJob = job_class("SGEJob", "SGECluster", __name__)

__all__ = ["SGECluster", "SGEJob"]
