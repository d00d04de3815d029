"""UCX through distributed-ucxx: protocol checks, one-line errors, end-to-end jobs on CPU.

distributed-ucxx-cu12 pins dask, so it lives in its own venv, ROOT/.venv-ucx, made by
``bash scripts/setup-ucx-venv.sh``; the main venv lacks it, which is what the missing-package
test needs. UCX runs on a CPU (tcp, shared memory); the CUDA test needs a GPU.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from conftest import ROOT, job_env, require, run_job

from dask_batch import transport
from dask_batch.transport import TransportError, choose_protocol

UCX_VENV = ROOT / ".venv-ucx"
UCX_BIN = UCX_VENV / "bin"
JOB = str(ROOT / "mpi_tests" / "ucx_job.py")
HAVE_UCX_VENV = (UCX_BIN / "python").exists() and (UCX_BIN / "mpiexec").exists()
NO_UCX_VENV = f"no UCX venv at {UCX_VENV}: bash scripts/setup-ucx-venv.sh"


def ucx_env(tag: str, **extra: str) -> dict[str, str]:
    """A job environment whose python, dask-batch and mpiexec are the UCX venv's."""
    env = job_env(tag, **extra)
    env["PATH"] = f"{UCX_BIN}{os.pathsep}{env['PATH']}"
    env.pop("VIRTUAL_ENV", None)
    return env


