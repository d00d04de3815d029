"""dask_batch.jobqueue against the installed dask-jobqueue (a test dependency only): every
keyword accepted or refused with a reason, the same directives, and real runs."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import warnings
from pathlib import Path

import dask.config
import pytest
from clusters import sge_env, sge_queued, sge_up, slurm_env
from conftest import require

sys.path.insert(0, str(Path(__file__).parent / "fakes"))
import dask_jobqueue  # noqa: E402  (the test extra installs it: a reference, not a dependency)
from helpers import wait_for  # noqa: E402
from test_cluster import job_ids, scancel, slurm_serving, squeue_ids  # noqa: E402

SCHED = {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}
CLASSES = ["SLURMCluster", "PBSCluster", "SGECluster", "LSFCluster", "HTCondorCluster",
           "MoabCluster", "OARCluster"]

# keyword -> (a value BatchCluster cannot honour, words of the reason in the error)
REFUSED = {
    "job_cls": (object, "job classes"),
    "scheduler_cls": (dict, "distributed.Scheduler"),
    "worker_command": ("mymod.worker", "entry point"),
    "worker_extra_args": (["--foo"], "not a dask-worker flag the workers take"),
    "extra": (["--foo"], "not a dask-worker flag"),
    "shebang": ("#!/bin/zsh", "bash"),
    "security": (object(), "True or False"),
}
# keywords of the cluster object itself (not of its jobs): in our signature, same default
CLUSTER_LEVEL = {"n_workers", "loop", "silence_logs", "name", "asynchronous"}
# a value for every other keyword; it must change what BatchCluster is given
SAMPLES = {
    "cores": 4, "memory": "8GiB", "processes": 2, "nanny": False, "protocol": "tcp://",
    "interface": "lo", "death_timeout": 30, "local_directory": "/tmp/jq-local",
    "job_extra": ["--a"], "job_extra_directives": ["--a"], "env_extra": ["echo x"],
    "job_script_prologue": ["echo x"], "header_skip": ["-J"], "job_directives_skip": ["-J"],
    "log_directory": "/tmp/jq-logs", "python": "/usr/bin/python3", "job_name": "jn",
    "queue": "q1", "project": "pj", "account": "ac", "walltime": "01:00:00",
    "resource_spec": "select=1:ncpus=2", "disk": "1GiB", "shared_temp_directory": "/tmp/jqs",
    "dashboard_address": ":0", "host": "127.0.0.1", "scheduler_options": {"port": 0},
    "config_name": "other", "use_stdin": False,
    "job_cpu": 4, "job_mem": "4GB", "ncpus": 4, "mem": 4_000_000_000, "lsf_units": "GB",
    "memory_per_core_property_name": "memcore",
    "submit_command_extra": ["-name", "s1"], "cancel_command_extra": ["-name", "s1"],
}
# accepted keywords whose value changes nothing here, as in dask-jobqueue where they only
# choose how bsub receives the script (ours always gives it on stdin, where #BSUB is read)
NO_CHANGE = {"use_stdin"}
BASE = {"cores": 1, "memory": "1GiB"}


def their_keywords(name: str) -> set[str]:
    from dask_jobqueue.core import Job

    cls = getattr(dask_jobqueue, name)
    out: set[str] = set()
    for f in (cls.__init__, cls.job_cls.__init__, Job.__init__):
        out |= {p.name for p in inspect.signature(f).parameters.values()
                if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return out - {"self", "scheduler"}


def translated(cls, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return cls.translate(**{**BASE, **kw})


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", CLASSES)
def test_every_dask_jobqueue_keyword_is_accepted_or_refused_with_a_reason(name):
    from dask_batch import jobqueue

    ours = getattr(jobqueue, name)
    keywords = their_keywords(name)
    assert {"cores", "memory", "job_extra_directives", "config_name"} <= keywords  # sanity
    base = translated(ours)
    for kw in sorted(keywords):
        if kw in CLUSTER_LEVEL:
            theirs = inspect.signature(getattr(dask_jobqueue, name).__init__).parameters[kw]
            assert inspect.signature(ours.__init__).parameters[kw].default == theirs.default
        elif kw in REFUSED:
            value, reason = REFUSED[kw]
            with pytest.raises((TypeError, ValueError), match=f"{kw}=.*{reason}"):
                translated(ours, **{kw: value})
        else:
            assert kw in SAMPLES, f"{name}({kw}=): neither accepted nor refused"
            conf = {"jobqueue.other.death-timeout": 17} if kw == "config_name" else {}
            with dask.config.set(conf):
                got = translated(ours, **{kw: SAMPLES[kw]})
            assert (got == base) == (kw in NO_CHANGE), f"{name}({kw}={SAMPLES[kw]!r})"


@pytest.mark.timeout(30)
def test_unknown_keyword_missing_memory_and_jobqueue_config():
    from dask_batch.jobqueue import PBSCluster, SLURMCluster

    with pytest.raises(TypeError, match="unexpected keyword argument.*resource_spec"):
        SLURMCluster.translate(cores=1, memory="1GB", resource_spec="x")
    with pytest.raises(ValueError, match="cores and memory"):
        SLURMCluster.translate(cores=1)
    with dask.config.set({"jobqueue.pbs.cores": 6, "jobqueue.pbs.memory": "6GB",
                          "jobqueue.pbs.queue": "cfgq", "jobqueue.pbs.walltime": "03:00:00"}):
        got = PBSCluster.translate()
    assert (got["cores"], got["memory"], got["queue"], got["walltime"]) == \
        (6, "6GB", "cfgq", "03:00:00")
    assert got["processes"] == 3  # dask-jobqueue's choice for 6 cores: nprocesses_nthreads
    assert SLURMCluster.translate(cores=1, memory="1GB")["walltime"] == "00:30:00"


def test_batch_settings_win_over_jobqueue_config_where_both_are_set():
    """A keyword given wins; then batch.submit.* where the user set it; then the site's
    jobqueue.<system>.*; then dask-jobqueue's defaults (walltime 00:30:00)."""
    from dask_batch.jobqueue import SLURMCluster

    site = {"jobqueue.slurm.cores": 4, "jobqueue.slurm.memory": "4GiB",
            "jobqueue.slurm.queue": "jq", "jobqueue.slurm.walltime": "01:00:00",
            "jobqueue.slurm.job-script-prologue": ["module load site"]}
    with dask.config.set(site):
        got = SLURMCluster.translate()
        assert (got["queue"], got["walltime"], got["cores"]) == ("jq", "01:00:00", 4)
        assert got["prologue"] == ["module load site"]
        with dask.config.set({"batch.submit.queue": "bq", "batch.submit.walltime": "05:00:00",
                              "batch.submit.prologue": ["module load mine"]}):
            got = SLURMCluster.translate()
            assert (got["queue"], got["walltime"], got["cores"]) == ("bq", "05:00:00", 4)
            assert got["prologue"] == ["module load mine"]
            assert SLURMCluster.translate(queue="kw")["queue"] == "kw"
    with dask.config.set({"batch.submit.cores": 2, "batch.submit.memory": "2GiB"}):
        got = SLURMCluster.translate()  # batch.submit alone satisfies "cores and memory"
        assert (got["cores"], got["memory"], got["walltime"]) == (2, "2GiB", "00:30:00")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", CLASSES)
