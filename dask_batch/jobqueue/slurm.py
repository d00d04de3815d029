"""``dask_jobqueue.slurm``'s names: ``from dask_jobqueue.slurm import ...`` has a home."""

from ..plan import WorldTooSmallException
from .clusters import SLURMCluster
from .core import job_class
from .runner import SLURMRunner

SLURMJob = job_class("SLURMJob", "SLURMCluster", __name__)

__all__ = ["SLURMCluster", "SLURMJob", "SLURMRunner", "WorldTooSmallException"]
