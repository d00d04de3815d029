"""``dask_jobqueue.htcondor``'s names: ``from dask_jobqueue.htcondor import ...`` has a home."""

from .clusters import HTCondorCluster
from .core import job_class

HTCondorJob = job_class("HTCondorJob", "HTCondorCluster", __name__)

__all__ = ["HTCondorCluster", "HTCondorJob"]
