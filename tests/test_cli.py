"""The dask-batch command under real mpiexec: run, dask-mpi style serve, info, bad input."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from conftest import BIN, MPIEXEC, ROOT, job_env, kill_tagged, mpiexec, require, run_job
from gpu_trees import fake_tree

DASK_BATCH = str(BIN / "dask-batch")
SCRIPT = str(ROOT / "mpi_tests" / "client_script.py")


@pytest.fixture(autouse=True)
def _need_mpiexec():
    require(MPIEXEC.exists(), f"mpiexec not found at {MPIEXEC}")


def json_line(out: str) -> dict:
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, out
    return json.loads(lines[0])


def test_run_script_plain_client_connects_and_gets_args():
    job = run_job(mpiexec(5, DASK_BATCH, "run", SCRIPT, "--its-args", "x"))
    assert job.returncode == 0, job
    out = json_line(job.stdout)
    assert out == {**out, "argv": ["--its-args", "x"], "workers": 3, "total": 90,
                   "name": "__main__"}
    assert out["address"].startswith("tls://")


def test_dashboard_loads_at_its_first_visit():
    """bokeh's ~0.5 s of imports are not on the job's path: the scheduler imports them when
    the dashboard is first opened, and the visit gets the real page (the browser is sent back
    to the same address, now bokeh's); later pages are served directly."""
    require(importlib.util.find_spec("bokeh") is not None, "bokeh missing")
    job = run_job(mpiexec(3, DASK_BATCH, "run", str(ROOT / "mpi_tests" / "dashboard_visit.py")))
    assert job.returncode == 0, job
    out = json_line(job.stdout)
    assert out["url"].startswith("http://127.0.0.1:") and out["url"].endswith("/status"), out
    assert out["before"] is False and out["after"] is True, out
    assert out["first"] == {"status": 200, "url": out["url"], "bokeh_page": True}, out
    assert out["second"]["status"] == 200 and out["second"]["bokeh_page"], out


@pytest.mark.parametrize("configured", [None, "False"])
def test_job_client_moves_data_straight_to_and_from_workers(configured):
    """Inside the allocation every worker is reachable: scatter and gather skip the scheduler
    (one hop instead of two, nothing held on rank 0), unless the user's config says no."""
    env = job_env(uuid.uuid4().hex)
    if configured:
        env["DASK_DISTRIBUTED__CLIENT__DIRECT_TO_WORKERS"] = configured
    job = run_job(mpiexec(4, DASK_BATCH, "run", str(ROOT / "mpi_tests" / "direct_gather.py")),
                  env=env)
    assert job.returncode == 0, job
    out = json_line(job.stdout)
    assert out["sizes"] == [2**21, 2**21], out
    if configured:
        assert out["direct"] is False and out["through_scheduler"] == {"gather": 1,
                                                                       "scatter": 1}, out
    else:
        assert out["direct"] is True and out["through_scheduler"] == {"gather": 0,
                                                                      "scatter": 0}, out


def test_cluster_options_after_run_and_before_it_merge(tmp_path):
    """`dask-batch --nthreads 1 run --insecure --name w script`: the options after the command
    count as those before it; the script's own arguments stay the script's."""
    code = ("from dask.distributed import Client\n"
            "import json, sys\n"
            "c = Client(); c.wait_for_workers(2, timeout=60)\n"
            "info = c.scheduler_info()['workers'].values()\n"
            "print(json.dumps({'address': c.scheduler.address, 'argv': sys.argv[1:],\n"
            "                  'threads': sorted(w['nthreads'] for w in info),\n"
            "                  'names': sorted(str(w['name']) for w in info)}))\n")
    script = tmp_path / "options.py"
    script.write_text(code)
    job = run_job(mpiexec(4, DASK_BATCH, "--nthreads", "1", "run", "--insecure", "--name", "w",
                          str(script), "--nthreads", "9"))
    assert job.returncode == 0, job
    out = json_line(job.stdout)
    assert out["address"].startswith("tcp://"), out
    assert out["threads"] == [1, 1] and out["names"] == ["w-2", "w-3"], out
    assert out["argv"] == ["--nthreads", "9"], out


def test_run_help_lists_the_runner_options():
    """`dask-batch run --help` documents the options accepted after `run` (click's habit)."""
    p = subprocess.run([DASK_BATCH, "run", "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    for option in ("--insecure", "--nthreads", "--scheduler-file", "--interface",
                   "--client-on-scheduler", "--no-nanny"):
        assert option in p.stdout, (option, p.stdout)


def test_merged_options_after_the_command_win():
    from dask_batch.cli.options import merged

    group = {"nthreads": 2, "insecure": True, "verbose": 1, "interface": "ib0", "name": None}
    sub = {"nthreads": 4, "insecure": False, "verbose": 1, "interface": None, "name": "w"}
    assert merged(group, sub) == {"nthreads": 4, "insecure": True, "verbose": 2,
                                  "interface": "ib0", "name": "w"}
    assert merged(None, {"nthreads": None, "insecure": False, "verbose": 0}) == {
        "insecure": False, "verbose": 0}


def test_run_exit_code_is_the_scripts():
    job = run_job(mpiexec(4, DASK_BATCH, "run", SCRIPT, "--exit", "7"))
    assert job.returncode == 7, job


def test_run_module_and_client_on_scheduler(tmp_path):
    (tmp_path / "mymod.py").write_text(open(SCRIPT).read())
    env = job_env("x")
    env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{env['PYTHONPATH']}"
    job = run_job(mpiexec(3, DASK_BATCH, "run", "--client-on-scheduler", "-m", "mymod"),
                  env=env)
    assert job.returncode == 0, job
    assert json_line(job.stdout)["workers"] == 2  # every rank but 0 is a worker


def test_run_missing_script_is_one_line():
    job = run_job(mpiexec(3, DASK_BATCH, "run", "/nonexistent/script.py"))
    assert job.returncode == 2
    assert "no such script" in job.stderr and "Traceback" not in job.stderr


def test_info_json_under_mpiexec():
    job = run_job(mpiexec(3, DASK_BATCH, "info", "--json"))
    assert job.returncode == 0, job
    docs = [json.loads(d) for d in ("[" + job.stdout.replace("}\n{", "},\n{") + "]",)][0]
    assert sorted(d["rank"] for d in docs) == [0, 1, 2]
    assert {d["size"] for d in docs} == {3}
    assert {d["launcher"] for d in docs} == {"pmi"}
    assert all(d["memory_limit"] > 0 and d["nthreads"] >= 1 for d in docs)
    assert {d["mpi"] for d in docs} == {None}  # the environment alone unless --mpi


def test_info_mpi_under_mpiexec():
    """--mpi: MPI_Init as a job does; one node here, so node 0 on every rank."""
    job = run_job(mpiexec(3, DASK_BATCH, "info", "--json", "--mpi"))
    assert job.returncode == 0, job
    docs = json.loads("[" + job.stdout.replace("}\n{", "},\n{") + "]")
    assert sorted(d["rank"] for d in docs) == [0, 1, 2]
    assert {(d["mpi"], d["node"], d["launcher"], d["local_size"]) for d in docs} == {
        ("used", 0, "mpi (pmi)", 3)}


def test_info_mpi_without_mpi4py_is_one_line(monkeypatch):
    from dask_batch import info

    monkeypatch.setattr(info, "mpi_available", lambda: False)
    with pytest.raises(info.InfoError, match=r"^--mpi: mpi4py is not installed"):
        info.collect({}, use_mpi=True)


BAD_INPUT = [
    (["--memory-limit", "lots"], "bad memory size"),
    (["--interface", "nope0"], "no interface named 'nope0'"),
    (["--protocol", "carrier-pigeon"], "unknown protocol"),
    (["--nthreads", "0"], "nthreads must be at least 1"),
    (["--scheduler-file", "/nonexistent/dir/s.json"], "not writable"),
    (["--worker-options", "{not json"], "not JSON"),
]


@pytest.mark.parametrize("args,message", BAD_INPUT, ids=[b[1] for b in BAD_INPUT])
def test_bad_input_is_one_line_exit_2(args, message):
    job = run_job(mpiexec(4, DASK_BATCH, *args), timeout=60)
    assert job.returncode == 2, job
    errors = [ln for ln in job.stderr.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1 and message in errors[0], job
    assert "Traceback" not in job.stderr


def test_bad_config_value_is_one_line():
    env = job_env("cfg", DASK_BATCH__MPI="maybe")
    job = run_job(mpiexec(3, DASK_BATCH), env=env, timeout=60)
    assert job.returncode == 2 and job.stderr.count("batch.mpi") == 1, job


def test_port_in_use_is_one_line():
    import socket

    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        job = run_job(mpiexec(3, DASK_BATCH, "--scheduler-port", str(port)), timeout=60)
    assert job.returncode == 2, job
    assert "Address already in use" in job.stderr and "Traceback" not in job.stderr


def test_world_too_small_reported_once():
    job = run_job(mpiexec(2, DASK_BATCH, "run", SCRIPT), timeout=60)
    assert job.returncode == 2
    assert job.stderr.count("need at least 3") == 1, job


def test_dask_mpi_style_serve_then_more_workers_then_client(tmp_path, tag):
    """mpiexec -n 3 dask-batch --scheduler-file F; mpiexec -n 2 dask-batch --no-scheduler ..."""
    from distributed import Client

    from dask_batch.rendezvous import read_scheduler_file, wait_for_scheduler_file
    from dask_batch.security import security_from

    sched = str(tmp_path / "sched.json")
    env = job_env(tag)
    serve = subprocess.Popen(mpiexec(3, DASK_BATCH, "--scheduler-file", sched), env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    more = None
    try:
        contact = wait_for_scheduler_file(sched, 60, job=None)
        more = subprocess.Popen(
            mpiexec(2, DASK_BATCH, "--no-scheduler", "--scheduler-file", sched, "--name", "more"),
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert oct(os.stat(sched).st_mode & 0o777) == "0o600"
        with Client(contact.address, security=security_from(read_scheduler_file(sched).creds),
                    timeout=30) as client:
            client.wait_for_workers(4, timeout=60)
            names = sorted(str(w["name"]) for w in client.scheduler_info()["workers"].values())
            assert names == ["dask_mpi-1", "dask_mpi-2", "more-0", "more-1"]
            assert client.submit(lambda: 42).result() == 42
            client.shutdown()
        assert serve.wait(30) == 0, serve.stderr.read()
        assert more.wait(30) in (0, 1)  # workers whose scheduler is gone end on their own
    finally:
        for p in (serve, more):
            if p is not None and p.poll() is None:
                p.kill()
        kill_tagged(tag)
    assert not os.path.exists(sched)  # removed by the scheduler at the end


def test_outsider_without_credentials_is_refused(tmp_path, tag):
    """TLS by default: a client without this job's certificate cannot connect."""
    from distributed import Client

    from dask_batch.rendezvous import wait_for_scheduler_file

    sched = str(tmp_path / "sched.json")
    serve = subprocess.Popen(mpiexec(3, DASK_BATCH, "--scheduler-file", sched), env=job_env(tag),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        contact = wait_for_scheduler_file(sched, 60, job=None)
        assert contact.address.startswith("tls://")
        # a TLS handshake without a client certificate: the scheduler must refuse it
        import socket
        import ssl

        host, port = contact.address.removeprefix("tls://").rsplit(":", 1)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            with socket.create_connection((host, int(port)), timeout=5) as raw:
                with ctx.wrap_socket(raw) as tls:
                    tls.sendall(b"x" * 16)
                    if not tls.recv(1):  # TLS 1.3 reports the refusal on first read
                        raise ConnectionError("closed by the scheduler")
        plain = contact.address.replace("tls://", "tcp://")
        with pytest.raises((OSError, TimeoutError)):
            Client(plain, timeout=3)
        from distributed import Security

        with pytest.raises((OSError, TimeoutError)):  # a certificate, but not this job's
            Client(contact.address, security=Security.temporary(), timeout=3)
    finally:
        serve.terminate()
        try:
            serve.wait(15)
        except subprocess.TimeoutExpired:
            serve.kill()
        kill_tagged(tag)


def test_insecure_is_plain_tcp():
    job = run_job(mpiexec(3, DASK_BATCH, "--insecure", "run", SCRIPT))
    assert job.returncode == 0, job
    assert json_line(job.stdout)["address"].startswith("tcp://")


def test_dask_mpi_initialize_drop_in():
    job = run_job(mpiexec(4, sys.executable, str(ROOT / "mpi_tests" / "dask_mpi_style.py")))
    assert job.returncode == 0, job
    assert "RESULT 42" in job.stdout


def test_dask_mpi_initialize_exit_false():
    job = run_job(mpiexec(4, sys.executable, str(ROOT / "mpi_tests" / "dask_mpi_style.py"),
                          "--no-exit"))
    assert job.returncode == 0, job
    assert "RESULT 42" in job.stdout
    # like dask-mpi: with exit=False every rank returns and carries on after the cluster ends
    assert job.stdout.count("AFTER client") == 1 and job.stdout.count("AFTER not-client") == 3


def test_environment_only_mode_with_plain_processes(tmp_path, tag):
    """No MPI: N plain processes with launcher variables meet through the scheduler file."""
    procs = []
    env0 = job_env(tag, DASK_BATCH__MPI="false", DASK_BATCH_SIZE="4",
                   SLURM_JOB_ID="991", DASK_BATCH__SCHEDULER_FILE=str(tmp_path / "s.json"))
    t0 = time.monotonic()
    try:
        for rank in range(4):
            env = dict(env0, DASK_BATCH_RANK=str(rank))
            procs.append(subprocess.Popen([DASK_BATCH, "run", SCRIPT], env=env, cwd=tmp_path,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True))
        outs = [p.communicate(timeout=90) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        kill_tagged(tag)
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outs
    assert json_line(outs[1][0])["workers"] == 2
    assert time.monotonic() - t0 < 90


def test_gpus_auto_one_gpu_per_worker_rank(tmp_path):
    """--gpus auto with a node that shows 4 GPUs (CUDA_VISIBLE_DEVICES): each of the 3 worker
    ranks gets its own, tagged as resource GPU=1, and a GPU-annotated task runs on one."""
    script = tmp_path / "gpus.py"
    script.write_text(
        "import json, os\n"
        "from distributed import Client\n"
        "with Client() as c:\n"
        "    c.wait_for_workers(3, timeout=60)\n"
        "    seen = c.run(lambda: os.environ.get('CUDA_VISIBLE_DEVICES'))\n"
        "    res = {str(w['name']): w['resources'] for w in "
        "c.scheduler_info()['workers'].values()}\n"
        "    on = c.submit(lambda: os.environ['CUDA_VISIBLE_DEVICES'], resources={'GPU': 1})\n"
        "    print(json.dumps({'seen': sorted(seen.values()), 'res': res, 'on': on.result()}))\n"
    )
    env = job_env("gpus", CUDA_VISIBLE_DEVICES="4,5,6,7")
    job = run_job(mpiexec(5, DASK_BATCH, "--gpus", "auto", "run", str(script)), env=env)
    assert job.returncode == 0, job
    out = json_line(job.stdout)
    assert out["seen"] == ["4", "5", "6"], out
    assert all(r == {"GPU": 1} for r in out["res"].values()) and len(out["res"]) == 3, out
    assert out["on"] in ("4", "5", "6")


@pytest.mark.timeout(120)
def test_gpus_auto_amd_one_gpu_per_worker_rank(tmp_path):
    """A fake AMD node (8 GPUs, /dev/kfd) that the launcher narrowed to ROCR_VISIBLE_DEVICES=2,3:
    the 2 worker ranks get one each (ROCr ids; HIP counts from 0 inside), advertise GPU=1, and
    a GPU-annotated task runs on one of them."""
    script = tmp_path / "gpus.py"
    script.write_text(
        "import json, os\n"
        "from distributed import Client\n"
        "def env():\n"
        "    return os.environ['ROCR_VISIBLE_DEVICES'] + '/' + os.environ['HIP_VISIBLE_DEVICES']\n"
        "with Client() as c:\n"
        "    c.wait_for_workers(2, timeout=60)\n"
        "    seen = c.run(env)\n"
        "    res = [w['resources'] for w in c.scheduler_info()['workers'].values()]\n"
        "    on = c.submit(env, resources={'GPU': 1})\n"
        "    print(json.dumps({'seen': sorted(seen.values()), 'res': res, 'on': on.result()}))\n"
    )
    root = fake_tree(tmp_path / "node", "amd", 8)
    env = job_env("gpus-amd", DASK_BATCH_DEVICE_ROOT=str(root), ROCR_VISIBLE_DEVICES="2,3")
    job = run_job(mpiexec(4, DASK_BATCH, "--gpus", "auto", "run", str(script)), env=env)
    assert job.returncode == 0, job
    out = json_line(job.stdout)
    assert out["seen"] == ["2/0", "3/0"], out
    assert out["res"] == [{"GPU": 1}, {"GPU": 1}], out
    assert out["on"] in ("2/0", "3/0"), out


@pytest.mark.timeout(60)
def test_info_shows_vendor_and_each_ranks_intel_tile(tmp_path):
    """info --json under mpiexec -n 4 on a fake Intel node (2 GPUs of 2 tiles): the vendor, the
    node's tiles, and for ranks 2 and 3 (the workers) their own tile as "card.tile"."""
    root = fake_tree(tmp_path, "intel", 2, tiles=2)
    env = job_env("gpus-info", DASK_BATCH_DEVICE_ROOT=str(root))
    job = run_job(mpiexec(4, DASK_BATCH, "info", "--json"), env=env)
    assert job.returncode == 0, job
    docs = {d["rank"]: d for d in json.loads("[" + job.stdout.replace("}\n{", "},\n{") + "]")}
    assert {(d["gpu_vendor"], tuple(d["gpus"])) for d in docs.values()} == {
        ("intel", ("0.0", "0.1", "1.0", "1.1"))}
    assert [docs[r]["gpu_env"].get("ZE_AFFINITY_MASK") for r in (2, 3)] == ["0.0", "0.1"]
    text = run_job(mpiexec(1, DASK_BATCH, "info"), env=env)
    assert "gpus       intel 0.0,0.1,1.0,1.1 (devices); as a worker with --gpus auto: 0.0 " \
           "(ZE_AFFINITY_MASK=0.0 ZE_FLAT_DEVICE_HIERARCHY=COMPOSITE)" in text.stdout, text


def test_initialize_dask_mpi_arguments_tcp_and_bad_interface(tmp_path):
    """initialize(protocol="tcp") as a dask-mpi user wrote it: a plain tcp cluster (dask-mpi
    had no TLS); a bad interface: one line, exit 2, once per job."""
    ok = tmp_path / "tcp.py"
    ok.write_text("from dask_batch import initialize\n"
                  "initialize(protocol='tcp', dashboard=False)\n"
                  "from distributed import Client\n"
                  "with Client() as c:\n"
                  "    print('ADDR', c.scheduler.address, c.submit(sum, [1, 2]).result())\n")
    job = run_job(mpiexec(3, sys.executable, str(ok)))
    assert job.returncode == 0, job
    assert "ADDR tcp://" in job.stdout and job.stdout.rstrip().endswith(" 3"), job
    bad = tmp_path / "bad.py"
    bad.write_text("from dask_batch import initialize\n"
                   "initialize(interface='nosuch0', dashboard=False)\n")
    job = run_job(mpiexec(3, sys.executable, str(bad)))
    assert job.returncode == 2, job
    assert job.stderr.count("no interface named 'nosuch0'") == 1, job
    assert "Traceback" not in job.stderr


@pytest.mark.parametrize("how", ["run", "initialize", "runner"])
def test_whole_client_api_ends_clean_and_at_once(how):
    """as_completed, get_client/secede/rejoin, worker_client, client.sync, asynchronous
    clients, tasks still running or pending at the end, under `dask-batch run`, initialize()
    and BatchRunner: rc 0, nothing on stderr but dask-batch's own lines, and no rank left
    waiting (MPI_Finalize forced after 10 s)."""
    script = str(ROOT / "mpi_tests" / "whole_client_api.py")
    argv = ([DASK_BATCH, "--no-dashboard", "run", script] if how == "run"
            else [sys.executable, script, f"--{how}"])
    job = run_job(mpiexec(5, *argv), timeout=90)
    assert job.returncode == 0, job
    assert job.stdout.split() == ["squares", "40425", "fib", "55", "doubled", "90", "sync", "1",
                                  "async", "6"], job
    foreign = [ln for ln in job.stderr.splitlines() if not ln.startswith("dask-batch[")]
    assert foreign == [], job
    assert "MPI_Finalize did not return" not in job.stderr, job
