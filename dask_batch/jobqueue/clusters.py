"""dask-jobqueue's classes on BatchCluster: change the import, keep the code.

``from dask_batch.jobqueue import SLURMCluster`` takes dask-jobqueue's keywords with their
meaning and defaults (read from ``jobqueue.<system>.*`` as dask-jobqueue does) and turns them
into a BatchCluster job spec. A keyword that BatchCluster cannot honour is refused with one
line naming it (never dropped in silence): see ``REFUSED``. dask-jobqueue itself is not
imported; its defaults are copied in ``DEFAULTS``.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from typing import Any

import dask.config

from ..cluster import BatchCluster
from .config import DEFAULTS, Config
from .keywords import directive_keywords, worker_extra_args

# class name -> (system, config name, the class's own keywords besides the common ones)
SYSTEMS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "SLURMCluster": ("slurm", "slurm", ("queue", "project", "account", "walltime",
                                        "job_cpu", "job_mem")),
    "PBSCluster": ("pbs", "pbs", ("queue", "project", "account", "resource_spec",
                                  "walltime")),
    "SGECluster": ("sge", "sge", ("queue", "project", "resource_spec", "walltime")),
    "LSFCluster": ("lsf", "lsf", ("queue", "project", "ncpus", "mem", "walltime",
                                  "lsf_units", "use_stdin")),
    "HTCondorCluster": ("htcondor", "htcondor", ("disk", "submit_command_extra",
                                                 "cancel_command_extra")),
    "MoabCluster": ("moab", "moab", ("queue", "project", "account", "resource_spec",
                                     "walltime")),
    "OARCluster": ("oar", "oar", ("queue", "project", "resource_spec", "walltime",
                                  "memory_per_core_property_name", "submit_command_extra",
                                  "cancel_command_extra")),
}

# the shebangs that mean what ours do (HTCondor's: a submit description, as ours)
_SHEBANGS = ("#!/usr/bin/env bash", "#!/usr/bin/env condor_submit")

# keyword -> why BatchCluster refuses a value other than None (or the default)
REFUSED: dict[str, str] = {
    "job_cls": "the job classes are dask_batch.submit's, one per batch system",
    "scheduler_cls": "the scheduler is distributed.Scheduler",
    "worker_command": "workers start through dask-batch's own worker entry point",
    "shebang": "job scripts are bash: give a shebang that runs bash, e.g. #!/bin/bash -l",
    "security": "credentials are made for each cluster: give True or False",
}

# deprecated spelling -> (new spelling, dask-jobqueue's warning)
DEPRECATED: dict[str, tuple[str, str]] = {
    "job_extra": ("job_extra_directives",
                  "job_extra has been renamed to job_extra_directives. You are still using it "
                  "(even if only set to []; please also check config files). If you did not "
                  "set job_extra_directives yet, job_extra will be respected for now, but it "
                  "will be removed in a future release. If you already set "
                  "job_extra_directives, job_extra is ignored and you can remove it."),
    "env_extra": ("job_script_prologue",
                  "env_extra has been renamed to job_script_prologue. You are still using it "
                  "(even if only set to []; please also check config files). If you did not "
                  "set job_script_prologue yet, env_extra will be respected for now, but it "
                  "will be removed in a future release. If you already set "
                  "job_script_prologue, env_extra is ignored and you can remove it."),
    "header_skip": ("job_directives_skip",
                    "header_skip has been renamed to job_directives_skip. You are still using "
                    "it (even if only set to []; please also check config files). If you did "
                    "not set job_directives_skip yet, header_skip will be respected for now, "
                    "but it will be removed in a future release. If you already set "
                    "job_directives_skip, header_skip is ignored and you can remove it."),
    "extra": ("worker_extra_args",
              "extra has been renamed to worker_extra_args. You are still using it (even if "
              "only set to []; please also check config files). If you did not set "
              "worker_extra_args yet, extra will be respected for now, but it will be "
              "removed in a future release. If you already set worker_extra_args, extra is "
              "ignored and you can remove it."),
}
_PROJECT_WARNING = (
    "project has been renamed to account as this kwarg was used wit -A option. You are still "
    "using it (please also check config files). If you did not set account yet, project will "
    "be respected for now, but it will be removed in a future release. If you already set "
    "account, project is ignored and you can remove it.")

# dask-jobqueue's Job keywords (every class) -> the job spec key they become
COMMON = ("cores", "memory", "processes", "nanny", "protocol", "interface", "death_timeout",
          "local_directory", "extra", "worker_command", "worker_extra_args", "job_extra",
          "job_extra_directives", "env_extra", "job_script_prologue", "header_skip",
          "job_directives_skip", "log_directory", "shebang", "python", "job_name")
_SPEC = {"job_extra_directives": "extra_directives", "job_script_prologue": "prologue",
         "job_directives_skip": "skip_directives", "job_name": "job_name",
         "submit_command_extra": "submit_args", "cancel_command_extra": "cancel_args"}


class JobQueueCluster(BatchCluster):
    """dask-jobqueue's ``JobQueueCluster`` keywords on a BatchCluster of one system.

    Use a subclass (``SLURMCluster``, ``PBSCluster``, ...). ``job_cls`` is not kept: the
    job classes are dask_batch.submit's. ``security`` is True (the default) or False.
    """

    system_name: str | None = None
    config_name: str | None = None
    own_keywords: tuple[str, ...] = ()

    def __init__(self, n_workers: int = 0, job_cls: Any = None, loop: Any = None,
                 security: Any = None, shared_temp_directory: str | None = None,
                 silence_logs: str | bool = "error", name: str | None = None,
                 asynchronous: bool = False, dashboard_address: str | None = None,
                 host: str | None = None, scheduler_options: dict | None = None,
                 scheduler_cls: Any = None, interface: str | None = None,
                 protocol: str | None = None, config_name: str | None = None,
                 **job_kwargs: Any):
        if self.system_name is None:
            raise TypeError("JobQueueCluster is a base class: use SLURMCluster, PBSCluster, "
                            "SGECluster, LSFCluster, HTCondorCluster, MoabCluster or "
                            "OARCluster")
        given = self.translate(
            job_cls=job_cls, security=security, shared_temp_directory=shared_temp_directory,
            dashboard_address=dashboard_address, host=host,
            scheduler_options=scheduler_options, scheduler_cls=scheduler_cls,
            interface=interface, protocol=protocol, config_name=config_name, **job_kwargs)
        directory = given.pop("directory")
        with dask.config.set({"batch.cluster.directory": directory}) if directory \
                else contextlib.nullcontext():
            super().__init__(self.system_name, silence_logs=silence_logs,
                             asynchronous=asynchronous, loop=loop, **given)
        if name:
            self._cluster_info["name"] = name
        if n_workers:
            self.scale(n_workers)

    @classmethod
    def translate(cls, job_cls: Any = None, security: Any = None,
                  shared_temp_directory: str | None = None,
                  dashboard_address: str | None = None, host: str | None = None,
                  scheduler_options: dict | None = None, scheduler_cls: Any = None,
                  interface: str | None = None, protocol: str | None = None,
                  config_name: str | None = None, **job_kwargs: Any) -> dict[str, Any]:
        """dask-jobqueue's keywords as BatchCluster's (``directory``: the shared folder)."""
        _refuse(job_cls=job_cls, scheduler_cls=_not_default_scheduler(scheduler_cls))
        cfg = Config(config_name or cls.config_name or str(cls.system_name))
        options = cls._scheduler_kwargs(cfg, scheduler_options, dashboard_address, host,
                                        interface, protocol)
        spec = cls._job_spec(cfg, interface=interface, **job_kwargs)
        return {"scheduler_options": options, "security": _security(security, protocol),
                "directory": shared_temp_directory or cfg.get("shared-temp-directory"),
                **spec}

    @staticmethod
    def _scheduler_kwargs(cfg: Config, options: dict | None, dashboard_address: str | None,
                          host: str | None, interface: str | None,
                          protocol: str | None) -> dict[str, Any]:
        """As dask-jobqueue: the keywords over ``scheduler_options`` over the config."""
        out = dict(options if options is not None else cfg.get("scheduler-options") or {})
        interface = interface or cfg.get("interface")
        for key, value in (("dashboard_address", dashboard_address), ("host", host),
                           ("interface", interface), ("protocol", protocol)):
            if value is not None:
                out.setdefault(key, value)
        if "host" in out and interface and out.get("interface") == interface:
            out.pop("interface")  # a host chosen for the scheduler wins over the workers'
        return out

    @classmethod
    def _job_spec(cls, cfg: Config, **kw: Any) -> dict[str, Any]:
        allowed = set(COMMON) | set(cls.own_keywords)
        unknown = sorted(set(kw) - allowed - {"interface"})
        if unknown:
            raise TypeError(f"{cls.__name__}() got unexpected keyword argument(s) "
                            f"{', '.join(unknown)}")
        if kw.get("extra"):  # checked before its new name: the error names the one given
            worker_extra_args(kw["extra"], "extra")
        kw = _deprecated(kw, cfg)
        values = {k: kw[k] if kw.get(k) is not None else cfg.get(k) for k in allowed}
        values["interface"] = kw.get("interface") or cfg.get("interface")
        _refuse(**{k: values.get(k) for k in REFUSED if k in allowed and k not in (
            "shebang", "worker_command")})
        shebang = values["shebang"]
        _refuse(shebang=None if shebang is None or "bash" in shebang or shebang in _SHEBANGS
                else shebang,
                worker_command=None if values["worker_command"] in (
                    None, DEFAULTS["worker-command"]) else values["worker_command"])
        if values["cores"] is None or values["memory"] is None:
            raise ValueError(f"You must specify how much cores and memory per job you want to "
                             f"use, for example: {cls.__name__}(cores=8, "
                             f"memory='24GB')")
        return cls._spec_from(values)

    @classmethod
    def _spec_from(cls, v: dict[str, Any]) -> dict[str, Any]:
        from distributed.deploy.local import nprocesses_nthreads

        spec: dict[str, Any] = {k: v[k] for k in ("cores", "memory", "local_directory",
                                                  "log_directory", "python", "interface")}
        spec["processes"] = v["processes"] or nprocesses_nthreads(int(v["cores"]))[0]
        spec["nanny"] = True if v["nanny"] is None else v["nanny"]
        spec["death_timeout"] = int(v["death_timeout"] or DEFAULTS["death-timeout"])
        spec["walltime"] = cls._walltime(v.get("walltime") or DEFAULTS["walltime"])
        spec["queue"] = v.get("queue")
        spec["account"] = cls._account(v)
        for key, target in _SPEC.items():
            spec[target] = v.get(key) or ([] if key != "job_name" else DEFAULTS["name"])
        if isinstance(spec["extra_directives"], dict):  # HTCondor's form: key = value
            spec["extra_directives"] = [f"{k} = {x}" for k, x in
                                        spec["extra_directives"].items()]
        extra, skip = cls._resource_spec(v)
        after, replaced = directive_keywords(str(cls.system_name), v, spec["extra_directives"])
        spec["extra_directives"] = [*extra, *spec["extra_directives"], *after]
        spec["skip_directives"] = [*skip, *replaced, *spec["skip_directives"]]
        if v["shebang"] not in (None, *_SHEBANGS):
            spec["shebang"] = v["shebang"]
        if v["worker_extra_args"]:
            spec.update(worker_extra_args(v["worker_extra_args"]))
        return {k: x for k, x in spec.items() if x is not None}

    @classmethod
    def _walltime(cls, walltime: Any) -> Any:
        """LSF's walltime is dask-jobqueue's ``HH:MM`` (bsub -W); elsewhere ``HH:MM:SS``."""
        if cls.system_name == "lsf" and re.fullmatch(r"\d+:\d{1,2}", str(walltime)):
            return f"{walltime}:00"
        return walltime

    @classmethod
    def _account(cls, v: dict[str, Any]) -> str | None:
        project, account = v.get("project"), v.get("account")
        if cls.system_name == "sge":
            return None  # SGE's project is -P (see _resource_spec), not the -A account
        if "account" not in cls.own_keywords:
            return project  # LSF -P, OAR --project: our account
        if project is not None:
            warnings.warn(_PROJECT_WARNING, FutureWarning, stacklevel=4)
        return account or project

    @classmethod
    def _resource_spec(cls, v: dict[str, Any]) -> tuple[list[str], list[str]]:
        """``resource_spec`` replaces the generated request where that line holds only it
        (PBS, Moab, OAR: walltime kept) and is added elsewhere (SGE); HTCondor's ``disk`` is
        its request_disk. Returns (directives to add, generated ones to skip)."""
        from ..units import hms, parse_duration, parse_memory

        rs = v.get("resource_spec")
        extra: list[str] = []
        skip: list[str] = []
        if cls.system_name == "sge":  # dask-jobqueue's SGE jobs run in the submission folder
            extra = ["-cwd", *([f"-P {v['project']}"] if v.get("project") else [])]
            # and ask for cores and memory only through resource_spec: a site's jobqueue.yaml
            # may know no "smp" parallel environment, nor a requestable mem_free
            skip = ["-pe ", "mem_free="]
        if v.get("disk") is not None:
            return [f"request_disk = {parse_memory(v['disk']) // 1024}"], []
        if not rs:
            return extra, skip
        walltime = hms(parse_duration(v.get("walltime") or DEFAULTS["walltime"], "walltime"))
        own = {"pbs": ("select=", [f"-l {rs}"]),
               "moab": ("nodes=1:ppn=", [f"-l {rs}", f"-l walltime={walltime}"]),
               "oar": ("/nodes=1/", [f"-l {rs},walltime={walltime}"])}
        replaced, lines = own.get(str(cls.system_name), (None, [f"-l {rs}"]))
        return [*extra, *lines], [*skip, *([replaced] if replaced else [])]

    # ------------------------------------------------------------ dask-jobqueue's API

    def adapt(self, *args: Any, minimum_jobs: int | None = None,
              maximum_jobs: int | None = None, **kwargs: Any) -> Any:
        """As dask-jobqueue: ``minimum_jobs``/``maximum_jobs`` count jobs, the rest workers."""
        if minimum_jobs is not None:
            kwargs["minimum"] = minimum_jobs * self.spec.processes
        if maximum_jobs is not None:
            kwargs["maximum"] = maximum_jobs * self.spec.processes
        return super().adapt(*args, **kwargs)

    def scale(self, n: int | None = None, jobs: int = 0, memory: Any = None,
              cores: int | None = None) -> Any:
        """Workers ``n``, or enough for ``jobs`` jobs, ``memory`` or ``cores``."""
        if jobs:
            return super().scale(jobs=jobs)
        return super().scale(n, memory=memory, cores=cores)

    @property
    def job_name(self) -> str:
        return self.spec.job_name

    @property
    def job_header(self) -> str:
        """The directive lines of ``job_script()``."""
        lines = self.job_script().splitlines()[1:]
        return "\n".join(ln for ln in lines[: lines.index("") if "" in lines else None])

    @property
    def worker_spec(self) -> dict[str, list[str]]:
        """Jobs accepted and not over: job id -> its workers' names."""
        return {e.query_id: r.worker_names(e) for r, e in self._active()}

    @property
    def workers(self) -> dict[str, list[str]]:
        return self.worker_spec


