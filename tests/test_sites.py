"""The site recipes of launchers/ (docs/sites.md): Cray EX with NVIDIA GPUs, Slurm with AMD GPUs,
PBS Pro with PALS and Intel GPUs.

* Both Slurm scripts pass ``sbatch --test-only`` on the real single-node Slurm of ci/clusters,
  GPU lines included: the node advertises 8 GPUs as gres (a count, no devices) and 16 CPUs,
  so the test asks, on the command line, for one node and one CPU per task; every ``#SBATCH``
  line is sbatch's as written. Asking for more GPUs than the node has is refused.
* ``slurm-amd.sbatch`` also runs a whole job there, with a fake AMD device tree and the
  ``ROCR_VISIBLE_DEVICES`` that Slurm's gres would set: each worker gets its own GPU.
* ``pbs-pals-intel.qsub`` runs under the strict fake ``qsub`` and a strict fake PALS ``mpiexec``
  (tests/test_launchers_fakes.py) with a fake Intel tree of one GPU with two tiles.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from clusters import PYTHON, Slurm, no_leftovers, one_result, slurm_env, slurm_up
from conftest import MPIEXEC, require
from gpu_trees import fake_tree
from test_launchers_fakes import Fakes, submit

sys.path.insert(0, str(Path(__file__).parent / "fakes"))
from helpers import wait_for  # noqa: E402

LAUNCHERS = Path(__file__).resolve().parent.parent / "launchers"
SLURM_SITES = ["cray-ex-nvidia.sbatch", "slurm-amd.sbatch"]
# the one node here, one CPU a task; the scripts' other lines stay as written
SHRINK = ("--nodes=1", "--cpus-per-task=1")

CLIENT = """
import json, os
from dask.distributed import Client

KEYS = ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ZE_AFFINITY_MASK",
        "ZE_FLAT_DEVICE_HIERARCHY", "PALS_RANKID")

def env():
    return {k: os.environ[k] for k in KEYS if k in os.environ}

with Client() as c:
    n = int(os.environ["DASK_BATCH_N_WORKERS"])
    c.wait_for_workers(n, timeout=90)
    seen = c.run(env)
    res = [w["resources"] for w in c.scheduler_info(n_workers=-1)["workers"].values()]
    on = c.submit(env, resources={"GPU": 1}).result()
    print(json.dumps({"seen": sorted(seen.values(), key=str), "res": res, "on": on}),
          flush=True)
