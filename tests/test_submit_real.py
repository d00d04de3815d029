"""Add-on workers on the REAL single-node Slurm and Grid Engine of ci/clusters."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import job_env, require, run_job

sys.path.insert(0, str(Path(__file__).parent / "fakes"))
from helpers import running_scheduler, wait_for  # noqa: E402

BIN = Path(sys.executable).parent
SGE_ENV = {"SGE_ROOT": "/var/lib/gridengine", "SGE_CELL": "default"}


def slurm_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    env = {k: v for k, v in os.environ.items() if k != "SLURM_CONF"}
    r = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True,
                       timeout=10)
    return r.returncode == 0 and any(s in r.stdout for s in ("idle", "mix", "alloc"))


def sge_up() -> bool:
    if not shutil.which("qstat"):
        return False
    r = subprocess.run(["qstat", "-xml"], env={**os.environ, **SGE_ENV}, capture_output=True,
                       timeout=10)
    return r.returncode == 0


CLIENT = """
import json, os, subprocess, sys, time
from dask.distributed import Client
from dask_batch import BatchRunner
from dask_batch.submit import AddOnWorkers

def ours(client):
    return [w["name"] for w in client.scheduler_info(n_workers=-1)["workers"].values()
            if str(w["name"]).startswith("dask-worker-")]

def cli(*args):
    exe = os.path.join(os.path.dirname(sys.executable), "dask-batch")
    return subprocess.run([exe, *args],
                          capture_output=True, text=True, timeout=60)

with BatchRunner(scheduler_file=os.environ["SCHED"]) as runner:
    with Client(runner) as client:
        workers = AddOnWorkers.from_runner(runner, system="slurm", walltime="00:10:00",
                                           cores=1, memory="500MiB", nanny=False,
                                           queue="debug")
        workers.scale(6)
        deadline = time.monotonic() + 90
        while len(ours(client)) < 6 and time.monotonic() < deadline:
            time.sleep(0.25)
        names = sorted(ours(client))
        print("JOINED", len(names), names, flush=True)
        total = client.submit(sum, client.map(lambda x: x * x, range(60))).result(30)
        print("TOTAL", total, flush=True)
        sched = runner.settings.scheduler_file
        status = json.loads(cli("status", "--scheduler-file", sched, "--json").stdout)
        print("STATUS", json.dumps(status["counts"]), flush=True)
        r = cli("cancel", "--scheduler-file", sched)
        print("CANCEL", r.returncode, r.stdout.strip(), r.stderr.strip(), flush=True)
        deadline = time.monotonic() + 30
        while ours(client) and time.monotonic() < deadline:
            time.sleep(0.25)
        print("LEFT", len(ours(client)), flush=True)
        workers.close()
