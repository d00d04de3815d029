"""The job scripts of launchers/ run whole jobs here.

* PBS (``pbs.qsub``, ``pbs-lab.qsub``), LSF (``lsf.bsub`` with ``mpirun`` or ``jsrun``) and Flux
  (``flux.sh``): no such system exists on the test machines, so strict fakes of ``qsub``,
  ``bsub``, ``flux``, ``mpirun`` and ``jsrun`` stand in. They check every directive and option
  against the systems' syntax (shared/reference/batch-systems.md, the flux-core manual), reject
  anything else the way the real command would, record each call, give the job that system's
  variables, and start the ranks with the real MPICH ``mpiexec`` (``-n`` from the request), so
  every template really runs a Dask job. This file is the fakes' program too (``__main__``).
* ``mpirun-hosts.sh`` runs as it is, with the MPICH wheel's hydra on ``localhost``.
* On the real Slurm and Grid Engine of ci/clusters (the templates' ordinary runs are in
  tests/test_slurm.py and tests/test_sge.py): the walltime signal each template asks for
  reaches the client as ``AllocationEnding``, and under ``srun`` a dead worker rank is only a
  lost worker.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

THIS = Path(__file__).resolve()
ROOT = THIS.parent.parent
LAUNCHERS = ROOT / "launchers"

# ====================================================================== the fake commands

NAME = r"[A-Za-z][\w.-]{0,63}"
ANY = r"\S.*"
SIGNAMES = {s.name.removeprefix("SIG") for s in signal.Signals}
SIGNAME = r"(SIG)?(" + "|".join(sorted(SIGNAMES)) + ")"
FSD = r"\d+(\.\d+)?[smhd]?"  # Flux Standard Duration

PBS_FLAGS = {
    "-N": NAME, "-q": ANY, "-A": ANY, "-o": ANY, "-e": ANY, "-j": r"oe|eo|n",
    "-W": r"umask=0?[0-7]{3}", "-v": ANY,
    "-l": r"select=\d+:ncpus=\d+(:mpiprocs=\d+)?(:mem=\d+[kmgtp]?[bw]?)?(:ngpus=\d+)?"
          r"|walltime=\d+:\d{2}:\d{2}|place=(scatter|pack|free)(:excl)?",
}
LSF_FLAGS = {
    "-J": NAME, "-n": r"\d+", "-W": r"(\d+:)?\d+", "-wt": r"(\d+:)?\d+", "-o": ANY, "-oo": ANY,
    "-e": ANY, "-eo": ANY, "-q": ANY, "-P": ANY, "-R": r"span\[(ptile=\d+|hosts=1)\]",
    "-wa": SIGNAME,
}
FLUX_BATCH_FLAGS = {
    "-N": r"\d+", "-n": r"\d+", "-c": r"\d+", "-t": FSD, "--job-name": NAME, "--output": ANY,
    "--error": ANY, "--signal": rf"({SIGNAME}|\d+)?(@{FSD})?",
}
FLUX_SHELL_OPTIONS = {"exit-timeout": r"none|" + FSD, "exit-on-error": r"1?", "pmi": ANY,
                      "cpu-affinity": ANY}


def fail(msg: str, code: int = 2) -> None:
    sys.stderr.write(msg + "\n")
    sys.exit(code)


def state_dir() -> Path:
    return Path(os.environ["FAKE_LAUNCH_DIR"])


def record(cmd: str, args: list[str]) -> None:
    with open(state_dir() / "calls.jsonl", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps([cmd, *args]) + "\n")


def next_id() -> int:
    with open(state_dir() / "counter", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        n = int(f.read().strip() or 100) + 1
        f.seek(0)
        f.truncate()
        f.write(str(n))
    return n


def parse_flags(args: list[str], table: dict[str, str], cmd: str,
                stop_at_positional: bool = True) -> tuple[list[tuple[str, str]], list[str]]:
    """``-x value`` / ``--long=value`` pairs, each value checked; the rest (positional)."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-"):
            break
        flag, eq, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if flag not in table:
            fail(f"{cmd}: invalid option -- '{arg}'")
        if not eq:
            if i + 1 >= len(args):
                fail(f"{cmd}: option {flag} needs a value")
            i += 1
            value = args[i]
        if not re.fullmatch(table[flag], value):
            fail(f"{cmd}: illegal {flag} value {value!r}")
        out.append((flag, value))
        i += 1
    return out, args[i:]


def directives(text: str, prefix: str, table: dict[str, str], cmd: str,
               late_is_error: bool = False) -> list[tuple[str, str]]:
    """Header lines ``<prefix> -x value`` up to the first command line, each one checked.

    PBS and LSF ignore directives after the first command line; Flux rejects them.
    """
    out: list[tuple[str, str]] = []
    ended = False
    for line in text.splitlines()[1:]:
        if not line.strip():
            continue
        m = re.match(prefix, line)
        if m and ended:
            if late_is_error:
                fail(f"{cmd}: directive after the first command line: {line!r}")
            continue
        if m:
            words = shlex.split(line[m.end():], comments=late_is_error)
            if len(words) == 1 and words[0].startswith("--") and "=" in words[0]:
                words = words[0].split("=", 1)
            if len(words) != 2 or words[0] not in table:
                fail(f"{cmd}: bad directive line: {line!r}")
            if not re.fullmatch(table[words[0]], words[1]):
                fail(f"{cmd}: illegal {words[0]} value {words[1]!r} in {line!r}")
            out.append((words[0], words[1]))
        elif not line.startswith("#"):
            ended = True
    return out


