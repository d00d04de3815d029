"""BatchCluster on the REAL single-node Slurm and Grid Engine of ci/clusters: a scheduler in
the test process, worker jobs in the queue."""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from clusters import sge_env, sge_queued, sge_up, slurm_env, slurm_up
from conftest import require

sys.path.insert(0, str(Path(__file__).parent / "fakes"))
from helpers import wait_for  # noqa: E402

BIN = Path(sys.executable).parent
SCHED = {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}
SLURM = dict(system="slurm", cores=1, memory="500MiB", walltime="00:10:00", queue="debug",
             nanny=False, poll_interval=1, scheduler_options=SCHED)


def squeue_ids(job: str) -> set[str]:
    """Array elements of ``job`` still in the queue (COMPLETING ones count as gone)."""
    p = subprocess.run(["squeue", "-h", "-r", "-j", job, "-o", "%i %T"],
                       env=slurm_env("probe"), capture_output=True, text=True, timeout=15)
    return {ln.split()[0] for ln in p.stdout.splitlines()
            if ln.strip() and ln.split()[1] != "COMPLETING"}


def job_ids(cluster) -> set[str]:
    return {r.job_id for r in cluster.records}


def scancel(ids: set[str]) -> None:
    if ids:
        subprocess.run(["scancel", *ids], env=slurm_env("probe"), capture_output=True,
                       timeout=30)


def slurm_serving() -> bool:
    """Up, waiting out a node that is completing the previous test's jobs for a few seconds."""
    deadline = time.monotonic() + 20
    while not slurm_up() and time.monotonic() < deadline:
        time.sleep(0.5)
    return slurm_up()


@pytest.fixture
def slurm(monkeypatch):
    require(slurm_serving(), "the single-node Slurm of ci/clusters is not running")
    monkeypatch.delenv("SLURM_CONF", raising=False)


@pytest.mark.slurm
@pytest.mark.timeout(180)
def test_slurm_scale_compute_scale_down_close(tmp_path, slurm):
    from distributed import Client

    from dask_batch import BatchCluster
    from dask_batch.submit import AddOnWorkers

    cluster = BatchCluster(scheduler_file=str(tmp_path / "c" / "sched.json"),
                           job_extra_directives=["--comment=bc-test"], **SLURM)
    sent: set[str] = set()
    try:
        assert cluster.scheduler_address.startswith("tls://127.0.0.1:")
        assert stat.S_IMODE(os.stat(cluster.scheduler_file).st_mode) == 0o600
        script = cluster.job_script()
        for line in ("#SBATCH --partition=debug", "#SBATCH --mem=500M",
                     "#SBATCH --time=0:10:00", "#SBATCH --comment=bc-test",
                     "#SBATCH --cpus-per-task=1"):
            assert line in script, script
        assert "PRIVATE KEY" not in script and cluster.scheduler_file in script
        cluster.scale(2)
        sent = job_ids(cluster)
        assert len(sent) == 1  # one array for both workers
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=90)
            assert client.submit(sum, client.map(lambda x: x * x, range(30))).result(30) == 8555
            assert "running</td><td style=\"text-align: left;\">2" in \
                wait_for(lambda: cluster.job_counts().get("running") == 2
                         and cluster._repr_html_(), 30, "2 running jobs in the repr")
            # the state file: dask-batch status sees the jobs
            st = subprocess.run([str(BIN / "dask-batch"), "status", "--scheduler-file",
                                 cluster.scheduler_file, "--json"], capture_output=True,
                                text=True, timeout=60, env=slurm_env("probe"))
            assert json.loads(st.stdout)["counts"] == {"running": 2}, st.stdout + st.stderr
            addon = BatchCluster.from_scheduler_file(cluster.scheduler_file, system="slurm",
                                                     walltime="00:10:00")
            assert isinstance(addon, AddOnWorkers)
            addon.close()
            cluster.scale(1)
            job = next(iter(sent))
            wait_for(lambda: len(squeue_ids(job)) == 1, 30, "one job to be cancelled")
            wait_for(lambda: len(client.scheduler_info()["workers"]) == 1, 30, "one worker")
            assert len(cluster.plan) == 1
        cluster.close()
        wait_for(lambda: not squeue_ids(job), 30, "close() to cancel the last job")
        assert not os.path.exists(cluster.scheduler_file)  # the credentials are gone
    finally:
        cluster.close()
        scancel(sent)


