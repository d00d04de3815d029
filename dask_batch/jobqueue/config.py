"""Where a dask-jobqueue keyword's configured value comes from: ``batch.submit.*`` where the user
set it, else the site's ``jobqueue.<system>.*`` (its jobqueue.yaml), else dask-jobqueue's
default (copied here: dask-jobqueue itself is not imported)."""

from __future__ import annotations

from typing import Any

import dask.config

from ..settings import PACKAGED

# dask-jobqueue's defaults (its jobqueue.yaml), used when jobqueue.<system>.<key> is unset
DEFAULTS: dict[str, Any] = {
    "name": "dask-worker", "death-timeout": 60, "shebang": "#!/usr/bin/env bash",
    "walltime": "00:30:00", "worker-command": "distributed.cli.dask_worker",
}

# dask-jobqueue keyword -> the batch.submit key that means the same
_BATCH_KEYS = {"cores": "cores", "memory": "memory", "processes": "processes",
               "queue": "queue", "account": "account", "walltime": "walltime",
               "job_name": "job-name", "job_script_prologue": "prologue",
               "job_extra_directives": "extra-directives",
               "job_directives_skip": "skip-directives", "local_directory": "local-directory",
               "log_directory": "log-directory", "interface": "interface", "nanny": "nanny",
               "death_timeout": "death-timeout", "python": "python", "shebang": "shebang"}


class Config:
    """A keyword's configured value: ``batch.submit.<key>`` where the user set it (it differs
    from dask-batch's packaged default), else ``jobqueue.<name>.<key>`` (a site's
    jobqueue.yaml), else dask-jobqueue's default."""

    def __init__(self, name: str):
        self.name = name

    def get(self, key: str) -> Any:
        batch_key = _BATCH_KEYS.get(key)
        if batch_key is not None:
            value = dask.config.get(f"batch.submit.{batch_key}", default=None)
            if value != PACKAGED["batch"]["submit"].get(batch_key):
                return value
        dashed = key.replace("_", "-")
        if key == "job_name":
            dashed = "name"
        return dask.config.get(f"jobqueue.{self.name}.{dashed}",
                               default=DEFAULTS.get(dashed))

