"""dask-jobqueue's interface on dask-batch: change the import, keep the code.

``from dask_batch.jobqueue import SLURMCluster`` (was ``from dask_jobqueue import ...``):
the cluster classes are BatchClusters of one system (``clusters``), ``SLURMRunner`` is a
BatchRunner (``runner``). dask-jobqueue itself is never imported.
"""

from .clusters import (
    DEFAULTS,
    DEPRECATED,
    REFUSED,
    SYSTEMS,
    HTCondorCluster,
    JobQueueCluster,
    LSFCluster,
    MoabCluster,
    OARCluster,
    PBSCluster,
    SGECluster,
    SLURMCluster,
)
from .runner import RUNNER_REFUSED, SLURMRunner

__all__ = ["DEFAULTS", "DEPRECATED", "REFUSED", "RUNNER_REFUSED", "SYSTEMS", "HTCondorCluster",
           "JobQueueCluster", "LSFCluster", "MoabCluster", "OARCluster", "PBSCluster",
           "SGECluster", "SLURMCluster", "SLURMRunner"]
