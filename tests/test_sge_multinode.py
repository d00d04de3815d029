"""Grid Engine across three nodes: queue mn.q and PE mpi ($round_robin) of
ci/clusters/start-sge-multinode.sh, whose execds run in the node namespaces node1..3 of the
three-node Slurm (eth0 = 198.18.0.N, ib0 = 198.19.0.N; /tmp and PIDs shared) and report to
the single-node Grid Engine's qmaster. MPICH hydra's mpiexec reads $PE_HOSTFILE and starts
the slots of the other nodes with `qrsh -inherit`.

`qsub -q mn.q -pe mpi 6` gives two slots on each node; hydra places ranks 0-1 on the first
host of $PE_HOSTFILE (where the job script runs), 2-3 on the second, 4-5 on the third: the
scheduler and the client share one node, the four workers are on the other two.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from clusters import (
    CLUSTER,
    DASK_BATCH,
    LAUNCHERS,
    PYTHON,
    no_leftovers,
    one_result,
    sge_env,
)
from conftest import MPIEXEC, TAG, require

pytestmark = [pytest.mark.sge, pytest.mark.multinode]

NODES = ("node1", "node2", "node3")
SLOTS = 6  # two per node
IB, ETH = "198.19.0.", "198.18.0."


def sge_multinode_up() -> bool:
    """Every mn.q@nodeN instance reports a load and has no state flag; PE mpi exists."""
    env = sge_env("probe")
    try:
        q = subprocess.run(["qstat", "-f", "-q", "mn.q"], env=env, capture_output=True,
                           text=True, timeout=15)
        pe = subprocess.run(["qconf", "-sp", "mpi"], env=env, capture_output=True, text=True,
                            timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return False
    if q.returncode or pe.returncode:
        return False
    lines = {ln.split()[0]: ln.split() for ln in q.stdout.splitlines() if ln.startswith("mn.q@")}
    return all(len(lines.get(f"mn.q@{n}", [])) == 5 and lines[f"mn.q@{n}"][3] != "-NA-"
               for n in NODES)


@pytest.fixture(autouse=True, scope="module")
def _need_cluster():
    require(sge_multinode_up(), "three-node Grid Engine is not running "
            "(bash ci/clusters/start-sge-multinode.sh)")
    require(MPIEXEC.exists(), f"mpiexec not found at {MPIEXEC}")


def qsub(tmp: Path, env: dict[str, str], *args: str, slots: int = SLOTS,
         timeout: int = 100) -> tuple[int, str, float]:
    """qsub -sync y -q mn.q -pe mpi 6 ...: (qsub's exit status = the job's, output, seconds);
    the job is deleted whatever happens."""
    name = f"dbm{env[TAG][:8]}"
    out = tmp / "out.txt"
    argv = ["timeout", "-k", "5", str(timeout), "qsub", "-sync", "y", "-V", "-N", name, "-cwd",
            "-j", "y", "-o", str(out), "-q", "mn.q", "-pe", "mpi", str(slots), *args]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(argv, env=env, cwd=tmp, capture_output=True, text=True,
                              timeout=timeout + 10)
    finally:
        subprocess.run(["qdel", "-f", name], env=env, capture_output=True, timeout=15)
    took = time.monotonic() - t0
    text = out.read_text() if out.exists() else ""
    return proc.returncode, f"{text}\n--- qsub:\n{proc.stdout}{proc.stderr}", took


def node_of(ip: str) -> str:
    assert ip.startswith((IB, ETH)) and not ip.startswith("127."), ip
    return f"node{ip.rsplit('.', 1)[1]}"


def check_result(out: dict, text: str, master: str) -> None:
    """5050, four workers on the two nodes that are not the master's, the scheduler on the
    master's ib0 (never loopback)."""
    assert out["total"] == 5050 and out["joined"] == 4, text
    address = out["address"]
    assert address.startswith(f"tls://{IB}"), address
    assert node_of(address.removeprefix("tls://").rsplit(":", 1)[0]) == master, (address, master)
    hosts = [node_of(w["host"]) for w in out["workers"]]
    assert sorted(set(hosts)) == sorted(set(NODES) - {master}), hosts
    assert all(hosts.count(h) == 2 for h in set(hosts)), hosts
    assert "Traceback" not in text, text


def master_of(text: str) -> tuple[str, list[str]]:
    """The job script prints `master <hostname>` and `pe <hosts of $PE_HOSTFILE>`."""
    lines = dict(ln.split(" ", 1) for ln in text.splitlines() if ln.startswith(("master ", "pe ")))
    pe_hosts = lines["pe"].split()
    assert sorted(pe_hosts) == list(NODES), text
    assert lines["master"] == pe_hosts[0], text
    return lines["master"], pe_hosts


WHERE = """#!/bin/bash
echo "master $(hostname)"
echo "pe $(awk '{print $1}' "$PE_HOSTFILE" | tr '\\n' ' ')"
"""
INFO = """{mpiexec} -n $NSLOTS sh -c '{dask_batch} info --json > info-$PMI_RANK.json'
echo "info $?"
"""
RUN = "{mpiexec} -n $NSLOTS {python} {cluster} {args}\n"