@pytest.mark.parametrize("old, new", [("job_extra", "job_extra_directives"),
                                      ("env_extra", "job_script_prologue"),
                                      ("header_skip", "job_directives_skip")])
def test_deprecated_spellings_warn_as_dask_jobqueue_does(name, old, new):
    from dask_batch import jobqueue

    theirs_cls = getattr(dask_jobqueue, name).job_cls
    ours_cls = getattr(jobqueue, name)
    own = {"HTCondorCluster": {"disk": "1GB"}}.get(name, {})
    # HTCondor's skip list names keys of its submit description
    value = ["batch_name"] if (name, old) == ("HTCondorCluster", "header_skip") else ["-x"]
    with pytest.warns(FutureWarning) as theirs:
        theirs_cls(cores=1, memory="1GB", **own, **{old: value})
    with pytest.warns(FutureWarning) as ours:
        got = ours_cls.translate(cores=1, memory="1GB", **own, **{old: value})
    assert [str(w.message) for w in ours if old in str(w.message)] == \
        [str(w.message) for w in theirs if old in str(w.message)]
    key = {"job_extra_directives": "extra_directives", "job_script_prologue": "prologue",
           "job_directives_skip": "skip_directives"}[new]
    assert value[0] in got[key], got[key]
    if "account" in ours_cls.own_keywords:  # Slurm, PBS, Moab: project is account's old name
        with pytest.warns(FutureWarning, match="project has been renamed to account"):
            assert ours_cls.translate(cores=1, memory="1GB", project="p")["account"] == "p"


# ------------------------------------------------------------ (b) the same directives

KW = dict(cores=8, memory="32GiB", processes=2, queue="normal", walltime="02:00:00",
          job_name="jqtest")
PREFIX = {"SLURMCluster": "#SBATCH", "PBSCluster": "#PBS", "SGECluster": "#$",
          "LSFCluster": "#BSUB", "MoabCluster": "#PBS", "OARCluster": "#OAR"}