@pytest.mark.timeout(30)
def test_bad_input_is_one_clear_error(tmp_path):
    from dask_batch import BatchCluster
    from dask_batch.submit.spec import SpecError

    with pytest.raises(SpecError, match="no walltime"):
        BatchCluster(system="slurm", scheduler_file=str(tmp_path / "s.json"))
    with pytest.raises(SpecError, match="extra_directives and job_extra are the same"):
        BatchCluster(system="slurm", walltime="1:00:00", job_extra=["a"],
                     extra_directives=["b"], scheduler_file=str(tmp_path / "s.json"))
    with pytest.raises(TypeError, match="True or False"):
        BatchCluster(system="slurm", walltime="1:00:00", security="yes")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kwargs, scheme", [({}, "tls"), ({"security": False}, "tcp"),
                                            ({"insecure": True}, "tcp")])
def test_tls_by_default_credentials_only_in_the_0600_file(tmp_path, kwargs, scheme):
    from distributed import Client

    from dask_batch import BatchCluster
    from dask_batch.rendezvous import read_scheduler_file

    with BatchCluster(system="slurm", walltime="1:00:00", scheduler_options=SCHED,
                      scheduler_file=str(tmp_path / "c" / "s.json"), **kwargs) as cluster:
        assert cluster.scheduler_address.startswith(f"{scheme}://127.0.0.1:")
        contact = read_scheduler_file(cluster.scheduler_file)
        assert contact.address == cluster.scheduler_address
        assert bool(contact.creds) == (scheme == "tls")
        assert "PRIVATE KEY" not in cluster.job_script()
        with Client(cluster, timeout=20) as client:  # the cluster hands the client its keys
            assert client.scheduler_info()["address"] == cluster.scheduler_address
            port = client.scheduler_info()["services"]["dashboard"]
        # the dashboard link a notebook shows: the scheduler's own dashboard port
        assert re.fullmatch(rf"http://127\.0\.0\.1:{port}/status", cluster.dashboard_link), \
            cluster.dashboard_link
    assert not os.path.exists(cluster.scheduler_file)


@pytest.mark.timeout(60)
def test_scale_by_jobs_cores_or_memory_counts_workers(tmp_path):
    from dask_batch import BatchCluster

    with BatchCluster(system="slurm", walltime="1:00:00", cores=4, processes=2, memory="8GiB",
                      scheduler_options=SCHED,
                      scheduler_file=str(tmp_path / "c" / "s.json")) as cluster:
        # 2 workers per job, each with 2 threads and 4 GiB
        assert cluster._workers_for(None, 3, None, None) == 6
        assert cluster._workers_for(None, 0, None, None) == 0
        assert cluster._workers_for(None, None, "9GiB", None) == 3
        assert cluster._workers_for(None, None, None, 5) == 3
        with pytest.raises(ValueError, match="number of workers"):
            cluster.scale(-1)


@pytest.mark.timeout(60)
def test_pools_given_inline_name_the_jobs_base(tmp_path):
    """pools= is the inline form of a pools file; pool= picks the one these jobs use, and the
    cluster's own keywords still win over it."""
    from dask_batch import BatchCluster

    pools = {"bigmem": {"memory": "64GiB", "cores": 8, "queue": "bigmem"},
             "gpu": {"gpus": 1, "cores": 4, "memory": "32GiB"}}
    with BatchCluster(system="slurm", walltime="1:00:00", pools=pools, pool="bigmem",
                      processes=2, scheduler_options=SCHED,
                      scheduler_file=str(tmp_path / "c" / "s.json")) as cluster:
        script = cluster.job_script()
        assert "#SBATCH --partition=bigmem" in script and "#SBATCH --mem=65536M" in script
        assert "#SBATCH --cpus-per-task=8" in script and "--processes 2" in script, script
    with pytest.raises(ValueError, match="pools= given without pool=: .*bigmem, gpu"):
        BatchCluster(system="slurm", walltime="1:00:00", pools=pools)