def start_job(job_id: str, argv: list[str], env: dict[str, str], cwd: str, output: str,
              umask: int = 0o022, append: bool = False) -> None:
    """Run the job detached in its own session; its exit code goes to <state>/<id>.ec."""
    jobs = state_dir() / "jobs"
    jobs.mkdir(exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(output, flags, 0o666 & ~umask)
    proc = subprocess.Popen(
        ["/bin/bash", "-c", '"$@"; echo $? > "$0"', str(jobs / f"{job_id}.ec"), *argv],
        env=env, cwd=cwd, stdout=fd, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, preexec_fn=lambda: os.umask(umask))
    os.close(fd)
    (jobs / f"{job_id}.pid").write_text(str(proc.pid))


def spool(job_id: str, text: str) -> str:
    path = state_dir() / "jobs" / f"{job_id}.script"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return str(path)


def fake_qsub(args: list[str]) -> None:
    """PBS Pro qsub: options, then one script (no script arguments: use -v)."""
    given, rest = parse_flags(args, PBS_FLAGS, "qsub")
    if len(rest) != 1:
        fail(f"qsub: a job script takes no arguments (use -v), got {rest}")
    script = rest[0]
    if not os.path.isfile(script):
        fail(f"qsub: script file:: No such file or directory: {script}")
    text = Path(script).read_text()
    merged: dict[str, str] = {}
    for flag, value in directives(text, r"#PBS\s", PBS_FLAGS, "qsub") + given:
        key = f"-l {value.split('=')[0]}" if flag == "-l" else flag  # one per resource
        merged[key] = value
    if "-l select" not in merged:
        fail("qsub: test fake: no -l select=")
    m = re.match(r"select=(\d+):ncpus=\d+(?::mpiprocs=(\d+))?", merged["-l select"])
    assert m
    ranks = int(m.group(1)) * int(m.group(2) or 1)
    seq = next_id()
    job_id = f"{seq}.fakeserver"
    home = state_dir() / "home"  # PBS starts the job in $HOME, not in the submit directory
    home.mkdir(exist_ok=True)
    nodefile = state_dir() / "jobs" / f"{seq}.nodes"
    nodefile.parent.mkdir(exist_ok=True)
    nodefile.write_text(f"{socket.gethostname()}\n" * ranks)
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "PBS_JOBID": job_id,
           "PBS_JOBNAME": merged.get("-N", Path(script).name), "PBS_NODEFILE": str(nodefile),
           "PBS_O_WORKDIR": os.getcwd(), "PBS_O_HOST": socket.gethostname(),
           "PBS_O_PATH": os.environ.get("PATH", ""), "PBS_ENVIRONMENT": "PBS_BATCH"}
    for item in re.findall(r'(?:[^,"]|"[^"]*")+', merged.get("-v", "")):
        name, eq, value = item.partition("=")
        env[name] = value.strip('"') if eq else os.environ.get(name, "")
    umask = int(merged.get("-W", "umask=077").split("=")[1], 8)
    if merged.get("-j") != "oe":
        fail("qsub: test fake: only -j oe (one output file) is implemented")
    output = merged.get("-o") or os.path.join(os.getcwd(), f"{env['PBS_JOBNAME']}.o{seq}")
    start_job(str(seq), ["/bin/bash", spool(str(seq), text)], env, str(home), output, umask)
    print(job_id)


def lsf_slots() -> int:
    hostfile = os.environ.get("LSB_DJOB_HOSTFILE")
    if not hostfile:
        fail("test fake: not inside an LSF job (no LSB_DJOB_HOSTFILE)")
    return len(Path(hostfile).read_text().split())


def fake_bsub(args: list[str]) -> None:
    """LSF bsub: the script on stdin (else #BSUB lines are not read), options override them."""
    given, rest = parse_flags(args, LSF_FLAGS, "bsub")
    if rest:
        fail(f"bsub: test fake expects the job script on stdin (bsub < file), got {rest}")
    text = sys.stdin.read()
    if not text.startswith("#!"):
        fail("bsub: test fake: the script on stdin has no #! line")
    merged = dict(directives(text, r"#BSUB\s", LSF_FLAGS, "bsub") + given)
    for must in ("-n", "-W", "-o"):
        if must not in merged:
            fail(f"bsub: test fake: {must} missing")
    if ("-wa" in merged) != ("-wt" in merged):
        fail("bsub: -wa and -wt go together")
    slots = int(merged["-n"])
    seq = next_id()
    hostfile = state_dir() / "jobs" / f"{seq}.hosts"
    hostfile.parent.mkdir(exist_ok=True)
    host = socket.gethostname()
    hostfile.write_text(f"{host}\n" * slots)
    env = dict(os.environ)  # LSF copies the submission environment
    env.update({"LSB_JOBID": str(seq), "LSB_JOBNAME": merged.get("-J", "NONAME"),
                "LSB_JOBINDEX": "0", "LSB_HOSTS": " ".join([host] * slots),
                "LSB_MCPU_HOSTS": f"{host} {slots}", "LSB_DJOB_HOSTFILE": str(hostfile),
                "LS_SUBCWD": os.getcwd()})
    output = merged.get("-o", merged.get("-oo", "")).replace("%J", str(seq)).replace("%I", "0")
    start_job(str(seq), ["/bin/bash", spool(str(seq), text)], env, os.getcwd(), output,
              append="-o" in merged)
    print(f"Job <{seq}> is submitted to queue <{merged.get('-q', 'normal')}>.")