# deliberate differences: ours also has log files, array and shell lines; dask-jobqueue
# rounds memory up to whole units (compared within 10%), SLURM -n 1 is our --ntasks=1; SGE's
# stderr is its own file (ours is read when a job fails), not joined with -j y
DIFFERENT = {("SGECluster", "j"),
             # Moab: Torque's nodes=1:ppn=N,mem= (Moab's own), not PBS Pro's select= that
             # dask-jobqueue's MoabJob inherits from its PBSJob; checked below
             ("MoabCluster", "select"), ("MoabCluster", "ncpus"), ("MoabCluster", "mem"),
             ("MoabCluster", "time"),  # walltime inside nodes=...,walltime=
             ("OARCluster", "/nodes")}  # the same request, hours not zero-padded: below
LONG = {"-J": "job-name", "-p": "partition", "-A": "account", "-n": "ntasks",
        "-t": "time", "-N": "name", "-q": "queue", "-W": "walltime", "-M": "memory", "-P":
        "project"}


def directives(script: str, prefix: str) -> dict[str, str]:
    """Directive lines as {long option name: value}; PBS/SGE -l resources one key each."""
    out: dict[str, str] = {}
    for line in script.splitlines():
        if not line.startswith(prefix + " "):
            continue
        body = line[len(prefix) + 1:].strip()
        key, value = re.split(r"[= ]", body, maxsplit=1) if re.search(r"[= ]", body) \
            else (body, "")
        key = {("#BSUB", "-n"): "cores", ("#OAR", "-n"): "name"}.get(
            (prefix, key), LONG.get(key, key.lstrip("-")))
        value = value.strip().strip("'\"")
        if (prefix, key) == ("#BSUB", "memory") and value.isdigit():
            value += "K"  # dask-jobqueue's lsf_units: LSF's default unit, KB
        if (prefix, key) == ("#BSUB", "walltime"):
            value += ":00"  # LSF's -W is [hours:]minutes
        if key == "l":  # PBS/SGE resources: one key per resource
            for part in value.split(":") if value.startswith("select") else [value]:
                k, _, v = part.partition("=")
                out[k] = v
        else:
            out[key] = value
    return out