@pytest.mark.timeout(60)
def test_default_folder_in_batch_cluster_directory_removed_at_close(tmp_path):
    import dask.config

    from dask_batch import BatchCluster

    with dask.config.set({"batch.cluster.directory": str(tmp_path)}):
        cluster = BatchCluster(system="slurm", walltime="1:00:00", scheduler_options=SCHED)
    try:
        folder = Path(cluster.scheduler_file).parent
        assert folder.parent == tmp_path and folder.name.startswith("dask-batch-")
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    finally:
        cluster.close()
    assert not folder.exists()


@pytest.mark.timeout(60)
def test_a_taken_port_is_one_error_and_leaves_nothing_running(tmp_path):
    import socket

    from dask_batch import BatchCluster

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(RuntimeError, match="Scheduler failed to start"):
            BatchCluster(system="slurm", walltime="1:00:00",
                         scheduler_options={**SCHED, "port": port},
                         scheduler_file=str(tmp_path / "c" / "s.json"))
    from distributed.core import Status

    from dask_batch.cluster import _live

    assert _live and all(c.status == Status.closed for c in _live)  # its loop is stopped


EXIT_WITHOUT_CLOSE = """
import sys
from dask_batch import BatchCluster
cluster = BatchCluster(scheduler_file=sys.argv[1], system="slurm", cores=1, memory="500MiB",
                       walltime="00:10:00", queue="debug", nanny=False, poll_interval=1,
                       scheduler_options={"host": "127.0.0.1", "dashboard_address": ":0"})
cluster.scale(2)
cluster.wait_for_workers(2, timeout=90)
print("JOBS", " ".join(sorted(r.job_id for r in cluster.records)), flush=True)
"""


@pytest.mark.slurm
@pytest.mark.timeout(180)
def test_slurm_process_that_exits_without_close_leaves_no_jobs(tmp_path, slurm):
    script = tmp_path / "leave.py"
    script.write_text(textwrap.dedent(EXIT_WITHOUT_CLOSE))
    sched = tmp_path / "c" / "sched.json"
    p = subprocess.run([sys.executable, str(script), str(sched)], capture_output=True,
                       text=True, timeout=150, env=slurm_env("leave"), cwd=tmp_path)
    jobs = p.stdout.split("JOBS ", 1)[1].split() if "JOBS " in p.stdout else []
    try:
        assert p.returncode == 0 and jobs, p.stdout + p.stderr[-3000:]
        # atexit cancelled them: no worker waits for its death-timeout (60 s) to go
        wait_for(lambda: not any(squeue_ids(j) for j in jobs), 20, "the jobs to leave")
    finally:
        scancel(set(jobs))


@pytest.mark.slurm
@pytest.mark.timeout(120)
def test_slurm_failing_jobs_back_off_then_stop_with_one_warning(tmp_path, slurm, caplog):
    from dask_batch import BatchCluster

    caplog.set_level(logging.INFO, logger="dask_batch.submit.failures")
    t0 = time.monotonic()
    cluster = BatchCluster(scheduler_file=str(tmp_path / "c" / "sched.json"),
                           job_script_prologue=["exec /nonexistent/setup-env"],
                           max_failures=3, backoff=1, **SLURM)
    try:
        cluster.scale(1)
        wait_for(lambda: cluster.failures.stopped, 60, "submission to stop")
        time.sleep(4)  # stopped means stopped: nothing more goes out
        assert len(cluster.records) == 3, cluster.records
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        text = warnings[0].getMessage()
        assert "3 worker jobs in a row ended before their worker joined" in text
        assert "/nonexistent/setup-env" in text  # the error file's tail, quoted
        waits = [r.getMessage() for r in caplog.records if "next submission in" in r.getMessage()]
        assert [w.rsplit(" in ", 1)[1] for w in waits] == ["1 s", "2 s"], waits
        assert cluster.job_counts().get("missing", 0) + cluster.job_counts().get("failed", 0) == 3
        assert "submission stopped" in cluster._repr_html_()
        logs = cluster.get_logs(scheduler=False, workers=False)
        assert sum("/nonexistent/setup-env" in str(v) for k, v in logs.items()
                   if k.startswith("job ")) == 3, logs
        assert time.monotonic() - t0 < 60
    finally:
        cluster.close()
        scancel(job_ids(cluster))