def exec_ranks(n: int, argv: list[str], per_rank: dict[str, str]) -> None:
    """Start ``argv`` on ``n`` ranks with the real hydra; ``per_rank`` maps the launcher's own
    variables to hydra's (set in each rank just before it execs the program)."""
    exports = " ".join(f'{k}="${{{v}}}"' for k, v in per_rank.items())
    wrapper = ["/bin/sh", "-c", f'export {exports}; exec "$@"', "rank"] if per_rank else []
    real = os.environ["FAKE_REAL_MPIEXEC"]
    os.execv(real, [real, "-n", str(n), *wrapper, *argv])


def fake_mpirun(args: list[str]) -> None:
    """Open MPI / Spectrum MPI mpirun inside an LSF job: [--enable-recovery] -n N program."""
    n = None
    i = 0
    while i < len(args) and args[i].startswith("-"):
        if args[i] in ("--enable-recovery", "--oversubscribe"):
            i += 1
        elif args[i] in ("-n", "-np") and i + 1 < len(args) and args[i + 1].isdigit():
            n = int(args[i + 1])
            i += 2
        else:
            fail(f"mpirun: Error: unknown option \"{args[i]}\"", 1)
    if n is None or not args[i:]:
        fail("mpirun: test fake: expected [--enable-recovery] -n N PROGRAM [ARGS]", 1)
    if n > lsf_slots():
        fail(f"There are not enough slots available in the system to satisfy the {n} slots",
             1)
    exec_ranks(n, args[i:], {})


def fake_jsrun(args: list[str]) -> None:
    """IBM jsrun: resource sets (--nrs, --tasks_per_rs, --cpu_per_rs, --rs_per_host)."""
    table = {"--nrs": r"\d+", "--tasks_per_rs": r"\d+", "--cpu_per_rs": r"\d+",
             "--rs_per_host": r"\d+", "--gpu_per_rs": r"\d+"}
    short = {"-n": "--nrs", "-a": "--tasks_per_rs", "-c": "--cpu_per_rs", "-r": "--rs_per_host",
             "-g": "--gpu_per_rs"}
    mapped, i = [], 0
    while i < len(args) and args[i].startswith("-"):  # short forms, up to the program
        step = 1 if "=" in args[i] else 2
        mapped += [short.get(args[i], args[i]), *args[i + 1:i + step]]
        i += step
    given, rest = parse_flags(mapped + args[i:], table, "jsrun")
    opts = dict(given)
    if "--nrs" not in opts or not rest:
        fail("jsrun: test fake: expected --nrs N ... PROGRAM", 1)
    n = int(opts["--nrs"]) * int(opts.get("--tasks_per_rs", 1))
    if n > lsf_slots():
        fail(f"jsrun: not enough resources for {n} tasks", 1)
    exec_ranks(n, rest, {"JSM_NAMESPACE_RANK": "PMI_RANK", "JSM_NAMESPACE_SIZE": "PMI_SIZE",
                         "JSM_NAMESPACE_LOCAL_RANK": "MPI_LOCALRANKID",
                         "JSM_NAMESPACE_LOCAL_SIZE": "MPI_LOCALNRANKS"})


