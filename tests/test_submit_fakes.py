"""Add-on workers through strict fake PBS, LSF, HTCondor, OAR and Moab commands.

The fakes check every argument and directive, answer in the real formats and run the job
locally with that system's variables, so the workers really join a real (in-process) scheduler.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fakes"))
from helpers import fake_calls, fake_env, kill_fake_jobs, running_scheduler, wait_for  # noqa: E402

BIN = Path(sys.executable).parent


def cli(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dask-batch"), *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def names(client) -> set[str]:
    return {str(w["name"]) for w in client.scheduler_info(n_workers=-1)["workers"].values()}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("system", ["pbs", "lsf", "htcondor", "oar", "moab"])
def test_fake_system_end_to_end(system, tmp_path, tag):
    from distributed import Client

    env = {**os.environ, **fake_env(system, tmp_path), "DASK_BATCH_TEST_TAG": tag}
    with running_scheduler(tmp_path) as (sched, sec), Client(
            open_address(sched), security=sec, timeout=20) as client:
        try:
            common = ["--scheduler-file", sched, "--system", system, "--walltime", "00:30:00",
                      "--memory", "1GiB", "--no-nanny", "--resources", '{"FAKE": 1}']
            r = cli(["submit", "-n", "2", *common], env)
            assert r.returncode == 0, r.stderr
            got = wait_for(lambda: len(names(client)) >= 2 and names(client), 45, "2 workers")
            assert all(n.startswith("dask-worker-") for n in got)
            # the array index reaches the worker name
            assert len({n.rsplit("-", 1)[1] for n in got}) == 2
            assert client.submit(lambda x: x + 1, 1, resources={"FAKE": 1}).result(20) == 2
            r = cli(["status", "--scheduler-file", sched, "--json"], env)
            assert r.returncode == 0, r.stderr
            status = json.loads(r.stdout)
            assert status["counts"] == {"running": 2}, status
            r = cli(["cancel", "--scheduler-file", sched], env)
            assert r.returncode == 0 and "cancelled 2" in r.stdout, r.stdout + r.stderr
            wait_for(lambda: not names(client), 30, "workers to leave")
            states = json.loads(cli(["status", "--scheduler-file", sched, "--json"],
                                    env).stdout)["counts"]
            assert set(states) <= {"cancelled", "failed", "done"}, states
            assert fake_calls(env)[0][0] in ("qsub", "bsub", "condor_submit", "oarsub", "msub")
            assert os.stat(sched.replace(".json", ".addon.json")).st_mode & 0o777 == 0o600
        finally:
            kill_fake_jobs(env)


def open_address(sched: str) -> str:
    with open(sched) as f:
        return json.load(f)["address"]


@pytest.mark.timeout(60)
def test_submit_errors_are_one_line(tmp_path):
    with running_scheduler(tmp_path) as (sched, _):
        env = {**os.environ, **fake_env("pbs", tmp_path)}
        base = ["submit", "--scheduler-file", sched, "--walltime", "1:00:00"]
        # a directive the real qsub rejects: the fake says so, we show its message, exit 1
        r = cli([*base, "--system", "pbs", "--extra-directive", "-l bogus=1"], env)
        assert r.returncode == 1 and "qsub failed (exit 2): qsub: illegal -l" in r.stderr
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
        # command missing
        r = cli([*base, "--system", "oar"], {**env, "PATH": str(BIN)})
        assert r.returncode == 1 and "oarsub: command not found" in r.stderr
        # bad input: exit 2
        r = cli([*base, "--system", "pbs", "--cores", "2", "--processes", "3"], env)
        assert r.returncode == 2 and "exceeds cores" in r.stderr
        r = cli(["submit", "--scheduler-file", sched, "--system", "pbs"], env)
        assert r.returncode == 2 and "no walltime" in r.stderr
        r = cli([*base, "--system", "pbs", "--scheduler-file", str(tmp_path / "no.json")], env)
        assert r.returncode == 2
        # output without a job id, and a timeout: fake commands that misbehave
        bad = tmp_path / "badbin"
        bad.mkdir()
        (bad / "qsub").write_text("#!/bin/sh\necho 'qsub: server busy, try later'\n")
        (bad / "bsub").write_text("#!/bin/sh\nsleep 30\n")
        for f in bad.iterdir():
            f.chmod(0o755)
        env2 = {**env, "PATH": f"{bad}{os.pathsep}{env['PATH']}"}
        r = cli([*base, "--system", "pbs"], env2)
        assert r.returncode == 1 and "no job id in the submit output" in r.stderr, r.stderr
        r = cli([*base, "--system", "lsf", "--timeout", "1"], env2)
        assert r.returncode == 1 and "bsub timed out after 1 s" in r.stderr, r.stderr
        # nothing half-recorded
        assert not os.path.exists(sched.replace(".json", ".addon.json"))


@pytest.mark.timeout(60)
def test_script_prints_without_submitting(tmp_path):
    env = {**os.environ, **fake_env("lsf", tmp_path)}
    r = cli(["script", "--scheduler-file", str(tmp_path / "s.json"), "--system", "lsf", "-n",
             "4", "--walltime", "90m", "--cores", "4"], env)
    assert r.returncode == 0, r.stderr
    assert "#BSUB -J 'dask-worker[1-4]'" in r.stdout and "#BSUB -W 1:30" in r.stdout
    assert fake_calls(env) == []


@pytest.mark.timeout(90)
def test_two_addon_workers_on_one_scheduler_each_see_their_own(tmp_path, tag, monkeypatch):
    """distributed streams worker changes to one Cluster per scheduler: the second pool must
    not freeze the first one's view of its workers (which adapt and status read)."""
    from dask_batch.submit import AddOnWorkers

    env = fake_env("pbs", tmp_path)
    for k, v in {**env, "DASK_BATCH_TEST_TAG": tag}.items():
        monkeypatch.setenv(k, v)
    common = {"system": "pbs", "walltime": "00:30:00", "memory": "1GiB", "nanny": False,
              "poll_interval": 0.5}
    with running_scheduler(tmp_path) as (sched, _):
        try:
            with AddOnWorkers(sched, job_name="small", **common) as small, \
                    AddOnWorkers(sched, job_name="big", **common) as big:
                small.scale(1)
                big.scale(2)
                # each pool's view is its own stream from the scheduler: under load one may
                # lag the other by a poll, so wait for both (a frozen view never gets there)
                wait_for(lambda: len(small.observed) == 1 and len(big.observed) == 2
                         and set(small.other_workers()) == big.observed
                         and set(big.other_workers()) == small.observed, 45,
                         "each pool to see its workers and the other pool's")
                assert all(n.startswith("small-") for n in small.observed), small.observed
                assert all(n.startswith("big-") for n in big.observed), big.observed
        finally:
            kill_fake_jobs(env)
