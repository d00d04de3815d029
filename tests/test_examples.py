"""Every file of examples/ runs as a whole job here, the way its docstring says to run it."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
from conftest import MPIEXEC, ROOT, job_env, mpiexec, require, run_job

EXAMPLES = ROOT / "examples"
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.mpi


@pytest.fixture(autouse=True)
def _need_mpiexec():
    require(MPIEXEC.exists(), f"mpiexec not found at {MPIEXEC} (pip install 'dask-batch[mpich]')")


def test_every_example_is_run_here():
    source = Path(__file__).read_text()
    for path in EXAMPLES.glob("*.py"):
        assert f'"{path.name}"' in source, f"examples/{path.name} is not run by a test"


def example(name: str) -> str:
    return str(EXAMPLES / name)


@pytest.mark.timeout(120)
def test_hello(tmp_path):
    """mpiexec -n 6 python examples/hello.py (what scripts/demo.sh runs), with 4 ranks."""
    job = run_job(mpiexec(4, sys.executable, example("hello.py")), cwd=tmp_path)
    assert job.returncode == 0, job
    assert job.stdout.strip() == "2 workers, sum of squares 0..99 = 328350", job


def _need_dataframe() -> None:
    for module in ("pandas", "pyarrow"):
        require(importlib.util.find_spec(module) is not None,
                f"{module} missing: examples/dataframe.py needs dask[dataframe]")


@pytest.mark.timeout(150)
def test_dataframe(tmp_path):
    """mpiexec -n N python examples/dataframe.py: a group-by on the workers equals pandas'."""
    _need_dataframe()
    job = run_job(mpiexec(4, sys.executable, example("dataframe.py")), cwd=tmp_path,
                  timeout=140)
    assert job.returncode == 0, job
    assert re.fullmatch(r"200000 rows in 16 partitions on 2 workers: 50 stations, warmest \d+ "
                        r"\(\d+\.\d\d C\), \d+ with a day over 20 mm", job.stdout.strip()), job
    assert "Traceback" not in job.stderr and "Shuffle" not in job.stderr, job.stderr


@pytest.mark.timeout(150)
def test_dataframe_as_the_client_of_run(tmp_path):
    """The same file as the client script: dask-batch run examples/dataframe.py --rows N."""
    _need_dataframe()
    job = run_job(mpiexec(4, str(BIN / "dask-batch"), "run", example("dataframe.py"),
                          "--rows", "30000", "--partitions", "6"), cwd=tmp_path, timeout=140)
    assert job.returncode == 0, job
    assert job.stdout.startswith("30000 rows in 6 partitions on 2 workers: 50 stations"), job


def _gpus_here() -> bool:
    return any(Path("/dev").glob("nvidia[0-9]*"))


@pytest.mark.timeout(120)
def test_gpu_example_without_gpus_runs_on_cpu(tmp_path):
    """No GPU on the node (the CI machines): one clear line, then the same work with NumPy."""
    if _gpus_here():
        pytest.skip("this node has GPUs: see test_gpu_example_with_gpus")
    job = run_job(mpiexec(4, sys.executable, example("gpu.py")), cwd=tmp_path)
    assert job.returncode == 0, job
    lines = job.stdout.strip().splitlines()
    assert lines[0] == "GPU: none on the 2 workers: running on the CPU with NumPy", job
    assert re.fullmatch(r"8 matrix products with numpy: sum of traces -?\d+\.\d{3} "
                        r"\(checked against NumPy\)", lines[1]), job


@pytest.mark.timeout(120)
def test_gpu_example_one_gpu_per_worker(tmp_path):
    """GPUs 0 and 1 visible: each of the two workers gets its own (by local rank) and the GPU
    resource; without CuPy (or without real devices) the example says why and uses NumPy."""
    tag = "gpu-" + tmp_path.name
    env = job_env(tag, CUDA_VISIBLE_DEVICES="0,1")
    job = run_job(mpiexec(4, sys.executable, example("gpu.py")), env=env, cwd=tmp_path)
    assert job.returncode == 0, job
    first = job.stdout.strip().splitlines()[0]
    if importlib.util.find_spec("cupy") and _gpus_here():
        assert first == "GPU: 2 of 2 workers have one (CUDA_VISIBLE_DEVICES 0, 1): " \
                        "running on the GPUs with CuPy", job
        assert "with cupy" in job.stdout
    else:
        assert first.startswith("GPU: 2 workers were given one (CUDA_VISIBLE_DEVICES 0, 1) "
                                "but CuPy cannot use it ("), job
        assert first.endswith("): running on the CPU with NumPy"), job


@pytest.mark.timeout(150)
def test_addon_pools_through_fake_pbs(tmp_path):
    """examples/addon_pools.py: a highmem and a GPU pool sent as jobs to (strict fake) PBS;
    MEM tasks ran on the highmem workers, the GPU task on the GPU worker."""
    sys.path.insert(0, str(Path(__file__).parent / "fakes"))
    from helpers import fake_calls, fake_env, kill_fake_jobs

    (tmp_path / "pools.yaml").write_text(
        "highmem: {memory: 1GiB, cores: 1, resources: {MEM: 256e9}}\n"
        "gpu: {gpus: 1, cores: 1, memory: 1GiB, prologue: ['echo loading cuda']}\n")
    tag = "addon-" + tmp_path.name
    env = job_env(tag, POOLS_FILE=str(tmp_path / "pools.yaml"), WALLTIME="00:30:00",
                  DASK_BATCH__SUBMIT__SYSTEM="pbs", **fake_env("pbs", tmp_path))
    env["PATH"] = f"{BIN}:{env['PATH']}"
    try:
        job = run_job(mpiexec(4, sys.executable, example("addon_pools.py")), env=env,
                      cwd=tmp_path, timeout=140)
    finally:
        kill_fake_jobs(env)
    assert job.returncode == 0, job
    lines = job.stdout.strip().splitlines()
    assert lines[0] == "joined: [0, 2, 4, 6, 8, 10, 12, 14] model: 36", job
    assert lines[1] == "workers by resources: ['-', '-', 'GPU', 'MEM', 'MEM']", job
    assert lines[2] == "jobs: {'running': 2} {'running': 1}", job
    calls = fake_calls(env)
    scripts = [Path(c[1]).read_text() for c in calls if c[0] == "qsub"]
    assert len(scripts) == 2 and sum(":ngpus=1" in s for s in scripts) == 1, calls
    assert sum(c[0] == "qdel" for c in calls) == 2, calls  # close() cancelled both pools