"""


@pytest.mark.slurm
@pytest.mark.timeout(200)
def test_slurm_batchrunner_sends_array(tmp_path, tag):
    require(slurm_up(), "the single-node Slurm of ci/clusters is not running")
    script = tmp_path / "client.py"
    script.write_text(textwrap.dedent(CLIENT))
    env = job_env(tag, DASK_BATCH__MPI="false", SCHED=str(tmp_path / "sched.json"))
    env.pop("SLURM_CONF", None)
    try:
        job = run_job(["timeout", "-s", "KILL", "170", "srun", "-K", "-n", "3", "-p", "debug",
                       sys.executable, str(script)], timeout=180, env=env, cwd=tmp_path)
    finally:
        _scancel_tagged(tmp_path / "sched.json")
    out = job.stdout
    assert job.returncode == 0, job.stderr[-3000:]
    assert "JOINED 6" in out, job
    assert "TOTAL 70210" in out, job
    assert 'STATUS {"running": 6}' in out, job
    assert "CANCEL 0 cancelled 6" in out, job
    assert "LEFT 0" in out, job
    # one array, index in the names: dask-worker-<array id>-0 .. -5
    names = eval(out.split("JOINED 6 ")[1].splitlines()[0])
    assert sorted(int(n.rsplit("-", 1)[1]) for n in names) == list(range(6))
    assert len({n.rsplit("-", 2)[1] for n in names}) == 1


def _scancel_tagged(sched: Path) -> None:
    """Whatever the test left in the queue (by job id, from the state file)."""
    state = Path(str(sched).replace(".json", ".addon.json"))
    if state.exists():
        ids = {r["elements"][0][1] for r in json.loads(state.read_text())["jobs"]}
        if ids:
            subprocess.run(["scancel", *ids], capture_output=True, timeout=30)


@pytest.mark.slurm
@pytest.mark.timeout(240)
def test_slurm_adapt_up_and_down(tmp_path):
    require(slurm_up(), "the single-node Slurm of ci/clusters is not running")
    from distributed import Client

    from dask_batch.submit import AddOnWorkers

    os.environ.pop("SLURM_CONF", None)
    with running_scheduler(tmp_path) as (sched, sec):
        with Client(json.load(open(sched))["address"], security=sec) as client, \
                AddOnWorkers(sched, system="slurm", walltime="00:10:00", cores=1,
                             memory="500MiB", nanny=False, queue="debug",
                             poll_interval=1) as workers:
            try:
                adaptive = workers.adapt(minimum=0, maximum=6, interval="1s", wait_count=3,
                                         target_duration="1s")
                assert len(workers.plan) == 0

                def slow(x):
                    time.sleep(1.5)
                    return x

                futures = client.map(slow, range(48))
                peak = [0]

                def grown():
                    n = len(workers.observed)
                    peak[0] = max(peak[0], n)
                    # pending jobs count as requested: never more than maximum in the plan
                    assert len(workers.plan) <= 6
                    return n >= 4

                wait_for(grown, 120, ">= 4 add-on workers")
                assert sum(client.gather(futures)) == sum(range(48))
                del futures
                wait_for(lambda: not workers.plan and not workers.observed, 90,
                         "adapt to scale back to 0")
                # the retired workers' jobs end on their own, seconds later
                ended = {"cancelled", "done", "missing"}
                wait_for(lambda: set(workers.status()["counts"]) <= ended, 60,
                         "the retired workers' jobs to end")
                adaptive.stop()
            finally:
                _scancel_tagged(Path(sched))


@pytest.mark.sge
@pytest.mark.timeout(200)
def test_sge_array_join_status_cancel(tmp_path):
    require(sge_up(), "the Grid Engine of ci/clusters is not running")
    from distributed import Client

    env = {**os.environ, **SGE_ENV}
    with running_scheduler(tmp_path) as (sched, sec):
        with Client(json.load(open(sched))["address"], security=sec) as client:
            def cli(*args):
                return subprocess.run([str(BIN / "dask-batch"), *args], env=env,
                                      capture_output=True, text=True, timeout=60)

            try:
                r = cli("submit", "--scheduler-file", sched, "--system", "sge", "-n", "3",
                        "--walltime", "00:10:00", "--no-nanny", "--queue", "all.q")
                assert r.returncode == 0, r.stderr
                names = wait_for(lambda: len(client.scheduler_info(n_workers=-1)["workers"]) >= 3
                                 and {w["name"] for w in client.scheduler_info(
                                     n_workers=-1)["workers"].values()}, 120, "3 SGE workers")
                assert sorted(n.rsplit("-", 1)[1] for n in names) == ["1", "2", "3"]
                assert client.submit(lambda: 42).result(30) == 42
                st = json.loads(cli("status", "--scheduler-file", sched, "--json").stdout)
                assert st["counts"] == {"running": 3}, st
                r = cli("cancel", "--scheduler-file", sched)
                assert r.returncode == 0 and "cancelled 3" in r.stdout, r.stdout + r.stderr
                wait_for(lambda: not client.scheduler_info(n_workers=-1)["workers"], 60,
                         "SGE workers to leave")
                def over():
                    st = json.loads(cli("status", "--scheduler-file", sched, "--json").stdout)
                    return set(st["counts"]) <= {"cancelled", "done", "failed"} and st
                wait_for(over, 60, "SGE jobs to leave the queue")
            finally:
                state = Path(sched.replace(".json", ".addon.json"))
                if state.exists():
                    for rec in json.loads(state.read_text())["jobs"]:
                        subprocess.run(["qdel", rec["elements"][0][1]], env=env,
                                       capture_output=True, timeout=30)


POOLS_YAML = """
big:
  cores: 1
  memory: 600MiB
  resources: {MEM: 1}
small:
  cores: 1
  memory: 300MiB