@pytest.mark.slurm
@pytest.mark.timeout(120)
def test_slurm_python_wrapper_with_spaces(tmp_path, slurm):
    from distributed import Client

    from dask_batch import BatchCluster

    wrapper = f"env 'DASK_BATCH_WRAPPED=yes it is' {sys.executable}"
    cluster = BatchCluster(scheduler_file=str(tmp_path / "c" / "sched.json"), python=wrapper,
                           **SLURM)
    try:
        assert f"env 'DASK_BATCH_WRAPPED=yes it is' {sys.executable} -m" in cluster.job_script()
        cluster.scale(1)
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=60)
            seen = client.run(lambda: __import__("os").environ.get("DASK_BATCH_WRAPPED"))
            assert list(seen.values()) == ["yes it is"], seen
    finally:
        cluster.close()
        scancel(job_ids(cluster))


def _sge_cluster(tmp_path, monkeypatch, **kw):
    require(sge_up(), "the Grid Engine of ci/clusters is not running")
    from dask_batch import BatchCluster

    env = sge_env("probe")
    for key in ("SGE_ROOT", "SGE_CELL"):
        monkeypatch.setenv(key, env[key])
    cluster = BatchCluster(system="sge", cores=1, walltime="00:10:00", queue="all.q",
                           nanny=False, poll_interval=1, scheduler_options=SCHED,
                           scheduler_file=str(tmp_path / "c" / "sched.json"), **kw)
    return cluster, env


def _qdel_all(cluster, env) -> None:
    cluster.close()
    for job in {r.elements[0].name_id for r in cluster.records}:
        subprocess.run(["qdel", job], env=env, capture_output=True, timeout=30)


@pytest.mark.sge
@pytest.mark.timeout(200)
def test_sge_scale_compute_scale_down_close(tmp_path, monkeypatch):
    from distributed import Client

    cluster, env = _sge_cluster(tmp_path, monkeypatch)
    try:
        assert cluster.scheduler_address.startswith("tls://")
        assert "#$ -q all.q" in cluster.job_script()
        cluster.scale(2)
        (job,) = job_ids(cluster)
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=120)
            assert client.submit(lambda: 6 * 7).result(30) == 42
            cluster.scale(1)
            wait_for(lambda: len(sge_queued(env, job)) == 1, 60, "one SGE job to be cancelled")
            wait_for(lambda: len(client.scheduler_info()["workers"]) == 1, 30, "one worker")
        cluster.close()
        wait_for(lambda: not sge_queued(env, job), 60, "close() to cancel the last SGE job")
    finally:
        _qdel_all(cluster, env)