def seconds(text: str) -> int:
    parts = [int(p) for p in text.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    return parts[0] * 3600 + parts[1] * 60 + parts[2]


def megabytes(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)\s*([KMGT]?)i?[Bb]?", text.strip(), re.I)
    assert m, text
    # Slurm, PBS, SGE and LSF read M and G (MB, GB) as 2**20 and 2**30
    scale = {"": 1, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2}[m.group(2).upper()]
    return float(m.group(1)) * scale


def normalised(d: dict[str, str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        if k in ("time", "walltime", "h_rt"):
            out["time"] = seconds(v)
        elif k in ("mem", "memory", "mem_free"):
            out["mem"] = megabytes(v)
        elif k in ("partition", "queue", "q"):
            out["queue"] = v
        elif k in ("job-name", "name"):
            out["name"] = v
        else:
            out[k] = v
    return out


@pytest.mark.timeout(90)
@pytest.mark.parametrize("name", list(PREFIX))
def test_job_script_has_dask_jobqueues_directives(name, tmp_path):
    from dask_batch import jobqueue

    extra = {"SLURMCluster": ["--constraint=x"], "PBSCluster": ["-l place=scatter"],
             "SGECluster": ["-l h_vmem=2G"], "LSFCluster": ['-R "select[avx]"'],
             "MoabCluster": ["-l naccesspolicy=singlejob"], "OARCluster": ["--checkpoint 60"]}[name]
    kw = {**KW, "job_extra_directives": extra,
          **({"account": "p42"} if name in ("SLURMCluster", "PBSCluster", "MoabCluster") else
             {"project": "p42"})}
    if name == "SGECluster":
        kw["resource_spec"] = "m_mem_free=32G"
    with getattr(dask_jobqueue, name)(**kw) as c:
        theirs = normalised(directives(c.job_script(), PREFIX[name]))
    with getattr(jobqueue, name)(scheduler_options=SCHED, **kw,
                                 shared_temp_directory=str(tmp_path)) as c:
        script = c.job_script()
        ours = normalised(directives(script, PREFIX[name]))
        assert c.job_header.splitlines()[0].startswith(PREFIX[name])
        assert c.job_name == "jqtest"
    if name == "SGECluster":  # cores and memory only through resource_spec, as theirs
        assert "#$ -pe " not in script and "#$ -l mem_free=" not in script, script
    if name == "MoabCluster":
        assert "#PBS -l nodes=1:ppn=8,walltime=2:00:00,mem=32768mb" in script, script
    if name == "OARCluster":
        assert "#OAR -l /nodes=1/core=8,walltime=2:00:00" in script, script
    for key, value in theirs.items():
        if (name, key) in DIFFERENT:
            continue
        if key == "mem":  # they round up to a whole unit
            assert ours["mem"] <= value <= ours["mem"] * 1.1, (theirs, ours)
        elif name == "PBSCluster" and key == "ncpus":  # select=1:ncpus=8:mem=... both
            assert ours["ncpus"] == value
        elif key == "R" and name == "LSFCluster" and value.startswith("span"):
            assert ours["R"] == value
        elif key in ("ntasks",):
            assert value == "1" and "--ntasks=1" in script  # -n 1 in theirs
        else:
            assert ours.get(key) == value, (key, theirs, ours, script)
    assert f"{PREFIX[name]} {extra[0]}" in script


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("name", "prefix", "kw"), [
    ("SLURMCluster", "#SBATCH", {"job_cpu": 3, "job_mem": "5G"}),
    ("LSFCluster", "#BSUB", {"ncpus": 3, "mem": 6 * 2**30, "lsf_units": "MB"}),
    ("LSFCluster", "#BSUB", {"lsf_units": "GB"}),
    ("OARCluster", "#OAR", {"memory_per_core_property_name": "memcore",
                            "job_extra_directives": ["-p gpu_model='A100'"]}),
])
def test_directive_keywords_write_what_dask_jobqueue_writes(name, prefix, kw, tmp_path):
    """job_cpu/job_mem, ncpus/mem/lsf_units, memory_per_core_property_name: the line
    dask-jobqueue writes for them replaces the one made from cores and memory."""
    from dask_batch import jobqueue

    kw = {"cores": 8, "memory": "32GiB", "processes": 2, "walltime": "01:00:00", **kw}
    with getattr(dask_jobqueue, name)(**kw) as c:
        theirs = c.job_script()
    with getattr(jobqueue, name)(scheduler_options=SCHED, shared_temp_directory=str(tmp_path),
                                 **kw) as c:
        ours = c.job_script()
    flags = {"job_cpu": "--cpus-per-task=", "job_mem": "--mem=", "ncpus": "-n ", "mem": "-M ",
             "lsf_units": "-M ", "memory_per_core_property_name": "-p "}
    for key in kw.keys() & flags.keys():
        start = f"{prefix} {flags[key]}"
        want = [ln for ln in theirs.splitlines() if ln.startswith(start)]
        got = [ln for ln in ours.splitlines() if ln.startswith(start)]
        assert want and got[-1:] == want[-1:], (key, want, got)
        assert len([ln for ln in got if ln.startswith(start)]) == len(want), ours


@pytest.mark.timeout(30)
def test_worker_extra_args_become_spec_keys_and_worker_options():
    from dask_batch.jobqueue import SLURMCluster

    got = SLURMCluster.translate(cores=4, memory="8GiB", worker_extra_args=[
        "--resources", "GPU=2 MEM=1e9", "--lifetime", "55m", "--lifetime-stagger=4m",
        "--nthreads", "3", "--no-nanny", "--preload", "a.py", "--preload", "b.py"])
    assert got["resources"] == {"GPU": 2.0, "MEM": 1e9} and got["nthreads"] == "3"
    assert got["nanny"] is False
    assert got["worker_options"] == {"lifetime": "55m", "lifetime_stagger": "4m",
                                     "preload": ["a.py", "b.py"]}
    with pytest.raises(TypeError, match="--resources 'GPU': expected NAME=NUMBER"):
        SLURMCluster.translate(cores=1, memory="1GiB", worker_extra_args=["--resources", "GPU"])
    with pytest.raises(TypeError, match="--lifetime needs a value"):
        SLURMCluster.translate(cores=1, memory="1GiB", worker_extra_args=["--lifetime"])


def test_port_flags_give_each_worker_process_its_port():
    """--worker-port/--nanny-port as dask-worker takes them: a port, or a range with a port
    for each worker process of the job; a worker without a nanny listens on the worker port."""
    from dask_batch.submit.worker import _ports

    assert _ports({"worker_port": "9000:9001", "nanny_port": "9100:9101"}, 2, True) == [
        {"worker_port": 9000, "port": 9100}, {"worker_port": 9001, "port": 9101}]
    kwargs = {"worker_port": "9000", "nanny_port": "9100", "host": "h"}
    assert _ports(kwargs, 1, False) == [{"port": 9000}] and kwargs == {"host": "h"}
    assert _ports({"worker_port": "0"}, 3, True) == [{"worker_port": 0}] * 3
    assert _ports({}, 2, True) == [{}, {}]
    with pytest.raises(ValueError, match="2 worker processes need a range of 2 ports"):
        _ports({"worker_port": "9000"}, 2, False)
    from dask_batch.jobqueue import SLURMCluster

    got = SLURMCluster.translate(cores=2, memory="2GiB", worker_extra_args=[
        "--worker-port", "9000:9001", "--nanny-port=9100:9101", "--host", "10.0.0.5",
        "--contact-address", "tcp://10.0.0.5:9000"])
    assert got["worker_options"] == {"worker_port": "9000:9001", "nanny_port": "9100:9101",
                                     "host": "10.0.0.5",
                                     "contact_address": "tcp://10.0.0.5:9000"}
    with pytest.raises(TypeError, match="--worker-port takes a port or a range"):
        SLURMCluster.translate(cores=1, memory="1GiB", worker_extra_args=["--worker-port", "x"])


@pytest.mark.timeout(90)
def test_worker_ports_and_host_reach_the_workers_on_the_strict_fake(tmp_path, monkeypatch,
                                                                   tag):
    """PBSCluster with dask-worker's --worker-port range and --host: one job of two worker
    processes listens on the two ports given, on the host given."""
    import socket

    from distributed import Client
    from helpers import fake_env, kill_fake_jobs

    from dask_batch.jobqueue import PBSCluster

    for _ in range(20):  # two free ports in a row
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            try:
                b.bind(("127.0.0.1", port + 1))
                break
            except OSError:
                continue
    env = fake_env("pbs", tmp_path)
    for key, value in {**env, "DASK_BATCH_TEST_TAG": tag}.items():
        monkeypatch.setenv(key, value)
    cluster = PBSCluster(cores=2, memory="2GiB", processes=2, nanny=False, walltime="00:30:00",
                         scheduler_options=SCHED, shared_temp_directory=str(tmp_path / "c"),
                         worker_extra_args=["--worker-port", f"{port}:{port + 1}",
                                            "--host", "127.0.0.1"])
    try:
        cluster.scale(jobs=1)
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=45)
            addresses = sorted(client.scheduler_info()["workers"])
        assert addresses == [f"tls://127.0.0.1:{port}", f"tls://127.0.0.1:{port + 1}"]
    finally:
        cluster.close()
        kill_fake_jobs(env)


@pytest.mark.timeout(60)
def test_a_bash_shebang_is_kept_and_other_shells_refused(tmp_path):
    from dask_batch.jobqueue import PBSCluster

    with PBSCluster(cores=1, memory="1GiB", shebang="#!/bin/bash -l", scheduler_options=SCHED,
                    shared_temp_directory=str(tmp_path)) as c:
        assert c.job_script().splitlines()[0] == "#!/bin/bash -l"
    with pytest.raises(TypeError, match="shebang='#!/bin/tcsh' is not supported: .*bash"):
        PBSCluster.translate(cores=1, memory="1GiB", shebang="#!/bin/tcsh")


# ------------------------------------------------------------ golden scripts

GOLDEN = Path(__file__).parent / "golden" / "jobqueue"
GOLDEN_KW = dict(cores=8, memory="32GiB", processes=2, job_name="jq", death_timeout=30,
                 python="/opt/venv/bin/python", log_directory="/shared/logs",
                 local_directory="/scratch/jq", job_script_prologue=["module load python/3.11"],
                 worker_extra_args=["--lifetime", "55m", "--resources", "GPU=1"])
GOLDEN_OWN = {
    "SLURMCluster": dict(queue="normal", account="proj42", walltime="02:00:00", job_cpu=16,
                         job_mem="30G", job_extra_directives=["--constraint=haswell"],
                         shebang="#!/bin/bash -l"),
    "PBSCluster": dict(queue="normal", account="proj42", walltime="02:00:00",
                       resource_spec="select=1:ncpus=8:mem=32GB", job_directives_skip=["-A"]),
    "SGECluster": dict(queue="all.q", project="proj42", walltime="02:00:00",
                       resource_spec="h_vmem=4G"),
    "LSFCluster": dict(queue="normal", project="proj42", walltime="02:00", ncpus=16,
                       mem=30 * 10**9, lsf_units="GB"),
    "HTCondorCluster": dict(disk="10GiB", job_extra_directives={"+ProjectName": '"proj42"'}),
    "MoabCluster": dict(queue="normal", account="proj42", walltime="02:00:00",
                        resource_spec="nodes=1:ppn=8"),
    "OARCluster": dict(queue="default", project="proj42", walltime="02:00:00",
                       resource_spec="/nodes=1/core=8", memory_per_core_property_name="memcore"),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", CLASSES)
def test_golden_scripts_from_jobqueue_keywords(name):
    """A job script made from dask-jobqueue keywords equals tests/golden/jobqueue/<class>.txt
    line by line (delete a file to write it anew, then check it in)."""
    from dask_batch import jobqueue
    from dask_batch.cluster import _spec_keys
    from dask_batch.submit.base import get_system
    from dask_batch.submit.jobs import requests
    from dask_batch.submit.spec import resolve_spec

    cls = getattr(jobqueue, name)
    given = cls.translate(**GOLDEN_KW, **GOLDEN_OWN[name])
    for key in ("scheduler_options", "security", "directory"):
        given.pop(key)
    system = get_system(str(cls.system_name))
    spec = resolve_spec(**_spec_keys(given))
    got = system.render(requests(spec, system, 4, "/shared/sched.json")[0]).splitlines()
    path = GOLDEN / f"{name}.txt"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        path.write_text("\n".join(got) + "\n")
        pytest.fail(f"wrote {path.name}: check it, then commit it")
    want = path.read_text().splitlines()
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        assert g == w, f"{path.name} line {i + 1}"
    assert len(got) == len(want)


# ------------------------------------------------------------ real runs


@pytest.fixture
def slurm(monkeypatch):
    require(slurm_serving(), "the single-node Slurm of ci/clusters is not running")
    monkeypatch.delenv("SLURM_CONF", raising=False)


@pytest.mark.slurm
@pytest.mark.timeout(180)
def test_slurm_cluster_scale_jobs_compute_close(tmp_path, slurm):
    from distributed import Client

    from dask_batch.jobqueue import SLURMCluster

    cluster = SLURMCluster(cores=1, memory="500MiB", processes=1, queue="debug",
                           walltime="00:10:00", nanny=False, scheduler_options=SCHED,
                           shared_temp_directory=str(tmp_path),
                           job_extra_directives=["--comment=jq-test"],
                           job_script_prologue=["export JQ_PROLOGUE=yes"])
    sent: set[str] = set()
    try:
        assert "#SBATCH --comment=jq-test" in cluster.job_script()
        assert cluster.scheduler_file.startswith(str(tmp_path))
        cluster.scale(jobs=1)
        sent = job_ids(cluster)
        assert len(sent) == 1 and len(cluster.worker_spec) == 1
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=90)
            def prologue_ran() -> str | None:
                import os

                return os.environ.get("JQ_PROLOGUE")

            assert client.submit(prologue_ran).result(30) == "yes"
            assert client.submit(sum, range(10)).result(30) == 45
        cluster.close()
        job = next(iter(sent))
        wait_for(lambda: not squeue_ids(job), 30, "close() to cancel the job")
    finally:
        cluster.close()
        scancel(sent)


SITE_YAML = """\
jobqueue:
  slurm:
    cores: 1
    memory: 500MiB
    processes: 1
    queue: debug
    walltime: "00:10:00"
    nanny: false
    job-extra-directives: ["--comment=from-jobqueue-yaml"]
    job-script-prologue: ["export JQ_SITE=yes"]
    shared-temp-directory: {tmp}
    scheduler-options: {{host: 127.0.0.1, dashboard_address: "127.0.0.1:0"}}
"""
UNCHANGED_CODE = """\
import os
from dask.distributed import Client
from dask_batch.jobqueue import SLURMCluster

with SLURMCluster() as cluster:  # everything from the site's jobqueue.yaml
    script = cluster.job_script()
    assert "#SBATCH --comment=from-jobqueue-yaml" in script, script
    assert "#SBATCH --partition=debug" in script, script
    cluster.scale(jobs=1)
    with Client(cluster) as client:
        client.wait_for_workers(1, timeout=90)
        print("RESULT", client.submit(lambda: os.environ.get("JQ_SITE")).result(30),
              client.submit(sum, range(10)).result(30), flush=True)
    print("JOBS", " ".join(sorted(str(r.job_id) for r in cluster.records)), flush=True)
"""


@pytest.mark.slurm
@pytest.mark.timeout(180)
def test_slurm_cluster_from_a_site_jobqueue_yaml(tmp_path, slurm):
    """Unchanged dask-jobqueue code in its own process, every keyword from a jobqueue.yaml
    that dask reads from DASK_CONFIG: the job script has its directives, the worker its
    prologue, and closing leaves no job in squeue."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "jobqueue.yaml").write_text(SITE_YAML.format(tmp=tmp_path))
    (tmp_path / "user.py").write_text(UNCHANGED_CODE)
    env = slurm_env(tmp_path.name, DASK_CONFIG=str(conf))
    env.pop("SLURM_CONF", None)
    p = subprocess.run([sys.executable, str(tmp_path / "user.py")], env=env, cwd=tmp_path,
                       capture_output=True, text=True, timeout=150)
    jobs = next((ln.split()[1:] for ln in p.stdout.splitlines() if ln.startswith("JOBS")), [])
    try:
        assert p.returncode == 0, p.stdout + p.stderr
        assert "RESULT yes 45" in p.stdout, p.stdout + p.stderr
        assert len(jobs) == 1, p.stdout
        wait_for(lambda: not squeue_ids(jobs[0]), 30, "close() to cancel the job")
    finally:
        scancel(set(jobs))


# class, system, submit and cancel commands, keywords of its own
ON_FAKES = [
    ("PBSCluster", "pbs", "qsub", "qdel", {"walltime": "00:30:00"}),
    ("LSFCluster", "lsf", "bsub", "bkill", {"walltime": "00:30:00", "lsf_units": "MB"}),
    ("HTCondorCluster", "htcondor", "condor_submit", "condor_rm",
     {"disk": "1GiB", "submit_command_extra": ["-name", "schedd1"],
      "cancel_command_extra": ["-name", "schedd1"]}),
    ("MoabCluster", "moab", "msub", "canceljob", {"walltime": "00:30:00"}),
    ("OARCluster", "oar", "oarsub", "oardel",
     {"walltime": "00:30:00", "memory_per_core_property_name": "not_applicable"}),
]


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("name", "system", "submit", "cancel", "own"), ON_FAKES,
                         ids=[row[0] for row in ON_FAKES])
def test_cluster_class_on_the_strict_fake(name, system, submit, cancel, own, tmp_path,
                                          monkeypatch, tag):
    """Each class end to end on its system's strict fake (argument checks as the real
    commands'): one array submission for n_workers=2, the workers join, close() cancels."""
    from distributed import Client
    from helpers import fake_calls, fake_env, kill_fake_jobs

    from dask_batch import jobqueue

    env = fake_env(system, tmp_path)
    for key, value in {**env, "DASK_BATCH_TEST_TAG": tag}.items():
        monkeypatch.setenv(key, value)
    cluster = getattr(jobqueue, name)(
        n_workers=2, cores=1, memory="1GiB", processes=1, nanny=False, scheduler_options=SCHED,
        shared_temp_directory=str(tmp_path / "c"), name=f"jq-{system}",
        worker_extra_args=["--resources", "FOO=2", "--lifetime", "20m"], **own)
    try:
        assert len(cluster.plan) == 2 and cluster.name == f"jq-{system}"  # n_workers= scaled
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=45)
            assert client.submit(lambda: 41 + 1, resources={"FOO": 2}).result(20) == 42
            lifetimes = client.run(lambda dask_worker: dask_worker.lifetime)
            # 20 min (staggered by at most 75 s), not the walltime's 25 min
            assert all(1200 - 76 <= t <= 1200 + 76 for t in lifetimes.values()), lifetimes
            cluster.close()
        calls = [c[0] for c in fake_calls(env)]
        assert calls.count(submit) == 1 and calls[-1] == cancel, calls
        if "submit_command_extra" in own:  # every HTCondor command asked the same schedd
            assert all(c[1:3] == ["-name", "schedd1"] for c in fake_calls(env)), fake_calls(env)
    finally:
        cluster.close()
        kill_fake_jobs(env)


