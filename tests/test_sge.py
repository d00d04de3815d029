"""Real jobs on the Grid Engine of ci/clusters (queue all.q, PE smp with 16 slots)."""

from __future__ import annotations

import subprocess
import time

import pytest
from clusters import CLUSTER, LAUNCHERS, PYTHON, no_leftovers, one_result, sge_env, sge_up
from conftest import MPIEXEC, require

pytestmark = pytest.mark.sge


@pytest.fixture(autouse=True, scope="module")
def _need_sge():
    require(sge_up(), "Grid Engine is not running (bash ci/clusters/start-sge.sh)")
    require(MPIEXEC.exists(), f"mpiexec not found at {MPIEXEC}")


@pytest.mark.timeout(150)
@pytest.mark.parametrize("code", [0, 3])
def test_qsub_template(tmp_path, tag: str, code: int) -> None:
    """qsub -sync y -pe smp 4 launchers/sge.qsub script.py: mpiexec -n $NSLOTS dask-batch run;
    qsub's exit status is the script's."""
    env = sge_env(tag, PYTHON=PYTHON)
    name = f"dbt{tag[:8]}"
    argv = ["timeout", "-k", "5", "120", "qsub", "-sync", "y", "-V", "-N", name, "-pe", "smp",
            "4", "-o", str(tmp_path / "out.txt"), str(LAUNCHERS / "sge.qsub"), CLUSTER,
            "--plain", "--workers", "2", "--exit", str(code)]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=130)
    finally:
        subprocess.run(["qdel", name], env=env, capture_output=True, timeout=15)
    took = time.monotonic() - t0
    text = (tmp_path / "out.txt").read_text() if (tmp_path / "out.txt").exists() else ""
    assert proc.returncode == code, f"{proc.stdout}\n{proc.stderr}\n{text}"
    out = one_result(text)
    assert out["total"] == 5050 and out["joined"] == 2
    assert sorted(w["name"] for w in out["workers"]) == ["2", "3"]
    assert "Traceback" not in text, text
    print(f"qsub -sync y, code {code}: {took:.1f} s")
    no_leftovers(tag)