"""


@pytest.mark.slurm
@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", SLURM_SITES)
def test_slurm_site_scripts_pass_sbatch_test_only(tmp_path, tag, name):
    require(slurm_up(), "single-node Slurm is not running (bash ci/clusters/start-slurm.sh)")
    env = slurm_env(tag)
    script = str(LAUNCHERS / name)
    p = subprocess.run(["sbatch", "--test-only", *SHRINK, script, "x.py"], env=env,
                       cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "to start at" in p.stderr, p.stderr
    # the GPU requests are checked: more GPUs than the node has cannot start
    p = subprocess.run(["sbatch", "--test-only", *SHRINK, "--gpus-per-node=9", script, "x.py"],
                       env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert p.returncode != 0, p.stderr


@pytest.mark.slurm
@pytest.mark.timeout(200)
def test_slurm_amd_script_one_gpu_per_worker(tmp_path, tag):
    """slurm-amd.sbatch as written on the real Slurm, asking for 2 of the node's 8 gres GPUs
    while another job holds 2: Slurm grants GPUs 2 and 3 and says so in ROCR_VISIBLE_DEVICES;
    on a fake node of 8 AMD GPUs the 2 workers get 2 and 3, GPU=1, a GPU task runs."""
    require(slurm_up(), "single-node Slurm is not running (bash ci/clusters/start-slurm.sh)")
    (tmp_path / "client.py").write_text(CLIENT)
    root = fake_tree(tmp_path / "node", "amd", 8)
    jobs = Slurm(slurm_env(tag, PYTHON=PYTHON, DASK_BATCH_DEVICE_ROOT=str(root)))
    try:
        holder = jobs.sbatch("--gpus=2", "-n1", "--wrap", "sleep 170", cwd=tmp_path)
        wait_for(lambda: jobs.show(holder).get("JobState") == "RUNNING", 60,
                 "the job holding GPUs 0 and 1 to run")
        job_id = jobs.sbatch(*SHRINK, "--ntasks-per-node=4", "--gpus-per-node=2", "-o",
                             "out.txt", str(LAUNCHERS / "slurm-amd.sbatch"), "client.py",
                             cwd=tmp_path)
        state, code, _ = jobs.wait(job_id, timeout=180)
    finally:
        jobs.cancel_all()
    text = (tmp_path / "out.txt").read_text()
    assert (state, code) == ("COMPLETED", 0), text
    out = one_result(text)
    amd = [{k: v for k, v in seen.items() if k.endswith("_VISIBLE_DEVICES")}  # Slurm sets
           for seen in out["seen"]]  # every vendor's variable (ZE_AFFINITY_MASK too)
    assert amd == [{"ROCR_VISIBLE_DEVICES": "2", "HIP_VISIBLE_DEVICES": "0"},
                   {"ROCR_VISIBLE_DEVICES": "3", "HIP_VISIBLE_DEVICES": "0"}], text
    assert out["res"] == [{"GPU": 1}, {"GPU": 1}] and out["on"] in out["seen"], text
    no_leftovers(tag)


@pytest.mark.mpi
@pytest.mark.timeout(200)
def test_pbs_pals_intel_script_one_tile_per_worker(tmp_path, tag):
    """qsub launchers/pbs-pals-intel.qsub (strict fake qsub, fake PALS mpiexec, 4 ranks on one
    node with one Intel GPU of 2 tiles): ranks placed by PALS's variables, the 2 workers get
    tiles 0.0 and 0.1 in COMPOSITE mode, GPU=1, a GPU task runs."""
    require(MPIEXEC.exists(), f"mpiexec not found at {MPIEXEC}")
    fakes = Fakes(tmp_path, tag)
    try:
        (tmp_path / "client.py").write_text(CLIENT)
        root = fake_tree(tmp_path / "node", "intel", 1, tiles=2)
        v = (f"SCRIPT={tmp_path / 'client.py'},PYTHON={PYTHON},MPIEXEC={fakes.bin}/pals-mpiexec,"
             f"RANKS_PER_NODE=4,DEPTH=1,DASK_BATCH_DEVICE_ROOT={root},DASK_BATCH_TEST_TAG={tag},"
             "DASK_BATCH__DASHBOARD_ADDRESS=:0")
        job_id = submit(["qsub", "-l", "select=1:ncpus=4:mpiprocs=4", "-v", v,
                         str(LAUNCHERS / "pbs-pals-intel.qsub")], fakes.env(), tmp_path)
        seq = job_id.split(".")[0]
        code = fakes.wait(seq, 180)
        text = (tmp_path / f"dask-batch.o{seq}").read_text()
        assert code == 0, text
        assert fakes.calls("pals-mpiexec")[0][1:8] == ["-n", "4", "--ppn", "4", "--depth", "1",
                                                       "--cpu-bind"], fakes.calls()
    finally:
        fakes.kill()
    out = one_result(text)
    tiles = [{k: w[k] for k in ("ZE_AFFINITY_MASK", "ZE_FLAT_DEVICE_HIERARCHY")}
             for w in out["seen"]]
    assert sorted(t["ZE_AFFINITY_MASK"] for t in tiles) == ["0.0", "0.1"], text
    assert {t["ZE_FLAT_DEVICE_HIERARCHY"] for t in tiles} == {"COMPOSITE"}, text
    assert sorted(w["PALS_RANKID"] for w in out["seen"]) == ["2", "3"], text
    assert out["res"] == [{"GPU": 1}, {"GPU": 1}] and out["on"] in out["seen"], text
    no_leftovers(tag)