@pytest.mark.sge
@pytest.mark.timeout(200)
def test_sge_cluster_scale_jobs_compute_close(tmp_path, monkeypatch):
    require(sge_up(), "the Grid Engine of ci/clusters is not running")
    from distributed import Client

    from dask_batch.jobqueue import SGECluster

    env = sge_env("probe")
    for key in ("SGE_ROOT", "SGE_CELL"):
        monkeypatch.setenv(key, env[key])

    cluster = SGECluster(cores=1, memory="500MiB", processes=1, queue="all.q",
                         walltime="00:10:00", nanny=False, scheduler_options=SCHED,
                         shared_temp_directory=str(tmp_path))
    try:
        assert "#$ -q all.q" in cluster.job_script()
        cluster.scale(jobs=1)
        (job,) = job_ids(cluster)
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=120)
            assert client.submit(lambda: 6 * 7).result(30) == 42
        cluster.close()
        wait_for(lambda: not sge_queued(env, job), 60, "close() to cancel the SGE job")
    finally:
        cluster.close()
        for job in job_ids(cluster):
            subprocess.run(["qdel", job], env=env, capture_output=True, timeout=30)


@pytest.mark.slurm
@pytest.mark.timeout(240)
def test_slurm_adapt_in_jobs(tmp_path, slurm):
    from dask_batch.jobqueue import SLURMCluster

    cluster = SLURMCluster(cores=1, memory="500MiB", processes=1, queue="debug",
                           walltime="00:10:00", nanny=False, scheduler_options=SCHED,
                           shared_temp_directory=str(tmp_path))
    try:
        adaptive = cluster.adapt(minimum_jobs=1, maximum_jobs=2, interval="500ms")
        assert (adaptive.minimum, adaptive.maximum) == (1, 2)
        wait_for(lambda: len(cluster.plan) == 1, 30, "adapt to send the minimum job")
    finally:
        cluster.close()
        scancel(job_ids(cluster))