def fake_flux(args: list[str]) -> None:
    sub, rest = (args[0], args[1:]) if args else ("", [])
    if sub == "batch":
        given, positional = parse_flags(rest, FLUX_BATCH_FLAGS, "flux-batch")
        if not positional or not os.path.isfile(positional[0]):
            fail("flux-batch: a batch script is required", 1)
        text = Path(positional[0]).read_text()
        merged = dict(directives(text, r"#\s*flux:\s*", FLUX_BATCH_FLAGS, "flux-batch",
                                   late_is_error=True) + given)
        ncores = int(merged.get("-n", 1)) * int(merged.get("-c", 1))
        seq = next_id()
        job_id = f"f{seq}fake"
        env = dict(os.environ)  # flux batch copies the submission environment
        env.update({"FLUX_JOB_ID": job_id, "FLUX_URI": f"local://{state_dir()}/flux-{seq}",
                    "FAKE_FLUX_NCORES": str(ncores), "FLUX_JOB_NNODES": merged.get("-N", "1")})
        output = merged.get("--output", "flux-{{id}}.out").replace("{{id}}", job_id)
        start_job(str(seq), ["/bin/bash", positional[0], *positional[1:]], env, os.getcwd(),
                  output)
        print(job_id)
    elif sub == "resource":
        if rest != ["list", "-s", "up", "-no", "{ncores}"]:
            fail(f"flux-resource: test fake: unexpected arguments {rest}", 1)
        if "FAKE_FLUX_NCORES" not in os.environ:
            fail("flux-resource: ERROR: Unable to connect to Flux: broker socket not found", 1)
        print(os.environ["FAKE_FLUX_NCORES"])
    elif sub == "run":
        table = {"-n": r"\d+", "-o": ANY, "--signal": FLUX_BATCH_FLAGS["--signal"]}
        given, program = parse_flags(rest, table, "flux-run")
        opts = dict(given)
        for flag, value in given:
            if flag == "-o":
                key, _, val = value.partition("=")
                if key not in FLUX_SHELL_OPTIONS or not re.fullmatch(FLUX_SHELL_OPTIONS[key], val):
                    fail(f"flux-run: test fake: unknown shell option {value!r}", 1)
        n = int(opts.get("-n", 1))
        if not program or "FAKE_FLUX_NCORES" not in os.environ:
            fail("flux-run: test fake: expected -n N PROGRAM inside a Flux instance", 1)
        if n > int(os.environ["FAKE_FLUX_NCORES"]):
            fail(f"flux-run: ERROR: unsatisfiable request: {n} tasks", 1)
        exec_ranks(n, program, {"FLUX_TASK_RANK": "PMI_RANK", "FLUX_JOB_SIZE": "PMI_SIZE",
                                "FLUX_TASK_LOCAL_ID": "MPI_LOCALRANKID"})
    else:
        fail(f"flux: test fake: unknown subcommand {sub!r}", 1)


def fake_pals_mpiexec(args: list[str]) -> None:
    """HPE PALS mpiexec inside a PBS job: -n N --ppn P [--depth D] [--cpu-bind KIND] PROGRAM;
    the nodes are the job's ($PBS_NODEFILE), at most P ranks on each."""
    table = {"-n": r"\d+", "--np": r"\d+", "--ppn": r"\d+", "-ppn": r"\d+", "--depth": r"\d+",
             "-d": r"\d+", "--cpu-bind": r"none|core|depth|numa|socket|list:[\d:,-]+"}
    given, rest = parse_flags(args, table, "mpiexec")
    alias = {"--np": "-n", "-ppn": "--ppn", "-d": "--depth"}
    opts = {alias.get(k, k).lstrip("-"): v for k, v in given}
    if "n" not in opts or not rest:
        fail("mpiexec: test fake: expected -n N [--ppn P] ... PROGRAM", 1)
    if opts.get("cpu-bind") == "depth" and "depth" not in opts:
        fail("mpiexec: --cpu-bind depth needs --depth", 1)
    nodes = len(set(Path(os.environ["PBS_NODEFILE"]).read_text().split()))
    n, ppn = int(opts["n"]), int(opts.get("ppn", 1))
    if n > nodes * ppn:
        fail(f"mpiexec: {n} ranks do not fit {nodes} node(s) x --ppn {ppn}", 1)
    os.environ.update(PALS_APID=f"{os.getpid()}.0", PALS_NODEID="0")  # one node here
    exec_ranks(n, rest, {"PALS_RANKID": "PMI_RANK", "PALS_LOCAL_RANKID": "MPI_LOCALRANKID",
                         "PALS_LOCAL_SIZE": "MPI_LOCALNRANKS"})


FAKES = {"qsub": fake_qsub, "bsub": fake_bsub, "mpirun": fake_mpirun, "jsrun": fake_jsrun,
         "flux": fake_flux, "pals-mpiexec": fake_pals_mpiexec}

if __name__ == "__main__":
    record(sys.argv[1], sys.argv[2:])
    FAKES[sys.argv[1]](sys.argv[2:])
    sys.exit(0)

# ====================================================================== the tests

import pytest  # noqa: E402
from clusters import CLUSTER, PYTHON, no_leftovers, one_result  # noqa: E402
from conftest import MPIEXEC, job_env, require  # noqa: E402