@pytest.mark.sge
@pytest.mark.timeout(200)
def test_sge_task_ended_by_qdel_is_replaced_and_adapt_shrinks(tmp_path, monkeypatch):
    """Grid Engine: a task of the array deleted by someone else (as a node failure would end
    it) is replaced at a fixed size; then adapt() with no work goes to its minimum, 0."""
    from distributed import Client

    cluster, env = _sge_cluster(tmp_path, monkeypatch)
    try:
        cluster.scale(2)
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=120)
            (job,) = job_ids(cluster)
            first = set(cluster.observed)
            subprocess.run(["qdel", f"{job}.1"], env=env, check=True,
                           capture_output=True, timeout=30)
            wait_for(lambda: len(cluster.records) == 2, 90, "a replacement job")
            wait_for(lambda: len(cluster.observed) == 2 and cluster.observed != first, 120,
                     "the replacement's worker")
            assert len(cluster.plan) == 2 and not cluster.failures.in_row
            cluster.adapt(minimum=0, maximum=2, interval="1s", wait_count=2)
            wait_for(lambda: not cluster.plan and not cluster.observed, 90, "adapt to go to 0")
            wait_for(lambda: not any(sge_queued(env, j) for j in job_ids(cluster)), 60,
                     "qstat to show none of the jobs")
    finally:
        _qdel_all(cluster, env)


@pytest.mark.sge
@pytest.mark.timeout(200)
def test_sge_adapt_grows_for_work_and_shrinks_back(tmp_path, monkeypatch):
    cluster, env = _sge_cluster(tmp_path, monkeypatch)
    try:
        adapt_grows_and_shrinks(cluster, start_within=120)
    finally:
        _qdel_all(cluster, env)


@pytest.mark.sge
@pytest.mark.timeout(150)
def test_sge_failing_jobs_back_off_then_stop_with_one_warning(tmp_path, monkeypatch, caplog):
    """A worker job that dies at start on Grid Engine: counted, backed off, stopped with one
    warning quoting its error file (SGE names it <name>.e<job>.<task>)."""
    caplog.set_level(logging.INFO, logger="dask_batch.submit.failures")
    cluster, env = _sge_cluster(tmp_path, monkeypatch, max_failures=2, backoff=1,
                                job_script_prologue=["exec /nonexistent/setup-env"])
    try:
        cluster.scale(1)
        wait_for(lambda: cluster.failures.stopped, 120, "submission to stop")
        assert len(cluster.records) == 2, cluster.records
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        text = warnings[0].getMessage()
        assert "2 worker jobs in a row ended before their worker joined" in text, text
        assert "/nonexistent/setup-env" in text, text  # the error file's tail, quoted
    finally:
        _qdel_all(cluster, env)


@pytest.mark.slurm
@pytest.mark.timeout(150)
def test_slurm_job_ended_by_the_batch_system_is_replaced(tmp_path, slurm):
    """scancel by someone else (as a node failure or the walltime would end it): the cluster
    holds its size with a new job."""
    from distributed import Client

    from dask_batch import BatchCluster

    cluster = BatchCluster(scheduler_file=str(tmp_path / "c" / "sched.json"), **SLURM)
    try:
        cluster.scale(2)
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=90)
            (job,) = job_ids(cluster)
            first = set(cluster.observed)
            scancel({f"{job}_0"})
            wait_for(lambda: len(cluster.records) == 2, 60, "a replacement job")
            wait_for(lambda: len(cluster.observed) == 2 and cluster.observed != first, 60,
                     "the replacement's worker")
            assert f"dask-worker-{job}-1" in cluster.observed
            assert len(cluster.plan) == 2 and not cluster.failures.in_row
            # cancelled with dask-batch cancel: meant, so not replaced
            r = subprocess.run([str(BIN / "dask-batch"), "cancel", "--scheduler-file",
                                cluster.scheduler_file], capture_output=True, text=True,
                               timeout=60, env=slurm_env("probe"))
            assert r.returncode == 0 and "cancelled 2" in r.stdout, r.stdout + r.stderr
            wait_for(lambda: not cluster.plan, 20, "the plan to empty")
            wait_for(lambda: not client.scheduler_info()["workers"], 30, "the workers to go")
            time.sleep(3)
            assert len(cluster.records) == 2 and not cluster.plan, cluster.records
    finally:
        cluster.close()
        scancel(job_ids(cluster))