# ------------------------------------------------------------ SLURMRunner

RUNNER_SCRIPT = '''
import json, os
from dask.distributed import Client
from dask_batch.jobqueue import SLURMRunner

with SLURMRunner(scheduler_file="sched-{job_id}.json",
                 scheduler_options={"dashboard_address": ":0"}) as runner:
    with Client(runner) as client:
        client.wait_for_workers(runner.n_workers, timeout=60)
        workers = client.scheduler_info()["workers"].values()
        print(json.dumps({"total": client.submit(sum, client.map(abs, range(101))).result(),
                          "n_workers": runner.n_workers, "workers": len(workers),
                          "procid": os.environ["SLURM_PROCID"],
                          "file": os.path.exists(runner.scheduler_file)}))
'''


@pytest.mark.timeout(30)
def test_slurm_runner_needs_slurm_and_refuses_what_it_cannot_do(monkeypatch):
    from dask_batch.jobqueue import SLURMRunner

    for key in ("SLURM_JOB_ID", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(RuntimeError, match="SLURM_PROCID, SLURM_NTASKS, and SLURM_JOB_ID"):
        SLURMRunner()
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.setenv("SLURM_NTASKS", "3")
    with pytest.raises(TypeError, match="scheduler_options.*'host'.*not supported"):
        SLURMRunner(scheduler_options={"host": "x"})
    with pytest.raises(TypeError, match="asynchronous=True.*not supported"):
        SLURMRunner(asynchronous=True)
    with pytest.raises(RuntimeError, match="scheduler_file must be specified"):
        SLURMRunner(scheduler_file=None)
    their = inspect.signature(dask_jobqueue.slurm.SLURMRunner.__init__).parameters
    assert their["scheduler_file"].default == inspect.signature(
        SLURMRunner.__init__).parameters["scheduler_file"].default


@pytest.mark.slurm
@pytest.mark.timeout(180)
def test_slurm_runner_under_srun_in_sbatch(tmp_path, slurm, tag):
    from clusters import PYTHON, Slurm, one_result

    (tmp_path / "script.py").write_text(RUNNER_SCRIPT)
    (tmp_path / "job.sh").write_text(
        f"#!/bin/bash\ntimeout -k 5 120 srun -K -n 4 {PYTHON} script.py\n")
    jobs = Slurm(slurm_env(tag))
    try:
        job_id = jobs.sbatch("-n", "4", "-o", "out.txt", str(tmp_path / "job.sh"),
                             cwd=tmp_path)
        state, code, _ = jobs.wait(job_id, timeout=150)
    finally:
        jobs.cancel_all()
    text = (tmp_path / "out.txt").read_text()
    assert (state, code) == ("COMPLETED", 0), text
    out = one_result(text)
    assert out == {"total": 5050, "n_workers": 2, "workers": 2, "procid": "1", "file": True}
    assert not (tmp_path / f"sched-{job_id}.json").exists()  # removed with the credentials


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name, spec, generated, walltime", [
    ("PBSCluster", "select=2:ncpus=4", "select=1:", "-l walltime=1:00:00"),
    ("MoabCluster", "nodes=2:ppn=4", "nodes=1:", "-l walltime=1:00:00"),
    ("OARCluster", "/nodes=2/core=4", "/nodes=1/", ",walltime=1:00:00"),
    ("SGECluster", "h_vmem=4G", None, "-l h_rt=1:00:00"),
])
def test_resource_spec_replaces_the_generated_request_and_keeps_walltime(
        name, spec, generated, walltime, tmp_path):
    from dask_batch import jobqueue

    with getattr(jobqueue, name)(cores=2, memory="2GiB", resource_spec=spec,
                                 walltime="01:00:00", scheduler_options=SCHED,
                                 shared_temp_directory=str(tmp_path)) as c:
        header = c.job_header
    assert f"-l {spec}" in header and walltime in header, header
    if generated:
        assert generated not in header, header