def _deprecated(kw: dict[str, Any], cfg: Config) -> dict[str, Any]:
    """dask-jobqueue's old spellings: its warning, and the new one wins when both are set."""
    out = dict(kw)
    for old, (new, message) in DEPRECATED.items():
        value = out.pop(old, None)
        if value is None:
            value = cfg.get(old)
        if value is None:
            continue
        warnings.warn(message, FutureWarning, stacklevel=4)
        if out.get(new) is None and cfg.get(new) in (None, [], {}):
            out[new] = value
    return out


def _refuse(**values: Any) -> None:
    for key, value in values.items():
        if value is not None and value != [] and value != {}:
            raise TypeError(f"{key}={value!r} is not supported: {REFUSED[key]}")


def _not_default_scheduler(cls: Any) -> Any:
    from distributed import Scheduler

    return None if cls in (None, Scheduler) else cls


def _security(security: Any, protocol: str | None) -> bool | None:
    if not (security is None or isinstance(security, bool)):
        _refuse(security=security)
    if protocol is not None and protocol.startswith("tcp"):
        if security:
            raise ValueError("protocol='tcp://' with security=True: TLS needs tls://")
        return False
    return security


def _make(class_name: str) -> type[JobQueueCluster]:
    system, config_name, own = SYSTEMS[class_name]
    doc = (f"dask-jobqueue's ``{class_name}`` on BatchCluster(system={system!r}): the same "
           f"keywords ({', '.join(own)} and JobQueueCluster's), defaults from "
           f"``jobqueue.{config_name}.*``.")
    return type(class_name, (JobQueueCluster,), {
        "system_name": system, "config_name": config_name, "own_keywords": own,
        "__doc__": doc, "__module__": __name__})


SLURMCluster = _make("SLURMCluster")
PBSCluster = _make("PBSCluster")
SGECluster = _make("SGECluster")
LSFCluster = _make("LSFCluster")
HTCondorCluster = _make("HTCondorCluster")
MoabCluster = _make("MoabCluster")
OARCluster = _make("OARCluster")

__all__ = ["DEFAULTS", "DEPRECATED", "REFUSED", "SYSTEMS", "JobQueueCluster", *SYSTEMS]