@pytest.mark.timeout(120)
def test_mpiexec_batchrunner_three_nodes(tmp_path, tag: str) -> None:
    """qsub -sync y -q mn.q -pe mpi 6 job.sh; job.sh: mpiexec -n $NSLOTS dask-batch info, then
    mpiexec -n $NSLOTS python cluster.py (BatchRunner, MPI rendezvous): ranks two per node on
    node1..3, the scheduler on the job's first host over ib0, the workers on the other two."""
    (tmp_path / "job.sh").write_text(WHERE + INFO.format(mpiexec=MPIEXEC, dask_batch=DASK_BATCH)
                                     + RUN.format(mpiexec=MPIEXEC, python=PYTHON,
                                                  cluster=CLUSTER, args=""))
    code, text, took = qsub(tmp_path, sge_env(tag), "job.sh")
    assert code == 0, text
    assert "info 0" in text, text
    master, pe_hosts = master_of(text)
    infos = [json.loads((tmp_path / f"info-{r}.json").read_text()) for r in range(SLOTS)]
    for rank, info in enumerate(infos):
        assert (info["launcher"], info["batch_system"]) == ("pmi", "sge"), info
        assert (info["rank"], info["size"]) == (rank, SLOTS), info
        assert (info["local_rank"], info["local_size"]) == (rank % 2, 2), info
        assert info["hostname"] == pe_hosts[rank // 2], (rank, info, pe_hosts)
        assert info["interface"] == "ib0" and info["address"] == f"{IB}{info['hostname'][4:]}"
    assert len({info["job_id"] for info in infos}) == 1
    out = one_result(text)
    assert (out["launcher"], out["rank"], out["size"]) == ("mpi (pmi)", 1, SLOTS), out
    check_result(out, text, master)
    print(f"qsub -sync y -q mn.q -pe mpi 6, info + BatchRunner over MPI: {took:.1f} s")
    no_leftovers(tag)


@pytest.mark.timeout(120)
def test_environment_only_three_nodes(tmp_path, tag: str) -> None:
    """DASK_BATCH__MPI=false: hydra's PMI_RANK/PMI_SIZE only, the ranks meet through the
    scheduler file in the job's working directory (/tmp is shared by the nodes); the client's
    sys.exit(3) is the exit status of qsub -sync y."""
    (tmp_path / "job.sh").write_text(WHERE + RUN.format(mpiexec=MPIEXEC, python=PYTHON,
                                                        cluster=CLUSTER, args="--exit 3"))
    code, text, took = qsub(tmp_path, sge_env(tag, DASK_BATCH__MPI="false"), "job.sh")
    assert code == 3, text
    master, _ = master_of(text)
    out = one_result(text)
    assert (out["launcher"], out["rank"], out["size"]) == ("pmi", 1, SLOTS), out
    check_result(out, text, master)
    assert not list(tmp_path.glob("scheduler-*.json")), list(tmp_path.iterdir())
    print(f"qsub -sync y -q mn.q -pe mpi 6, environment only, exit 3: {took:.1f} s")
    no_leftovers(tag)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("code", [0, 3])
def test_sge_template_three_nodes(tmp_path, tag: str, code: int) -> None:
    """launchers/sge.qsub as it is, its `#$ -pe smp 4` overridden on the command line
    (-q mn.q -pe mpi 6): hydra spreads the slots over node1..3 through qrsh -inherit, and
    the client's exit code is qsub's."""
    env = sge_env(tag, PYTHON=PYTHON)
    code_, text, took = qsub(tmp_path, env, str(LAUNCHERS / "sge.qsub"), CLUSTER, "--plain",
                             "--workers", "4", "--exit", str(code))
    assert code_ == code, text
    out = one_result(text)
    # dask-batch run's client is rank 1, next to the scheduler on the job's first host
    master = node_of(out["address"].removeprefix("tls://").rsplit(":", 1)[0])
    check_result(out, text, master)
    assert sorted(w["name"] for w in out["workers"]) == ["2", "3", "4", "5"]
    print(f"qsub -sync y -q mn.q -pe mpi 6 launchers/sge.qsub, exit {code}: {took:.1f} s")
    no_leftovers(tag)


S_RT_JOB = """#!/bin/bash
trap 'echo "USR1 $(hostname)"' USR1
for i in $(seq 24); do sleep 0.25; done
echo end
"""


@pytest.mark.xfail(strict=True, reason="Grid Engine 8.1.9: when a job's PE spans hosts, the "
                   "master host's execd takes s_rt for the hard limit (its messages: 'exceeded "
                   "hard wallclock time - initiate terminate method') and SIGKILLs the job at "
                   "s_rt; the other hosts, and jobs on one host, get SIGUSR1 as documented. So "
                   "the s_rt warning of launchers/sge.qsub never reaches a multi-node job.")
@pytest.mark.timeout(60)
def test_s_rt_warns_a_job_across_nodes(tmp_path, tag: str) -> None:
    """-l s_rt=0:0:2 on a -pe mpi 3 job (one slot per node): the job script gets SIGUSR1 at
    2 s and runs to its end (6 s), as it does under $pe_slots."""
    (tmp_path / "job.sh").write_text(S_RT_JOB)
    code, text, _ = qsub(tmp_path, sge_env(tag), "-l", "h_rt=0:1:0,s_rt=0:0:2", "job.sh",
                         slots=3, timeout=45)
    assert "USR1 " in text and "end" in text, text
    assert code == 0, text