@pytest.mark.timeout(90)
@pytest.mark.parametrize("system", ["pbs", "lsf"])
def test_fake_system_scale_and_close(system, tmp_path, monkeypatch, tag):
    """Through the strict fake qsub/qstat/qdel and bsub/bjobs/bkill: jobs join, close()
    cancels them."""
    from distributed import Client
    from helpers import fake_calls, fake_env, kill_fake_jobs

    from dask_batch import BatchCluster

    env = fake_env(system, tmp_path)
    for key, value in {**env, "DASK_BATCH_TEST_TAG": tag}.items():
        monkeypatch.setenv(key, value)
    cluster = BatchCluster(system=system, walltime="00:30:00", memory="1GiB", nanny=False,
                           poll_interval=1, scheduler_options=SCHED,
                           scheduler_file=str(tmp_path / "c" / "sched.json"))
    try:
        if system == "pbs":
            cluster.scale(memory="2GiB")  # 1 GiB per job and worker: 2 workers
        else:
            cluster.scale(jobs=2)
        assert len(cluster.plan) == 2 and len(cluster.records) == 1
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=45)
            assert client.submit(lambda: 41 + 1).result(20) == 42
            wait_for(lambda: cluster.job_counts() == {"running": 2}, 20, "2 running jobs")
            cluster.close()
            wait_for(lambda: not client.scheduler_info()["workers"], 20, "workers to leave") \
                if client.status == "running" else None
        calls = [c[0] for c in fake_calls(env)]
        submit, cancel = ("qsub", "qdel") if system == "pbs" else ("bsub", "bkill")
        assert calls.count(submit) == 1 and calls[-1] == cancel, calls
    finally:
        cluster.close()
        kill_fake_jobs(env)


@pytest.mark.slurm
@pytest.mark.timeout(180)
def test_slurm_adapt_grows_for_work_and_shrinks_back(tmp_path, slurm):
    from dask_batch import BatchCluster

    cluster = BatchCluster(scheduler_file=str(tmp_path / "c" / "sched.json"), **SLURM)
    try:
        adapt_grows_and_shrinks(cluster, start_within=90)
    finally:
        cluster.close()
        scancel(job_ids(cluster))


def adapt_grows_and_shrinks(cluster, start_within: float) -> None:
    """adapt(0..2): 16 one-second tasks bring 2 workers, which go when the work is done, and
    adapt's choice holds (the ended jobs are not replaced)."""
    from distributed import Client

    cluster.adapt(minimum=0, maximum=2, interval="1s", wait_count=2, target_duration="1s")
    with Client(cluster) as client:
        def slow(x):
            __import__("time").sleep(1)
            return x

        futures = client.map(slow, range(16))
        wait_for(lambda: len(cluster.observed) == 2, start_within, "adapt to start 2 workers")
        assert len(cluster.plan) <= 2
        assert sum(client.gather(futures)) == sum(range(16))
        del futures
        wait_for(lambda: not cluster.plan and not cluster.observed, 90, "adapt to go to 0")
        time.sleep(3)
        assert not cluster.plan


@pytest.mark.slurm
@pytest.mark.timeout(60)
def test_slurm_refused_submissions_back_off_then_stop(tmp_path, slurm, caplog):
    """sbatch refuses the job: scale() says why; the retries back off and stop with one
    warning instead of running sbatch every second."""
    from dask_batch import BatchCluster
    from dask_batch.submit import SubmitError

    caplog.set_level(logging.WARNING, logger="dask_batch")
    cluster = BatchCluster(scheduler_file=str(tmp_path / "c" / "sched.json"),
                           max_failures=2, backoff=1, **{**SLURM, "queue": "no-such-queue"})
    try:
        with pytest.raises(SubmitError, match="invalid partition"):
            cluster.scale(1)
        wait_for(lambda: cluster.failures.stopped, 20, "submission to stop")
        time.sleep(3)
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1, warnings
        assert "2 submissions or worker jobs in a row failed" in warnings[0]
        assert "invalid partition" in warnings[0] and not cluster.records
    finally:
        cluster.close()