@pytest.mark.timeout(30)
@pytest.mark.parametrize("module", ["core", "slurm", "pbs", "sge", "lsf", "htcondor", "oar",
                                    "moab"])
def test_submodules_mirror_dask_jobqueues(module):
    """Every class of ``dask_jobqueue.<module>`` has a home in ``dask_batch.jobqueue.<module>``:
    the clusters and the runner are ours; the per-job classes raise one line naming the
    cluster class to use instead."""
    import importlib

    theirs = importlib.import_module(f"dask_jobqueue.{module}")
    ours = importlib.import_module(f"dask_batch.jobqueue.{module}")
    names = {n for n, o in vars(theirs).items()
             if inspect.isclass(o) and o.__module__ == theirs.__name__}
    assert names and names <= set(ours.__all__), names - set(ours.__all__)
    for name in names:
        cls = getattr(ours, name)
        if name.endswith("Job"):
            cluster = "JobQueueCluster" if name == "Job" else name.replace("Job", "Cluster")
            with pytest.raises(TypeError, match=f"{name} does not exist in dask_batch: .*"
                                                f"{cluster}\\(\\.\\.\\.\\)"):
                cls(cores=1, memory="1GB")
            assert getattr(ours, cluster) is getattr(importlib.import_module(
                "dask_batch.jobqueue"), cluster)