def ucx_job(tmp_path: Path, *flags: str, env_extra: dict[str, str] | None = None,
            args: tuple[str, ...] = ()) -> tuple[object, dict]:
    require(HAVE_UCX_VENV, NO_UCX_VENV)
    env = ucx_env(os.urandom(8).hex(), **(env_extra or {}))
    argv = [str(UCX_BIN / "mpiexec"), "-n", "4", str(UCX_BIN / "dask-batch"), *flags,
            "--protocol", "ucx", "--insecure", "run", JOB, *args]
    job = run_job(argv, timeout=100, env=env, cwd=tmp_path)
    assert job.returncode == 0, job
    lines = [ln for ln in job.stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, job
    return job, json.loads(lines[0])


def check_ucx_result(out: dict, job: object) -> None:
    assert out["address"].startswith("ucx://"), job
    assert len(out["workers"]) == 2 and all(w.startswith("ucx://") for w in out["workers"]), job
    assert out["total"] == sum(range(1, 101)), job
    (t,) = out["transfers"]
    assert t["bytes"] == out["nbytes"] > 0, job  # the receiver logged it from the other worker
    assert set(out["ucx"]) == {"scheduler", *out["workers"]}, job
    for who, info in out["ucx"].items():
        assert info and info.get("TLS") and info.get("version"), (who, info)


# ------------------------------------------------------------------ protocol choice, pure


def test_ucx_needs_insecure() -> None:
    with pytest.raises(TransportError, match=r"no TLS.*--insecure"):
        choose_protocol("ucx", secure=True)


def test_ucx_missing_package_message(monkeypatch: pytest.MonkeyPatch) -> None:
    real = transport.importlib.util.find_spec
    monkeypatch.setattr(transport.importlib.util, "find_spec",
                        lambda name: None if name == "distributed_ucxx" else real(name))
    with pytest.raises(TransportError) as e:
        choose_protocol("ucx://", secure=False)
    assert str(e.value) == (
        "protocol 'ucx': it needs distributed-ucxx: pip install 'dask-batch[ucx]'")
    with pytest.raises(TransportError) as both:  # two problems, still one line
        choose_protocol("UCX", secure=True)
    assert "\n" not in str(both.value)
    assert "--insecure" in str(both.value) and "dask-batch[ucx]" in str(both.value)


def test_other_protocols_unchanged() -> None:
    assert choose_protocol(None, secure=True) == "tls"
    assert choose_protocol(None, secure=False) == "tcp"
    assert choose_protocol("tls://", secure=True) == "tls"
    with pytest.raises(TransportError, match="not encrypted"):
        choose_protocol("tcp", secure=True)
    with pytest.raises(TransportError, match="unknown protocol 'udp'"):
        choose_protocol("udp", secure=False)


# ------------------------------------------------------------------ one-line errors, real jobs


@pytest.mark.mpi
def test_missing_package_is_one_line_exit_2(tmp_path: Path) -> None:
    """The main venv has no distributed-ucxx: every rank fails alike, rank 0 says it once."""
    import importlib.util

    require(importlib.util.find_spec("distributed_ucxx") is None,
            "distributed-ucxx is installed in the main venv")
    mpiexec = Path(sys.executable).parent / "mpiexec"
    require(mpiexec.exists(), "no mpiexec in the main venv")
    argv = [str(mpiexec), "-n", "4", str(Path(sys.executable).parent / "dask-batch"),
            "--protocol", "ucx", "--insecure", "run", JOB]
    job = run_job(argv, timeout=60, env=job_env(os.urandom(8).hex()), cwd=tmp_path)
    assert job.returncode == 2, job
    assert job.stderr.strip().splitlines() == [
        "dask-batch: error: protocol 'ucx': it needs distributed-ucxx: "
        "pip install 'dask-batch[ucx]'"
    ], job
    assert not job.stdout.strip(), job


@pytest.mark.mpi
def test_ucx_without_insecure_is_one_line_exit_2(tmp_path: Path) -> None:
    require(HAVE_UCX_VENV, NO_UCX_VENV)
    argv = [str(UCX_BIN / "mpiexec"), "-n", "4", str(UCX_BIN / "dask-batch"),
            "--protocol", "ucx", "run", JOB]
    job = run_job(argv, timeout=60, env=ucx_env(os.urandom(8).hex()), cwd=tmp_path)
    assert job.returncode == 2, job
    (line,) = job.stderr.strip().splitlines()
    assert line.startswith("dask-batch: error: protocol 'ucx': it has no TLS"), job
    assert "--insecure" in line, job


# ------------------------------------------------------------------ end to end over UCX (CPU)


@pytest.mark.mpi
def test_ucx_job_under_mpi(tmp_path: Path) -> None:
    """MPI rendezvous; UCX's libraries must load before MPICH's bundled UCX (runner order)."""
    job, out = ucx_job(tmp_path)
    check_ucx_result(out, job)
    assert not list(tmp_path.glob("scheduler-*.json")), "MPI rendezvous needs no file"


@pytest.mark.mpi
def test_ucx_job_env_only_with_dask_config(tmp_path: Path) -> None:
    """No MPI (launcher variables, scheduler file); a UCX option from a dask config file
    (distributed-ucxx.tcp: true -> UCX_TLS=tcp) reaches the scheduler and both workers."""
    conf = tmp_path / "dask-config"
    conf.mkdir()
    (conf / "ucx.yaml").write_text("distributed-ucxx:\n  tcp: true\n")
    job, out = ucx_job(tmp_path, "--no-mpi", env_extra={"DASK_CONFIG": str(conf)})
    check_ucx_result(out, job)
    assert {who: info["TLS"] for who, info in out["ucx"].items()} == {
        who: "tcp" for who in out["ucx"]}, job
    assert not list(tmp_path.glob("scheduler-*.json")), "scheduler file left behind"


@pytest.mark.mpi
def test_ucx_tls_from_environment(tmp_path: Path) -> None:
    """UCX_TLS in the launcher's environment beats dask config and reaches every rank."""
    conf = tmp_path / "dask-config"
    conf.mkdir()
    (conf / "ucx.yaml").write_text("distributed-ucxx:\n  tcp: true\n")
    job, out = ucx_job(tmp_path, "--no-mpi", env_extra={"DASK_CONFIG": str(conf),
                                                        "UCX_TLS": "tcp,self,sm"})
    check_ucx_result(out, job)
    tls = {who: info["TLS"] for who, info in out["ucx"].items()}
    assert set(tls.values()) == {"tcp,self,sm"}, job


# ------------------------------------------------------------------ CUDA (GPU machines only)


def _has_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None and Path("/dev/nvidia0").exists()


@pytest.mark.mpi
def test_ucx_cuda_copy_on_gpu(tmp_path: Path) -> None:
    """With a GPU: cuda_copy through dask config, one GPU per worker, the job still passes."""
    if not _has_gpu():
        pytest.skip("no GPU here")
    job, out = ucx_job(tmp_path, "--gpus", "auto",
                       env_extra={"DASK_DISTRIBUTED_UCXX__TCP": "True",
                                  "DASK_DISTRIBUTED_UCXX__CUDA_COPY": "True"})
    check_ucx_result(out, job)
    for who, info in out["ucx"].items():
        assert "cuda_copy" in info["TLS"], (who, info)