@pytest.mark.timeout(90)
def test_scale_down_retires_the_worker_before_cancelling_its_job(tmp_path, monkeypatch, tag):
    """scale(1) of two workers, each holding data no one can recompute (scattered): the one
    that goes hands its data over first, so both results are still there."""
    from distributed import Client
    from helpers import fake_env, kill_fake_jobs

    from dask_batch import BatchCluster

    env = fake_env("pbs", tmp_path)
    for key, value in {**env, "DASK_BATCH_TEST_TAG": tag}.items():
        monkeypatch.setenv(key, value)
    cluster = BatchCluster(system="pbs", walltime="00:30:00", memory="1GiB", nanny=False,
                           poll_interval=1, scheduler_options=SCHED,
                           scheduler_file=str(tmp_path / "c" / "sched.json"))
    try:
        cluster.scale(2)
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=45)
            held = {w: client.scatter(f"only on {w}", workers=[w], broadcast=False)
                    for w in client.scheduler_info()["workers"]}
            cluster.scale(1)
            wait_for(lambda: len(client.scheduler_info()["workers"]) == 1, 30, "one worker")
            wait_for(lambda: cluster.job_counts().get("running") == 1, 30, "one running job")
            assert client.gather(list(held.values()), errors="raise") == \
                [f"only on {w}" for w in held]
    finally:
        cluster.close()
        kill_fake_jobs(env)


CRASHING_NOTEBOOK = """
import os
from dask_batch import BatchCluster

cluster = BatchCluster(system="pbs", walltime="00:30:00", memory="1GiB", nanny=False,
                       scheduler_options={"host": "127.0.0.1", "dashboard_address": ":0"})
cluster.scale(jobs=2)
print("SENT", len(cluster.records[0].elements), flush=True)
os._exit(9)  # the kernel is killed: no close(), no atexit
"""


@pytest.mark.timeout(90)
def test_jobs_of_a_notebook_that_died_are_found_by_status_and_cancel(tmp_path, tag):
    """A notebook killed without close() leaves its jobs queued: in the same folder,
    `dask-batch status` finds the cluster's folder and lists them, `dask-batch cancel`
    cancels them (no --scheduler-file needed)."""
    from helpers import fake_calls, fake_env, kill_fake_jobs

    env = {**os.environ, **fake_env("pbs", tmp_path), "DASK_BATCH_TEST_TAG": tag}
    work = tmp_path / "notebooks"
    work.mkdir()
    try:
        p = subprocess.run([sys.executable, "-c", CRASHING_NOTEBOOK], cwd=work, env=env,
                           capture_output=True, text=True, timeout=60)
        assert "SENT 2" in p.stdout and p.returncode == 9, p.stdout + p.stderr
        dask_batch = [str(BIN / "dask-batch")]
        st = subprocess.run([*dask_batch, "status"], cwd=work, env=env, capture_output=True,
                            text=True, timeout=60)
        assert st.returncode == 0 and st.stdout.startswith("2 add-on job(s)"), st
        cn = subprocess.run([*dask_batch, "cancel"], cwd=work, env=env, capture_output=True,
                            text=True, timeout=60)
        assert cn.returncode == 0 and "cancelled 2" in cn.stdout, cn
        assert [c[0] for c in fake_calls(env)].count("qdel") >= 1, fake_calls(env)
    finally:
        kill_fake_jobs(env)