class Fakes:
    """A bin directory with the fake commands first on PATH, and their state."""

    def __init__(self, tmp_path: Path, tag: str):
        self.dir, self.tag = tmp_path / "fakestate", tag
        self.bin = tmp_path / "fakebin"
        self.dir.mkdir()
        self.bin.mkdir()
        for name in FAKES:
            path = self.bin / name
            path.write_text(f"#!/bin/sh\nFAKE_LAUNCH_DIR={shlex.quote(str(self.dir))} "
                            f"FAKE_REAL_MPIEXEC={shlex.quote(str(MPIEXEC))} "
                            f"exec {shlex.quote(sys.executable)} {shlex.quote(str(THIS))} "
                            f"{name} \"$@\"\n")
            path.chmod(0o755)

    def env(self, **extra: str) -> dict[str, str]:
        env = job_env(self.tag, PYTHON=PYTHON, **extra)
        env["PATH"] = f"{self.bin}{os.pathsep}{env['PATH']}"
        return env

    def calls(self, cmd: str | None = None) -> list[list[str]]:
        path = self.dir / "calls.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [c for c in map(json.loads, lines) if cmd is None or c[0] == cmd]

    def wait(self, seq: int | str, timeout: float) -> int:
        ec = self.dir / "jobs" / f"{seq}.ec"
        deadline = time.monotonic() + timeout
        while not (ec.exists() and ec.read_text().strip()):
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"fake job {seq} still running after {timeout} s")
            time.sleep(0.2)
        return int(ec.read_text())

    def kill(self) -> None:
        for pid_file in (self.dir / "jobs").glob("*.pid"):
            try:
                os.killpg(int(pid_file.read_text()), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.fixture
def fakes(tmp_path, tag):
    require(MPIEXEC.exists(), f"mpiexec not found at {MPIEXEC} (pip install 'dask-batch[mpich]')")
    f = Fakes(tmp_path, tag)
    yield f
    f.kill()


def submit(argv: list[str], env: dict[str, str], cwd: Path, stdin: Path | None = None) -> str:
    with open(stdin) if stdin else open(os.devnull) as f:
        p = subprocess.run(argv, env=env, cwd=cwd, stdin=f, capture_output=True, text=True,
                           timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def result_of(text: str, workers: int) -> dict:
    out = one_result(text)
    assert out["total"] == 5050 and out["joined"] == workers, text
    assert sorted(int(w["name"]) for w in out["workers"]) == list(range(2, 2 + workers)), text
    assert "Traceback" not in text, text
    return out


# ---------------------------------------------------------------- the fakes themselves


def test_fakes_reject_what_the_real_commands_reject(fakes, tmp_path):
    env = fakes.env()
    bad = tmp_path / "bad.sh"
    cases = [
        ("#!/bin/bash\n#PBS -l select=2:ncpus=4:mpiprocs=4:mem=16GiB\n", ["qsub", str(bad)]),
        ("#!/bin/bash\n#PBS -l select=1:ncpus=1\n#PBS -j oe\n", ["qsub", str(bad), "x.py"]),
        ("#!/bin/bash\n#BSUB -n 8 # ranks\n#BSUB -W 5\n#BSUB -o o\n", ["bsub"]),
        ("#!/bin/bash\n#BSUB -n 8\n#BSUB -W 5\n#BSUB -o o\n#BSUB -wa USR9\n#BSUB -wt 2\n",
         ["bsub"]),
        ("#!/bin/bash\n# flux: -t 5 minutes\n", ["flux", "batch", str(bad)]),
    ]
    for text, argv in cases:
        bad.write_text(text)
        with open(bad) as stdin:
            p = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True,
                               stdin=stdin, timeout=30)
        assert p.returncode != 0 and p.stderr.strip(), (text, argv, p.stdout)
    p = subprocess.run(["bsub", str(bad)], env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "stdin" in p.stderr
    p = subprocess.run(["flux", "run", "-n", "2", "true"], env=env, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode != 0  # not inside a Flux instance
    assert fakes.calls() and not list((fakes.dir / "jobs").glob("*.ec"))


# ---------------------------------------------------------------- PBS


@pytest.mark.mpi
@pytest.mark.timeout(200)
@pytest.mark.parametrize("code", [0, 3])
def test_pbs_template(fakes, tmp_path, tag, code):
    """qsub -v SCRIPT=...,ARGS=... launchers/pbs.qsub: the site's mpiexec on $PBS_NODEFILE;
    the template's own request (2 x 4 ranks), or a smaller one given to qsub (1 x 5)."""
    args = f"--plain --workers {6 if code == 0 else 3} --exit {code}"
    v = (f"SCRIPT={CLUSTER},ARGS={args},PYTHON={PYTHON},DASK_BATCH_TEST_TAG={tag},"
         "DASK_BATCH__DASHBOARD_ADDRESS=:0")
    argv = ["qsub", "-v", v, str(LAUNCHERS / "pbs.qsub")]
    if code:
        argv[1:1] = ["-l", "select=1:ncpus=5:mpiprocs=5"]
    job_id = submit(argv, fakes.env(), tmp_path)
    assert re.fullmatch(r"\d+\.fakeserver", job_id)
    seq = job_id.split(".")[0]
    assert fakes.wait(seq, 180) == code
    text = (tmp_path / f"dask-batch.o{seq}").read_text()
    result_of(text, 6 if code == 0 else 3)
    no_leftovers(tag)


@pytest.mark.mpi
@pytest.mark.timeout(300)
def test_pbs_lab_template(fakes, tmp_path, tag):
    """qsub launchers/pbs-lab.qsub: the banner in a 0600 output file, a kernel computes on the
    job's workers, Jupyter's shut-down ends the job with 0."""
    import stat

    from test_lab import CLIENT_CODE, START, Kernel, Lab, need_lab

    need_lab()
    v = (f"PYTHON={PYTHON},DASK_BATCH_TEST_TAG={tag},DASK_BATCH__DASHBOARD_ADDRESS=:0,"
         f"JUPYTER_CONFIG_DIR={tmp_path / '.jupyter'},ARGS=--ServerApp.root_dir={tmp_path}")
    job_id = submit(["qsub", "-l", "select=1:ncpus=4:mpiprocs=4", "-v", v,
                     str(LAUNCHERS / "pbs-lab.qsub")], fakes.env(), tmp_path)
    seq = job_id.split(".")[0]
    out = tmp_path / f"dask-lab.o{seq}"
    session, deadline = Lab(), time.monotonic() + START
    try:
        while not (out.exists() and session.parse(out.read_text())):
            assert time.monotonic() < deadline, f"no banner:\n{out.read_text()}"
            assert not (fakes.dir / "jobs" / f"{seq}.ec").exists(), out.read_text()
            time.sleep(0.5)
        assert stat.S_IMODE(out.stat().st_mode) == 0o600  # -W umask=077: the token is private
        kernel = Kernel(session)
        assert kernel.run(CLIENT_CODE).split()[:2] == ["5050", "2"]
        kernel.close()
        session.api("POST", "/api/shutdown")
        assert fakes.wait(seq, 90) == 0, out.read_text()
    finally:
        fakes.kill()
    assert "Traceback" not in out.read_text()
    no_leftovers(tag)


# ---------------------------------------------------------------- LSF


@pytest.mark.mpi
@pytest.mark.timeout(200)
@pytest.mark.parametrize("launcher,code", [("mpirun", 0), ("jsrun", 3)])
def test_lsf_template(fakes, tmp_path, tag, launcher, code):
    """SCRIPT=... bsub -n 6 < launchers/lsf.bsub, with mpirun or jsrun; exit status = script's."""
    env = fakes.env(SCRIPT=CLUSTER, ARGS=f"--plain --workers 4 --exit {code}", LAUNCHER=launcher)
    out = submit(["bsub", "-n", "6"], env, tmp_path, stdin=LAUNCHERS / "lsf.bsub")
    m = re.fullmatch(r"Job <(\d+)> is submitted to queue <normal>\.", out)
    assert m, out
    assert fakes.wait(m.group(1), 180) == code
    text = (tmp_path / f"dask-batch.{m.group(1)}.out").read_text()
    result_of(text, 4)
    call = fakes.calls(launcher)[0]
    expected = {"mpirun": ["mpirun", "-n", "6"],
                "jsrun": ["jsrun", "--nrs", "6", "--tasks_per_rs", "1", "--cpu_per_rs", "1",
                          "--rs_per_host", "4"]}[launcher]
    assert call[:len(expected)] == expected, call
    no_leftovers(tag)


@pytest.mark.mpi
@pytest.mark.timeout(200)
def test_lsf_template_recovery_flag_reaches_mpirun(fakes, tmp_path, tag):
    env = fakes.env(SCRIPT=CLUSTER, ARGS="--plain --workers 2", MPIRUN_FLAGS="--enable-recovery")
    out = submit(["bsub", "-n", "4"], env, tmp_path, stdin=LAUNCHERS / "lsf.bsub")
    seq = re.search(r"<(\d+)>", out).group(1)
    assert fakes.wait(seq, 180) == 0
    result_of((tmp_path / f"dask-batch.{seq}.out").read_text(), 2)
    assert fakes.calls("mpirun")[0][:4] == ["mpirun", "--enable-recovery", "-n", "4"]
    no_leftovers(tag)


# ---------------------------------------------------------------- Flux


@pytest.mark.mpi
@pytest.mark.timeout(200)
@pytest.mark.parametrize("code", [0, 3])
def test_flux_template(fakes, tmp_path, tag, code):
    """flux batch launchers/flux.sh script.py args: flux run over the whole allocation, kept
    going past a dead task (-o exit-timeout=none), walltime signal SIGUSR2."""
    job_id = submit(["flux", "batch", str(LAUNCHERS / "flux.sh"), CLUSTER, "--plain",
                     "--workers", "4", "--exit", str(code)], fakes.env(), tmp_path)
    seq = re.fullmatch(r"f(\d+)fake", job_id).group(1)
    assert fakes.wait(seq, 180) == code
    text = (tmp_path / f"dask-batch-{job_id}.out").read_text()
    result_of(text, 4)
    run = fakes.calls("flux")[-1]
    assert run[:7] == ["flux", "run", "-n", "6", "-o", "exit-timeout=none",
                       "--signal=SIGUSR2@120s"], run
    no_leftovers(tag)


# ---------------------------------------------------------------- mpirun on a host list


def _hosts_job(tmp_path: Path, tag: str, script: str, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["bash", str(LAUNCHERS / "mpirun-hosts.sh"), script, *args],
        env=job_env(tag, PYTHON=PYTHON, **env), cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.mark.mpi
@pytest.mark.timeout(150)
@pytest.mark.parametrize("how", ["HOSTS", "HOSTFILE"])
def test_mpirun_hosts_template(tmp_path, tag, how):
    require(MPIEXEC.exists(), f"mpiexec not found at {MPIEXEC}")
    where = {"HOSTS": "localhost:5"}
    if how == "HOSTFILE":
        (tmp_path / "hosts.txt").write_text("localhost:3\nlocalhost:2\n")
        where = {"HOSTFILE": str(tmp_path / "hosts.txt")}
    proc = _hosts_job(tmp_path, tag, CLUSTER, "--plain", "--workers", "3", "--exit", "3",
                      **where)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 3, err
    result_of(out, 3)
    no_leftovers(tag)


WALLTIME_CLIENT = """
import os, sys, time
from dask.distributed import Client
from dask_batch import AllocationEnding

with Client() as client:
    client.wait_for_workers(int(os.environ["DASK_BATCH_N_WORKERS"]), timeout=90)
    print("READY", flush=True)
    try:
        for _ in range(2400):
            client.submit(time.sleep, 0.05, pure=False).result()
        print("NO SIGNAL", flush=True)
    except AllocationEnding as e:
        print("ENDING", e.signum, flush=True)
        print("SAVED", client.submit(lambda: "state").result(), flush=True)
"""


def _wait_line(read, key: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in read().splitlines():
            if line.startswith(key + " ") or line == key:
                return line
        time.sleep(0.2)
    raise AssertionError(f"no {key} line after {timeout} s:\n{read()}")


@pytest.mark.mpi
@pytest.mark.timeout(120)
def test_mpirun_hosts_sigterm_reaches_the_client(tmp_path, tag):
    """SIGTERM to the launcher (what a ssh session or a supervisor sends): the client gets
    AllocationEnding, saves its state, and the job ends with the client's code."""
    require(MPIEXEC.exists(), f"mpiexec not found at {MPIEXEC}")
    script = tmp_path / "client.py"
    script.write_text(WALLTIME_CLIENT)
    proc = _hosts_job(tmp_path, tag, str(script), HOSTS="localhost:4")
    lines: list[str] = []

    def read() -> str:
        return "\n".join(lines)

    import threading

    threading.Thread(target=lambda: lines.extend(ln.rstrip() for ln in proc.stdout),
                     daemon=True).start()
    try:
        _wait_line(read, "READY", 90)
        proc.send_signal(signal.SIGTERM)  # the script exec'd mpiexec: this is hydra
        assert _wait_line(read, "ENDING", 20) == f"ENDING {int(signal.SIGTERM)}"
        assert _wait_line(read, "SAVED", 20) == "SAVED state"
        assert proc.wait(30) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    no_leftovers(tag)


# ---------------------------------------------------------------- what every template says


TEMPLATES = ["slurm.sbatch", "slurm-lab.sbatch", "sge.qsub", "pbs.qsub", "pbs-lab.qsub",
             "lsf.bsub", "flux.sh", "mpirun-hosts.sh", "slurm-het.sbatch",
             "cray-ex-nvidia.sbatch", "slurm-amd.sbatch", "pbs-pals-intel.qsub"]  # docs/sites.md
SLURM_TEMPLATES = ("slurm.sbatch", "slurm-lab.sbatch", "cray-ex-nvidia.sbatch",
                   "slurm-amd.sbatch", "slurm-het.sbatch")
EARLY_SIGNAL = {  # template -> (regex of its early-warning request, the signal it sends)
    "slurm.sbatch": (r"^#SBATCH --signal=(\w+)@\d+", None),
    "slurm-lab.sbatch": (r"^#SBATCH --signal=(\w+)@\d+", None),
    "cray-ex-nvidia.sbatch": (r"^#SBATCH --signal=(\w+)@\d+", None),
    "slurm-amd.sbatch": (r"^#SBATCH --signal=(\w+)@\d+", None),
    "slurm-het.sbatch": (r"^#SBATCH --signal=(\w+)@\d+", None),
    "lsf.bsub": (r"^#BSUB -wa (\w+)", None),
    "flux.sh": (r"^# flux: --signal=(\w+)@", None),
    "sge.qsub": (r"^#\$ -l h_rt=[\d:]+,s_rt=", "USR1"),  # Grid Engine's s_rt sends SIGUSR1
}


def test_every_template_is_a_file_of_launchers_and_parses():
    assert sorted(TEMPLATES) == sorted(p.name for p in LAUNCHERS.iterdir() if p.name != "README.md")
    for name in TEMPLATES:
        p = subprocess.run(["bash", "-n", str(LAUNCHERS / name)], capture_output=True, text=True)
        assert p.returncode == 0, (name, p.stderr)


def test_early_signals_are_walltime_signals():
    """The signal a template asks for before the walltime is one dask-batch acts on: in
    batch.lifecycle.signals, or added by the template itself."""
    import dask.config
    import yaml

    import dask_batch.settings  # noqa: F401

    defaults = yaml.safe_load((ROOT / "dask_batch" / "batch.yaml").read_text())
    signals = defaults["batch"]["lifecycle"]["signals"]
    assert signals == dask.config.get("batch.lifecycle.signals", default=signals)
    for name, (pattern, fixed) in EARLY_SIGNAL.items():
        text = (LAUNCHERS / name).read_text()
        m = re.search(pattern, text, re.M)
        assert m, f"{name}: no early walltime signal"
        sig = "SIG" + (fixed or m.group(1)).removeprefix("SIG")
        added = re.search(r"DASK_BATCH__LIFECYCLE__SIGNALS:-'(\[.*\])'", text)
        acted_on = signals + (json.loads(added.group(1)) if added else [])
        assert sig in acted_on, f"{name}: {sig} is not one of {acted_on}"
    # Slurm: to the steps' tasks (the ranks), not only the batch shell ("B:")
    for name in SLURM_TEMPLATES:
        assert "#SBATCH --signal=B:" not in (LAUNCHERS / name).read_text()


def test_dead_worker_flags_where_the_launcher_has_them():
    text = {n: (LAUNCHERS / n).read_text() for n in TEMPLATES}
    for name in SLURM_TEMPLATES:
        assert re.search(r"^srun .*--kill-on-bad-exit=0 --no-kill", text[name], re.M), name
    assert re.search(r"^exec flux run .*-o exit-timeout=none", text["flux.sh"], re.M)
    # hydra has no such flag (tests/test_lifecycle.py): no template may claim one
    for name in ("sge.qsub", "mpirun-hosts.sh", "pbs.qsub"):
        assert not re.search(r"^[^#]*-disable-auto-cleanup", text[name], re.M), name


# ---------------------------------------------------------------- the real Slurm and SGE


SLURM_KILL_CLIENT = """
import os, signal, time
from dask.distributed import Client

with Client() as client:
    n = int(os.environ["DASK_BATCH_N_WORKERS"])
    client.wait_for_workers(n, timeout=90)
    pids = client.run(lambda dask_worker: os.getppid() if dask_worker.nanny else os.getpid())
    victim = sorted(pids)[-1]
    os.kill(pids[victim], signal.SIGKILL)  # a whole worker rank dies (the nanny's process)
    print("KILLED", victim, flush=True)
    deadline = time.monotonic() + 30
    while len(client.scheduler_info()["workers"]) >= n:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    print("RESULT", client.submit(sum, client.map(abs, range(-50, 50))).result(), flush=True)
"""


@pytest.mark.slurm
@pytest.mark.timeout(200)
def test_slurm_template_walltime_signal_and_dead_worker(tmp_path, tag):
    """On the real Slurm: (1) SIGUSR2 to the job's steps (what --signal=USR2@120 without "B:"
    sends; scancel --signal sends it now) reaches the client as AllocationEnding and the job
    completes; (2) a worker rank killed under srun --kill-on-bad-exit=0 --no-kill is a lost
    worker: the client still gets its result, and srun reports the dead rank's code."""
    from clusters import Slurm, slurm_env, slurm_up

    require(slurm_up(), "single-node Slurm is not running (bash ci/clusters/start-slurm.sh)")
    (tmp_path / "walltime.py").write_text(WALLTIME_CLIENT)
    (tmp_path / "kill.py").write_text(SLURM_KILL_CLIENT)
    jobs = Slurm(slurm_env(tag, PYTHON=PYTHON))
    try:
        wall = jobs.sbatch("-n", "4", "-o", "wall.txt", str(LAUNCHERS / "slurm.sbatch"),
                           "walltime.py", cwd=tmp_path)
        kill = jobs.sbatch("-n", "5", "-o", "kill.txt", str(LAUNCHERS / "slurm.sbatch"),
                           "kill.py", cwd=tmp_path)

        def read() -> str:
            return (tmp_path / "wall.txt").read_text() if (tmp_path / "wall.txt").exists() else ""

        _wait_line(read, "READY", 150)
        subprocess.run(["scancel", "--signal=USR2", wall], env=jobs.env, check=True, timeout=15)
        state, code, _ = jobs.wait(wall, timeout=90)
        text = read()
        assert f"ENDING {int(signal.SIGUSR2)}" in text and "SAVED state" in text, text
        assert (state, code) == ("COMPLETED", 0), f"{state} {code}\n{text}"
        state, code, _ = jobs.wait(kill, timeout=150)
    finally:
        jobs.cancel_all()
    text = (tmp_path / "kill.txt").read_text()
    assert "RESULT 2500" in text, text
    assert "KILLED" in text and code in (9, 128 + 9), f"{state} {code}\n{text}"
    print(f"dead worker rank under the Slurm template: job {state}, exit code {code}")
    no_leftovers(tag)


@pytest.mark.sge
@pytest.mark.timeout(200)
def test_sge_template_s_rt_warning(tmp_path, tag):
    """On the real Grid Engine: s_rt sends SIGUSR1 to every process of the job; sge.qsub makes
    it a walltime signal, so the client gets AllocationEnding, saves state, and exits 0."""
    from clusters import sge_env, sge_up

    require(sge_up(), "Grid Engine is not running (bash ci/clusters/start-sge.sh)")
    require(MPIEXEC.exists(), f"mpiexec not found at {MPIEXEC}")
    (tmp_path / "walltime.py").write_text(WALLTIME_CLIENT)
    env = sge_env(tag, PYTHON=PYTHON)
    name = f"dbw{tag[:8]}"
    argv = ["timeout", "-k", "5", "170", "qsub", "-sync", "y", "-V", "-N", name, "-pe", "smp",
            "4", "-l", "h_rt=0:05:00,s_rt=0:00:25", "-o", str(tmp_path / "out.txt"),
            str(LAUNCHERS / "sge.qsub"), "walltime.py"]
    try:
        proc = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=180)
    finally:
        subprocess.run(["qdel", name], env=env, capture_output=True, timeout=15)
    text = (tmp_path / "out.txt").read_text() if (tmp_path / "out.txt").exists() else ""
    assert f"ENDING {int(signal.SIGUSR1)}" in text and "SAVED state" in text, text + proc.stdout
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}\n{text}"
    no_leftovers(tag)