"""


@pytest.mark.parametrize("system", ["slurm", "sge"])
@pytest.mark.timeout(240)
def test_pools_route_tasks_and_cancel_by_pool(tmp_path, system):
    """Two pools on a real batch system: a MEM-tagged task runs only on the big pool's
    workers; `cancel --pool big` removes those and leaves the small pool's."""
    require(slurm_up() if system == "slurm" else sge_up(),
            f"the {system} cluster of ci/clusters is not running")
    from distributed import Client, get_worker

    pools = tmp_path / "pools.yaml"
    pools.write_text(POOLS_YAML)
    env = {k: v for k, v in os.environ.items() if k != "SLURM_CONF"}
    env.update(SGE_ENV)
    queue = "debug" if system == "slurm" else "all.q"
    with running_scheduler(tmp_path) as (sched, sec):
        with Client(json.load(open(sched))["address"], security=sec) as client:
            def cli(*args):
                return subprocess.run([str(BIN / "dask-batch"), *args, "--scheduler-file", sched],
                                      env=env, capture_output=True, text=True, timeout=60)

            def names():
                return {str(w["name"]): w["resources"]
                        for w in client.scheduler_info(n_workers=-1)["workers"].values()}

            try:
                for pool, n in (("big", "2"), ("small", "1")):
                    r = cli("submit", "--system", system, "--pools-file", str(pools), "--pool",
                            pool, "-n", n, "--walltime", "00:10:00", "--no-nanny",
                            "--queue", queue)
                    assert r.returncode == 0, r.stderr
                wait_for(lambda: len(names()) >= 3, 120, "3 pool workers")
                seen = names()
                big = {n for n in seen if "-big-" in n}
                assert len(big) == 2 and all(seen[n] == {"MEM": 1} for n in big), seen
                assert [seen[n] for n in seen if n not in big] == [{}], seen
                ran_on = client.gather([client.submit(lambda i: get_worker().name, i,
                                                      resources={"MEM": 1}) for i in range(6)])
                assert set(map(str, ran_on)) <= big, ran_on
                r = cli("cancel", "--pool", "big")
                assert r.returncode == 0 and "cancelled" in r.stdout, r.stdout + r.stderr
                wait_for(lambda: not (set(names()) & big), 60, "the big pool to leave")
                assert len(names()) == 1
                st = json.loads(cli("status", "--pool", "small", "--json").stdout)
                assert st["counts"] == {"running": 1}, st
            finally:
                cli("cancel")


@pytest.mark.slurm
@pytest.mark.timeout(240)
def test_pool_adapt_counts_tasks_waiting_for_its_resources(tmp_path):
    """An idle worker without MEM is there; tasks need MEM: adapt() of the big pool sends
    jobs (distributed's own target alone would stay at 0), the tasks run, then it scales back."""
    require(slurm_up(), "the single-node Slurm of ci/clusters is not running")
    from distributed import Client, get_worker

    from dask_batch.submit import AddOnWorkers

    os.environ.pop("SLURM_CONF", None)
    pools = tmp_path / "pools.yaml"
    pools.write_text(POOLS_YAML)
    with running_scheduler(tmp_path) as (sched, sec):
        address = json.load(open(sched))["address"]
        with Client(address, security=sec) as client:
            plain = subprocess.Popen([str(BIN / "dask-batch"), "--no-scheduler",
                                      "--scheduler-file", sched, "--name", "plain"],
                                     env=job_env("plain-worker"))
            try:
                wait_for(lambda: client.scheduler_info()["workers"], 60, "the plain worker")
                with AddOnWorkers(sched, system="slurm", pool="big", pools_file=str(pools),
                                  walltime="00:10:00", nanny=False, queue="debug",
                                  poll_interval=1) as workers:
                    try:
                        workers.adapt(minimum=0, maximum=2, interval="1s", wait_count=3)
                        futures = [client.submit(lambda i: (i, get_worker().name), i,
                                                 resources={"MEM": 1}) for i in range(4)]
                        done = client.gather(futures, asynchronous=False)
                        assert all("-big-" in str(name) for _, name in done), done
                        del futures
                        wait_for(lambda: not workers.plan and not workers.observed, 90,
                                 "the pool to scale back to 0")
                    finally:
                        _scancel_tagged(Path(sched))
            finally:
                plain.kill()
                plain.wait(10)
