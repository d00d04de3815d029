"""Add-on workers, pure tier: spec, units, golden job scripts, parsers, state table."""

from __future__ import annotations

import doctest
from pathlib import Path

import dask.config
import pytest

from dask_batch.submit import htcondor
from dask_batch.submit import spec as spec_mod
from dask_batch.submit.base import NAMES, Request, SubmitError, detect_system, get_system
from dask_batch.submit.jobs import requests
from dask_batch.submit.spec import SpecError, resolve_spec
from dask_batch.submit.states import NATIVE_STATES, JobState, translate
from dask_batch.units import UnitError, parse_duration

GOLDEN = Path(__file__).parent / "golden"
POOLS = {"highmem": {"memory": "256GiB", "cores": 16, "processes": 2,
                     "resources": {"MEM": 256e9}, "queue": "bigmem"},
         "gpu": {"gpus": 1, "walltime": "1:00:00", "prologue": ["module load cuda"]}}


def _spec(**kw):
    base = dict(walltime="02:00:00", cores=8, memory="32GiB", queue="normal", account="proj42",
                python="/opt/venv/bin/python", prologue=["module load python/3.11"])
    base.update(kw)
    return resolve_spec(**base)


CASES = {
    "array": lambda: (_spec(), 6),
    "single": lambda: (_spec(array=False), 1),
    "highmem": lambda: (_spec(pool="highmem", queue=None, memory=None), 3),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("system", NAMES)
def test_golden_scripts(system, case):
    """Rendered scripts equal tests/golden/<system>-<case>.txt line by line (delete to regen)."""
    with dask.config.set({"batch.pools": POOLS}):
        spec, n = CASES[case]()
    sys_ = get_system(system)
    req = requests(spec, sys_, n, "/shared/sched.json")[0]
    got = sys_.render(req).splitlines()
    path = GOLDEN / f"{system}-{case}.txt"
    if not path.exists():
        path.write_text("\n".join(got) + "\n")
        pytest.skip(f"wrote {path.name}")
    want = path.read_text().splitlines()
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        assert g == w, f"{path.name} line {i + 1}"
    assert len(got) == len(want)


def test_units_and_walltime():
    assert parse_duration("02:00:00") == 7200
    assert parse_duration("1-01:00:00") == 90000
    assert parse_duration("45:00") == 2700
    assert parse_duration(90) == 90
    assert parse_duration("90m") == 5400
    for bad in ("soon", "0:00:00", -5):
        with pytest.raises(UnitError, match="bad duration"):
            parse_duration(bad)
    s = _spec(memory="1GB", processes=2, cores=4, walltime="1:00:00", lifetime_margin=600)
    assert s.memory == 10**9 and s.worker_memory == 5 * 10**8 and s.threads == 2
    assert s.lifetime == 3000 and s.stagger == 150


def test_doctests():
    from dask_batch import units

    for mod in (spec_mod, htcondor, units):
        assert doctest.testmod(mod).failed == 0
    assert doctest.testmod(units).attempted >= 3


def test_spec_errors():
    with pytest.raises(SpecError, match="valid keys: walltime, cores"):
        resolve_spec(walltime="1:00:00", cpus=4)
    with pytest.raises(SpecError, match="no walltime"):
        resolve_spec(cores=2)
    with pytest.raises(SpecError, match="unknown pool 'nope'"):
        resolve_spec(walltime="1:00:00", pool="nope")
    with dask.config.set({"batch.pools": {"bad": {"ram": "1GB"}}}):
        with pytest.raises(SpecError, match="in pool 'bad'"):
            resolve_spec(walltime="1:00:00", pool="bad")


def test_pools_file_and_gpu_tag(tmp_path):
    f = tmp_path / "pools.yaml"
    f.write_text("pools:\n  gpu:\n    gpus: 2\n    processes: 2\n    cores: 2\n")
    s = resolve_spec(walltime="1:00:00", pool="gpu", pools_file=str(f))
    assert s.pool == "gpu" and s.name_prefix == "dask-worker-gpu"
    assert dict(s.resources) == {"GPU": 1.0}


def test_skip_and_extra_directives():
    s = _spec(skip_directives=["--mem"], extra_directives=["--constraint=haswell"])
    text = get_system("slurm").render(Request(s, 2, True, "/s.json", "/s.addon"))
    directives = [ln for ln in text.splitlines() if ln.startswith("#SBATCH")]
    assert not any("--mem" in d for d in directives)
    assert directives[-1] == "#SBATCH --constraint=haswell"


def test_arrays_chunk_and_no_array():
    s = _spec()
    slurm, oar = get_system("slurm"), get_system("oar")
    assert [r.n for r in requests(s, slurm, 2500, "/s.json")] == [1000, 1000, 500]
    assert [r.n for r in requests(_spec(array=False), oar, 3, "/s.json")] == [1, 1, 1]


def test_detect():
    have = {"sbatch", "qsub", "qconf"}
    assert detect_system(lambda c: c if c in have else None) == "slurm"
    assert detect_system(lambda c: c if c in {"qsub", "qconf"} else None) == "sge"
    assert detect_system(lambda c: c if c == "qsub" else None) == "pbs"
    with pytest.raises(SubmitError, match="no batch system found"):
        detect_system(lambda c: None)


# ---------------------------------------------------------------- parsers over real outputs


def _req(n=3, array=True):
    return Request(_spec(), n, array, "/s.json", "/s.addon")


PARSE = [
    ("slurm", "12345\n", ["12345_0", "12345_1", "12345_2"]),
    ("slurm", "site banner 2026\n77;mn\n", ["77_0", "77_1", "77_2"]),
    ("pbs", "1234[].pbs01.example.org\n", ["1234[0]", "1234[1]", "1234[2]"]),
    ("sge", "JSV: accepted\n4242.1-3:1\n", ["4242.1", "4242.2", "4242.3"]),
    ("lsf", "Job <555> is submitted to queue <normal>.\n", ["555[1]", "555[2]", "555[3]"]),
    ("htcondor", "Submitting job(s)...\n3 job(s) submitted to cluster 88.\n",
     ["88.0", "88.1", "88.2"]),
    ("oar", "[ADMISSION RULE] x\nOAR_JOB_ID=10\nOAR_JOB_ID=11\nOAR_JOB_ID=12\nOAR_ARRAY_ID=10\n",
     ["10", "11", "12"]),
    ("moab", "\nMoab.901\n", ["901[1]", "901[2]", "901[3]"]),
]


@pytest.mark.parametrize("system,out,ids", PARSE)
def test_parse_submit(system, out, ids):
    assert [e.query_id for e in get_system(system).parse_submit(out, _req())] == ids


@pytest.mark.parametrize("system", NAMES)
def test_no_job_id_is_an_error(system):
    with pytest.raises(SubmitError, match="no job id"):
        get_system(system).parse_submit("sbatch: error: something odd\n", _req())


SGE_XML = """<?xml version='1.0'?>
<job_info><queue_info><Queue-List><job_list state="running"><JB_job_number>7</JB_job_number>
<state>r</state><tasks>2</tasks></job_list></Queue-List></queue_info>
<job_info><job_list state="pending"><JB_job_number>7</JB_job_number><state>qw</state>
<tasks>3-4:1</tasks></job_list><job_list state="pending"><JB_job_number>9</JB_job_number>
<state>Eqw</state></job_list></job_info></job_info>"""
QACCT = """==============================================================
qname        all.q
jobnumber    7
taskid       1
failed       0
exit_status  0
==============================================================
qname        all.q
jobnumber    7
taskid       5
failed       100 : assumedly after job
exit_status  137
"""


def test_parse_status_outputs():
    slurm = get_system("slurm")
    assert slurm.parse_status("5_0 RUNNING\n5_1 PENDING\n6 COMPLETING\n") == {
        "5_0": "RUNNING", "5_1": "PENDING", "6": "COMPLETING"}
    assert slurm.parse_accounting("5_2|CANCELLED by 0\n5_3|TIMEOUT\n") == {
        "5_2": "CANCELLED", "5_3": "TIMEOUT"}
    sge = get_system("sge")
    assert sge.parse_status(SGE_XML) == {"7.2": "r", "7.3": "qw", "7.4": "qw", "9": "Eqw"}
    assert sge.parse_accounting(QACCT) == {"7.1": "=done", "7.5": "=failed"}
    pbs = get_system("pbs")
    out = ('{"Jobs": {"12[0].srv": {"job_state": "R"}, "12[1].srv": {"job_state": "X", '
           '"Exit_status": -29}, "13.srv": {"job_state": "F", "Exit_status": 0}}}')
    assert pbs.parse_status(out) == {"12[0]": "R", "12[1]": "=timeout", "13": "=done"}


def test_state_table():
    for system, table in NATIVE_STATES.items():
        assert system in NAMES
        assert all(isinstance(v, JobState) for v in table.values())
    assert translate("slurm", "TIMEOUT") is JobState.TIMEOUT
    assert translate("slurm", "CANCELLED by 0") is JobState.CANCELLED
    assert translate("slurm", "WEIRD_NEW") is JobState.UNKNOWN
    assert not JobState.UNKNOWN.terminal and JobState.UNKNOWN.active
    assert translate("sge", "Eqw") is JobState.FAILED and translate("sge", "hqw") is JobState.HELD
    assert translate("htcondor", "5") is JobState.HELD
    assert JobState.PENDING.active and not JobState.PENDING.terminal
    assert JobState.TIMEOUT is not JobState.FAILED and JobState.MISSING.terminal


@pytest.mark.timeout(30)
@pytest.mark.parametrize("system", ["slurm", "sge", "pbs", "lsf"])
def test_python_wrapper_is_split_into_words(system, tmp_path):
    """A wrapper command line as python= is one shell word per word, each quoted; a path that
    exists stays one word, spaces and all."""
    import shlex

    wrapper = "apptainer exec --bind '/scratch dir' img.sif python3"
    sys_ = get_system(system)
    text = sys_.render(requests(_spec(python=wrapper), sys_, 1, "/shared/sched.json")[0])
    line = next(ln for ln in text.splitlines() if "dask_batch.submit.worker" in ln)
    assert shlex.split(line)[:7] == ["apptainer", "exec", "--bind", "/scratch dir", "img.sif",
                                     "python3", "-m"], line
    spaced = tmp_path / "my env" / "python"
    spaced.parent.mkdir()
    spaced.write_text("")
    text = sys_.render(requests(_spec(python=str(spaced)), sys_, 1, "/shared/sched.json")[0])
    line = next(ln for ln in text.splitlines() if "dask_batch.submit.worker" in ln)
    assert shlex.split(line)[:2] == [str(spaced), "-m"], line


@pytest.mark.timeout(30)
@pytest.mark.parametrize("files, element, array, want", [
    (["dask-worker-57_3.err", "dask-worker-57_3.out", "dask-worker-57_13.err"], ("57_3", "57", 3),
     True, "dask-worker-57_3.err"),                                           # Slurm, LSF
    (["dask-worker-57.err", "dask-worker-157.err"], ("57", "57", 0), False, "dask-worker-57.err"),
    (["dask-worker.o57.2", "dask-worker.e57.2", "dask-worker.e57.12"], ("57.2", "57", 2), True,
     "dask-worker.e57.2"),                                                    # Grid Engine
    (["dask-worker-57.1.err", "dask-worker-57.log"], ("57.1", "57", 1), True,
     "dask-worker-57.1.err"),                                                 # HTCondor
    (["dask-worker-58.err"], ("57", "57", 0), False, None),
])
def test_error_file_of_a_job_element(tmp_path, files, element, array, want):
    from dask_batch.submit.base import Element
    from dask_batch.submit.failures import error_file

    for name in files:
        (tmp_path / name).write_text("x\n")
    got = error_file(str(tmp_path), Element(*element), array)
    assert (got and Path(got).name) == want


@pytest.mark.timeout(30)
def test_failures_back_off_doubles_then_stop_once(caplog, monkeypatch):
    from dask_batch.submit import failures

    clock = [100.0]
    monkeypatch.setattr(failures.time, "monotonic", lambda: clock[0])
    f = failures.Failures(limit=3, backoff=5)
    assert f.may_submit()
    f.failed("1", "failed", None)
    assert not f.may_submit() and f.not_before == 105
    clock[0] = 105
    assert f.may_submit()
    f.failed("2", "failed", None)
    assert f.not_before == 115  # doubled
    with caplog.at_level("WARNING", logger="dask_batch.submit.failures"):
        f.failed("3", "missing", None)
        f.failed("4", "missing", None)
    clock[0] = 1000
    assert f.stopped and not f.may_submit()
    assert len(caplog.records) == 1 and "job 3 (missing)" in caplog.records[0].getMessage()
    f.joined()  # a worker that joins (or resume()) starts over
    assert f.may_submit() and f.in_row == 0