@pytest.mark.timeout(60)
def test_a_submission_refused_part_way_leaves_no_job_behind(tmp_path, monkeypatch, tag):
    """Three single jobs (no array), the second refused by qsub: scale() raises the refusal,
    the first job is the cluster's (counted in its plan) and close() cancels it."""
    from helpers import fake_calls, fake_env

    from dask_batch import BatchCluster
    from dask_batch.submit import SubmitError

    env = fake_env("pbs", tmp_path)
    refusing = tmp_path / "refusing"
    refusing.mkdir()
    (refusing / "qsub").write_text(
        "#!/bin/sh\n"
        f'n=$(cat "{tmp_path}/n" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "{tmp_path}/n"\n'
        'if [ "$n" = 2 ]; then echo "qsub: Job exceeds queue resource limits" >&2; exit 188; fi\n'
        f'exec "{tmp_path}/bin/qsub" "$@"\n')
    (refusing / "qsub").chmod(0o755)
    env["PATH"] = f"{refusing}{os.pathsep}{env['PATH']}"
    for key, value in {**env, "DASK_BATCH_TEST_TAG": tag}.items():
        monkeypatch.setenv(key, value)
    cluster = BatchCluster(system="pbs", walltime="00:30:00", memory="1GiB", nanny=False,
                           array=False, backoff=600, scheduler_options=SCHED,
                           scheduler_file=str(tmp_path / "c" / "sched.json"))
    try:
        with pytest.raises(SubmitError, match="exceeds queue resource limits"):
            cluster.scale(jobs=3)
        assert len(cluster.records) == 1 and len(cluster.plan) == 1, cluster.records
        kept = cluster.records[0].elements[0].query_id
    finally:
        cluster.close()
    calls = fake_calls(env)
    assert [c[0] for c in calls].count("qsub") == 1, calls
    assert [c for c in calls if c[0] == "qdel"] == [["qdel", kept]], calls


@pytest.mark.slurm
@pytest.mark.timeout(90)
def test_slurm_asynchronous_as_dask_labextension_uses_it(tmp_path, slurm):
    """``await BatchCluster(..., asynchronous=True)``, then ``scale()`` without ``await`` (as
    dask-labextension's manager calls it): the job still goes out; ``await close()``."""
    import asyncio

    from dask_batch import BatchCluster

    async def main() -> tuple[set[str], int]:
        cluster = await BatchCluster(scheduler_file=str(tmp_path / "c" / "sched.json"),
                                     asynchronous=True, **SLURM)
        try:
            cluster.scale(1)
            for _ in range(100):
                if cluster.records:
                    break
                await asyncio.sleep(0.1)
            return job_ids(cluster), len(cluster.plan)
        finally:
            await cluster.close()

    ids, planned = asyncio.run(main())
    try:
        assert len(ids) == 1 and planned == 1
        wait_for(lambda: not squeue_ids(next(iter(ids))), 30, "close() to cancel the job")
    finally:
        scancel(ids)


@pytest.mark.timeout(60)
def test_labextension_factory_of_the_docs_makes_a_batch_cluster(tmp_path):
    """docs/cluster.md's labextension.yaml, used as dask-labextension's manager uses it:
    import ``module``, take ``class``, ``await cls(*args, **kwargs, asynchronous=True)``, then
    ``adapt(**default.adapt)``. Only the scheduler's interface is this machine's."""
    import asyncio
    import importlib
    import re

    import dask
    import yaml

    text = (Path(__file__).parent.parent / "docs" / "cluster.md").read_text()
    block = re.search(r"labextension\.yaml`:\n\n```yaml\n(.*?)```", text, re.S).group(1)
    with dask.config.set(yaml.safe_load(block)):
        factory = dask.config.get("labextension.factory")
        adapt = dask.config.get("labextension.default.adapt")

    async def make() -> str:
        cls = getattr(importlib.import_module(factory["module"]), factory["class"])
        kwargs = {**factory["kwargs"], "scheduler_options": SCHED,
                  "scheduler_file": str(tmp_path / "c" / "sched.json")}
        cluster = await cls(*factory["args"], **kwargs, asynchronous=True)
        try:
            adaptive = cluster.adapt(**adapt)
            assert (adaptive.minimum, adaptive.maximum) == (0, 50)
            return cluster.job_script()
        finally:
            await cluster.close()

    script = asyncio.run(make())
    for line in ("#SBATCH --account=proj42", "#SBATCH --partition=normal",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --time=2:00:00"):
        assert line in script, script
